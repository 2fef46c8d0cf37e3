//! `<root>/<shop>/features.duckdb`: one table per feature table, plus the views and
//! analyst queries of `sql/` (compiled into the binary, applied in name order).

use crate::storage::{DataRoot, StagedFile};
use anyhow::{Context, Result};
use std::path::Path;

/// The `sql/` files, by name: each creates one view over the feature tables.
pub const VIEWS: &[(&str, &str)] = &[
    ("customers_by_rfm_segment.sql", include_str!("../../sql/customers_by_rfm_segment.sql")),
    ("refund_hot_spots.sql", include_str!("../../sql/refund_hot_spots.sql")),
    ("top_products_by_revenue.sql", include_str!("../../sql/top_products_by_revenue.sql")),
];

pub fn database_path(shop: &str) -> String {
    format!("{shop}/features.duckdb")
}

/// Builds the database from the staged Parquet files of this run and stages it.
pub fn stage(root: &DataRoot, shop: &str, tables: &[(&'static str, &Path)]) -> Result<StagedFile> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("features.duckdb");
    {
        let db = duckdb::Connection::open(&path).context("cannot create the DuckDB database")?;
        for (name, parquet) in tables {
            let source = parquet.display().to_string().replace('\'', "''");
            db.execute_batch(&format!("CREATE TABLE {name} AS SELECT * FROM read_parquet('{source}');"))
                .with_context(|| format!("cannot load {name} into DuckDB"))?;
        }
        for (file, sql) in VIEWS {
            db.execute_batch(sql).with_context(|| format!("sql/{file} failed"))?;
        }
        db.execute_batch("CHECKPOINT;")?;
    }
    let mut staged = root.stage(&database_path(shop))?;
    std::io::copy(&mut std::fs::File::open(&path)?, staged.writer())?;
    Ok(staged)
}
