//! Parquet files under the data root: `<shop>/features/<table>.parquet` for feature
//! tables, `<shop>/main/<table>.parquet` for `shopfeat normalize`.

use crate::storage::{DataRoot, StagedFile};
use anyhow::Result;
use polars::prelude::*;

pub fn table_path(shop: &str, table: &str) -> String {
    format!("{shop}/features/{table}.parquet")
}

/// Writes every table to a staged file at `path(name)`; nothing is visible until
/// [`publish`].
pub fn stage(root: &DataRoot, tables: &[(&'static str, DataFrame)], path: impl Fn(&str) -> String) -> Result<Vec<StagedFile>> {
    tables
        .iter()
        .map(|(name, frame)| {
            let rel = path(name);
            let mut staged = root.stage(&rel)?;
            let mut frame = frame.clone();
            ParquetWriter::new(staged.writer()).finish(&mut frame).map_err(|e| anyhow::anyhow!("cannot write {rel}: {e}"))?;
            Ok(staged)
        })
        .collect()
}

/// Makes staged files visible, one rename each, after every file of the run is
/// complete: a failed run never replaces anything.
pub fn publish(root: &DataRoot, staged: Vec<StagedFile>) -> Result<()> {
    staged.into_iter().try_for_each(|s| root.commit(s))
}
