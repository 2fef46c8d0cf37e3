//! The benchmark's peer: the heavy feature work — product and user aggregates
//! over orders, line items and refunds, 30-day event counts, pair co-purchase and
//! co-view counts, sessionization and per-session facts, interaction counts,
//! collection views and clicks — written as DuckDB SQL over the normalized Parquet
//! tables (`sql/peer/`), and the same columns from the engine's own feature plans.
//! `benches/pipeline.rs` times both, table by table, on the same files and
//! [`compare`] checks they agree (a test does so on the sample).

use crate::features::{self, Inputs};
use anyhow::{bail, Context, Result};
use polars::prelude::*;
use std::path::Path;

/// One table of the peer: DuckDB's SQL and our feature table for the same columns.
pub struct PeerTable {
    pub name: &'static str,
    pub key: &'static [&'static str],
    pub values: &'static [&'static str],
    /// `CREATE TEMP TABLE <name> AS …` over the views of `sql/peer/common.sql`.
    sql: &'static str,
    /// Our feature table's plan for (at least) the values; tables whose base joins
    /// many aggregates build only those the values read.
    feature_table: fn(&Inputs, &[&str]) -> PolarsResult<LazyFrame>,
}

/// The peer's tables, in the order the benchmark reports them.
pub const TABLES: [PeerTable; 6] = [
    PeerTable {
        name: "product_core",
        key: &["product_id"],
        values: &["total_purchases", "total_units_sold", "total_revenue", "refunded_units", "total_refunded_amount", "view_count_30d", "cart_add_count_30d"],
        sql: include_str!("../sql/peer/product_core.sql"),
        feature_table: features::product::build_only,
    },
    PeerTable {
        name: "user_core",
        key: &["customer_id"],
        values: &["total_purchases", "total_spent", "avg_order_value", "max_order_value", "refunded_orders", "total_refunded_amount"],
        sql: include_str!("../sql/peer/user_core.sql"),
        feature_table: features::user::build_only,
    },
    PeerTable {
        name: "pair_core",
        key: &["product_id_a", "product_id_b"],
        values: &["co_purchase_count", "co_view_count"],
        sql: include_str!("../sql/peer/pair_core.sql"),
        feature_table: features::pairs::build_only,
    },
    PeerTable {
        name: "session_core",
        key: &["session_id"],
        values: &["event_count", "page_view_count", "product_view_count", "cart_add_count", "unique_products_viewed", "checkout_completed", "duration_seconds"],
        sql: include_str!("../sql/peer/session_core.sql"),
        feature_table: |inputs, _| features::session::build(inputs),
    },
    PeerTable {
        name: "interaction_core",
        key: &["customer_id", "product_id"],
        values: &["view_count", "cart_add_count", "purchase_count"],
        sql: include_str!("../sql/peer/interaction_core.sql"),
        feature_table: features::interaction::build_only,
    },
    PeerTable {
        name: "collection_core",
        key: &["collection_id"],
        values: &["view_count_30d", "unique_viewers_30d", "product_click_count_30d"],
        sql: include_str!("../sql/peer/collection_core.sql"),
        feature_table: features::collection::build_only,
    },
];

/// The views every table's SQL reads (`{main}`: the main tables' directory, `{t}`: T in µs).
const COMMON_SQL: &str = include_str!("../sql/peer/common.sql");

fn with_parameters(sql: &str, main_dir: &Path, as_of: i64) -> Result<String> {
    let main = main_dir.to_str().context("the main directory is not UTF-8")?.replace('\'', "''");
    Ok(sql.replace("{main}", &main).replace("{t}", &as_of.to_string()))
}

/// A DuckDB connection with the peer's views over `main_dir` at `as_of`.
pub fn duckdb_connection(main_dir: &Path, as_of: i64) -> Result<duckdb::Connection> {
    let conn = duckdb::Connection::open_in_memory()?;
    conn.execute_batch(&with_parameters(COMMON_SQL, main_dir, as_of)?).context("the DuckDB peer's views failed")?;
    Ok(conn)
}

impl PeerTable {
    /// Runs this table's SQL on a [`duckdb_connection`], leaving the table in it.
    pub fn run_duckdb(&self, conn: &duckdb::Connection, main_dir: &Path, as_of: i64) -> Result<()> {
        conn.execute_batch(&with_parameters(self.sql, main_dir, as_of)?).with_context(|| format!("the DuckDB peer's {} failed", self.name))
    }

    /// Reads the table [`PeerTable::run_duckdb`] left in `conn` (through a Parquet
    /// file in `scratch`).
    pub fn duckdb_result(&self, conn: &duckdb::Connection, scratch: &Path) -> Result<DataFrame> {
        let file = scratch.join(format!("{}.parquet", self.name));
        conn.execute_batch(&format!("COPY {} TO '{}' (FORMAT parquet)", self.name, file.display()))?;
        Ok(ParquetReader::new(std::fs::File::open(&file)?).finish()?)
    }

    /// Our plan for the same columns: the feature table's own plan cut to them
    /// (Polars prunes the columns those do not need).
    pub fn ours(&self, inputs: &Inputs) -> PolarsResult<LazyFrame> {
        Ok((self.feature_table)(inputs, self.values)?.select(self.key.iter().chain(self.values).map(|c| col(*c)).collect::<Vec<_>>()))
    }

    /// Checks that our rows and DuckDB's hold the same keys and values (floats to
    /// 1e-9 relative: sums in another order differ in the last bits).
    pub fn compare(&self, ours: &DataFrame, peer: &DataFrame) -> Result<()> {
        compare(self.name, self.key, ours, peer)
    }
}

/// Same rows by `key`, same values (see [`PeerTable::compare`]).
fn compare(table: &str, key: &[&str], ours: &DataFrame, peer: &DataFrame) -> Result<()> {
    if ours.height() != peer.height() {
        bail!("{table}: {} rows here, {} in DuckDB", ours.height(), peer.height());
    }
    let sort = |f: &DataFrame| f.sort(key.iter().map(|k| PlSmallStr::from(*k)).collect::<Vec<_>>(), SortMultipleOptions::default());
    let (a, b) = (sort(ours)?, sort(peer)?);
    for column in a.get_column_names() {
        let (x, y) = (a.column(column)?, b.column(column)?);
        if x.dtype() == &DataType::String || y.dtype() == &DataType::String {
            let (x, y) = (x.str()?, y.str()?);
            if let Some(i) = (0..a.height()).find(|&i| x.get(i) != y.get(i)) {
                bail!("{table}.{column} row {i}: {:?} here, {:?} in DuckDB", x.get(i), y.get(i));
            }
            continue;
        }
        let (x, y) = (x.cast(&DataType::Float64)?, y.cast(&DataType::Float64)?);
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

/// Writes the main tables to `dir/<table>.parquet`, and the ids of deleted
/// products and customers: the files both sides read.
pub fn write_main(main: &crate::normalize::MainTables, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let deleted = [("deleted_products", main.deleted_products.clone()), ("deleted_customers", main.deleted_customers.clone())];
    for (name, frame) in main.named().into_iter().chain(deleted) {
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
    Ok(crate::normalize::MainTables::from_tables([
        read("products")?,
        read("variants")?,
        read("product_media")?,
        read("collections")?,
        read("collection_products")?,
        read("customers")?,
        read("orders")?,
        read("line_items")?,
        read("refund_line_items")?,
        read("events")?,
        deleted.deleted_products.clone(),
        deleted.deleted_customers.clone(),
    ]))
}
