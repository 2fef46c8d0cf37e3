//! What Gorse already has: a hash of every row it acknowledged, keyed by kind and
//! id. It makes an export incremental (send only rows whose hash changed, delete
//! rows that disappeared) and resumable (an interrupted export left the hashes of
//! every batch acknowledged before its last save).
//!
//! On disk, two tables of `key = "<kind>:<id>"` and `hash`: the rows file, written
//! whole, and beside it a journal of the rows recorded since, written instead of
//! the rows file while it holds at most [`JOURNAL_SHARE`] of it. An export that
//! changes a few rows of millions saves those few: writing `large`'s 5.3M rows
//! whole took seconds of each `serve` cycle that sent anything. A row deleted
//! from Gorse is never written down (it may name an erased customer): after one,
//! the next save writes the rows file whole, without it.
//!
//! A journal belongs to the rows file beside it: the journal is removed before
//! a new rows file is written, so a journal never meets a rows file newer than
//! itself. A crash between the two loses the journal: the rows file then holds
//! an older record of what Gorse has, so the next export sends (or deletes) those
//! rows again, never skips one.

use super::mapping::Kind;
use crate::storage::DataRoot;
use anyhow::Result;
use polars::prelude::*;

/// The journal is written while it holds at most this share of the rows file
/// (one row in eight): reading it costs at most an eighth more than the rows file
/// alone, and past that, writing the rows file whole is the cheaper save.
const JOURNAL_SHARE: usize = 8;

/// Per kind (in [`Kind::ALL`] order), id → hash, and what changed since the
/// rows file was read or written.
#[derive(Default)]
pub struct Delivered {
    rows: [PlHashMap<String, u64>; 3],
    /// Per kind, the ids recorded since the rows file: the journal.
    journal: [PlHashSet<String>; 3],
    /// How many rows the rows file on disk holds, when this was read from it
    /// or last wrote it and the journal is still small enough to save; `None`:
    /// the next save writes the rows file whole (a first export, a new target,
    /// many changes), so no journal is kept.
    file_rows: Option<usize>,
}

pub fn rows_file(shop: &str) -> String {
    format!("{shop}/state/gorse-rows.parquet")
}

/// The journal beside the rows file `rel`.
fn journal_file(rel: &str) -> String {
    format!("{}-journal.parquet", rel.trim_end_matches(".parquet"))
}

impl Delivered {
    /// The rows file at `rel` with its journal applied; empty without one.
    pub fn load(root: &DataRoot, rel: &str) -> Result<Delivered> {
        let Some(bytes) = root.get(rel)? else { return Ok(Delivered::default()) };
        let file = read_table(&bytes, rel)?;
        let mut delivered = Delivered { file_rows: Some(file.height()), ..Delivered::default() };
        for rows in &mut delivered.rows {
            rows.reserve(file.height() / 3);
        }
        each_row(&file, rel, |kind, id, hash| {
            if let Some(hash) = hash {
                delivered.rows[kind.index()].insert(id.to_string(), hash);
            }
        })?;
        let journal = journal_file(rel);
        if let Some(bytes) = root.get(&journal)? {
            each_row(&read_table(&bytes, &journal)?, &journal, |kind, id, hash| {
                if let Some(hash) = hash {
                    delivered.record(kind, id, hash);
                }
            })?;
        }
        Ok(delivered)
    }

    /// Saves what Gorse holds at `rel`: the journal while it is small enough,
    /// else the rows file whole (and no journal).
    pub fn save(&mut self, root: &DataRoot, rel: &str) -> Result<()> {
        let journal = journal_file(rel);
        if self.file_rows.is_some() {
            let entries = Kind::ALL.iter().zip(&self.journal).flat_map(|(kind, ids)| ids.iter().map(move |id| (*kind, id)));
            let (keys, hashes): (Vec<String>, Vec<Option<i64>>) = entries.filter_map(|(kind, id)| Some((key(kind, id), Some(self.hash(kind, id)? as i64)))).unzip();
            return write_rows(root, &journal, keys, hashes);
        }
        // The journal first: it must never meet a newer rows file.
        root.delete(&journal)?;
        crate::failpoint::hit("gorse-rows-whole")?;
        let entries = Kind::ALL.iter().zip(&self.rows).flat_map(|(kind, rows)| rows.iter().map(move |(id, h)| (key(*kind, id), Some(*h as i64))));
        let (keys, hashes): (Vec<String>, Vec<Option<i64>>) = entries.unzip();
        write_rows(root, rel, keys, hashes)?;
        self.file_rows = Some(self.len());
        self.journal.iter_mut().for_each(PlHashSet::clear);
        Ok(())
    }

    /// The hash Gorse acknowledged for `id`, if any.
    pub fn hash(&self, kind: Kind, id: &str) -> Option<u64> {
        self.rows[kind.index()].get(id).copied()
    }

    /// Rows of `kind` delivered before.
    pub fn count(&self, kind: Kind) -> usize {
        self.rows[kind.index()].len()
    }

    pub fn record(&mut self, kind: Kind, id: &str, hash: u64) {
        self.rows[kind.index()].insert(id.to_string(), hash);
        self.journaled(kind, id);
    }

    /// `id` deleted from Gorse: the next save writes the rows file whole, so
    /// that no file names it.
    pub fn forget(&mut self, kind: Kind, id: &str) {
        self.rows[kind.index()].remove(id);
        self.drop_journal();
    }

    fn drop_journal(&mut self) {
        self.file_rows = None;
        self.journal.iter_mut().for_each(PlHashSet::clear);
    }

    /// Notes `id` for the journal; past [`JOURNAL_SHARE`] of the rows file,
    /// drops the journal: the next save writes the rows file whole.
    fn journaled(&mut self, kind: Kind, id: &str) {
        let Some(rows) = self.file_rows else { return };
        if !self.journal[kind.index()].contains(id) {
            self.journal[kind.index()].insert(id.to_string());
        }
        if self.journal.iter().map(PlHashSet::len).sum::<usize>() > rows / JOURNAL_SHARE {
            self.drop_journal();
        }
    }

    /// Ids of `kind` delivered before, sorted.
    pub fn ids(&self, kind: Kind) -> Vec<String> {
        let mut ids: Vec<String> = self.rows[kind.index()].keys().cloned().collect();
        ids.sort();
        ids
    }

    pub fn len(&self) -> usize {
        self.rows.iter().map(PlHashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn key(kind: Kind, id: &str) -> String {
    format!("{}:{id}", kind.name())
}

/// The table of keys and hashes in `bytes`, read from `rel` (which names it in errors).
fn read_table(bytes: &[u8], rel: &str) -> Result<DataFrame> {
    ParquetReader::new(std::io::Cursor::new(bytes)).finish().map_err(|e| anyhow::anyhow!("{rel}: {e}"))
}

/// Calls `each` with the kind, id and hash of every row of `frame`, read
/// from `rel` (which names it in errors).
fn each_row(frame: &DataFrame, rel: &str, mut each: impl FnMut(Kind, &str, Option<u64>)) -> Result<()> {
    let keys = frame.column("key")?.str()?;
    let hashes = frame.column("hash")?.i64()?;
    for (key, hash) in keys.iter().zip(hashes.iter()) {
        let Some(key) = key else { continue };
        let kind = key.split_once(':').and_then(|(name, id)| Some((Kind::ALL.into_iter().find(|k| k.name() == name)?, id)));
        let Some((kind, id)) = kind else { anyhow::bail!("{rel}: {key:?} is not <kind>:<id>") };
        each(kind, id, hash.map(|h| h as u64));
    }
    Ok(())
}

fn write_rows(root: &DataRoot, rel: &str, keys: Vec<String>, hashes: Vec<Option<i64>>) -> Result<()> {
    let mut frame = DataFrame::new_infer_height(vec![Column::new("key".into(), keys), Column::new("hash".into(), hashes)])?;
    let mut staged = root.stage(rel)?;
    ParquetWriter::new(staged.writer()).finish(&mut frame).map_err(|e| anyhow::anyhow!("cannot write {rel}: {e}"))?;
    root.commit(staged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, DataRoot) {
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::open(dir.path().to_str().unwrap()).unwrap();
        (dir, root)
    }

    fn contents(d: &Delivered) -> Vec<(Kind, String, Option<u64>)> {
        Kind::ALL.into_iter().flat_map(|kind| d.ids(kind).into_iter().map(move |id| (kind, id))).map(|(kind, id)| (kind, id.clone(), d.hash(kind, &id))).collect()
    }

    const REL: &str = "s/state/gorse-rows.parquet";

    /// 100 items saved as the rows file at [`REL`], read back.
    fn hundred_saved(root: &DataRoot) -> Delivered {
        hundred_items().save(root, REL).unwrap();
        Delivered::load(root, REL).unwrap()
    }

    /// 100 items; ids `i0`… with hash = the number.
    fn hundred_items() -> Delivered {
        let mut d = Delivered::default();
        for i in 0..100 {
            d.record(Kind::Item, &format!("i{i}"), i);
        }
        d
    }

    #[test]
    fn a_few_changes_go_to_the_journal_and_read_back_with_the_rows_file() {
        let (_dir, root) = root();
        let rel = REL;
        let mut d = hundred_saved(&root);
        let written = root.get(rel).unwrap().unwrap();
        d.record(Kind::Item, "i3", 1003);
        d.record(Kind::User, "u1", 7);
        // Recorded twice: once in the journal, with the last hash.
        d.record(Kind::Item, "i6", 2006);
        d.record(Kind::Item, "i6", 1006);
        d.save(&root, rel).unwrap();
        assert_eq!(root.get(rel).unwrap().unwrap(), written, "three changes of 100 rows leave the rows file as it was");
        let journal = root.get(&journal_file(rel)).unwrap().expect("a journal");
        assert_eq!(ParquetReader::new(std::io::Cursor::new(journal)).finish().unwrap().height(), 3);

        let mut again = Delivered::load(&root, rel).unwrap();
        assert_eq!(contents(&again), contents(&d));
        assert_eq!((again.hash(Kind::Item, "i3"), again.hash(Kind::Item, "i6"), again.hash(Kind::User, "u1")), (Some(1003), Some(1006), Some(7)));
        assert_eq!(again.len(), 101);
        // The journal read back is saved again with what follows.
        again.record(Kind::Item, "i7", 1007);
        again.save(&root, rel).unwrap();
        assert_eq!(root.get(rel).unwrap().unwrap(), written);
        d.record(Kind::Item, "i7", 1007);
        assert_eq!(contents(&Delivered::load(&root, rel).unwrap()), contents(&d));
    }

    #[test]
    fn a_deleted_row_is_named_in_no_file() {
        let (_dir, root) = root();
        let rel = REL;
        let mut d = hundred_saved(&root);
        d.record(Kind::User, "u-erased", 1);
        d.save(&root, rel).unwrap();
        assert!(root.get(&journal_file(rel)).unwrap().is_some());
        d.forget(Kind::User, "u-erased");
        d.forget(Kind::Item, "i5");
        d.save(&root, rel).unwrap();
        assert!(root.get(&journal_file(rel)).unwrap().is_none(), "a deletion: the rows file whole, no journal");
        let names = |bytes: Vec<u8>| ParquetReader::new(std::io::Cursor::new(bytes)).finish().unwrap().column("key").unwrap().str().unwrap().iter().flatten().map(String::from).collect::<Vec<_>>();
        let keys = names(root.get(rel).unwrap().unwrap());
        assert_eq!(keys.len(), 99);
        assert!(!keys.iter().any(|k| k == "user:u-erased" || k == "item:i5"), "{keys:?}");
        assert_eq!(contents(&Delivered::load(&root, rel).unwrap()), contents(&d));
    }

    #[test]
    fn past_an_eighth_of_the_rows_the_rows_file_is_written_whole_and_the_journal_removed() {
        let (_dir, root) = root();
        let rel = REL;
        let mut d = hundred_saved(&root);
        d.record(Kind::Item, "i1", 1);
        d.save(&root, rel).unwrap();
        assert!(root.get(&journal_file(rel)).unwrap().is_some());
        for i in 0..13 {
            d.record(Kind::Feedback, &format!("f{i}"), i);
        }
        d.save(&root, rel).unwrap();
        assert!(root.get(&journal_file(rel)).unwrap().is_none(), "14 changes of 100 rows: the rows file whole, no journal");
        let rows = ParquetReader::new(std::io::Cursor::new(root.get(rel).unwrap().unwrap())).finish().unwrap();
        assert_eq!(rows.height(), 113);
        assert_eq!(contents(&Delivered::load(&root, rel).unwrap()), contents(&d));
        // The next few changes journal against the new rows file.
        let written = root.get(rel).unwrap();
        d.record(Kind::Feedback, "f0", 100);
        d.save(&root, rel).unwrap();
        assert_eq!(root.get(rel).unwrap(), written);
        assert!(root.get(&journal_file(rel)).unwrap().is_some());
        assert_eq!(contents(&Delivered::load(&root, rel).unwrap()), contents(&d));
    }

    #[test]
    fn a_journal_without_its_rows_file_is_ignored() {
        // A shop whose rows file is gone (a new target saved nothing yet) reads
        // as empty, whatever journal is left.
        let (_dir, root) = root();
        let rel = REL;
        let mut d = hundred_saved(&root);
        d.record(Kind::Item, "new", 1);
        d.save(&root, rel).unwrap();
        root.delete(rel).unwrap();
        assert!(Delivered::load(&root, rel).unwrap().is_empty());
    }

    #[test]
    fn a_first_export_keeps_no_journal_and_its_saves_write_the_rows_file() {
        let (_dir, root) = root();
        let rel = REL;
        // A new target: the empty record is saved before anything is sent.
        let mut d = Delivered::default();
        d.save(&root, rel).unwrap();
        for i in 0..100 {
            d.record(Kind::Item, &format!("i{i}"), i);
        }
        assert!(d.journal.iter().all(PlHashSet::is_empty), "a journal of every row is never kept");
        d.save(&root, rel).unwrap();
        assert!(root.get(&journal_file(rel)).unwrap().is_none());
        assert_eq!(contents(&Delivered::load(&root, rel).unwrap()), contents(&d));
    }
}
