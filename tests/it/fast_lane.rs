//! `serve`'s fast lane: catalog deliveries recompute their products' own
//! columns (exactly as a full recompute at the same `T` does), leave the other
//! columns as the current generation has them, reach Gorse at once, and a full
//! recompute follows.

use crate::gorse_standin::Gorse;
use crate::serve::{quiet_options, renamed, run_and_export_sample, sample_dir, spec, DOMAIN, SECRET};
use crate::webhook_client::{deliver, Server};
use polars::prelude::*;
use serde_json::{json, Value};
use shopfeat::features::registry::Scope;
use shopfeat::land::inbox::Inbox;
use shopfeat::pipeline::{self, FastOptions};
use shopfeat::storage::DataRoot;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The current generation's table `table` of shop `s`.
fn current(root: &DataRoot, table: &str) -> DataFrame {
    let rel = shopfeat::sinks::parquet::current_table_path(root, "s", table).unwrap();
    ParquetReader::new(std::io::Cursor::new(root.get(&rel).unwrap().unwrap())).finish().unwrap()
}

/// `frame`'s rows of `ids`, `columns` only, by product id.
fn rows_of(frame: &DataFrame, ids: &[i64], columns: &[&str]) -> DataFrame {
    rows_by(frame, &["product_id"], ids, columns)
}

/// `frame`'s rows whose first `key` column is in `ids`, the key and `columns`
/// only, sorted by the key.
fn rows_by(frame: &DataFrame, key: &[&str], ids: &[i64], columns: &[&str]) -> DataFrame {
    let ids = Series::new("ids".into(), ids);
    frame
        .clone()
        .lazy()
        .filter(col(key[0]).is_in(lit(ids).implode(false), false))
        .sort(key.to_vec(), Default::default())
        .select(key.iter().chain(columns).map(|c| col(*c)).collect::<Vec<_>>())
        .collect()
        .unwrap()
}

/// The two frames hold the same values (floats within 1e-9 relative: sums over
/// the same rows in another order).
fn assert_same(ours: &DataFrame, theirs: &DataFrame, what: &str) {
    assert_eq!(ours.shape(), theirs.shape(), "{what}:\n{ours}\n{theirs}");
    for (a, b) in ours.columns().iter().zip(theirs.columns()) {
        assert_eq!(a.name(), b.name(), "{what}");
        if a.dtype() == &DataType::Float64 {
            for (x, y) in a.f64().unwrap().iter().zip(b.f64().unwrap().iter()) {
                let close = match (x, y) {
                    (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                    (x, y) => x == y,
                };
                assert!(close, "{what}: {} {x:?} ≠ {y:?}", a.name());
            }
        } else {
            assert!(a.as_materialized_series().equals_missing(b.as_materialized_series()), "{what}: {}\n{a:?}\n{b:?}", a.name());
        }
    }
}

/// Shopify's example product as product `id`, titled `title`, updated at
/// `updated_at`, with variant and image ids of its own (the example's are the
/// same in every copy).
fn product(id: i64, title: &str, updated_at: &str) -> Value {
    let mut product = renamed(id, title);
    product["updated_at"] = json!(updated_at);
    for (n, variant) in product["variants"].as_array_mut().unwrap().iter_mut().enumerate() {
        variant["id"] = json!(id * 100 + n as i64);
    }
    for (n, image) in product["images"].as_array_mut().into_iter().flatten().enumerate() {
        image["id"] = json!(id * 100 + 50 + n as i64);
        image["product_id"] = json!(id);
    }
    product
}

/// A catalog delivery as `topic`, written to the inbox as `serve` writes it.
fn write(inbox: &Inbox, topic: &str, n: usize, payload: &Value) {
    inbox.write_webhook(topic, &format!("fast-{n}"), &serde_json::to_vec(payload).unwrap()).unwrap();
}

/// `shop_dir` run and exported to a Gorse stand-in as shop `s` (the nightly
/// run), and the `T` a day after that run's.
fn after_a_nightly_run(shop_dir: PathBuf) -> (tempfile::TempDir, DataRoot, Gorse, shopfeat::sinks::gorse::Options, i64) {
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::open(&dir.path().display().to_string()).unwrap();
    let gorse = Gorse::start(None);
    let gorse_options = shopfeat::sinks::gorse::Options::new(&gorse.url);
    let nightly = pipeline::RunOptions {
        source: pipeline::Source::Files(vec![shop_dir]),
        as_of: None,
        pairs: Default::default(),
        keep_generations: 2,
        gorse: Some(gorse_options.clone()),
        compaction: shopfeat::land::compact::Policy::never(),
        kept: None,
    };
    let nightly = pipeline::run(&root, "s", &nightly).unwrap();
    let t = shopfeat::time::parse_time(&nightly.compute.as_of).unwrap() + 86_400_000_000;
    (dir, root, gorse, gorse_options, t)
}

/// Catalog changes on `shop_dir` after its nightly run, through one fast cycle
/// at a `T` a day later: the refreshed rows against a full recompute at that `T`
/// and against the generation they started from.
fn fast_rows_match_a_full_recompute(shop_dir: PathBuf) {
    let (dir, root, gorse, gorse_options, t) = after_a_nightly_run(shop_dir);
    let before = current(&root, "product_features");
    let mut ids: Vec<i64> = before.column("product_id").unwrap().i64().unwrap().into_no_null_iter().collect();
    ids.sort();
    assert!(ids.len() >= 3, "the shop has products to change");
    let (changed, drafted, deleted, created) = (ids[0], ids[1], ids[2], 990_000_001);

    let at = |us: i64| shopfeat::time::rfc3339(us);
    let inbox = Inbox::new(dir.path().join("inbox"));
    // A new title, price, tags and media; a product taken off sale; one deleted;
    // one created.
    let an_hour_before = at(t - 3_600_000_000);
    let mut changes = product(changed, "Changed by the fast lane", &an_hour_before);
    changes["tags"] = json!("fast, lane, test");
    changes["variants"][0]["price"] = json!("12.34");
    write(&inbox, "products/update", 1, &changes);
    let mut draft = product(drafted, "Taken off sale", &an_hour_before);
    draft["status"] = json!("draft");
    write(&inbox, "products/update", 2, &draft);
    write(&inbox, "products/delete", 3, &json!({ "id": deleted }));
    let two_hours_before = at(t - 7_200_000_000);
    let mut new = product(created, "Brand new", &two_hours_before);
    new["created_at"] = json!(two_hours_before);
    new["published_at"] = json!(two_hours_before);
    write(&inbox, "products/create", 4, &new);
    // A pixel batch waits too: the fast cycle leaves it to the debounced one.
    inbox.write_events(b"{\"id\":\"e-fast\",\"name\":\"page_viewed\",\"clientId\":\"c\",\"timestamp\":\"2025-01-01T00:00:00Z\"}\n").unwrap();

    let report = pipeline::fast_cycle(&root, "s", &inbox, &FastOptions { as_of: Some(t), gorse: Some(gorse_options) }).unwrap().expect("a fast cycle");
    assert_eq!(report.products, vec![changed, drafted, deleted, created]);
    assert_eq!(report.gone, vec![deleted]);
    assert_eq!(report.tables.len(), 1);
    assert_eq!((report.tables[0].table, report.tables[0].rows), ("product_features", 3));
    assert_eq!(inbox.depth(), 1, "only the pixel batch is left");
    let delta_rel = report.tables[0].path.clone();
    let delta = ParquetReader::new(std::io::Cursor::new(root.get(&delta_rel).unwrap().unwrap())).finish().unwrap();
    assert_eq!(delta.height(), 3);
    assert_eq!(current(&root, "product_features").height(), before.height(), "no generation was written");

    // A full recompute at the same T.
    let full = pipeline::compute(&root, "s", &pipeline::ComputeOptions::at(t)).unwrap();
    let full = full.tables.iter().find(|(n, _)| *n == "product_features").unwrap().1.clone();
    let table = shopfeat::features::product::table();
    let own = table.features_of(Scope::Own);
    assert_eq!(report.tables[0].refreshed_columns, own);
    let kept: Vec<&str> = table.features.iter().map(|f| f.name).filter(|n| !own.contains(n)).collect();
    let refreshed = [changed, drafted, created];
    assert!(rows_of(&full, &[deleted], &[]).height() == 0 && rows_of(&delta, &[deleted], &[]).height() == 0, "the deleted product has no row");
    let (fast_own, full_own) = (rows_of(&delta, &refreshed, &own), rows_of(&full, &refreshed, &own));
    assert!(fast_own.equals_missing(&full_own), "own columns as a full recompute at T:\n{fast_own}\n{full_own}");
    // The rows changed, and their other columns are the generation's.
    let title = |frame: &DataFrame| rows_of(frame, &[changed], &["title"]).column("title").unwrap().str().unwrap().get(0).map(str::to_string);
    assert_eq!(title(&delta).as_deref(), Some("Changed by the fast lane"));
    assert_ne!(title(&before), title(&delta));
    let (fast_kept, before_kept) = (rows_of(&delta, &[changed, drafted], &kept), rows_of(&before, &[changed, drafted], &kept));
    assert!(fast_kept.equals_missing(&before_kept), "the other columns as the generation had them");
    // A product nothing references yet: every column as the full recompute's.
    let all: Vec<&str> = table.features.iter().map(|f| f.name).collect();
    assert!(rows_of(&delta, &[created], &all).equals_missing(&rows_of(&full, &[created], &all)));

    // Gorse: the changed items, the deleted one gone, the new one there.
    let store = gorse.store();
    assert_eq!(store.items[&changed.to_string()]["Comment"], "Changed by the fast lane");
    assert_eq!(store.items[&drafted.to_string()]["IsHidden"], true);
    assert!(!store.items.contains_key(&deleted.to_string()));
    assert_eq!(store.items[&created.to_string()]["Comment"], "Brand new");
    // In the run's own terms: what it wrote is what it says.
    assert_eq!(report.export.as_ref().map(|e| (e.upserted[0], e.deleted[0])), Some((3, 1)));
}

#[test]
fn fast_rows_match_a_full_recompute_on_the_sample() {
    fast_rows_match_a_full_recompute(sample_dir());
}

#[test]
fn fast_rows_match_a_full_recompute_on_the_fixture_shop() {
    fast_rows_match_a_full_recompute(crate::common::fixture("features"));
}

/// Shopify's example order as order `id` of `customer` (none: a guest) at
/// `created_at`, with one line of 2 units at 10.00 per product of `products`
/// (line ids `id * 100 + n`), no refunds.
pub(crate) fn order(id: i64, customer: Option<i64>, products: &[i64], created_at: &str) -> Value {
    let example: Value = serde_json::from_slice(&std::fs::read(crate::common::rest_examples().join("order.json")).unwrap()).unwrap();
    let mut order = example["orders"][0].clone();
    order["id"] = json!(id);
    order["name"] = json!(format!("#F{id}"));
    for field in ["created_at", "updated_at", "processed_at"] {
        order[field] = json!(created_at);
    }
    order["cancelled_at"] = Value::Null;
    order["test"] = json!(false);
    order["refunds"] = json!([]);
    match customer {
        Some(c) => order["customer"]["id"] = json!(c),
        None => order["customer"] = Value::Null,
    }
    let template = order["line_items"][0].clone();
    order["line_items"] = products
        .iter()
        .enumerate()
        .map(|(n, p)| {
            let mut line = template.clone();
            line["id"] = json!(id * 100 + n as i64);
            line["product_id"] = json!(p);
            line["variant_id"] = Value::Null;
            line["quantity"] = json!(2);
            line["price"] = json!("10.00");
            line["total_discount"] = json!("0.00");
            line["discount_allocations"] = json!([]);
            line
        })
        .collect();
    order
}

/// A refund of one unit of line `line_id` (product `product`) of `order_id`.
fn refund(id: i64, order_id: i64, line_id: i64, product: i64, created_at: &str) -> Value {
    let example: Value = serde_json::from_slice(&std::fs::read(crate::common::rest_examples().join("refund.json")).unwrap()).unwrap();
    let mut refund = example["refunds"][0].clone();
    refund["id"] = json!(id);
    refund["order_id"] = json!(order_id);
    refund["created_at"] = json!(created_at);
    refund["processed_at"] = json!(created_at);
    let mut line = refund["refund_line_items"][0].clone();
    line["id"] = json!(id * 10);
    line["line_item_id"] = json!(line_id);
    line["quantity"] = json!(1);
    line["subtotal"] = json!(10.0);
    line["line_item"]["id"] = json!(line_id);
    line["line_item"]["product_id"] = json!(product);
    refund["refund_line_items"] = json!([line]);
    refund
}

/// A new order (two products) of a customer who bought before, a refund of
/// one of its units and a guest order, through one fast cycle at a `T` a day
/// after the nightly run: the customer's rows against a full recompute at `T`.
fn order_rows_match_a_full_recompute(shop_dir: PathBuf) {
    let (dir, root, gorse, gorse_options, t) = after_a_nightly_run(shop_dir);
    let users_before = current(&root, "user_features");
    let buyer = users_before
        .clone()
        .lazy()
        .filter(col("total_purchases").gt(lit(0)))
        .sort(["customer_id"], Default::default())
        .collect()
        .unwrap()
        .column("customer_id")
        .unwrap()
        .i64()
        .unwrap()
        .get(0)
        .expect("a customer who bought");
    let mut products: Vec<i64> = current(&root, "product_features").column("product_id").unwrap().i64().unwrap().into_no_null_iter().collect();
    products.sort();
    let bought = [products[0], products[1]];

    let at = |us: i64| shopfeat::time::rfc3339(us);
    let inbox = Inbox::new(dir.path().join("inbox"));
    let (order_id, guest_id) = (990_000_101, 990_000_102);
    write(&inbox, "orders/create", 1, &order(order_id, Some(buyer), &bought, &at(t - 3_600_000_000)));
    write(&inbox, "refunds/create", 2, &refund(990_000_301, order_id, order_id * 100, bought[0], &at(t - 1_800_000_000)));
    write(&inbox, "orders/create", 3, &order(guest_id, None, &bought, &at(t - 3_600_000_000)));
    let report = pipeline::fast_cycle(&root, "s", &inbox, &FastOptions { as_of: Some(t), gorse: Some(gorse_options) }).unwrap().expect("a fast cycle");
    assert_eq!(report.orders, vec![order_id, guest_id]);
    assert_eq!(report.customers, vec![buyer], "the guest order has no customer to refresh");
    let tables: Vec<(&str, usize)> = report.tables.iter().map(|t| (t.table, t.rows)).collect();
    assert_eq!(tables[0], ("user_features", 1));
    assert_eq!(tables[1].0, "interaction_features");
    let delta = |table: &str| {
        let path = &report.tables.iter().find(|t| t.table == table).unwrap().path;
        ParquetReader::new(std::io::Cursor::new(root.get(path).unwrap().unwrap())).finish().unwrap()
    };

    let full = pipeline::compute(&root, "s", &pipeline::ComputeOptions::at(t)).unwrap();
    let full = |table: &str| full.tables.iter().find(|(n, _)| *n == table).unwrap().1.clone();
    let table = shopfeat::features::user::table();
    let shop_wide = table.features_of(Scope::ShopWide);
    assert!(shop_wide.contains(&"rfm_segment"));
    let refreshed: Vec<&str> = table.features.iter().map(|f| f.name).filter(|n| !shop_wide.contains(n)).collect();
    let key = ["customer_id"];
    assert_same(&rows_by(&delta("user_features"), &key, &[buyer], &refreshed), &rows_by(&full("user_features"), &key, &[buyer], &refreshed), "user row: refreshed columns");
    assert_same(&rows_by(&delta("user_features"), &key, &[buyer], &shop_wide), &rows_by(&users_before, &key, &[buyer], &shop_wide), "user row: shop-wide columns as before");
    let total = |frame: &DataFrame| rows_by(frame, &key, &[buyer], &["total_purchases"]).column("total_purchases").unwrap().i64().unwrap().get(0);
    assert_eq!(total(&delta("user_features")), total(&users_before).map(|n| n + 1), "the new order counts");
    let interaction = shopfeat::features::interaction::table();
    let all: Vec<&str> = interaction.features.iter().map(|f| f.name).collect();
    let pair = ["customer_id", "product_id"];
    assert_same(&rows_by(&delta("interaction_features"), &pair, &[buyer], &all), &rows_by(&full("interaction_features"), &pair, &[buyer], &all), "the customer's interactions");

    // Gorse: the user, and the purchases as the full recompute counts them.
    assert!(gorse.user_ids().contains(&buyer.to_string()));
    let purchases = rows_by(&full("interaction_features"), &pair, &[buyer], &["purchase_count"]);
    for p in bought {
        let count = rows_by(&purchases, &pair, &[buyer], &["purchase_count"]).lazy().filter(col("product_id").eq(lit(p))).collect().unwrap().column("purchase_count").unwrap().i64().unwrap().get(0);
        let sent = gorse.feedback("purchase", &buyer.to_string(), &p.to_string()).expect("purchase feedback");
        assert_eq!(sent["Value"].as_f64(), count.map(|c| c as f64), "purchase feedback of {p}: {sent}");
    }
}

#[test]
fn order_rows_match_a_full_recompute_on_the_sample() {
    order_rows_match_a_full_recompute(sample_dir());
}

#[test]
fn order_rows_match_a_full_recompute_on_the_fixture_shop() {
    order_rows_match_a_full_recompute(crate::common::fixture("features"));
}

#[test]
fn every_scope_mark_names_a_feature_and_shop_wide_spreads_to_what_reads_it() {
    for table in shopfeat::features::catalog() {
        let names: Vec<&str> = table.features.iter().map(|f| f.name).collect();
        for mark in table.own {
            assert!(names.contains(mark), "{}: {mark} is not a feature", table.name);
        }
        // Base columns: each read by some feature, which is shop-wide.
        let scopes = table.scopes();
        for mark in table.shop_wide {
            let readers: Vec<usize> = (0..names.len()).filter(|&i| format!("{:?}", table.features[i].expr(0)).contains(&format!("col(\"{mark}\")"))).collect();
            assert!(!readers.is_empty(), "{}: no feature reads {mark}", table.name);
            assert!(readers.iter().all(|&i| scopes[i] == Scope::ShopWide), "{}: what reads {mark} is shop-wide", table.name);
        }
        assert_eq!(table.scopes().len(), names.len());
    }
    let scope = |table: &shopfeat::features::registry::FeatureTable, name: &str| table.scopes()[table.features.iter().position(|f| f.name == name).unwrap()];
    let user = shopfeat::features::user::table();
    // Read from the quintiles, whatever the customer's own records say.
    assert_eq!(scope(&user, "rfm_segment"), Scope::ShopWide);
    assert_eq!(scope(&user, "country_code"), Scope::Own);
    assert_eq!(scope(&user, "total_spent"), Scope::Related);
    let product = shopfeat::features::product::table();
    // From own columns only…
    assert_eq!(scope(&product, "discount_pct"), Scope::Own);
    assert_eq!(scope(&product, "price_tier"), Scope::Own);
    // … or mixing in sales.
    assert_eq!(scope(&product, "inventory_turnover"), Scope::Related);
    assert_eq!(scope(&product, "avg_selling_price"), Scope::Related);
    let pairs = shopfeat::features::pairs::table();
    assert_eq!(scope(&pairs, "lift"), Scope::ShopWide);
    let collection = shopfeat::features::collection::table();
    assert_eq!(scope(&collection, "performance_score"), Scope::ShopWide);
    let lifetime = shopfeat::features::lifetime::table();
    assert_eq!(scope(&lifetime, "expected_value_90d"), Scope::ShopWide);
    assert_eq!(scope(&lifetime, "frequency"), Scope::Related);
}

#[test]
fn a_catalog_delivery_reaches_gorse_at_once_and_a_full_recompute_follows() {
    let dir = tempfile::tempdir().unwrap();
    let root_url = dir.path().display().to_string();
    let gorse = Gorse::start(None);
    let gorse_options = shopfeat::sinks::gorse::Options::new(&gorse.url);
    let root = DataRoot::open(&root_url).unwrap();
    run_and_export_sample(&root, &gorse_options);
    let item_id = gorse.store().items.keys().next().cloned().expect("items exported");
    let product_id: i64 = item_id.parse().unwrap();

    // A minute of debounce: only the fast lane moves before the catch-up.
    let mut options = quiet_options(dir.path(), shopfeat::serve::ShopSpec { gorse: Some(gorse_options), ..spec(dir.path()) });
    options.fast_catch_up = Some(Duration::from_secs(3));
    let server = Server::start(options);
    let sent = Instant::now();
    let body = serde_json::to_vec(&renamed(product_id, "Renamed at once")).unwrap();
    assert_eq!(deliver(server.addr, SECRET, DOMAIN, "products/update", "fast-1", &body).status, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    while gorse.item(&item_id).unwrap()["Comment"] != "Renamed at once" {
        assert!(Instant::now() < deadline, "the item never changed in Gorse");
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("delivery → Gorse by the fast lane in {:.3} s", sent.elapsed().as_secs_f64());
    let history = || shopfeat::history::load(&root, "s").unwrap();
    let wait_for = |command: &str| loop {
        if let Some(r) = history().into_iter().find(|r| r.command == command && r.outcome != "running") {
            return r;
        }
        assert!(Instant::now() < deadline, "no {command} in the run history");
        std::thread::sleep(Duration::from_millis(50));
    };
    let fast = wait_for("serve fast");
    assert_eq!(fast.outcome, "ok", "{:?}", fast.error);
    let report: Value = serde_json::from_str(fast.report.as_deref().unwrap()).unwrap();
    let delta = report["tables"][0]["path"].as_str().expect("the delta table is named in the run history");
    assert!(root.get(delta).unwrap().is_some());
    assert!(history().iter().all(|r| r.command != "serve incremental"), "the fast lane did it, not a debounced cycle");

    // The catch-up recompute, then Gorse as a clean export of its generation.
    let full = wait_for("serve incremental");
    assert_eq!(full.outcome, "ok", "{:?}", full.error);
    drop(server);
    let clean = Gorse::start(None);
    let mut clean_options = shopfeat::sinks::gorse::Options::new(&clean.url);
    clean_options.full = true;
    shopfeat::sinks::gorse::export(&root, "s", &clean_options).unwrap();
    let (ours, theirs) = (gorse.store(), clean.store());
    assert_eq!(ours.items, theirs.items);
    assert_eq!(ours.users, theirs.users);
    assert_eq!(ours.feedback, theirs.feedback);
    assert_eq!(ours.items[&item_id]["Comment"], "Renamed at once");
}

#[test]
fn a_fast_cycle_whose_export_failed_is_followed_by_a_recompute_soon() {
    let dir = tempfile::tempdir().unwrap();
    let root_url = dir.path().display().to_string();
    let gorse = Gorse::start(None);
    let mut gorse_options = shopfeat::sinks::gorse::Options::new(&gorse.url);
    gorse_options.retry = shopfeat::retry::Retry { max_retries: 1, base_delay: Duration::from_millis(10), max_delay: Duration::from_millis(10) };
    let root = DataRoot::open(&root_url).unwrap();
    run_and_export_sample(&root, &gorse_options);
    let item_id = gorse.store().items.keys().next().cloned().expect("items exported");
    let product_id: i64 = item_id.parse().unwrap();

    // Gorse fails every write while the delivery lands; the catch-up is far off.
    gorse.set_faults(crate::gorse_standin::Faults { server_error: 1.0, ..Default::default() });
    let mut options = quiet_options(dir.path(), shopfeat::serve::ShopSpec { gorse: Some(gorse_options), ..spec(dir.path()) });
    options.fast_catch_up = Some(Duration::from_secs(3600));
    let server = Server::start(options);
    let body = serde_json::to_vec(&renamed(product_id, "Renamed while Gorse was down")).unwrap();
    assert_eq!(deliver(server.addr, SECRET, DOMAIN, "products/update", "down-1", &body).status, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    let history = || shopfeat::history::load(&root, "s").unwrap();
    while !history().iter().any(|r| r.command == "serve fast" && r.outcome == "failed") {
        assert!(Instant::now() < deadline, "the fast cycle never failed");
        std::thread::sleep(Duration::from_millis(20));
    }
    gorse.set_faults(Default::default());
    // The delivery was landed, so only the recompute that follows the failure brings it to Gorse.
    while gorse.item(&item_id).unwrap()["Comment"] != "Renamed while Gorse was down" {
        assert!(Instant::now() < deadline, "no recompute brought the change to Gorse");
        std::thread::sleep(Duration::from_millis(50));
    }
    // (Its run-history record ends just after its export.)
    while !history().iter().any(|r| r.command == "serve incremental" && r.outcome == "ok") {
        assert!(Instant::now() < deadline, "the recompute is in the run history");
        std::thread::sleep(Duration::from_millis(20));
    }
}
