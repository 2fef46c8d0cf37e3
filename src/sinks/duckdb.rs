//! `<root>/<shop>/features.duckdb`: one table per feature table, plus the views and
//! analyst queries of `sql/` (compiled into the binary, applied in name order).
//!
//! The file is written in the oldest storage format that holds our types
//! ([`STORAGE_VERSION`]), not the bundled DuckDB's newest: analysts open it with
//! the DuckDB they have, and the long-term-support line (1.4) cannot read a file
//! in the 2.0 format.

use crate::storage::{DataRoot, StagedFile};
use anyhow::{Context, Result};
use std::path::Path;

/// The storage format of `features.duckdb`: DuckDB 1.4 and every later version
/// open it.
pub const STORAGE_VERSION: &str = "v1.4.0";

/// The `sql/` files, by name: each creates one view over the feature tables.
pub const VIEWS: &[(&str, &str)] = &[
    ("customers_by_rfm_segment.sql", include_str!("../../sql/customers_by_rfm_segment.sql")),
    ("refund_hot_spots.sql", include_str!("../../sql/refund_hot_spots.sql")),
    ("top_products_by_revenue.sql", include_str!("../../sql/top_products_by_revenue.sql")),
];

/// The database's name in a generation.
pub const FILE: &str = "features.duckdb";

/// The stable path analysts open: a copy of the current generation's database,
/// replaced whole after each generation is made current.
pub fn database_path(shop: &str) -> String {
    format!("{shop}/{FILE}")
}

/// Builds the database from the staged Parquet files of this run and stages it
/// at each of `destinations` (the generation's copy, the stable path).
pub fn stage(root: &DataRoot, destinations: &[String], tables: &[(&'static str, &Path)]) -> Result<Vec<StagedFile>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(FILE);
    write_database(&path, tables)?;
    destinations
        .iter()
        .map(|rel| {
            let mut staged = root.stage(rel)?;
            std::io::copy(&mut std::fs::File::open(&path)?, staged.writer())?;
            Ok(staged)
        })
        .collect()
}

/// Writes a new database at `path` in [`STORAGE_VERSION`]'s format.
fn write_database(path: &Path, tables: &[(&'static str, &Path)]) -> Result<()> {
    let db = duckdb::Connection::open_in_memory().context("cannot start DuckDB")?;
    db.execute_batch(&format!(
        "ATTACH '{}' AS features (STORAGE_VERSION '{STORAGE_VERSION}'); USE features;",
        sql_string(&path.display().to_string())
    ))
    .context("cannot create the DuckDB database")?;
    for (name, parquet) in tables {
        db.execute_batch(&format!("CREATE TABLE {name} AS SELECT * FROM read_parquet('{}');", sql_string(&parquet.display().to_string())))
            .with_context(|| format!("cannot load {name} into DuckDB"))?;
    }
    for (file, sql) in VIEWS {
        db.execute_batch(sql).with_context(|| format!("sql/{file} failed"))?;
    }
    db.execute_batch("USE memory; DETACH features;").context("cannot finish the DuckDB database")?;
    Ok(())
}

/// `s` inside a single-quoted SQL string.
fn sql_string(s: &str) -> String {
    s.replace('\'', "''")
}
