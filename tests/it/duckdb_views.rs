//! The analyst database: each feature table loaded, each `sql/` view run against
//! the sample's output and its result checked against the feature frames.

use crate::common::*;
use polars::prelude::*;
use std::path::{Path, PathBuf};

struct Computed {
    _landed: Landed,
    tables: Vec<(&'static str, DataFrame)>,
    db: duckdb::Connection,
    dir: PathBuf,
}

fn sample() -> Computed {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
    let landed = land(&[sample.clone()]);
    let as_of = ts("2025-11-30T23:59:59Z");
    let tables = shopfeat::commands::compute::compute(&landed.root, "test", as_of, Default::default()).unwrap().tables;
    let dir = landed.root.local_dir().unwrap().join("test");
    let db = duckdb::Connection::open(dir.join("features.duckdb")).unwrap();
    Computed { _landed: landed, tables, db, dir }
}

fn frame<'a>(c: &'a Computed, name: &str) -> &'a DataFrame {
    &c.tables.iter().find(|(n, _)| *n == name).unwrap().1
}

fn count(db: &duckdb::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn every_feature_table_is_in_the_database_and_in_parquet() {
    let c = sample();
    for (name, f) in &c.tables {
        assert_eq!(count(&c.db, &format!("SELECT count(*) FROM {name}")), f.height() as i64, "{name}");
        let parquet = c.dir.join(format!("features/{name}.parquet"));
        assert_eq!(count(&c.db, &format!("SELECT count(*) FROM read_parquet('{}')", parquet.display())), f.height() as i64);
    }
}

#[test]
fn customers_by_rfm_segment_accounts_for_every_customer() {
    let c = sample();
    assert_eq!(count(&c.db, "SELECT sum(customers) FROM customers_by_rfm_segment"), 381);
    let users = frame(&c, "user_features");
    let without_orders = users.column("total_purchases").unwrap().i64().unwrap().iter().flatten().filter(|n| *n == 0).count();
    assert_eq!(count(&c.db, "SELECT customers FROM customers_by_rfm_segment WHERE rfm_segment = 'none'"), without_orders as i64);
    let share: f64 = c.db.query_row("SELECT sum(share_pct) FROM customers_by_rfm_segment", [], |r| r.get(0)).unwrap();
    assert!((share - 100.0).abs() < 0.5, "{share}");
}

#[test]
fn refund_hot_spots_are_the_refunded_products_costliest_first() {
    let c = sample();
    let products = frame(&c, "product_features");
    let refunded: Vec<(i64, f64)> = products.column("refunded_units").unwrap().i64().unwrap().iter()
        .zip(products.column("total_refunded_amount").unwrap().f64().unwrap().iter())
        .filter(|(u, _)| u.unwrap_or(0) > 0)
        .map(|(u, a)| (u.unwrap(), a.unwrap()))
        .collect();
    assert!(!refunded.is_empty());
    assert_eq!(count(&c.db, "SELECT count(*) FROM refund_hot_spots"), refunded.len() as i64);
    let top: f64 = c.db.query_row("SELECT total_refunded_amount FROM refund_hot_spots LIMIT 1", [], |r| r.get(0)).unwrap();
    let max = refunded.iter().map(|(_, a)| *a).fold(f64::MIN, f64::max);
    assert_eq!(top, max);
}

#[test]
fn top_products_by_revenue_names_the_collections_that_rank_them() {
    let c = sample();
    let products = frame(&c, "product_features");
    assert_eq!(count(&c.db, "SELECT count(*) FROM top_products_by_revenue"), products.height() as i64);
    let best = products.clone().lazy()
        .sort(["total_revenue", "product_id"], SortMultipleOptions::default().with_order_descending_multi([true, false]))
        .first().collect().unwrap();
    let best_id = best.column("product_id").unwrap().i64().unwrap().get(0).unwrap();
    assert_eq!(count(&c.db, "SELECT product_id FROM top_products_by_revenue LIMIT 1"), best_id);
    // Every collection's first top product lists that collection.
    let collections = frame(&c, "collection_features");
    for row in 0..collections.height() {
        let title = as_str(collections.column("title").unwrap().get(row).unwrap()).unwrap();
        let tops = list_i64s(collections.column("top_products").unwrap().get(row).unwrap().into_static());
        if let Some(first) = tops.first() {
            let listed = count(&c.db, &format!("SELECT count(*) FROM top_products_by_revenue WHERE product_id = {first} AND list_contains(top_in_collections, '{}')", title.replace('\'', "''")));
            assert_eq!(listed, 1, "{title}");
        }
    }
}

#[test]
fn the_benchmark_peer_sql_agrees_with_the_engine_on_the_sample() {
    use shopfeat::peer;
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
    let landed = crate::common::land(&[sample]);
    let as_of = crate::common::ts("2025-11-30T23:59:59Z");
    let raw = shopfeat::normalize::RawTables::open(&landed.root, "test").unwrap();
    let main = shopfeat::normalize::normalize(&raw, Some(as_of)).unwrap().materialize().unwrap();
    let dir = tempfile::tempdir().unwrap();
    peer::write_main(&main, dir.path()).unwrap();

    let inputs = shopfeat::features::Inputs::lazy(peer::read_main(dir.path(), &main).unwrap(), "test", as_of, Default::default()).unwrap();
    let ours = shopfeat::normalize::collect_all(peer::ours(&inputs).unwrap()).unwrap();
    let conn = duckdb::Connection::open_in_memory().unwrap();
    peer::run_duckdb(&conn, dir.path(), as_of).unwrap();
    for ((table, key, _), frame) in peer::CORE.iter().zip(&ours) {
        let theirs = peer::duckdb_table(&conn, table, dir.path()).unwrap();
        peer::compare(table, key, frame, &theirs).unwrap();
    }
    // Not vacuous: refunds, 30-day views and pairs are there.
    let sum = |f: &polars::prelude::DataFrame, c: &str| f.column(c).unwrap().cast(&polars::prelude::DataType::Float64).unwrap().f64().unwrap().sum().unwrap_or(0.0);
    assert!(sum(&ours[0], "refunded_units") > 0.0 && sum(&ours[0], "view_count_30d") > 0.0 && sum(&ours[1], "refunded_orders") > 0.0);
    assert!(ours[2].height() > 100);
    // And a wrong value would be caught.
    let mut broken = ours[2].clone();
    let bumped = broken.column("co_purchase_count").unwrap().as_materialized_series() + 1;
    broken.with_column(bumped.into()).unwrap();
    let theirs = peer::duckdb_table(&conn, "pair_core", dir.path()).unwrap();
    assert!(peer::compare("pair_core", &["product_id_a", "product_id_b"], &broken, &theirs).is_err());
}
