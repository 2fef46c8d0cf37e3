//! The benchmark's peer: the shared core features — product and user aggregates
//! over orders, line items and refunds, 30-day event counts, pair co-purchase
//! counts — written as DuckDB SQL over the normalized Parquet tables, and the
//! same columns from the engine's own plans. `benches/pipeline.rs` times both on
//! the same files and [`compare`] checks they agree (a test does so on the sample).

use crate::features::{self, pairs::PairOptions, Inputs};
use anyhow::{bail, Context, Result};
use polars::prelude::*;
use std::path::Path;

/// (table, key columns, value columns) of the core features.
pub const CORE: [(&str, &[&str], &[&str]); 3] = [
    ("product_core", &["product_id"], &["total_purchases", "total_units_sold", "total_revenue", "refunded_units", "total_refunded_amount", "view_count_30d", "cart_add_count_30d"]),
    ("user_core", &["customer_id"], &["total_purchases", "total_spent", "avg_order_value", "max_order_value", "refunded_orders", "total_refunded_amount"]),
    ("pair_core", &["product_id_a", "product_id_b"], &["co_purchase_count"]),
];

/// The SQL, with `{main}` (the directory of the main tables) and `{t}` (T, µs).
const SQL: &str = include_str!("../sql/peer/core_features.sql");

/// Runs the peer's SQL on `conn` over `main_dir` at `as_of`, leaving the tables of
/// [`CORE`] in the connection.
pub fn run_duckdb(conn: &duckdb::Connection, main_dir: &Path, as_of: i64) -> Result<()> {
    let main = main_dir.to_str().context("the main directory is not UTF-8")?.replace('\'', "''");
    let sql = SQL.replace("{main}", &main).replace("{t}", &as_of.to_string());
    conn.execute_batch(&sql).context("the DuckDB peer's SQL failed")
}

/// Reads a table the peer left in `conn` (through a Parquet file in `scratch`).
pub fn duckdb_table(conn: &duckdb::Connection, table: &str, scratch: &Path) -> Result<DataFrame> {
    let file = scratch.join(format!("{table}.parquet"));
    conn.execute_batch(&format!("COPY {table} TO '{}' (FORMAT parquet)", file.display()))?;
    Ok(ParquetReader::new(std::fs::File::open(&file)?).finish()?)
}

/// The engine's plans for the same columns: the feature tables' own plans, cut to
/// the core columns (Polars prunes what those do not need), and for pairs the
/// pair table's co-purchase step.
pub fn ours(inputs: &Inputs) -> PolarsResult<Vec<LazyFrame>> {
    let pick = |frame: LazyFrame, (_, key, values): (&str, &[&str], &[&str])| frame.select(key.iter().chain(values.iter()).map(|c| col(*c)).collect::<Vec<_>>());
    Ok(vec![
        pick(features::product::build(inputs)?, CORE[0]),
        pick(features::user::build(inputs)?, CORE[1]),
        // The pair table's co-purchase step (its co-view and co-cart counts are
        // not among the shared features).
        pick(features::pairs::co_purchases(inputs, PairOptions::default())?.rename(["co"], ["co_purchase_count"], true), CORE[2]),
    ])
}

/// Checks that two versions of a core table hold the same rows and values
/// (floats to 1e-9 relative: sums in another order differ in the last bits).
pub fn compare(table: &str, key: &[&str], ours: &DataFrame, peer: &DataFrame) -> Result<()> {
    if ours.height() != peer.height() {
        bail!("{table}: {} rows here, {} in DuckDB", ours.height(), peer.height());
    }
    let sort = |f: &DataFrame| f.sort(key.iter().map(|k| PlSmallStr::from(*k)).collect::<Vec<_>>(), SortMultipleOptions::default());
    let (a, b) = (sort(ours)?, sort(peer)?);
    for column in a.get_column_names() {
        let (x, y) = (a.column(column)?.cast(&DataType::Float64)?, b.column(column)?.cast(&DataType::Float64)?);
        for (i, (p, q)) in x.f64()?.iter().zip(y.f64()?.iter()).enumerate() {
            let (p, q) = (p.unwrap_or(f64::NAN), q.unwrap_or(f64::NAN));
            let same = (p.is_nan() && q.is_nan()) || (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0);
            if !same {
                bail!("{table}.{column} row {i}: {p} here, {q} in DuckDB");
            }
        }
    }
    Ok(())
}

/// Writes the main tables to `dir/<table>.parquet`: the files both sides read.
pub fn write_main(main: &crate::normalize::MainTables, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, frame) in main.named() {
        let mut frame = frame.collect()?;
        ParquetWriter::new(std::fs::File::create(dir.join(format!("{name}.parquet")))?).finish(&mut frame)?;
    }
    Ok(())
}

/// The main tables as scans of `dir` (read when a plan runs, only the columns it
/// needs); the ids of deleted products and customers (not among the files) come
/// from `deleted`.
pub fn read_main(dir: &Path, deleted: &crate::normalize::MainTables) -> Result<crate::normalize::MainTables> {
    let read = |name: &str| -> Result<LazyFrame> {
        let path = dir.join(format!("{name}.parquet"));
        Ok(LazyFrame::scan_parquet(PlRefPath::new(path.to_str().context("the main directory is not UTF-8")?), ScanArgsParquet::default())?)
    };
    Ok(crate::normalize::MainTables {
        products: read("products")?,
        variants: read("variants")?,
        product_media: read("product_media")?,
        collections: read("collections")?,
        collection_products: read("collection_products")?,
        customers: read("customers")?,
        orders: read("orders")?,
        line_items: read("line_items")?,
        refund_line_items: read("refund_line_items")?,
        events: read("events")?,
        deleted_products: deleted.deleted_products.clone(),
        deleted_customers: deleted.deleted_customers.clone(),
    })
}
