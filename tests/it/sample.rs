//! The generator: the committed sample is its output, and generated shops
//! normalize to the row counts their manifests promise.

use crate::common::*;
use polars::prelude::*;
use shopfeat::generate::{self, Manifest, PresetName};
use shopfeat::normalize::{self, RawTables};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let mut out = vec![];
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// File content, decompressed when gzipped (compare data, not compressor bytes).
fn content(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = vec![];
        flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_end(&mut out).unwrap();
        out
    } else {
        bytes
    }
}

fn manifest(dir: &Path) -> Manifest {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

fn row_counts(landed: &Landed) -> BTreeMap<String, u64> {
    landed.tables(None).into_iter().map(|(name, t)| (name.to_string(), t.height() as u64)).collect()
}

#[test]
fn the_committed_sample_is_exactly_what_the_generator_writes() {
    let out = tempfile::tempdir().unwrap();
    generate::generate(PresetName::Sample, 42, out.path(), true, &shopfeat::progress::Progress::hidden()).unwrap();
    let committed = files(&sample_dir());
    assert_eq!(committed, files(out.path()), "same files");
    for f in committed {
        assert!(content(&sample_dir().join(&f)) == content(&out.path().join(&f)), "{} drifted: run `shopfeat generate --preset sample --gzip --out data/sample`", f.display());
    }
}

#[test]
fn the_sample_normalizes_to_its_manifest() {
    let m = manifest(&sample_dir());
    assert_eq!(m.expected_rows["products"], 350);
    assert_eq!(m.expected_rows["customers"], 381);
    assert_eq!(m.expected_rows["collections"], 6);
    assert_eq!(m.expected_rows["orders"], 395);
    let landed = land(&[sample_dir()]);
    assert!(landed.report.problems.is_empty(), "{:?}", landed.report.problems);
    assert_eq!(row_counts(&landed), m.expected_rows);
}

fn count(t: &Table, predicate: Expr) -> usize {
    t.0.clone().lazy().filter(predicate).collect().unwrap().height()
}

#[test]
fn the_sample_has_the_cases_features_depend_on() {
    let landed = land(&[sample_dir()]);
    let t = landed.tables(None);
    let (orders, lines, events, products, media) = (&t["orders"], &t["line_items"], &t["events"], &t["products"], &t["product_media"]);
    assert!(count(orders, col("customer_id").is_null()) > 10, "guest checkouts");
    assert!(count(orders, col("test").eq(lit(true))) >= 1, "test orders");
    assert!(count(orders, col("cancelled_at").is_not_null()) >= 5, "cancelled orders");
    assert!(count(orders, col("total_discounts").gt(lit(0.0))) > 20, "discounts");
    assert!(t["refund_line_items"].height() >= 10, "partial refunds");
    assert!(count(lines, col("product_id").is_null()) >= 3, "custom line items");
    for status in ["ACTIVE", "DRAFT", "ARCHIVED"] {
        assert!(count(products, col("status").eq(lit(status))) > 0, "{status}");
    }
    for kind in ["IMAGE", "VIDEO", "EXTERNAL_VIDEO", "MODEL_3D"] {
        assert!(count(media, col("media_type").eq(lit(kind))) > 0, "{kind}");
    }
    for name in ["page_viewed", "product_viewed", "collection_viewed", "search_submitted", "cart_viewed", "product_added_to_cart", "product_removed_from_cart", "checkout_started", "checkout_completed"] {
        assert!(count(events, col("name").eq(lit(name))) > 0, "{name}");
    }
    // Anonymous browsing stitched to a customer afterwards.
    assert!(count(events, col("customer_id").is_not_null().and(col("event_customer_id").is_null())) > 100);
    assert!(count(events, col("customer_id").is_null()) > 100, "anonymous visitors");
    // Every checkout_completed names an order that exists, with lines.
    let completed = events.0.clone().lazy().filter(col("name").eq(lit("checkout_completed"))).select([col("order_id")]);
    let orphans = completed
        .join(lines.0.clone().lazy().select([col("order_id")]).unique(None, UniqueKeepStrategy::Any), [col("order_id")], [col("order_id")], JoinArgs::new(JoinType::Anti))
        .collect()
        .unwrap();
    assert_eq!(orphans.height(), 0, "{orphans}");
    // Popularity is skewed: the top 10% of products sell far more than the bottom half.
    let units = lines.0.clone().lazy().filter(col("product_id").is_not_null()).group_by([col("product_id")]).agg([col("quantity").sum()])
        .sort(["quantity"], SortMultipleOptions::default().with_order_descending(true)).collect().unwrap();
    let q: Vec<i64> = units.column("quantity").unwrap().i64().unwrap().iter().flatten().collect();
    let top: i64 = q.iter().take(q.len() / 10).sum();
    let total: i64 = q.iter().sum();
    assert!(top as f64 > 0.35 * total as f64, "top 10% of products sell {top} of {total} units");
}

#[test]
fn a_medium_shop_generates_and_normalizes_to_its_manifest() {
    let out = tempfile::tempdir().unwrap();
    let m = generate::generate(PresetName::Medium, 7, out.path(), false, &shopfeat::progress::Progress::hidden()).unwrap();
    assert_eq!(m.expected_rows["products"], 10_000);
    assert_eq!(m.expected_rows["orders"], 100_000);
    let events = m.expected_rows["events"];
    assert!((800_000..1_300_000).contains(&events), "{events} events");
    let landed = land(&[out.path().to_path_buf()]);
    assert!(landed.report.problems.is_empty(), "{:?}", &landed.report.problems[..3.min(landed.report.problems.len())]);
    assert_eq!(row_counts(&landed), m.expected_rows);
}

#[test]
fn the_sample_computes_one_feature_row_per_entity_without_nan() {
    let landed = land(&[sample_dir()]);
    let as_of = ts(&manifest(&sample_dir()).as_of);
    let tables = crate::common::compute(&landed.root, "test", as_of, Default::default()).unwrap().tables;
    let expected_rows = [("product_features", 350), ("user_features", 381), ("collection_features", 6)];
    assert_eq!(tables.iter().take(3).map(|(n, f)| (*n, f.height())).collect::<Vec<_>>(), expected_rows);
    assert!(tables[3].1.height() > 500, "{} sessions", tables[3].1.height());
    // Columns, types, keys and finite numbers: tests/it/registry.rs, for every table.
    for ((name, _), table) in tables.iter().zip(shopfeat::features::catalog()) {
        assert_eq!(*name, table.name);
        assert!(feature_file(&landed.root, "test", name).is_file());
    }
    // The sample's clock makes 30-day windows non-empty.
    let viewed = tables[0].1.column("view_count_30d").unwrap().i64().unwrap().iter().flatten().filter(|v| *v > 0).count();
    assert!(viewed > 50, "{viewed} products viewed in 30d");
    let segments = tables[1].1.column("rfm_segment").unwrap().str().unwrap().iter().flatten().collect::<std::collections::BTreeSet<_>>();
    assert!(segments.len() >= 5, "{segments:?}");
}

#[test]
fn a_product_deleted_by_webhook_keeps_no_row_in_any_feature_table() {
    // The sample's products/delete webhook removes product 350, which was viewed,
    // carted and bought (by customer 90) before.
    let landed = land(&[sample_dir()]);
    let as_of = ts(&manifest(&sample_dir()).as_of);
    let raw = RawTables::open(&landed.root, "test").unwrap();
    let lines = normalize::normalize(&raw, Some(as_of)).unwrap().line_items.filter(col("product_id").eq(lit(7_100_000_350i64))).collect().unwrap();
    assert!(lines.height() > 0, "the deleted product was sold");
    let tables = crate::common::compute(&landed.root, "test", as_of, Default::default()).unwrap().tables;
    for (name, frame) in &tables {
        for column in ["product_id", "product_id_a", "product_id_b"] {
            if let Ok(c) = frame.column(column) {
                let hits = c.i64().unwrap().iter().filter(|id| *id == Some(7_100_000_350)).count();
                assert_eq!(hits, 0, "{name}.{column}");
            }
        }
    }
}
