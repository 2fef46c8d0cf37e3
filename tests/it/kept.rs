//! What `serve` keeps of a shop's normalization between cycles
//! (`normalize::Kept`: the events read once and the order tables): the main
//! tables made from it equal a normalization of the raw store at the same `T`,
//! every table, after each kind of landing; the events of snapshots landed
//! since are added to the kept ones, and a part is made again when its files
//! changed otherwise; and runs that start from it publish the feature tables a
//! run without it publishes.

use crate::common::*;
use crate::fast_lane::order;
use crate::serve::{renamed, sample_dir};
use polars::prelude::*;
use serde_json::json;
use shopfeat::land::inbox::Inbox;
use shopfeat::normalize::{self, Kept, RawTables};
use shopfeat::pipeline::{self, ComputeOptions, RunOptions, Source};
use shopfeat::storage::DataRoot;
use std::sync::{Arc, Mutex};

/// Every main table (and the deleted ids) at `t`: from the raw store, and
/// from what `kept` holds (which the call may make again).
fn assert_main_tables_equal(root: &DataRoot, t: i64, kept: &mut Kept) {
    let raw = RawTables::open(root, "s").unwrap();
    let frames = |main: normalize::MainTables| {
        let mut plans: Vec<(&str, LazyFrame)> = main.named();
        plans.extend([("deleted_products", main.deleted_products.clone()), ("deleted_customers", main.deleted_customers.clone())]);
        let names: Vec<&str> = plans.iter().map(|(n, _)| *n).collect();
        names.into_iter().zip(normalize::collect_all(plans.into_iter().map(|(_, lf)| lf).collect()).unwrap()).collect::<Vec<_>>()
    };
    let direct = frames(normalize::normalize(&raw, Some(t)).unwrap());
    let from_kept = frames(normalize::normalize_kept(&raw, t, kept).unwrap());
    assert_eq!(direct.len(), 12);
    for ((name, a), (_, b)) in direct.iter().zip(&from_kept) {
        assert!(a.height() > 0 || *name == "refund_line_items" || name.starts_with("deleted"), "{name} has rows at {t}");
        // The events in order (sessions are cut in it); the rest as sets of
        // rows (two normalizations may give a join's rows in another order).
        let same = if *name == "events" { a.equals_missing(b) } else { sorted(a).equals_missing(&sorted(b)) };
        assert!(same, "{name} at {t}:\n{a}\n{b}");
    }
}

/// `frame` without `computed_at`, sorted by every column that is not a float
/// or a list (rows compared as sets).
fn sorted(frame: &DataFrame) -> DataFrame {
    let frame = frame.drop("computed_at").unwrap_or_else(|_| frame.clone());
    let keys: Vec<PlSmallStr> = frame.columns().iter().filter(|c| !matches!(c.dtype(), DataType::Float64 | DataType::Float32 | DataType::List(_))).map(|c| c.name().clone()).collect();
    frame.sort(keys, SortMultipleOptions::default().with_nulls_last(true)).unwrap()
}

/// `source` landed and computed at `t` starting from `kept`; the published
/// tables against a compute at `t` from the raw store alone.
fn run_from_kept(root: &DataRoot, source: Source, t: i64, kept: &Arc<Mutex<Kept>>) {
    let options = RunOptions {
        source,
        as_of: Some(t),
        pairs: Default::default(),
        keep_generations: 2,
        gorse: None,
        compaction: shopfeat::land::compact::Policy::never(),
        kept: Some(kept.clone()),
    };
    let report = pipeline::run(root, "s", &options).unwrap();
    report.check().unwrap();
    let fresh = pipeline::compute(root, "s", &ComputeOptions::at(t)).unwrap();
    for (table, frame) in &fresh.tables {
        let published = shopfeat::sinks::parquet::read_current_required(root, "s", table).unwrap();
        let (a, b) = (sorted(frame), sorted(&published));
        assert!(a.height() > 0, "{table} has rows");
        assert!(a.equals_missing(&b), "{table} at {t}: a run from what was kept published other rows:\n{a}\n{b}");
    }
}

#[test]
fn tables_from_what_serve_kept_equal_a_normalization_and_are_made_again_when_their_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::open(&dir.path().display().to_string()).unwrap();
    let inbox = Inbox::new(dir.path().join("inbox"));
    let kept = Arc::new(Mutex::new(Kept::default()));
    let made = || kept.lock().unwrap().made();
    // The sample's clock is 2025-11-30T23:59:59Z: its last order and event are before it.
    let t = ts("2025-12-01T00:00:00Z");
    run_from_kept(&root, Source::Files(vec![sample_dir()]), t, &kept);
    assert_eq!(made(), (1, 1), "the first run makes both parts");

    // A catalog delivery: neither part's files change.
    let product = shopfeat::sinks::parquet::read_current_required(&root, "s", "product_features").unwrap().column("product_id").unwrap().i64().unwrap().get(0).unwrap();
    let mut renamed = renamed(product, "Kept across cycles");
    renamed["updated_at"] = json!("2025-12-01T01:00:00Z");
    inbox.write_webhook("products/update", "k-1", &serde_json::to_vec(&renamed).unwrap()).unwrap();
    let t = ts("2025-12-01T02:00:00Z");
    run_from_kept(&root, Source::Inbox(inbox.clone()), t, &kept);
    assert_eq!(made(), (1, 1), "a catalog delivery reuses both parts");

    // An order: the order tables again, the events kept.
    let buyer = shopfeat::sinks::parquet::read_current_required(&root, "s", "user_features").unwrap().column("customer_id").unwrap().i64().unwrap().get(0).unwrap();
    inbox.write_webhook("orders/create", "k-2", order(9_100_001, Some(buyer), &[product], "2025-12-01T02:30:00Z").to_string().as_bytes()).unwrap();
    let t = ts("2025-12-01T03:00:00Z");
    run_from_kept(&root, Source::Inbox(inbox.clone()), t, &kept);
    assert_eq!(made(), (1, 2), "an order makes the order tables again, not the events");

    // Pixel events: one new browser, one linking a browser to the buyer, and
    // one after T (not yet counted): the events again.
    let events = [
        json!({"id": "k-e1", "name": "product_viewed", "clientId": "kept-browser", "timestamp": "2025-12-01T03:10:00Z", "data": {"productVariant": {"product": {"id": product.to_string()}}}}),
        json!({"id": "k-e2", "name": "checkout_completed", "clientId": "kept-browser", "customerId": buyer.to_string(), "timestamp": "2025-12-01T03:20:00Z"}),
        json!({"id": "k-e3", "name": "page_viewed", "clientId": "kept-browser", "timestamp": "2025-12-02T00:00:00Z"}),
    ];
    let lines: String = events.iter().map(|e| format!("{e}\n")).collect();
    inbox.write_events(lines.as_bytes()).unwrap();
    let t = ts("2025-12-01T04:00:00Z");
    run_from_kept(&root, Source::Inbox(inbox.clone()), t, &kept);
    let grown = || kept.lock().unwrap().grown();
    assert_eq!((made(), grown()), ((1, 2), 1), "events are added to the kept ones, the order tables kept");

    // More events: one redelivered (its first copy counts), one from a
    // browser of the sample, one new.
    let sample_browser = {
        let raw = RawTables::open(&root, "s").unwrap();
        let events = normalize::normalize(&raw, Some(t)).unwrap().events.select([col("client_id")]).first().collect().unwrap();
        events.column("client_id").unwrap().str().unwrap().get(0).unwrap().to_string()
    };
    let events = [
        json!({"id": "k-e1", "name": "page_viewed", "clientId": "someone-else", "timestamp": "2025-12-01T04:10:00Z"}),
        json!({"id": "k-e4", "name": "product_viewed", "clientId": sample_browser, "timestamp": "2025-12-01T04:20:00Z", "data": {"productVariant": {"product": {"id": product.to_string()}}}}),
        json!({"id": "k-e5", "name": "my_own_event", "clientId": "kept-browser-2", "timestamp": "2025-12-01T04:30:00Z"}),
    ];
    let lines: String = events.iter().map(|e| format!("{e}\n")).collect();
    inbox.write_events(lines.as_bytes()).unwrap();
    let t = ts("2025-12-01T05:00:00Z");
    run_from_kept(&root, Source::Inbox(inbox.clone()), t, &kept);
    assert_eq!((made(), grown()), ((1, 2), 2));

    // At other times from the same kept parts: before the link, at the
    // order, long before, and after the late event.
    let mut kept = kept.lock().unwrap();
    for at in ["2025-12-01T03:15:00Z", "2025-12-01T02:30:00Z", "2025-10-01T00:00:00Z", "2025-12-01T04:25:00Z", "2025-12-03T00:00:00Z"] {
        assert_main_tables_equal(&root, ts(at), &mut kept);
    }
    assert_eq!((kept.made(), kept.grown()), ((1, 2), 2), "the same files: nothing made again");
}
