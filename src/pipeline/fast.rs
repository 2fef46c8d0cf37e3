//! The fast lane of `serve`: a catalog delivery reaches Gorse in well under a
//! second, whatever the shop's size.
//!
//! ```text
//! land the catalog deliveries → the changed products' own columns at T → delta table → Gorse items
//! ```
//!
//! A fast cycle lands only the waiting `products/*` deliveries (one snapshot, as
//! any landing), recomputes the changed products' rows of product_features from
//! their own catalog records ([`features::fast`]: the [`Scope::Own`] columns; the
//! others stay as the current generation has them), writes those rows as a
//! small delta table (`<shop>/fast/<snapshot>/product_features.parquet`, named in
//! the run history) and sends their items to Gorse. It writes no generation:
//! analysts reading `CURRENT` see whole generations only, and the full cycle that
//! `serve` schedules after the first fast one recomputes every table.
//!
//! [`Scope::Own`]: crate::features::registry::Scope::Own

use super::land::{land_inbox_files, IngestReport};
use super::report::{Stage, StageReport};
use crate::features::{self, registry::Scope};
use crate::land::inbox::Inbox;
use crate::land::InputFile;
use crate::normalize::RawTables;
use crate::sinks::gorse;
use crate::storage::DataRoot;
use anyhow::Result;
use polars::prelude::*;
use serde::Serialize;

/// The deliveries a fast cycle takes: a product's catalog changes.
pub const FAST_TOPICS: &[&str] = &["products/create", "products/update", "products/delete"];

/// Delta tables kept per shop (the newest); a full cycle's generation holds
/// everything they do.
const KEEP_DELTAS: usize = 50;

#[derive(Debug, Clone, Default)]
pub struct FastOptions {
    /// `T`; default: now.
    pub as_of: Option<i64>,
    pub gorse: Option<gorse::Options>,
}

/// What [`fast_cycle`] did.
#[derive(Debug, Serialize)]
pub struct FastReport {
    pub shop: String,
    pub as_of: String,
    pub land: IngestReport,
    /// The products the deliveries named, in order.
    pub products: Vec<i64>,
    /// Rows of product_features refreshed …
    pub refreshed: usize,
    /// … and products not in the catalog at `T` (deleted): their items left Gorse.
    pub gone: Vec<i64>,
    /// The columns refreshed (the table's own columns); the others are as the
    /// current generation has them.
    pub refreshed_columns: Vec<&'static str>,
    /// The rows as refreshed, under the data root.
    pub delta_table: Option<String>,
    pub export: Option<gorse::Report>,
    pub stages: Vec<StageReport>,
}

/// Runs one fast cycle of `shop` over the catalog deliveries waiting in
/// `inbox`; `None` when there are none.
pub fn fast_cycle(root: &DataRoot, shop: &str, inbox: &Inbox, options: &FastOptions) -> Result<Option<FastReport>> {
    let files = inbox.pending_of(FAST_TOPICS)?;
    if files.is_empty() {
        return Ok(None);
    }
    let products = product_ids(&files);
    let land = land_inbox_files(root, shop, inbox, files)?;
    let as_of = options.as_of.unwrap_or_else(crate::time::now_us);

    let stage = Stage::start("compute");
    let raw = RawTables::open(root, shop)?;
    let previous = current_rows(root, shop, &products)?;
    let refreshed = features::fast::catalog_rows(&raw, &products, shop, as_of, previous)?;
    let mut stages = vec![stage.finish()];

    let stage = Stage::start("write");
    let delta_table = write_delta(root, shop, &land.landed.snapshot, &refreshed.rows)?;
    stages.push(stage.finish());

    let export = match &options.gorse {
        Some(gorse) => {
            let stage = Stage::start("export");
            let report = gorse::send_items(gorse, refreshed.rows.clone(), &refreshed.gone)?;
            stages.push(stage.finish());
            Some(report)
        }
        None => None,
    };
    Ok(Some(FastReport {
        shop: shop.to_string(),
        as_of: crate::time::rfc3339(as_of),
        land,
        products,
        refreshed: refreshed.rows.height(),
        gone: refreshed.gone,
        refreshed_columns: features::product::table().features_of(Scope::Own),
        delta_table,
        export,
        stages,
    }))
}

/// The product ids the deliveries name (each payload's `id`), first mention
/// first. A payload without one is reported by the landing; it names nothing.
fn product_ids(files: &[InputFile]) -> Vec<i64> {
    let mut ids: Vec<i64> = vec![];
    for file in files {
        let id = std::fs::read(&file.path).ok().and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok()).and_then(|v| match &v["id"] {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.rsplit('/').next()?.parse().ok(),
            _ => None,
        });
        match id {
            Some(id) if !ids.contains(&id) => ids.push(id),
            Some(_) => {}
            None => tracing::warn!("{}: no product id in the delivery; it changes no row", file.path.display()),
        }
    }
    ids
}

/// The current generation's rows of product_features for `products`, if there
/// is a current generation.
fn current_rows(root: &DataRoot, shop: &str, products: &[i64]) -> Result<Option<DataFrame>> {
    let rel = crate::sinks::parquet::current_table_path(root, shop, "product_features")?;
    let Some(bytes) = root.get(&rel)? else { return Ok(None) };
    let ids = Series::new("ids".into(), products);
    let rows = ParquetReader::new(std::io::Cursor::new(bytes)).finish().map_err(|e| anyhow::anyhow!("{rel}: {e}"))?;
    Ok(Some(rows.lazy().filter(col("product_id").is_in(lit(ids).implode(false), false)).collect()?))
}

/// Writes the refreshed rows as `<shop>/fast/<snapshot>/product_features.parquet`
/// (whole or not at all) and keeps the newest [`KEEP_DELTAS`] of them.
fn write_delta(root: &DataRoot, shop: &str, snapshot: &str, rows: &DataFrame) -> Result<Option<String>> {
    if snapshot.is_empty() {
        return Ok(None);
    }
    let base = format!("{shop}/fast");
    let rel = format!("{base}/{snapshot}/product_features.parquet");
    let mut staged = root.stage(&rel)?;
    ParquetWriter::new(staged.writer()).finish(&mut rows.clone()).map_err(|e| anyhow::anyhow!("cannot write {rel}: {e}"))?;
    root.commit(staged)?;
    let mut deltas = root.subdirs(&base)?;
    deltas.sort();
    for old in deltas.iter().rev().skip(KEEP_DELTAS) {
        root.delete_dir(&format!("{base}/{old}"))?;
    }
    Ok(Some(rel))
}
