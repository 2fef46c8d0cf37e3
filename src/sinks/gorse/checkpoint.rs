//! What Gorse already has: a hash of every row it acknowledged, keyed by kind and
//! id. It makes an export incremental (send only rows whose hash changed, delete
//! rows that disappeared) and resumable (an interrupted export left the hashes of
//! every batch acknowledged before its last save).

use super::mapping::Kind;
use crate::storage::DataRoot;
use anyhow::Result;
use polars::prelude::*;
use std::collections::HashMap;

#[derive(Default)]
pub struct Delivered {
    rows: HashMap<String, u64>,
}

pub fn rows_file(shop: &str) -> String {
    format!("{shop}/state/gorse-rows.parquet")
}

fn key(kind: Kind, id: &str) -> String {
    format!("{}:{id}", kind.name())
}

impl Delivered {
    pub fn load(root: &DataRoot, rel: &str) -> Result<Delivered> {
        let Some(bytes) = root.get(rel)? else { return Ok(Delivered::default()) };
        let frame = ParquetReader::new(std::io::Cursor::new(bytes)).finish().map_err(|e| anyhow::anyhow!("{rel}: {e}"))?;
        let keys = frame.column("key")?.str()?.clone();
        let hashes = frame.column("hash")?.i64()?.clone();
        let rows = keys.iter().zip(hashes.iter()).filter_map(|(k, h)| Some((k?.to_string(), h? as u64))).collect();
        Ok(Delivered { rows })
    }

    pub fn save(&self, root: &DataRoot, rel: &str) -> Result<()> {
        let (keys, hashes): (Vec<&str>, Vec<i64>) = self.rows.iter().map(|(k, h)| (k.as_str(), *h as i64)).unzip();
        let mut frame = DataFrame::new_infer_height(vec![Column::new("key".into(), keys), Column::new("hash".into(), hashes)])?;
        let mut staged = root.stage(rel)?;
        ParquetWriter::new(staged.writer()).finish(&mut frame).map_err(|e| anyhow::anyhow!("cannot write {rel}: {e}"))?;
        root.commit(staged)
    }

    pub fn is_current(&self, kind: Kind, id: &str, hash: u64) -> bool {
        self.rows.get(&key(kind, id)) == Some(&hash)
    }

    pub fn record(&mut self, kind: Kind, id: &str, hash: u64) {
        self.rows.insert(key(kind, id), hash);
    }

    pub fn forget(&mut self, kind: Kind, id: &str) {
        self.rows.remove(&key(kind, id));
    }

    /// Ids of `kind` delivered before, sorted.
    pub fn ids(&self, kind: Kind) -> Vec<String> {
        let prefix = format!("{}:", kind.name());
        let mut ids: Vec<String> = self.rows.keys().filter_map(|k| k.strip_prefix(&prefix)).map(str::to_string).collect();
        ids.sort();
        ids
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}
