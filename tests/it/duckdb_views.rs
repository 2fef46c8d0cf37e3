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
    let tables = crate::common::compute(&landed.root, "test", as_of, Default::default()).unwrap().tables;
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
        let parquet = feature_file(&c._landed.root, "test", name);
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
    let conn = peer::duckdb_connection(dir.path(), as_of).unwrap();
    let sum = |f: &DataFrame, c: &str| f.column(c).unwrap().cast(&DataType::Float64).unwrap().f64().unwrap().sum().unwrap_or(0.0);
    for table in &peer::TABLES {
        let ours = table.ours(&inputs).unwrap().collect().unwrap();
        table.run_duckdb(&conn, dir.path(), as_of).unwrap();
        let theirs = table.duckdb_result(&conn, dir.path()).unwrap();
        table.compare(&ours, &theirs).unwrap();
        // Not vacuous: every compared column holds something on the sample.
        assert!(ours.height() > 5, "{}", table.name);
        for value in table.values {
            assert!(sum(&ours, value) > 0.0, "{}.{value} is all zero on the sample", table.name);
        }
        // And a wrong value or key would be caught.
        let mut broken = ours.clone();
        let bumped = broken.column(table.values[0]).unwrap().cast(&DataType::Float64).unwrap().as_materialized_series() + 1.0;
        broken.with_column(bumped.into()).unwrap();
        assert!(table.compare(&broken, &theirs).is_err(), "{}", table.name);
    }
    let sessions = &peer::TABLES[3];
    let ours = sessions.ours(&inputs).unwrap().collect().unwrap();
    let ids: StringChunked = ours.column("session_id").unwrap().str().unwrap().iter().enumerate().map(|(i, id)| id.map(|id| if i == 7 { format!("{id}0") } else { id.to_string() })).collect();
    let mut broken = ours.clone();
    broken.with_column(ids.into_series().with_name("session_id".into()).into()).unwrap();
    assert!(sessions.compare(&broken, &sessions.duckdb_result(&conn, dir.path()).unwrap()).is_err());
}

/// Per table and view of the database: its rows, and a digest of every value (each
/// row as text, sorted), as DuckDB reads them. The same SQL runs in both DuckDBs.
const DIGEST_SQL: &str = "SELECT count(*), md5(coalesce(string_agg(CAST(x AS VARCHAR), chr(10) ORDER BY CAST(x AS VARCHAR)), '')) FROM {name} AS x";
const RELATIONS_SQL: &str = "SELECT table_name FROM information_schema.tables ORDER BY table_name";

/// The DuckDB of the long-term-support line (1.4), as a Python with `duckdb` 1.4:
/// `.ci/run` installs it and sets SHOPFEAT_DUCKDB_LTS_PYTHON.
pub(crate) fn lts_python() -> Option<String> {
    match std::env::var("SHOPFEAT_DUCKDB_LTS_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("CI").is_some() => panic!("SHOPFEAT_DUCKDB_LTS_PYTHON is not set: .ci/run installs DuckDB 1.4 and sets it"),
        _ => None,
    }
}

#[test]
fn duckdb_1_4_opens_the_database_and_reads_every_table_and_view() {
    let Some(python) = lts_python() else {
        eprintln!("skipped: set SHOPFEAT_DUCKDB_LTS_PYTHON to a Python with duckdb 1.4 (as .ci/run does)");
        return;
    };
    // DuckDB locks a file a process has open for writing: only the old one reads it now.
    let Computed { _landed, tables, db, dir } = sample();
    drop(db);
    let path = dir.join("features.duckdb");
    let script = format!(
        "import duckdb, json, sys\n\
         con = duckdb.connect(sys.argv[1], read_only=True)\n\
         con.execute(\"SET TimeZone = 'UTC'\")\n\
         out = {{'version': duckdb.__version__, 'relations': {{}}}}\n\
         for (name,) in con.execute({RELATIONS_SQL:?}).fetchall():\n    \
             out['relations'][name] = list(con.execute({DIGEST_SQL:?}.replace('{{name}}', name)).fetchone())\n\
         print(json.dumps(out))\n"
    );
    let output = std::process::Command::new(&python).arg("-c").arg(&script).arg(&path).output().expect("run the DuckDB 1.4 Python");
    assert!(output.status.success(), "DuckDB 1.4 could not read {}: {}", path.display(), String::from_utf8_lossy(&output.stderr));
    let theirs: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(theirs["version"].as_str().unwrap().starts_with("1.4."), "{theirs}");

    // The same digests from the bundled DuckDB: every relation, every value equal.
    // The bundled DuckDB has no ICU: it prints TIMESTAMPTZ in UTC, as the other
    // does with TimeZone set to UTC.
    let db = duckdb::Connection::open(&path).unwrap();
    let names: Vec<String> = db.prepare(RELATIONS_SQL).unwrap().query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    let expected: Vec<&str> = tables.iter().map(|(n, _)| *n).chain(shopfeat::sinks::duckdb::VIEWS.iter().map(|(f, _)| f.trim_end_matches(".sql"))).chain(["run_history"]).collect();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    for name in &names {
        let (rows, digest): (i64, String) = db.query_row(&DIGEST_SQL.replace("{name}", name), [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!(theirs["relations"][name], serde_json::json!([rows, digest]), "{name}");
        if let Some((_, frame)) = tables.iter().find(|(n, _)| n == name) {
            assert_eq!(rows, frame.height() as i64, "{name}");
        }
    }
}
