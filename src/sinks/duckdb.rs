//! `<root>/<shop>/features.duckdb`: one table per feature table, plus the views and
//! analyst queries of `sql/` (compiled into the binary, applied in name order).
//!
//! The file is written in the oldest storage format that holds our types
//! ([`STORAGE_VERSION`]), not the bundled DuckDB's newest: analysts open it with
//! the DuckDB they have, and the long-term-support line (1.4) cannot read a file
//! in the 2.0 format.

use crate::storage::{DataRoot, StagedFile};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::{Scope, ScopedJoinHandle};

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

/// A database built on a thread of its own while the run's Parquet files are
/// written: each table is loaded as soon as its file is complete (the
/// Parquet writer keeps one core, DuckDB takes what is left), then the views.
pub struct Builder<'scope> {
    tables: Sender<(&'static str, PathBuf)>,
    thread: ScopedJoinHandle<'scope, Result<Built>>,
}

/// A complete database in a temporary directory.
pub struct Built {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl<'scope> Builder<'scope> {
    pub fn start(scope: &'scope Scope<'scope, '_>) -> Result<Builder<'scope>> {
        let dir = tempfile::tempdir()?;
        let (tables, received) = channel();
        let thread = scope.spawn(move || {
            let path = dir.path().join(FILE);
            write_database(&path, received)?;
            Ok(Built { _dir: dir, path })
        });
        Ok(Builder { tables, thread })
    }

    /// Loads the complete Parquet file at `parquet` as table `name`.
    pub fn add(&self, name: &'static str, parquet: &Path) {
        // A builder that stopped says why in `finish`.
        let _ = self.tables.send((name, parquet.to_path_buf()));
    }

    /// The database, once every table added is loaded and the views are made.
    pub fn finish(self) -> Result<Built> {
        drop(self.tables);
        self.thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// Stages copies of `built` at each of `destinations` (the generation's copy,
/// the stable path).
pub fn stage(root: &DataRoot, destinations: &[String], built: &Built) -> Result<Vec<StagedFile>> {
    destinations
        .iter()
        .map(|rel| {
            let mut staged = root.stage(rel)?;
            std::io::copy(&mut std::fs::File::open(&built.path)?, staged.writer())?;
            Ok(staged)
        })
        .collect()
}

/// Writes a new database at `path` in [`STORAGE_VERSION`]'s format: the
/// tables in the order they come, then the views.
fn write_database(path: &Path, tables: Receiver<(&'static str, PathBuf)>) -> Result<()> {
    let db = duckdb::Connection::open_in_memory().context("cannot start DuckDB")?;
    // Every core but the Parquet writer's: on two cores, one DuckDB thread
    // beside the writer made `medium`'s write stage 0.95-1.0 s, two 1.1-1.2 s.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1));
    db.execute_batch(&format!("SET threads = {threads};"))?;
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
