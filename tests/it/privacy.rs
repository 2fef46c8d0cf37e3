//! Shopify's privacy webhooks (issue 25): a customer erased from every file
//! under the shop's root, checked by searching every file — Parquet and DuckDB
//! decoded, everything else as bytes — for each identifier of theirs.

use crate::common::copy_dir;
use polars::prelude::*;
use shopfeat::privacy::redact::{self, Person};
use shopfeat::storage::DataRoot;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const AS_OF: &str = "2025-11-30T23:59:59Z";

fn shopfeat(root: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_shopfeat")).args(["--root", root.to_str().unwrap(), "--shop", "s", "-q"]).args(args).env_remove("RUST_LOG").env_remove("GORSE_URL").env_remove("SHOPFEAT_CONFIG").output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Where an identifier of the person was found: file, and column or offset.
pub(crate) fn findings(dir: &Path, person: &Person, numbers: &[i64], found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            findings(&path, person, numbers, found);
        } else if path.extension().is_some_and(|e| e == "parquet") {
            search_parquet(&path, person, numbers, found);
        } else if path.extension().is_some_and(|e| e == "duckdb") {
            search_duckdb(&path, person, found);
        } else if person.named_in(&std::fs::read(&path).unwrap()) {
            found.push(path.display().to_string());
        }
    }
}

fn search_parquet(path: &Path, person: &Person, numbers: &[i64], found: &mut Vec<String>) {
    let frame = ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap();
    for column in frame.columns() {
        let mut series = column.as_materialized_series().clone();
        while let DataType::List(_) = series.dtype() {
            series = series.explode(ExplodeOptions { empty_as_null: true, keep_nulls: true }).unwrap();
        }
        let hit = match series.dtype() {
            DataType::String => series.str().unwrap().iter().flatten().any(|s| person.named_in(s.as_bytes())),
            DataType::Int64 => series.i64().unwrap().iter().flatten().any(|n| numbers.contains(&n)),
            _ => false,
        };
        if hit {
            found.push(format!("{}: column {}", path.display(), column.name()));
        }
    }
}

fn search_duckdb(path: &Path, person: &Person, found: &mut Vec<String>) {
    let db = duckdb::Connection::open_with_flags(path, duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly).unwrap()).unwrap();
    let tables: Vec<String> = db.prepare("SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'").unwrap().query_map([], |r| r.get(0)).unwrap().map(|t| t.unwrap()).collect();
    for table in tables {
        let mut rows = db.prepare(&format!("SELECT CAST(\"{table}\" AS VARCHAR) FROM \"{table}\"")).unwrap();
        let hit = rows.query_map([], |r| r.get::<_, String>(0)).unwrap().map(|r| r.unwrap()).any(|row| person.named_in(row.as_bytes()));
        if hit {
            found.push(format!("{}: table {table}", path.display()));
        }
    }
}

fn raw_rows(root: &DataRoot, entity: &str) -> DataFrame {
    raw_rows_of(root, "s", entity)
}

fn raw_rows_of(root: &DataRoot, shop: &str, entity: &str) -> DataFrame {
    let paths: Vec<PathBuf> = shopfeat::land::snapshots(root, shop).unwrap().iter().filter_map(|m| m.files.get(entity)).map(|rel| root.local_copy(rel).unwrap()).collect();
    shopfeat::normalize::scan_parquet(paths.iter().map(|p| p.as_path())).unwrap().collect().unwrap()
}

/// A customer of the shop with orders and browsing linked to them: (id, email).
pub(crate) fn a_customer_with_orders_and_events(root: &DataRoot) -> (i64, String) {
    a_customer_with_orders_and_events_of(root, "s")
}

pub(crate) fn a_customer_with_orders_and_events_of(root: &DataRoot, shop: &str) -> (i64, String) {
    let raw_rows = |root: &DataRoot, entity: &str| raw_rows_of(root, shop, entity);
    let linked = raw_rows(root, "events").lazy().filter(col("event_customer_id").is_not_null()).group_by([col("event_customer_id")]).agg([len().alias("n")]);
    let buyers = raw_rows(root, "orders").lazy().filter(col("customer_id").is_not_null()).select([col("customer_id").alias("event_customer_id")]).unique(None, UniqueKeepStrategy::Any);
    let chosen = linked.join(buyers, [col("event_customer_id")], [col("event_customer_id")], JoinArgs::new(JoinType::Inner)).sort(["n", "event_customer_id"], SortMultipleOptions::default().with_order_descending(true)).first().collect().unwrap();
    let id = chosen.column("event_customer_id").unwrap().i64().unwrap().get(0).expect("a customer with orders and events");
    let customers = raw_rows(root, "customers").lazy().filter(col("customer_id").eq(lit(id))).collect().unwrap();
    (id, customers.column("email").unwrap().str().unwrap().get(0).unwrap().to_string())
}

fn product_features(dir: &Path) -> DataFrame {
    let data = DataRoot::open(dir.to_str().unwrap()).unwrap();
    let frame = ParquetReader::new(std::fs::File::open(crate::common::feature_file(&data, "s", "product_features")).unwrap()).finish().unwrap();
    frame.sort(["product_id"], Default::default()).unwrap()
}

#[test]
fn a_redacted_customer_is_nowhere_under_the_shop_and_product_tables_keep_their_sales() {
    let dir = tempfile::tempdir().unwrap();
    let root_dir = dir.path().join("root");
    let sample = dir.path().join("sample");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample"), &sample);
    shopfeat(&root_dir, &["run", sample.to_str().unwrap()]);
    let root = DataRoot::open(root_dir.to_str().unwrap()).unwrap();
    let (id, email) = a_customer_with_orders_and_events(&root);
    let phone = "+1 555 0100 4477";
    // A webhook payload of theirs (with a phone and addresses), and a record that
    // cannot land naming them (kept in the snapshot's rejected file).
    let more = dir.path().join("more/webhooks");
    std::fs::create_dir_all(&more).unwrap();
    let update = serde_json::json!({"id": id, "email": email, "phone": phone, "first_name": "Ada", "updated_at": "2025-11-20T00:00:00Z", "created_at": "2024-01-01T00:00:00Z",
        "default_address": {"address1": "1 Long Road", "city": "Oslo", "phone": phone}, "admin_graphql_api_id": format!("gid://shopify/Customer/{id}")});
    std::fs::write(more.join("customers_update-3.json"), update.to_string()).unwrap();
    std::fs::write(more.join("customers_update-4.json"), format!("{{\"id\": {id}, \"email\": \"{email}\", ")).unwrap();
    shopfeat(&root_dir, &["ingest", more.parent().unwrap().to_str().unwrap()]);
    shopfeat(&root_dir, &["compute", "--as-of", AS_OF]);
    shopfeat(&root_dir, &["normalize"]);
    let before = product_features(&root_dir);
    // A fast cycle of `serve` for an order of theirs: its delta tables hold their rows.
    let inbox = shopfeat::land::inbox::Inbox::new(dir.path().join("inbox"));
    let order = serde_json::json!({"id": 990_000_777, "name": "#P1", "created_at": "2025-11-29T00:00:00Z", "updated_at": "2025-11-29T00:00:00Z", "test": false,
        "currency": "USD", "total_price": "10.00", "customer": {"id": id}, "line_items": []});
    inbox.write_webhook("orders/create", "p-1", order.to_string().as_bytes()).unwrap();
    let fast = shopfeat::pipeline::fast_cycle(&root, "s", &inbox, &Default::default()).unwrap().unwrap();
    assert!(fast.tables.iter().any(|t| t.table == "user_features" && t.rows == 1), "{:?}", fast.tables);

    let manifests = shopfeat::land::snapshots(&root, "s").unwrap();
    let customer = shopfeat::privacy::Customer { id: Some(id), email: Some(email.clone()), phone: None };
    let person = redact::identify(&root, &manifests, &customer, &[]).unwrap();
    // What the test is about: a customer with orders, events and stitched browsers.
    assert!(person.orders.len() >= 1 && !person.browsers.is_empty() && person.phones.contains(phone), "{person:?}");
    let events = raw_rows(&root, "events");
    let theirs = events.clone().lazy().filter(col("event_customer_id").eq(lit(id))).collect().unwrap().height();
    assert!(theirs > 0);
    let numbers: Vec<i64> = person.customer_ids.iter().copied().collect();
    let mut found = vec![];
    findings(&root_dir.join("s"), &person, &numbers, &mut found);
    assert!(found.len() > 10, "the search finds them before: {found:#?}");
    let orders_before = raw_rows(&root, "orders").height();

    let out = shopfeat(&root_dir, &["privacy", "redact-customer", "--customer-id", &format!("gid://shopify/Customer/{id}"), "--email", &email, "--request-id", "r-1"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("customers/redact r-1"), "{said}");

    let mut found = vec![];
    findings(&root_dir.join("s"), &person, &numbers, &mut found);
    assert!(found.is_empty(), "still naming the customer after the erasure: {found:#?}");
    // Their orders stay, as guest orders; their events stay, under other browser ids.
    let orders = raw_rows(&root, "orders");
    assert_eq!(orders.height(), orders_before);
    let kept: Vec<i64> = person.orders.iter().copied().collect();
    let guest = orders.lazy().filter(col("order_id").is_in(lit(Series::new("o".into(), kept)).implode(false), false)).collect().unwrap();
    assert!(guest.height() >= person.orders.len() && guest.column("customer_id").unwrap().null_count() == guest.height());
    assert_eq!(raw_rows(&root, "events").height(), events.height());
    // Product tables keep their sales; only what counts distinct customers may move.
    let after = product_features(&root_dir);
    assert_eq!(before.height(), after.height());
    let changed: Vec<&str> = before.get_column_names().into_iter().filter(|c| !before.column(c).unwrap().equals_missing(after.column(c).unwrap())).map(|c| c.as_str()).collect();
    assert_eq!(changed, ["unique_purchasers_30d"], "only the count of distinct customers who bought (a guest order has none)");
    // One generation left; the audit record holds no personal data (checked above) and counts.
    let audit: serde_json::Value = serde_json::from_slice(&std::fs::read(root_dir.join("s/privacy/audit/r-1.json")).unwrap()).unwrap();
    assert!(audit["snapshots_rewritten"].as_u64().unwrap() >= 2 && audit["rows_redacted"].as_u64().unwrap() > 0, "{audit}");
    let generations = std::fs::read_dir(root_dir.join("s/features")).unwrap().flatten().filter(|e| e.path().is_dir()).count();
    assert_eq!(generations, 1);
    // Done once: the same request again changes nothing.
    shopfeat(&root_dir, &["privacy", "redact-customer", "--customer-id", &id.to_string(), "--request-id", "r-1"]);
}

/// The three compliance topics delivered to `serve` on the sample shop: a
/// wrong signature is refused and writes nothing; a data request is exported
/// (every raw record of the customer in it); an erasure is done by the next
/// cycle — nothing under the shop names the customer, Gorse has no such user
/// and none of their feedback — and a redelivery does nothing more.
#[test]
fn compliance_webhooks_through_serve_export_then_erase_a_customer() {
    use crate::serve::{quiet_options, spec, DOMAIN, SECRET};
    use crate::webhook_client::{deliver, Server};
    let dir = tempfile::tempdir().unwrap();
    let gorse = crate::gorse_standin::Gorse::start(None);
    let gorse_options = shopfeat::sinks::gorse::Options::new(&gorse.url);
    let root = DataRoot::open(dir.path().to_str().unwrap()).unwrap();
    crate::serve::run_and_export_sample(&root, &gorse_options);
    let (id, email) = a_customer_with_orders_and_events(&root);
    // A webhook payload of theirs (phone, address) and a record naming them that
    // could not land (kept in the snapshot's rejected file).
    let more = dir.path().join("more/webhooks");
    std::fs::create_dir_all(&more).unwrap();
    let update = serde_json::json!({"id": id, "email": email, "phone": "+47 4000 1234", "updated_at": "2025-11-20T00:00:00Z", "default_address": {"address1": "2 Short Street", "phone": "+47 4000 1234"}});
    std::fs::write(more.join("customers_update-3.json"), update.to_string()).unwrap();
    std::fs::write(more.join("customers_update-4.json"), format!("{{\"id\": {id}, \"email\": \"{email}\", ")).unwrap();
    let landed = shopfeat::pipeline::ingest(&root, "s", &[more.parent().unwrap().to_path_buf()]).unwrap();
    assert_eq!(landed.landed.skipped_total(), 1);
    assert!(gorse.store().users.contains_key(&id.to_string()));
    assert!(gorse.store().feedback.keys().any(|(_, user, _)| *user == id.to_string()));

    let mut options = quiet_options(dir.path(), shopfeat::serve::ShopSpec { gorse: Some(gorse_options), ..spec(dir.path()) });
    options.debounce = std::time::Duration::from_millis(100);
    options.max_delay = std::time::Duration::from_secs(2);
    let server = Server::start(options);
    let customer = serde_json::json!({"id": id, "email": email, "phone": null});

    let forged = serde_json::to_vec(&serde_json::json!({"shop_domain": DOMAIN, "customer": customer, "orders_to_redact": []})).unwrap();
    assert_eq!(deliver(server.addr, "not-the-app-secret-at-all", DOMAIN, "customers/redact", "forged-1", &forged).status, 401);
    assert!(!dir.path().join("s/inbox/privacy").exists(), "a refused request writes nothing");

    // The data request: every raw record of theirs, counted here independently.
    let request = serde_json::json!({"shop_domain": DOMAIN, "customer": customer, "orders_requested": [], "data_request": {"id": 77}});
    assert_eq!(deliver(server.addr, SECRET, DOMAIN, "customers/data_request", "dr-1", &serde_json::to_vec(&request).unwrap()).status, 200);
    let export = dir.path().join("s/privacy/exports/77.json");
    wait_for(|| export.exists(), "the export");
    let document: serde_json::Value = serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap();
    let count = |entity: &str, filter: Expr| raw_rows(&root, entity).lazy().filter(filter).collect().unwrap().height();
    assert_eq!(document["raw_records"]["customers"].as_array().map_or(0, Vec::len), count("customers", col("customer_id").eq(lit(id))));
    assert_eq!(document["raw_records"]["orders"].as_array().map_or(0, Vec::len), count("orders", col("customer_id").eq(lit(id))));
    assert!(document["features"]["user_features"].as_array().is_some_and(|rows| rows.len() == 1), "{}", document["features"]);
    assert!(document["gorse"]["users"].as_array().is_some_and(|u| u.len() == 1));

    let subject = shopfeat::privacy::Customer { id: Some(id), email: Some(email.clone()), phone: None };
    let before = redact::identify(&root, &shopfeat::land::snapshots(&root, "s").unwrap(), &subject, &[]).unwrap();
    assert!(!before.orders.is_empty() && !before.browsers.is_empty() && before.phones.contains("+47 4000 1234"), "{before:?}");
    let erase = serde_json::json!({"shop_domain": DOMAIN, "customer": customer, "orders_to_redact": []});
    let body = serde_json::to_vec(&erase).unwrap();
    assert_eq!(deliver(server.addr, SECRET, DOMAIN, "customers/redact", "cr-1", &body).status, 200);
    let audit = dir.path().join("s/privacy/audit/cr-1.json");
    wait_for(|| audit.exists() && crate::serve::files_in(&dir.path().join("s/inbox/privacy")).iter().all(|f| f.is_dir()), "the erasure");
    wait_for(|| !gorse.store().users.contains_key(&id.to_string()), "Gorse to lose the user");
    assert!(!gorse.store().feedback.keys().any(|(_, user, _)| *user == id.to_string()), "their feedback went with them");
    // A redelivery is acknowledged and does nothing more.
    let again = deliver(server.addr, SECRET, DOMAIN, "customers/redact", "cr-1", &body);
    assert_eq!(again.status, 200);
    // A late update of one of their orders, naming them, is erased as it lands.
    let mut late: serde_json::Value = serde_json::from_slice(&std::fs::read(crate::common::fixture("shop/webhooks/orders_updated-1.json")).unwrap()).unwrap();
    late["id"] = serde_json::json!(before.orders.iter().next().unwrap());
    late["customer"] = serde_json::json!({"id": id, "email": customer["email"]});
    late["email"] = customer["email"].clone();
    late["updated_at"] = serde_json::json!("2025-11-29T00:00:00Z");
    let records = shopfeat::history::load(&root, "s").unwrap().len();
    assert_eq!(deliver(server.addr, SECRET, DOMAIN, "orders/updated", "late-1", &serde_json::to_vec(&late).unwrap()).status, 200);
    wait_for(|| shopfeat::history::load(&root, "s").unwrap().iter().skip(records).any(|r| r.outcome == "ok"), "the cycle landing the late update");
    drop(server);
    let after = redact::identify(&root, &shopfeat::land::snapshots(&root, "s").unwrap(), &subject, &[]).unwrap();
    assert!(after.orders.is_empty() && after.browsers.is_empty(), "nothing links to them any more: {after:?}");
    let mut found = vec![];
    findings(&dir.path().join("s"), &before, &[id], &mut found);
    assert!(found.is_empty(), "still naming the customer: {found:#?}");
    assert!(!export.exists(), "the export named them, so it went too");
}

fn wait_for(done: impl Fn() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "waited two minutes for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `status` shows compliance requests: waiting ones warn, one waiting longer
/// than 25 days fails (Shopify allows 30), carried-out ones are counted.
#[test]
fn status_shows_waiting_and_overdue_privacy_requests() {
    let dir = tempfile::tempdir().unwrap();
    let root_dir = dir.path().join("root");
    shopfeat(&root_dir, &["run", Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample").to_str().unwrap()]);
    let inbox = shopfeat::land::inbox::Inbox::new(dir.path().join("inbox"));
    let status = |root: &Path| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_shopfeat")).args(["--root", root.to_str().unwrap(), "--shop", "s", "status", "--json", "--inbox", dir.path().join("inbox").to_str().unwrap()]).output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()[0].clone()
    };
    let check = |s: &serde_json::Value| s["checks"].as_array().unwrap().iter().find(|c| c["check"] == "privacy_requests").cloned().unwrap();
    assert_eq!(check(&status(&root_dir))["level"], "ok");
    let body = br#"{"shop_domain": "x", "customer": {"id": 1, "email": "a@b.c"}, "orders_to_redact": []}"#;
    inbox.write_privacy("customers/redact", "w-1", body).unwrap();
    let s = status(&root_dir);
    assert_eq!((check(&s)["level"].clone(), s["privacy"]["pending"].clone()), ("warn".into(), 1.into()), "{}", check(&s));
    // One that arrived 26 days ago (its arrival stamp leads its name).
    let old = (chrono::Utc::now() - chrono::Duration::days(26)).timestamp_micros();
    std::fs::write(dir.path().join(format!("inbox/privacy/{old:017}.customers+redact.w-0.json")), body).unwrap();
    let s = status(&root_dir);
    assert_eq!((check(&s)["level"].clone(), s["privacy"]["overdue"].clone()), ("fail".into(), 1.into()), "{}", check(&s));
    // Carried out by hand: recorded, counted.
    shopfeat(&root_dir, &["privacy", "redact-customer", "--customer-id", "1", "--request-id", "manual-1"]);
    assert_eq!(status(&root_dir)["privacy"]["done"], 1);
}

/// `shop/redact` through `serve`: the shop's Gorse items, users and feedback,
/// its folder under the root and its inbox are gone; a tombstone without data
/// stays, and `status` says the shop is gone.
#[test]
fn shop_redact_forgets_the_shop_and_its_gorse_objects() {
    use crate::serve::{quiet_options, spec, DOMAIN, SECRET};
    use crate::webhook_client::{deliver, Server};
    let dir = tempfile::tempdir().unwrap();
    let gorse = crate::gorse_standin::Gorse::start(None);
    let gorse_options = shopfeat::sinks::gorse::Options::new(&gorse.url);
    let root = DataRoot::open(dir.path().to_str().unwrap()).unwrap();
    crate::serve::run_and_export_sample(&root, &gorse_options);
    let store = gorse.store();
    assert!(!store.items.is_empty() && !store.users.is_empty() && !store.feedback.is_empty());
    let mut options = quiet_options(dir.path(), shopfeat::serve::ShopSpec { gorse: Some(gorse_options), ..spec(dir.path()) });
    options.debounce = std::time::Duration::from_millis(100);
    options.max_delay = std::time::Duration::from_secs(2);
    let server = Server::start(options);
    let body = serde_json::to_vec(&serde_json::json!({"shop_id": 1, "shop_domain": DOMAIN})).unwrap();
    assert_eq!(deliver(server.addr, SECRET, DOMAIN, "shop/redact", "sr-1", &body).status, 200);
    wait_for(|| dir.path().join("_privacy/shops/s.json").exists(), "the shop to be forgotten");
    drop(server);
    let store = gorse.store();
    assert!(store.items.is_empty() && store.users.is_empty() && store.feedback.is_empty(), "{} items, {} users, {} feedback left", store.items.len(), store.users.len(), store.feedback.len());
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, ["_privacy"], "nothing of the shop is left under the root");
    let status = Command::new(env!("CARGO_BIN_EXE_shopfeat")).args(["--root", dir.path().to_str().unwrap(), "--shop", "s", "status"]).output().unwrap();
    assert!(String::from_utf8_lossy(&status.stderr).contains("shop s: gone (shop/redact sr-1"), "{}", String::from_utf8_lossy(&status.stderr));
    assert!(status.status.success(), "a gone shop is not a failing one");
}

/// `app/uninstalled` stops a shop's scheduled fetches (its token no longer
/// works); a delivery afterwards means the app is installed again.
#[test]
fn an_uninstalled_app_stops_the_scheduled_full_cycles_until_deliveries_resume() {
    use crate::serve::{quiet_options, scheduled_spec, DOMAIN, SECRET};
    use crate::webhook_client::{deliver, Server};
    let dir = tempfile::tempdir().unwrap();
    let spec = scheduled_spec(dir.path());
    let mut options = quiet_options(dir.path(), spec.clone());
    options.debounce = std::time::Duration::from_millis(100);
    options.max_delay = std::time::Duration::from_secs(1);
    let server = Server::start(options);
    assert_eq!(deliver(server.addr, SECRET, DOMAIN, "app/uninstalled", "un-1", b"{\"id\": 1}").status, 200);
    assert!(spec.inbox.uninstalled());
    let root = DataRoot::open(dir.path().to_str().unwrap()).unwrap();
    let full_cycles = || shopfeat::history::load(&root, "s").map(|r| r.iter().filter(|r| r.command == "serve full" && r.outcome != "running").count()).unwrap_or(0);
    // A cycle that started before the delivery may finish; none starts after it.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let settled = full_cycles();
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(full_cycles(), settled, "the every-2-seconds schedule ran while the app was uninstalled");
    let product = crate::serve::renamed(1, "back");
    assert_eq!(deliver(server.addr, SECRET, DOMAIN, "products/update", "back-1", &serde_json::to_vec(&product).unwrap()).status, 200);
    assert!(!spec.inbox.uninstalled());
    wait_for(|| full_cycles() > settled, "a scheduled cycle once installed again");
}
