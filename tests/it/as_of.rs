//! `--as-of` is honoured: computing at an earlier T over all of the sample's data
//! gives exactly the tables computed over the data as it stood at T (orders, events
//! and entities created after T removed, later cancellations and refunds undone,
//! later webhook updates not yet arrived).

use crate::common::*;
use polars::prelude::*;
use serde_json::Value;
use std::io::{BufRead, Write};
use std::path::Path;

fn read_jsonl(path: &Path) -> Vec<Value> {
    let reader = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap()));
    reader.lines().map(|l| serde_json::from_str(&l.unwrap()).unwrap()).collect()
}

fn write_jsonl(path: &Path, values: &[Value]) {
    let mut out = std::fs::File::create(path).unwrap();
    for v in values {
        writeln!(out, "{v}").unwrap();
    }
}

fn at_or_before(v: &Value, field: &str, t: i64) -> bool {
    v.get(field).and_then(Value::as_str).is_none_or(|s| ts(s) <= t)
}

/// Keeps root records passing `keep` with the child lines that follow them.
fn roots_where(lines: Vec<Value>, keep: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut kept = Vec::new();
    let mut keeping = false;
    for line in lines {
        if line.get("__parentId").is_none() {
            keeping = keep(&line);
        }
        if keeping {
            kept.push(line);
        }
    }
    kept
}

/// The sample shop as it stood at `t`.
fn truncate_sample(out: &Path, t: i64) {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
    let read = |name: &str| read_jsonl(&sample.join(format!("{name}.jsonl.gz")));
    write_jsonl(&out.join("products.jsonl"), &roots_where(read("products"), |p| at_or_before(p, "createdAt", t)));
    write_jsonl(&out.join("collections.jsonl"), &read("collections"));
    write_jsonl(&out.join("customers.jsonl"), &roots_where(read("customers"), |c| at_or_before(c, "createdAt", t)));
    let mut orders = roots_where(read("orders"), |o| at_or_before(o, "createdAt", t));
    for order in orders.iter_mut().filter(|o| o.get("__parentId").is_none()) {
        if !at_or_before(order, "cancelledAt", t) {
            order["cancelledAt"] = Value::Null;
        }
        let refunds: Vec<Value> = order["refunds"].as_array().unwrap().iter().filter(|r| at_or_before(r, "createdAt", t)).cloned().collect();
        order["refunds"] = Value::Array(refunds);
    }
    write_jsonl(&out.join("orders.jsonl"), &orders);
    let events: Vec<Value> = read("events").into_iter().filter(|e| at_or_before(e, "timestamp", t)).collect();
    write_jsonl(&out.join("events.jsonl"), &events);
    // Of the webhooks, only the deletion has happened by t (deletions apply whatever T).
    std::fs::create_dir_all(out.join("webhooks")).unwrap();
    std::fs::copy(sample.join("webhooks/products_delete-1.json"), out.join("webhooks/products_delete-1.json")).unwrap();
}

fn sorted(frame: &DataFrame, key: &[&str]) -> DataFrame {
    frame.sort(key.iter().map(|k| k.to_string()).collect::<Vec<_>>(), SortMultipleOptions::default()).unwrap()
}

#[test]
fn computing_at_an_earlier_time_equals_computing_over_data_truncated_there() {
    let t = ts("2025-09-01T00:00:00Z");
    let full = land(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")]);
    let dir = tempfile::tempdir().unwrap();
    truncate_sample(dir.path(), t);
    let truncated = land(&[dir.path().to_path_buf()]);
    assert!(truncated.report.problems.is_empty());
    let a = crate::common::compute(&full.root, "test", t, Default::default()).unwrap().tables;
    let b = crate::common::compute(&truncated.root, "test", t, Default::default()).unwrap().tables;
    let keys = [("product_features", vec!["product_id"]), ("user_features", vec!["customer_id"]), ("collection_features", vec!["collection_id"]), ("session_features", vec!["session_id"]), ("customer_behavior_features", vec!["customer_id"]), ("interaction_features", vec!["customer_id", "product_id"]), ("search_product_features", vec!["search_query", "product_id"]), ("product_pair_features", vec!["product_id_a", "product_id_b"]), ("customer_lifetime_features", vec!["customer_id"]), ("product_embeddings", vec!["product_id"])];
    assert_eq!(a.len(), keys.len());
    for (((name, fa), (_, fb)), (_, key)) in a.iter().zip(&b).zip(keys) {
        let (fa, fb) = (sorted(fa, &key), sorted(fb, &key));
        assert_eq!(fa.height(), fb.height(), "{name} rows");
        for column in fa.get_column_names() {
            let (ca, cb) = (fa.column(column).unwrap(), fb.column(column).unwrap());
            if ca.dtype() == &DataType::Float64 {
                // Sums over rows in another order may differ in the last bits.
                for (x, y) in ca.f64().unwrap().iter().zip(cb.f64().unwrap().iter()) {
                    match (x, y) {
                        (Some(x), Some(y)) => assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{name}.{column}: {x} != {y}"),
                        (x, y) => assert_eq!(x, y, "{name}.{column}"),
                    }
                }
            } else {
                assert!(ca.as_materialized_series().equals_missing(cb.as_materialized_series()), "{name}.{column} differs");
            }
        }
    }
    // Entities created after T have no row; the earlier state is what counts.
    let products = &a[0].1;
    assert!(products.height() < 350, "products created after T are left out");
    let users = &a[1].1;
    assert!(users.height() < 381, "customers created after T are left out");
}
