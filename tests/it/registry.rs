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

/// A plan cut to a few columns builds only the aggregates they read
/// (`build_only`); each feature of the five tables that prune, asked for alone,
/// equals its column in the whole table — so no feature reads a column its
/// registry expression does not name.
#[test]
fn each_feature_alone_equals_its_column_in_the_whole_table() {
    use shopfeat::features::{collection, interaction, pairs, product, user, Inputs};
    let landed = land(&[std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")]);
    let raw = shopfeat::normalize::RawTables::open(&landed.root, "test").unwrap();
    let as_of = ts("2025-11-30T23:59:59Z");
    let inputs = Inputs::new(shopfeat::normalize::normalize(&raw, Some(as_of)).unwrap(), "test", as_of, Default::default()).unwrap();
    type Build = fn(&Inputs) -> PolarsResult<LazyFrame>;
    type BuildOnly = fn(&Inputs, &[&str]) -> PolarsResult<LazyFrame>;
    let tables: [(FeatureTable, Build, BuildOnly); 5] = [
        (product::table(), product::build, product::build_only),
        (user::table(), user::build, user::build_only),
        (collection::table(), collection::build, collection::build_only),
        (interaction::table(), interaction::build, interaction::build_only),
        (pairs::table(), pairs::build, pairs::build_only),
    ];
    for (table, build, build_only) in tables {
        let key: Vec<&str> = table.key.iter().map(|(k, _)| *k).collect();
        let sorted = |lf: LazyFrame| lf.sort(key.clone(), SortMultipleOptions::default()).collect().unwrap();
        let whole = sorted(build(&inputs).unwrap());
        for feature in &table.features {
            let alone = sorted(build_only(&inputs, &[feature.name]).unwrap());
            let expected = whole.select(key.iter().copied().chain([feature.name])).unwrap();
            assert!(same_values(&alone, &expected), "{}.{} alone differs from the whole table", table.name, feature.name);
        }
        // Not vacuous: a column alone skips aggregates (its plan has fewer joins).
        let plan = |lf: LazyFrame| lf.describe_plan().unwrap().matches("LEFT JOIN").count();
        let one = plan(build_only(&inputs, &[table.features[0].name]).unwrap());
        assert!(one < plan(build(&inputs).unwrap()), "{}: {one} joins for one column", table.name);
    }
}

/// Equal frames, floats to 1e-9 relative (a sum computed in another plan may add
/// in another order).
fn same_values(a: &DataFrame, b: &DataFrame) -> bool {
    a.get_column_names() == b.get_column_names()
        && a.columns().iter().zip(b.columns()).all(|(x, y)| match (x.dtype(), y.dtype()) {
            (DataType::Float64, DataType::Float64) => x.f64().unwrap().iter().zip(y.f64().unwrap().iter()).all(|(p, q)| match (p, q) {
                (Some(p), Some(q)) => (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0),
                (p, q) => p == q,
            }),
            _ => x.as_materialized_series().equals_missing(y.as_materialized_series()),
        })
}

/// Normalization hands the features the events in two parts — the columns they
/// scan, with the browser and the event name as integers, and the long strings
/// fetched by row for a session's first and last events — while tables made
/// otherwise give the whole events table, which the features split themselves.
/// Both give the same feature tables: on the fixture shop (duplicated events,
/// events after T, a browser linked to a customer late, an unknown event name)
/// and on the sample.
#[test]
fn the_events_parts_give_the_features_of_the_whole_events_table() {
    use crate::compaction::{differing_columns, sorted};
    use shopfeat::features::{plans, Inputs};
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
    for (shop, t) in [(fixture("features"), "2025-03-01T00:00:00Z"), (sample, "2025-11-30T23:59:59Z")] {
        let landed = land(&[shop.clone()]);
        let raw = shopfeat::normalize::RawTables::open(&landed.root, "test").unwrap();
        let as_of = ts(t);
        let tables = |main: shopfeat::normalize::MainTables| {
            let inputs = Inputs::new(main.materialize().unwrap(), "test", as_of, Default::default()).unwrap();
            plans(&inputs).unwrap().into_iter().map(|(name, plan)| (name, sorted(plan.collect().unwrap()))).collect::<Vec<_>>()
        };
        let parts = tables(shopfeat::normalize::normalize(&raw, Some(as_of)).unwrap().for_features());
        let whole = tables(shopfeat::normalize::normalize(&raw, Some(as_of)).unwrap());
        for ((name, a), (_, b)) in parts.iter().zip(&whole) {
            assert!(a.height() > 0, "{}: {name} is empty", shop.display());
            let differing = differing_columns(a, b);
            assert!(differing.is_empty(), "{}: {name} differs between the events' parts and the whole table in {differing:?}", shop.display());
        }
    }
}
