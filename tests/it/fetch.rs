//! `fetch` against the fake Admin API (shopify_fake.rs): a historical fetch lands
//! what `ingest` lands; an incremental run after changes gives exactly the tables
//! of a historical run over the same data; faults are survived; a failed fetch
//! leaves the watermarks alone.

use crate::common::*;
use crate::shopify_fake::{read_shop, Faults, Record, Shop, Shopify};
use polars::prelude::*;
use serde_json::json;
use shopfeat::config::Secret;
use shopfeat::normalize::{self, RawTables};
use shopfeat::retry::Retry;
use shopfeat::shopify::{self, bulk::Polling, FetchOptions, Mode};
use shopfeat::state::ShopState;
use shopfeat::storage::DataRoot;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TOKEN: &str = "shpat_test_token_1234";
const AS_OF: &str = "2025-11-30T23:59:59Z";
/// Where the history is split for the incremental test.
const SPLIT: &str = "2025-09-01T00:00:00Z";

fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")
}

fn options(fake: &Shopify, mode: Mode, inbox: Option<&Path>) -> FetchOptions {
    let mut o = FetchOptions::new(&fake.url, Secret::new(TOKEN), mode);
    o.inbox = inbox.map(Path::to_path_buf);
    o.inbox_settle = Duration::ZERO;
    o.retry = Retry { max_retries: 5, base_delay: Duration::from_millis(10), max_delay: Duration::from_millis(200) };
    o.polling = Polling { first: Duration::from_millis(15), max: Duration::from_millis(60), deadline: Duration::from_secs(60) };
    o
}

fn root_in(dir: &Path, name: &str) -> DataRoot {
    DataRoot::open(dir.join(name).to_str().unwrap()).unwrap()
}

/// An inbox folder holding copies of `files`.
fn inbox(dir: &Path, name: &str, files: &[PathBuf]) -> PathBuf {
    let inbox = dir.join(name);
    std::fs::create_dir_all(&inbox).unwrap();
    for f in files {
        std::fs::copy(f, inbox.join(f.file_name().unwrap())).unwrap();
    }
    inbox
}

fn sample_webhooks() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(sample_dir().join("webhooks")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// Every main table at T, each sorted by its primitive columns.
fn main_tables(root: &DataRoot) -> Vec<(&'static str, DataFrame)> {
    let raw = RawTables::open(root, "test").unwrap();
    let main = normalize::normalize(&raw, Some(ts(AS_OF))).unwrap();
    let named = main.named();
    let frames = normalize::collect_all(named.iter().map(|(_, lf)| lf.clone()).collect()).unwrap();
    named.into_iter().map(|(n, _)| n).zip(frames.into_iter().map(sorted)).collect()
}

/// Columns the fetcher does not ask Shopify for (no feature reads them, and names,
/// emails and addresses are protected customer data): null when fetched.
const NOT_FETCHED: &[(&str, &[&str])] = &[("customers", &["email", "first_name", "last_name", "city"]), ("orders", &["country_code", "province_code"])];

/// The main tables without the columns the fetcher leaves out.
fn fetched_columns(tables: Vec<(&'static str, DataFrame)>) -> Vec<(&'static str, DataFrame)> {
    tables
        .into_iter()
        .map(|(name, frame)| {
            let drop: Vec<&str> = NOT_FETCHED.iter().filter(|(t, _)| *t == name).flat_map(|(_, c)| c.iter().copied()).collect();
            (name, sorted(frame.drop_many(drop)))
        })
        .collect()
}

fn sorted(frame: DataFrame) -> DataFrame {
    let keys: Vec<PlSmallStr> = frame.columns().iter().filter(|c| !matches!(c.dtype(), DataType::List(_) | DataType::Struct(_) | DataType::Float64)).map(|c| c.name().clone()).collect();
    frame.sort(keys, SortMultipleOptions::default().with_nulls_last(true)).unwrap()
}

/// Equal frames: same columns, same values (floats to 1e-9 relative: sums may
/// differ in the last bits with row order).
fn assert_same(name: &str, a: &DataFrame, b: &DataFrame) {
    assert_eq!(a.get_column_names(), b.get_column_names(), "{name}: columns");
    assert_eq!(a.height(), b.height(), "{name}: rows");
    for (x, y) in a.columns().iter().zip(b.columns()) {
        if x.dtype() == &DataType::Float64 {
            for (i, (p, q)) in x.f64().unwrap().iter().zip(y.f64().unwrap().iter()).enumerate() {
                let same = match (p, q) {
                    (Some(p), Some(q)) => (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0),
                    (p, q) => p == q,
                };
                assert!(same, "{name}.{} row {i}: {p:?} vs {q:?}", x.name());
            }
        } else {
            assert!(x.as_materialized_series().equals_missing(y.as_materialized_series()), "{name}.{} differs", x.name());
        }
    }
}

#[test]
fn a_historical_fetch_lands_what_ingest_of_the_same_files_lands() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Shopify::start(TOKEN, read_shop(&sample_dir()), "2025-12-01T00:00:00Z");
    let mut inbox_files = sample_webhooks();
    inbox_files.push(sample_dir().join("events.jsonl.gz"));
    let inbox = inbox(dir.path(), "inbox", &inbox_files);
    let root = root_in(dir.path(), "fetched");
    let report = shopify::fetch(&root, "test", &options(&fake, Mode::Historical, Some(&inbox))).unwrap();

    assert_eq!(report.inbox_files, 6);
    assert!(report.landed.problems.is_empty(), "{:?}", report.landed.problems);
    assert_eq!(fake.queries().len(), 4);
    assert!(fake.queries().iter().all(|(_, filter)| filter.is_none()), "historical: no filter");
    // Shopify's clock minus the 5-minute overlap, for every entity.
    let state = ShopState::load(&root, "test").unwrap();
    assert_eq!(state.watermarks.len(), 4);
    assert!(state.watermarks.values().all(|w| w == "2025-11-30T23:55:00Z"), "{:?}", state.watermarks);
    // The inbox was emptied into landed/<snapshot>/.
    assert!(!inbox.join("events.jsonl.gz").exists());
    assert!(inbox.join("landed").join(&report.landed.snapshot).join("events.jsonl.gz").exists());
    assert!(shopfeat::land::snapshots(&root, "test").unwrap().iter().all(|m| m.full));

    let ingested = land(&[sample_dir()]);
    let fetched_tables = main_tables(&root);
    // The columns left out are null, as asked; the rest equal ingest value for value,
    // refund lines and their times included.
    let customers = &fetched_tables.iter().find(|(n, _)| *n == "customers").unwrap().1;
    // (One customer's email comes from the customers/update webhook in the inbox.)
    assert_eq!(customers.column("email").unwrap().null_count(), customers.height() - 1);
    assert!(customers.column("country_code").unwrap().null_count() < customers.height(), "the default address is fetched");
    for ((name, fetched), (_, expected)) in fetched_columns(fetched_tables).iter().zip(fetched_columns(main_tables(&ingested.root)).iter()) {
        assert!(expected.height() > 0, "{name}");
        assert_same(name, fetched, expected);
    }
    // Refund lines came from paged queries, not from the bulk query.
    let documents = fake.documents();
    assert!(documents.iter().any(|(_, d)| d.contains("refundLines")), "refund lines are fetched apart");
    assert!(documents.iter().all(|(version, _)| version == shopfeat::shopify::queries::API_VERSION));
}

#[test]
fn every_query_the_fetcher_sends_keeps_shopifys_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut shop = read_shop(&sample_dir());
    // One refund with more lines than a page holds, so its lines are paged.
    let long_refund = with_long_refund(&mut shop, 23);
    let fake = Shopify::start(TOKEN, shop, "2025-12-01T00:00:00Z");
    let root = root_in(dir.path(), "r");
    shopify::fetch(&root, "test", &options(&fake, Mode::Historical, None)).unwrap();
    let documents = fake.documents();
    let (mut bulk, mut paged) = (0, 0);
    for (_, text) in &documents {
        let doc = crate::graphql::parse(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let cost = crate::graphql::cost(&doc, &serde_json::json!({"ids": vec!["x"; shopfeat::shopify::queries::ORDERS_PER_REFUND_QUERY]}));
        assert!(cost <= crate::graphql::MAX_COST, "{cost} points: {text}");
        if !text.trim_start().starts_with("mutation") && !text.trim_start().starts_with("query") {
            crate::graphql::validate_bulk(&doc).unwrap_or_else(|e| panic!("{e}: {text}"));
            bulk += 1;
        }
        paged += usize::from(text.contains("moreRefundLines"));
    }
    assert_eq!(bulk, 4, "one bulk query per root entity");
    assert_eq!(paged, 1, "23 lines: a first page of 10, then the other 13 in one more query");
    let raw = RawTables::open(&root, "test").unwrap();
    let lines = normalize::normalize(&raw, None).unwrap().refund_line_items.filter(col("refund_id").eq(lit(long_refund))).collect().unwrap();
    assert_eq!(lines.height(), 23, "every line of the long refund");
    assert_eq!(lines.column("quantity").unwrap().i64().unwrap().sum(), Some(23 * 24 / 2));
}

/// Gives the sample's first order `n` more line items and a refund of all of
/// them (quantity i for the i-th); returns the refund's id.
fn with_long_refund(shop: &mut Shop, n: i64) -> i64 {
    let order = &mut shop.get_mut("orders").unwrap()[0];
    let mut root = order.root();
    let lines: Vec<serde_json::Value> = (1..=n).map(|i| json!({"quantity": i, "lineItem": {"id": format!("gid://shopify/LineItem/97000{i:02}")}, "subtotalSet": {"shopMoney": {"amount": format!("{i}.00")}}})).collect();
    let mut refunds = root["refunds"].as_array().cloned().unwrap_or_default();
    refunds.push(json!({"id": "gid://shopify/Refund/970000", "createdAt": root["createdAt"], "refundLineItems": {"nodes": lines}}));
    root["refunds"] = json!(refunds);
    for i in 1..=n {
        order.lines.push(json!({"id": format!("gid://shopify/LineItem/97000{i:02}"), "title": "extra", "sku": null, "vendor": null, "quantity": i,
            "product": null, "variant": null, "originalUnitPriceSet": {"shopMoney": {"amount": "1.00"}}, "totalDiscountSet": {"shopMoney": {"amount": "0.00"}},
            "__parentId": order.id}).to_string());
    }
    order.set_root(&root);
    970000
}

#[test]
fn the_validator_refuses_what_shopify_refuses() {
    let refused = |query: &str| crate::graphql::validate_bulk(&crate::graphql::parse(query).unwrap()).unwrap_err();
    // Today's orders query with refund lines inline: a connection inside a list.
    assert_eq!(refused("{ orders { edges { node { id refunds { id refundLineItems(first: 250) { nodes { quantity } } } } } } }"),
        "Queries that contain a connection field within a list field are not currently supported.");
    assert!(refused("{ shop { name } }").contains("at least one connection"));
    assert!(refused("{ node(id: \"gid://shopify/Order/1\") { id } }").contains("top level `node`"));
    assert!(refused("{ products { edges { node { variants { edges { node { id } } } } } } }").contains("Connection fields without 'id': variants"));
    assert!(refused("{ products { edges { node { id collections { edges { node { id products { edges { node { id } } } } } } } } } }").contains("nesting depth"));
    let six = "{ products { edges { node { id a: variants { edges { node { id } } } b: media { edges { node { id } } } c: collections { edges { node { id } } } d: metafields { edges { node { id } } } e: sellingPlanGroups { edges { node { id } } } } } } }";
    assert!(refused(six).contains("more than 5 connections"));
    // And the fetcher's own queries pass.
    for entity in shopfeat::vocabulary::RawEntity::FETCHED {
        let query = shopfeat::shopify::queries::bulk_query(entity, Some("2025-01-01T00:00:00Z"), shopfeat::shopify::queries::Fields::All).unwrap();
        crate::graphql::validate_bulk(&crate::graphql::parse(&query).unwrap()).unwrap();
    }
}

#[test]
fn without_protected_customer_data_the_fetch_goes_on_and_the_address_is_null() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Shopify::start(TOKEN, read_shop(&sample_dir()), "2025-12-01T00:00:00Z");
    fake.set_faults(Faults { deny_protected: true, ..Faults::default() });
    let out = shopfeat(dir.path(), &["fetch", "--api-url", &fake.url, "--mode", "historical"], TOKEN);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("denied this app the customers' default address").count(), 1, "one warning: {stderr}");
    let customers = &main_tables(&root_in(dir.path(), "root")).into_iter().find(|(n, _)| *n == "customers").unwrap().1;
    assert_eq!(customers.height(), 381);
    for column in ["country_code", "province_code"] {
        assert_eq!(customers.column(column).unwrap().null_count(), customers.height(), "{column}");
    }
    assert!(customers.column("state").unwrap().null_count() < customers.height(), "the rest is there");
}

#[test]
fn bulk_queries_run_side_by_side_and_wait_for_a_free_slot() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Shopify::start(TOKEN, read_shop(&sample_dir()), "2025-12-01T00:00:00Z");
    // Another run of the app holds three of the five slots for a while.
    fake.occupy(3, Duration::from_millis(300));
    shopify::fetch(&root_in(dir.path(), "r"), "test", &options(&fake, Mode::Historical, None)).unwrap();
    assert_eq!(fake.queries().len(), 4);
    let most = fake.most_running_at_once();
    assert_eq!(most, 5, "ours ran beside the others' three, never past the limit");
}

#[test]
fn a_start_whose_answer_was_lost_follows_the_operation_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Shopify::start(TOKEN, read_shop(&sample_dir()), "2025-12-01T00:00:00Z");
    // Two starts reach Shopify and start their operation, but their answers are
    // lost on the way back (a 503, as after a gateway timeout).
    fake.set_faults(Faults { lose_run_answers: 2, ..Faults::default() });
    let report = shopify::fetch(&root_in(dir.path(), "r"), "test", &options(&fake, Mode::Historical, None)).unwrap();
    assert_eq!(fake.faults().lose_run_answers, 0, "both answers were lost");
    assert_eq!(fake.operations_started(), 4, "one operation per entity: a retry never started a second, orphaned one");
    let landed = report.objects.values().sum::<u64>();
    let again = Shopify::start(TOKEN, read_shop(&sample_dir()), "2025-12-01T00:00:00Z");
    let clean = shopify::fetch(&root_in(dir.path(), "clean"), "test", &options(&again, Mode::Historical, None)).unwrap();
    assert_eq!(landed, clean.objects.values().sum::<u64>(), "the operations followed gave every record");
}

#[test]
fn an_api_version_out_of_support_is_answered_as_another_and_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Shopify::start(TOKEN, read_shop(&sample_dir()), "2025-12-01T00:00:00Z");
    let out = shopfeat(dir.path(), &["fetch", "--api-url", &fake.url, "--mode", "historical", "--api-version", "2025-01"], TOKEN);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("answered as API version 2026-01, not 2025-01").count(), 1, "{stderr}");
}

/// The shop as it stood at `SPLIT` (roughly): records created later left out,
/// refunds and cancellations after it undone, later updates replaced by an older
/// version (another title, `updatedAt` at creation).
fn shop_at_split(full: &Shop) -> Shop {
    let split = ts(SPLIT);
    let before = |t: &Option<String>| t.as_deref().is_some_and(|t| ts(t) <= split);
    let mut shop = Shop::new();
    for (entity, records) in full {
        let mut kept = vec![];
        for record in records {
            if entity != "collections" && !before(&record.created_at()) {
                continue;
            }
            let mut record = record.clone();
            if !before(&record.updated_at) && entity != "collections" {
                let mut root = record.root();
                root["updatedAt"] = root["createdAt"].clone();
                if entity == "orders" {
                    let refunds: Vec<_> = root["refunds"].as_array().unwrap().iter().filter(|r| ts(r["createdAt"].as_str().unwrap()) <= split).cloned().collect();
                    root["refunds"] = json!(refunds);
                    if root["cancelledAt"].as_str().is_some_and(|c| ts(c) > split) {
                        root["cancelledAt"] = json!(null);
                        root["cancelReason"] = json!(null);
                    }
                } else if let Some(title) = root.get("title").and_then(|t| t.as_str()) {
                    root["title"] = json!(format!("{title} (old)"));
                } else {
                    root["tags"] = json!(["old-version"]);
                }
                record.set_root(&root);
            }
            kept.push(record);
        }
        shop.insert(entity.clone(), kept);
    }
    shop
}

/// The changes after the split, on top of the sample: three products re-priced,
/// a refund on an old order, one product deleted (returned as its id).
/// Also returns the membership removed, as (collection id, product id).
fn changed_shop(full: &Shop) -> (Shop, String, (i64, i64)) {
    let mut shop = full.clone();
    let split = ts(SPLIT);
    let old = |r: &Record| r.updated_at.as_deref().is_some_and(|t| ts(t) <= split);
    let products = shop.get_mut("products").unwrap();
    // Product 7100000000 gets a later products/update webhook in the sample: not that one.
    for record in products.iter_mut().filter(|r| old(r) && !r.id.ends_with("/7100000000")).take(3) {
        let mut root = record.root();
        root["updatedAt"] = json!("2025-11-15T08:00:00Z");
        record.set_root(&root);
        for line in record.lines.iter_mut().skip(1) {
            let mut child: serde_json::Value = serde_json::from_str(line).unwrap();
            if child["id"].as_str().unwrap().contains("ProductVariant") {
                child["price"] = json!("999.00");
                *line = child.to_string();
            }
        }
    }
    let deleted = products.iter().filter(|r| old(r)).nth(5).unwrap().id.clone();
    products.retain(|r| r.id != deleted);
    let orders = shop.get_mut("orders").unwrap();
    let order = orders.iter_mut().find(|r| old(r) && r.root()["refunds"].as_array().unwrap().is_empty() && r.lines.len() > 1).unwrap();
    let mut root = order.root();
    let line: serde_json::Value = serde_json::from_str(&order.lines[1]).unwrap();
    root["refunds"] = json!([{"id": "gid://shopify/Refund/990001", "createdAt": "2025-11-10T10:00:00Z",
        "refundLineItems": {"nodes": [{"quantity": 1, "lineItem": {"id": line["id"]}, "subtotalSet": {"shopMoney": {"amount": "5.00"}}}]}}]);
    root["updatedAt"] = json!("2025-11-10T10:00:00Z");
    order.set_root(&root);
    // A second refund on an old order that had one; Shopify touches the order.
    let order = orders.iter_mut().find(|r| old(r) && !r.root()["refunds"].as_array().unwrap().is_empty() && r.lines.len() > 1).unwrap();
    let mut root = order.root();
    let line: serde_json::Value = serde_json::from_str(&order.lines[1]).unwrap();
    root["refunds"].as_array_mut().unwrap().push(json!({"id": "gid://shopify/Refund/990002", "createdAt": "2025-11-12T09:30:00Z",
        "refundLineItems": {"nodes": [{"quantity": 1, "lineItem": {"id": line["id"]}, "subtotalSet": {"shopMoney": {"amount": "3.25"}}}]}}));
    root["updatedAt"] = json!("2025-11-12T09:30:00Z");
    order.set_root(&root);
    // A product taken out of a collection: the collection is updated, the product not.
    let collections = shop.get_mut("collections").unwrap();
    let collection = collections.iter_mut().find(|c| c.lines.len() > 2).unwrap();
    let removed: serde_json::Value = serde_json::from_str(&collection.lines.remove(1)).unwrap();
    let mut root = collection.root();
    root["updatedAt"] = json!("2025-11-20T12:00:00Z");
    collection.set_root(&root);
    let collection_id = collection.id.clone();
    let id = |gid: &str| gid.rsplit('/').next().unwrap().parse::<i64>().unwrap();
    let membership = (id(&collection_id), id(removed["id"].as_str().unwrap()));
    if let Some(member) = shop.get_mut("products").unwrap().iter_mut().find(|p| p.id == removed["id"].as_str().unwrap()) {
        member.lines.retain(|l| !(l.contains(&format!("\"id\":\"{collection_id}\"")) && l.contains("__parentId")));
    }
    (shop, deleted, membership)
}

/// Events at or before / after the split, as two event files.
fn split_events(dir: &Path) -> (PathBuf, PathBuf) {
    let text = {
        use std::io::Read;
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(sample_dir().join("events.jsonl.gz")).unwrap()).read_to_string(&mut s).unwrap();
        s
    };
    let (mut early, mut late) = (String::new(), String::new());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let part = if ts(v["timestamp"].as_str().unwrap()) <= ts(SPLIT) { &mut early } else { &mut late };
        part.push_str(line);
        part.push('\n');
    }
    let (a, b) = (dir.join("events-early.jsonl"), dir.join("events-late.jsonl"));
    std::fs::write(&a, early).unwrap();
    std::fs::write(&b, late).unwrap();
    (a, b)
}

fn features(root: &DataRoot) -> Vec<(&'static str, DataFrame)> {
    let computed = crate::common::compute(root, "test", ts(AS_OF), Default::default()).unwrap();
    computed.tables.into_iter().map(|(n, f)| (n, sorted(f))).collect()
}

#[test]
fn an_incremental_run_after_changes_equals_a_historical_run_on_all_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let full = read_shop(&sample_dir());
    let (changed, deleted, (collection, product)) = changed_shop(&full);
    let (early_events, late_events) = split_events(dir.path());
    let delete_hook = dir.path().join("products_delete-9.json");
    std::fs::write(&delete_hook, json!({"id": deleted.rsplit('/').next().unwrap().parse::<i64>().unwrap()}).to_string()).unwrap();
    let mut late_files = sample_webhooks();
    late_files.extend([late_events.clone(), delete_hook.clone()]);

    // Historical at the split, then the shop changes and an incremental run follows.
    let fake = Shopify::start(TOKEN, shop_at_split(&full), SPLIT);
    let root = root_in(dir.path(), "incremental");
    shopify::fetch(&root, "test", &options(&fake, Mode::Historical, Some(&inbox(dir.path(), "inbox-a", &[early_events.clone()])))).unwrap();
    fake.set_shop(changed.clone());
    fake.set_clock("2025-12-01T00:00:00Z");
    // Shopify is busy: the cost throttle, a 429 and a burst of 503s.
    fake.set_faults(Faults { server_errors: 3, too_many: 1, throttle: true, ..Faults::default() });
    let late_inbox = inbox(dir.path(), "inbox-b", &late_files);
    let report = shopify::fetch(&root, "test", &options(&fake, Mode::Incremental, Some(&late_inbox))).unwrap();
    assert!(fake.throttled() > 0, "the throttle was exercised");
    assert_eq!((fake.faults().server_errors, fake.faults().too_many), (0, 0));
    // Only what changed since the watermark (the split minus the overlap) came back.
    let incremental: Vec<_> = fake.queries().into_iter().skip(4).collect();
    assert!(incremental.iter().all(|(_, f)| f.as_deref() == Some("2025-08-31T23:55:00Z")), "{incremental:?}");
    let all = |e: &str| full[e].iter().map(|r| r.lines.len() as u64).sum::<u64>();
    assert!(report.objects["products"] < all("products") && report.objects["orders"] < all("orders"), "{:?}", report.objects);
    assert!(report.objects["products"] >= 3);

    // The reference: one historical run over all the data.
    let reference_fake = Shopify::start(TOKEN, changed, "2025-12-01T00:00:00Z");
    let reference = root_in(dir.path(), "historical");
    let mut all_files = late_files.clone();
    all_files.push(early_events);
    shopify::fetch(&reference, "test", &options(&reference_fake, Mode::Historical, Some(&inbox(dir.path(), "inbox-all", &all_files)))).unwrap();

    let ours_main = main_tables(&root);
    for ((name, a), (_, b)) in ours_main.iter().zip(main_tables(&reference).iter()) {
        assert_same(name, a, b);
    }
    // The membership taken out in Shopify is gone, though the product's own (older) list still names it.
    let members = &ours_main.iter().find(|(n, _)| *n == "collection_products").unwrap().1;
    let pairs: Vec<(Option<i64>, Option<i64>)> = members.column("collection_id").unwrap().i64().unwrap().iter().zip(members.column("product_id").unwrap().i64().unwrap().iter()).collect();
    assert!(!pairs.contains(&(Some(collection), Some(product))), "({collection}, {product}) was removed");
    assert!(pairs.iter().any(|(c, _)| *c == Some(collection)), "the collection keeps its other members");
    let (ours, expected) = (features(&root), features(&reference));
    for ((name, a), (_, b)) in ours.iter().zip(expected.iter()) {
        assert!(b.height() > 0, "{name} is empty");
        assert_same(name, a, b);
    }
    let deleted_id: i64 = deleted.rsplit('/').next().unwrap().parse().unwrap();
    let products = &ours[0].1;
    assert!(!products.column("product_id").unwrap().i64().unwrap().iter().any(|id| id == Some(deleted_id)));
    let repriced = products.column("price").unwrap().f64().unwrap().iter().filter(|p| *p == Some(999.0)).count();
    assert_eq!(repriced, 3);
}

#[test]
fn a_failure_in_the_middle_keeps_the_watermarks_and_the_next_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let full = read_shop(&sample_dir());
    let fake = Shopify::start(TOKEN, shop_at_split(&full), SPLIT);
    let root = root_in(dir.path(), "root");
    shopify::fetch(&root, "test", &options(&fake, Mode::Historical, None)).unwrap();
    let before = ShopState::load(&root, "test").unwrap();
    let snapshots = shopfeat::land::snapshots(&root, "test").unwrap().len();

    let (changed, _, _) = changed_shop(&full);
    fake.set_shop(changed.clone());
    fake.set_clock("2025-12-01T00:00:00Z");
    fake.set_faults(Faults { fail_entity: Some("customers".into()), ..Faults::default() });
    let (_, late_events) = split_events(dir.path());
    let late_inbox = inbox(dir.path(), "inbox", &[late_events]);
    let err = shopify::fetch(&root, "test", &options(&fake, Mode::Incremental, Some(&late_inbox))).unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("gid://shopify/BulkOperation/") && message.contains("customers") && message.contains("FAILED") && message.contains("INTERNAL_SERVER_ERROR"), "{message}");
    assert_eq!(ShopState::load(&root, "test").unwrap(), before, "watermarks unchanged");
    assert_eq!(shopfeat::land::snapshots(&root, "test").unwrap().len(), snapshots, "nothing landed");
    assert!(late_inbox.join("events-late.jsonl").exists(), "the inbox is kept for the next run");

    // The next run completes, as if nothing had happened.
    shopify::fetch(&root, "test", &options(&fake, Mode::Incremental, Some(&late_inbox))).unwrap();
    let after = ShopState::load(&root, "test").unwrap();
    assert!(after.watermarks.values().all(|w| w == "2025-11-30T23:55:00Z"), "{:?}", after.watermarks);
    let uninterrupted = root_in(dir.path(), "uninterrupted");
    let fake2 = Shopify::start(TOKEN, shop_at_split(&full), SPLIT);
    shopify::fetch(&uninterrupted, "test", &options(&fake2, Mode::Historical, None)).unwrap();
    fake2.set_shop(changed);
    fake2.set_clock("2025-12-01T00:00:00Z");
    let again = dir.path().join("again");
    std::fs::create_dir_all(&again).unwrap();
    let (_, late_again) = split_events(&again);
    shopify::fetch(&uninterrupted, "test", &options(&fake2, Mode::Incremental, Some(&inbox(dir.path(), "inbox2", &[late_again])))).unwrap();
    for ((name, a), (_, b)) in features(&root).iter().zip(features(&uninterrupted).iter()) {
        assert_same(name, a, b);
    }
}

#[test]
fn an_incremental_fetch_without_watermarks_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Shopify::start(TOKEN, read_shop(&sample_dir()), SPLIT);
    let err = shopify::fetch(&root_in(dir.path(), "r"), "test", &options(&fake, Mode::Incremental, None)).unwrap_err().to_string();
    assert!(err.contains("no watermark") && err.contains("--mode historical"), "{err}");
    assert!(fake.queries().is_empty());
}

fn shopfeat(dir: &Path, args: &[&str], token: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_shopfeat"))
        .args(["--root", dir.join("root").to_str().unwrap(), "--shop", "test"])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("GORSE_URL")
        .env("SHOPIFY_ACCESS_TOKEN", token)
        .output()
        .unwrap()
}

#[test]
fn a_bad_token_is_one_clear_error_line_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Shopify::start(TOKEN, read_shop(&sample_dir()), SPLIT);
    let out = shopfeat(dir.path(), &["-vv", "fetch", "--api-url", &fake.url, "--mode", "historical"], "shpat_wrong_999");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap();
    assert!(last.starts_with("error: ") && last.contains("refused the access token (401") && last.contains("Invalid API key"), "{stderr}");
    assert!(!stderr.contains("shpat_wrong_999"));
    assert!(fake.queries().is_empty());
}

#[test]
fn run_fetches_the_shop_then_computes_and_an_incremental_run_follows() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Shopify::start(TOKEN, read_shop(&sample_dir()), "2025-12-01T00:00:00Z");
    let first = shopfeat(dir.path(), &["run", "--api-url", &fake.url, "--as-of", AS_OF], TOKEN);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("product_features") && stdout.contains("watermark orders"), "{stdout}");
    assert!(fake.queries().iter().all(|(_, f)| f.is_none()), "never fetched: historical");
    let second = shopfeat(dir.path(), &["run", "--api-url", &fake.url, "--as-of", AS_OF, "--mode", "incremental"], TOKEN);
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    assert!(fake.queries()[4..].iter().all(|(_, f)| f.as_deref() == Some("2025-11-30T23:55:00Z")));
}
