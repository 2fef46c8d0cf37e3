//! Parquet files under the data root, one file per table in a generation
//! ([`super::generation`]): `<shop>/features/<generation>/<table>.parquet` for the
//! feature tables, `<shop>/main/<generation>/<table>.parquet` for `shopfeat normalize`.

use crate::storage::{DataRoot, StagedFile};
use anyhow::Result;
use polars::prelude::*;

/// The generations of the feature tables.
pub fn features_dir(shop: &str) -> String {
    format!("{shop}/features")
}

/// The generations of the main tables (`shopfeat normalize`).
pub fn main_dir(shop: &str) -> String {
    format!("{shop}/main")
}

pub fn file_name(table: &str) -> String {
    format!("{table}.parquet")
}

/// Where the current generation's `table` is, relative to the root.
pub fn current_table_path(root: &DataRoot, shop: &str, table: &str) -> Result<String> {
    super::generation::current_path(root, &features_dir(shop), &file_name(table))
}

/// Table `table` of the shop's current generation; `None` when there is no such
/// file (nothing computed yet, or a generation from before the table existed).
pub fn read_current(root: &DataRoot, shop: &str, table: &str) -> Result<Option<DataFrame>> {
    let rel = current_table_path(root, shop, table)?;
    let Some(bytes) = root.get(&rel)? else { return Ok(None) };
    Ok(Some(ParquetReader::new(std::io::Cursor::new(bytes)).finish().map_err(|e| anyhow::anyhow!("{rel}: {e}"))?))
}

/// [`read_current`], when the table must be there.
pub fn read_current_required(root: &DataRoot, shop: &str, table: &str) -> Result<DataFrame> {
    read_current(root, shop, table)?.ok_or_else(|| anyhow::anyhow!("{}/{} not found: run `shopfeat compute` first", root.describe(), current_table_path(root, shop, table).unwrap_or_default()))
}

/// Writes every table to a staged file at `path(name)`; nothing is visible until
/// [`publish`].
pub fn stage(root: &DataRoot, tables: &[(&'static str, DataFrame)], path: impl Fn(&str) -> String) -> Result<Vec<StagedFile>> {
    tables.iter().map(|(name, frame)| stage_table(root, &path(name), frame)).collect()
}

/// Writes `frame` to a staged file at `rel`; nothing is visible until [`publish`].
pub fn stage_table(root: &DataRoot, rel: &str, frame: &DataFrame) -> Result<StagedFile> {
    let mut staged = root.stage(rel)?;
    let mut frame = frame.clone();
    ParquetWriter::new(staged.writer()).finish(&mut frame).map_err(|e| anyhow::anyhow!("cannot write {rel}: {e}"))?;
    Ok(staged)
}

/// Makes staged files visible, one rename each, after every file of the run is
/// complete: a failed run never replaces anything.
pub fn publish(root: &DataRoot, staged: Vec<StagedFile>) -> Result<()> {
    staged.into_iter().try_for_each(|s| root.commit(s))
}
