//! The feature tables do not depend on the order rows reach them: sums of
//! money and variances come out bit for bit the same whatever order the main
//! tables' rows are in. (A parallel group-by reads a group's rows in an order
//! that varies from run to run; `medium` gave product, collection and lifetime
//! columns a last digit apart between two runs, and a training set's content
//! hash with them.)

use crate::common::*;
use polars::prelude::*;
use shopfeat::features::{self, Inputs};
use shopfeat::normalize::{self, MainTables, RawTables};
use std::path::Path;

/// The sample shop's main tables at `t`, in memory, whole (events not split),
/// with the rows of every table but the events reversed when `reversed`.
fn main_tables(landed: &Landed, t: i64, reversed: bool) -> MainTables {
    let raw = RawTables::open(&landed.root, "test").unwrap();
    let main = normalize::normalize(&raw, Some(t)).unwrap();
    let mut frames: Vec<LazyFrame> = main.named().into_iter().map(|(_, lf)| lf).collect();
    frames.extend([main.deleted_products.clone(), main.deleted_customers.clone()]);
    let frames = normalize::collect_all(frames).unwrap();
    let tables: Vec<LazyFrame> = frames
        .into_iter()
        .enumerate()
        .map(|(i, frame)| if reversed && i != 9 { frame.reverse().lazy() } else { frame.lazy() })
        .collect();
    MainTables::from_tables(tables.try_into().map_err(|_| "twelve tables").unwrap())
}

fn tables(landed: &Landed, t: i64, reversed: bool) -> Vec<(&'static str, DataFrame)> {
    let inputs = Inputs::new(main_tables(landed, t, reversed), "shop-x", t, Default::default()).unwrap();
    features::plans(&inputs).unwrap().into_iter().map(|(name, lf)| (name, lf.collect().unwrap())).collect()
}

/// `frame` sorted by every column but the floating-point ones and lists (rows
/// compared as sets).
fn sorted(frame: &DataFrame) -> DataFrame {
    let keys: Vec<PlSmallStr> = frame.columns().iter().filter(|c| !matches!(c.dtype(), DataType::Float64 | DataType::Float32 | DataType::List(_))).map(|c| c.name().clone()).collect();
    frame.sort(keys, SortMultipleOptions::default().with_nulls_last(true)).unwrap()
}

#[test]
fn money_sums_and_variances_do_not_depend_on_the_order_of_rows() {
    let landed = land(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")]);
    let t = ts("2025-11-10T00:00:00Z");
    let (forward, backward) = (tables(&landed, t, false), tables(&landed, t, true));
    let mut compared = 0;
    for ((name, a), (_, b)) in forward.iter().zip(&backward) {
        if *name == "session_features" || *name == "customer_behavior_features" || *name == "search_product_features" {
            // Read only the events, which keep their order here.
            continue;
        }
        let (a, b) = (sorted(a), sorted(b));
        assert_eq!(a.height(), b.height(), "{name}");
        for column in a.columns() {
            if column.name() == "computed_at" {
                continue;
            }
            let other = b.column(column.name()).unwrap();
            // Bit for bit: NaN equals NaN, and 0.1 + 0.2 + 0.3 in another order does not equal it.
            let same = match column.dtype() {
                DataType::Float64 => column.f64().unwrap().iter().zip(other.f64().unwrap().iter()).all(|(x, y)| x.map(f64::to_bits) == y.map(f64::to_bits)),
                _ => column.as_materialized_series().equals_missing(other.as_materialized_series()),
            };
            assert!(same, "{name}.{} changes with the order of the main tables' rows", column.name());
            compared += 1;
        }
    }
    assert!(compared > 150, "{compared} columns compared");
}
