//! The checks every feature table owes the registry, derived from it (as dbt
//! declares `unique` and `not_null` once per model): columns by name, order and
//! type; the key unique; no NaN or infinite number. Run on the hand-written
//! fixture shop and on the sample.

use crate::common::*;
use polars::prelude::*;
use shopfeat::features::registry::{FeatureTable, Kind};

/// Every check of `table` on `frame`.
fn check(table: &FeatureTable, frame: &DataFrame, shop: &str) {
    let name = table.name;
    let columns: Vec<&str> = frame.get_column_names().iter().map(|c| c.as_str()).collect();
    let declared: Vec<&str> = table.schema().iter().map(|(c, _)| *c).collect();
    assert_eq!(columns, declared, "{shop}: {name} columns are the registry's, in order");
    for (column, kind) in table.schema() {
        let c = frame.column(column).unwrap();
        assert_eq!(c.dtype(), &kind.dtype(), "{shop}: {name}.{column}");
        if kind == Kind::F64 {
            assert!(c.f64().unwrap().iter().flatten().all(f64::is_finite), "{shop}: {name}.{column} has NaN or inf");
        }
    }
    let key: Vec<&str> = ["shop_id"].into_iter().chain(table.key.iter().map(|(k, _)| *k)).collect();
    for k in &key {
        assert_eq!(frame.column(k).unwrap().null_count(), 0, "{shop}: {name}.{k} is part of the key and never null");
    }
    let distinct = frame.clone().lazy().select(key.iter().map(|k| col(*k)).collect::<Vec<_>>()).unique(None, UniqueKeepStrategy::Any).collect().unwrap();
    assert_eq!(distinct.height(), frame.height(), "{shop}: {name} has one row per key {key:?}");
}

fn check_all(inputs: &std::path::Path, as_of: &str) {
    let landed = land(&[inputs.to_path_buf()]);
    let tables = compute(&landed.root, "test", ts(as_of), Default::default()).unwrap().tables;
    let catalog = shopfeat::features::catalog();
    assert_eq!(tables.iter().map(|(n, _)| *n).collect::<Vec<_>>(), catalog.iter().map(|t| t.name).collect::<Vec<_>>());
    for ((_, frame), table) in tables.iter().zip(&catalog) {
        assert!(frame.height() > 0, "{}: {} is empty, so its checks would prove nothing", inputs.display(), table.name);
        check(table, frame, &inputs.display().to_string());
    }
}

#[test]
fn every_table_of_the_fixture_shop_keeps_the_registry_contract() {
    check_all(&fixture("features"), "2025-03-01T00:00:00Z");
}

#[test]
fn every_table_of_the_sample_keeps_the_registry_contract() {
    check_all(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample"), "2025-11-30T23:59:59Z");
}

#[test]
fn a_duplicated_key_or_a_wrong_type_is_caught() {
    let landed = land(&[fixture("features")]);
    let tables = compute(&landed.root, "test", ts("2025-03-01T00:00:00Z"), Default::default()).unwrap().tables;
    let product = shopfeat::features::product::table();
    let frame = &tables[0].1;
    let doubled = frame.vstack(&frame.head(Some(1))).unwrap();
    assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&product, &doubled, "doubled"))).is_err());
    let mut retyped = frame.clone();
    retyped.with_column(frame.column("view_count_30d").unwrap().cast(&DataType::Float64).unwrap()).unwrap();
    assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&product, &retyped, "retyped"))).is_err());
}
