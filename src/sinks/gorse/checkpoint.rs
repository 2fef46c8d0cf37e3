//! What Gorse already has: a hash of every row it acknowledged, keyed by kind and
//! id. It makes an export incremental (send only rows whose hash changed, delete
//! rows that disappeared) and resumable (an interrupted export left the hashes of
//! every batch acknowledged before its last save).

use super::mapping::Kind;
use crate::storage::DataRoot;
use anyhow::Result;
use polars::prelude::*;

/// Per kind (in [`Kind::ALL`] order), id → hash. On disk one table of
/// `key = "<kind>:<id>"` and `hash`.
#[derive(Default)]
pub struct Delivered {
    rows: [PlHashMap<String, u64>; 3],
}

pub fn rows_file(shop: &str) -> String {
    format!("{shop}/state/gorse-rows.parquet")
}

impl Delivered {
    pub fn load(root: &DataRoot, rel: &str) -> Result<Delivered> {
        let Some(bytes) = root.get(rel)? else { return Ok(Delivered::default()) };
        let frame = ParquetReader::new(std::io::Cursor::new(bytes)).finish().map_err(|e| anyhow::anyhow!("{rel}: {e}"))?;
        let keys = frame.column("key")?.str()?.clone();
        let hashes = frame.column("hash")?.i64()?.clone();
        let mut delivered = Delivered::default();
        for rows in &mut delivered.rows {
            rows.reserve(keys.len() / 3);
        }
        for (key, hash) in keys.iter().zip(hashes.iter()) {
            let (Some(key), Some(hash)) = (key, hash) else { continue };
            let kind = key.split_once(':').and_then(|(name, id)| Some((Kind::ALL.into_iter().find(|k| k.name() == name)?, id)));
            let Some((kind, id)) = kind else { anyhow::bail!("{rel}: {key:?} is not <kind>:<id>") };
            delivered.rows[kind.index()].insert(id.to_string(), hash as u64);
        }
        Ok(delivered)
    }

    pub fn save(&self, root: &DataRoot, rel: &str) -> Result<()> {
        let (keys, hashes): (Vec<String>, Vec<i64>) =
            Kind::ALL.iter().zip(&self.rows).flat_map(|(kind, rows)| rows.iter().map(move |(id, h)| (format!("{}:{id}", kind.name()), *h as i64))).unzip();
        let mut frame = DataFrame::new_infer_height(vec![Column::new("key".into(), keys), Column::new("hash".into(), hashes)])?;
        let mut staged = root.stage(rel)?;
        ParquetWriter::new(staged.writer()).finish(&mut frame).map_err(|e| anyhow::anyhow!("cannot write {rel}: {e}"))?;
        root.commit(staged)
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
    }

    pub fn forget(&mut self, kind: Kind, id: &str) {
        self.rows[kind.index()].remove(id);
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
