//! `shopfeat status`: one line per check, the number and the threshold, and an
//! exit code cron can act on (0 ok or warnings, 1 warnings under --strict, 2 a
//! failure — a shop that never ran fails).

use std::path::Path;
use std::process::{Command, Output};

fn shopfeat(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shopfeat")).current_dir(env!("CARGO_MANIFEST_DIR")).args(["--root", root.to_str().unwrap()]).args(args).env_remove("RUST_LOG").env_remove("GORSE_URL").output().unwrap()
}

/// The line of `check` in the status text: (level, value).
fn line(out: &Output, check: &str) -> (String, String) {
    let text = String::from_utf8_lossy(&out.stdout);
    let l = text.lines().find(|l| l.split_whitespace().nth(1) == Some(check)).unwrap_or_else(|| panic!("no {check} in\n{text}"));
    let mut words = l.split_whitespace();
    let level = words.next().unwrap().to_string();
    (level, words.skip(1).collect::<Vec<_>>().join(" "))
}

#[test]
fn a_shop_that_never_ran_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = shopfeat(dir.path(), &["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(line(&out, "successful_run"), ("fail".into(), "none (one exists)".into()));
}

#[test]
fn after_a_run_the_checks_pass_and_the_sample_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    assert!(shopfeat(dir.path(), &["-q", "run"]).status.success());
    let out = shopfeat(dir.path(), &["status"]);
    assert_eq!(out.status.code(), Some(0), "warnings only: {}", String::from_utf8_lossy(&out.stdout));
    for check in ["successful_run", "newest_run", "generation_age", "rows_per_entity", "skipped_share", "events_in_future", "negative_prices_or_quantities", "orders_of_unknown_customers", "features_behind_data"] {
        assert_eq!(line(&out, check).0, "ok", "{check}");
    }
    // The sample's deleted product 350: one line item and four events name it.
    assert_eq!(line(&out, "lines_of_unknown_products").1, "0.09% (1 of 1131) (warn > 0.01)");
    assert_eq!(line(&out, "events_of_unknown_products").1, "0.13% (4 of 2983) (warn > 0.01)");
    // The sample's data ends 2025-11-30: a year old.
    let (level, value) = line(&out, "newest_order_age");
    assert_eq!(level, "warn");
    assert!(value.trim_end_matches(" h (warn > 72 h)").trim_end_matches(" h").parse::<f64>().unwrap() > 24.0 * 300.0, "{value}");
    assert_eq!(shopfeat(dir.path(), &["status", "--strict"]).status.code(), Some(1));
    // The lifetime-value fit of the last compute, with its parameters.
    let (level, value) = line(&out, "lifetime_model");
    assert_eq!(level, "ok");
    assert!(value.starts_with("ok ("), "{value}");
    let text = String::from_utf8_lossy(&out.stdout);
    let fitted = text.lines().find(|l| l.trim_start().starts_with("lifetime ")).expect("a lifetime line");
    assert!(fitted.contains("BG/NBD r=") && fitted.contains("α=") && fitted.contains("Gamma-Gamma p="), "{fitted}");
    // The same tables again: nothing drifted.
    assert!(shopfeat(dir.path(), &["-q", "compute", "--as-of", "2025-11-30T23:59:59Z"]).status.success());
    let (level, value) = line(&shopfeat(dir.path(), &["status"]), "drift");
    assert_eq!(level, "ok", "{value}");
    assert!(value.contains(" 0.000"), "{value}");
    // Three months earlier, the 30-day windows and recencies move.
    assert!(shopfeat(dir.path(), &["-q", "compute", "--as-of", "2025-09-01T00:00:00Z"]).status.success());
    let (level, value) = line(&shopfeat(dir.path(), &["status"]), "drift");
    assert_ne!(level, "ok", "{value}");
    let json: serde_json::Value = serde_json::from_slice(&shopfeat(dir.path(), &["status", "--all", "--json"]).stdout).unwrap();
    assert_eq!(json[0]["shop"], "sample");
    assert!(json[0]["checks"].as_array().unwrap().iter().any(|c| c["check"] == "rows_per_entity" && c["level"] == "ok"));
    let model = &json[0]["lifetime_model"];
    assert_eq!(model["status"], "ok");
    assert!(model["bgnbd"]["alpha"].as_f64().unwrap() > 0.0 && model["gamma_gamma"]["q"].as_f64().unwrap() > 1.0, "{model}");
    assert!(model["customers"].as_u64().unwrap() >= model["repeat_customers"].as_u64().unwrap());
}

#[test]
fn a_failed_run_and_a_shop_that_lost_a_third_of_its_products_show() {
    let dir = tempfile::tempdir().unwrap();
    assert!(shopfeat(dir.path(), &["-q", "run"]).status.success());
    // A compute that fails (a damaged snapshot): the newest run warns.
    let orders = std::fs::read_dir(dir.path().join("sample/raw/orders")).unwrap().next().unwrap().unwrap().path();
    let good = std::fs::read(&orders).unwrap();
    std::fs::write(&orders, b"PAR1 broken").unwrap();
    assert_eq!(shopfeat(dir.path(), &["-q", "compute"]).status.code(), Some(1));
    let out = shopfeat(dir.path(), &["status"]);
    assert_eq!(line(&out, "newest_run"), ("warn".into(), "compute failed (not failed or killed)".into()));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().skip_while(|l| !l.starts_with("  last failure  compute"));
    assert!(lines.next().is_some(), "{text}");
    // The failure's error, on the line below.
    let error = lines.next().unwrap();
    assert!(error.starts_with("                ") && error.contains("raw/orders/") && error.contains("is damaged: not a whole Parquet file"), "{text}");
    // The data checks cannot read it either, and say which file.
    let (level, value) = line(&out, "raw_data_readable");
    assert_eq!(level, "fail");
    assert!(value.contains("raw/orders/") && value.contains("not a whole Parquet file"), "{value}");
    assert_eq!(out.status.code(), Some(2));
    std::fs::write(&orders, good).unwrap();

    // 105 of 350 products (30%) deleted by webhooks, then the nightly run.
    let hooks = dir.path().join("deletions/webhooks");
    std::fs::create_dir_all(&hooks).unwrap();
    for i in 0..105 {
        std::fs::write(hooks.join(format!("products_delete-{i}.json")), format!(r#"{{"id": {}}}"#, 7_100_000_000i64 + i * 3)).unwrap();
    }
    let deletions = dir.path().join("deletions");
    assert!(shopfeat(dir.path(), &["-q", "run", deletions.to_str().unwrap(), "--as-of", "2025-11-30T23:59:59Z"]).status.success());
    // The pairs lose most: 823 pairs → 252 (69%), past the 30% that fails.
    let out = shopfeat(dir.path(), &["status"]);
    let (level, value) = line(&out, "table_shrink");
    assert_eq!(level, "fail", "{value}");
    assert!(value.starts_with("69% lost: product_pair_features 823 → 252"), "{value}");
    assert_eq!(out.status.code(), Some(2));
    // Looser thresholds in the config file make it a warning.
    let config = dir.path().join("shopfeat.toml");
    std::fs::write(&config, "[status]\nshrink_share = 0.5\ndrift = 10.0\n").unwrap();
    let loose = shopfeat(dir.path(), &["--config", config.to_str().unwrap(), "status"]);
    assert_eq!(line(&loose, "table_shrink").0, "warn");
    assert_eq!(loose.status.code(), Some(0));
}

#[test]
fn the_population_stability_index_is_the_textbook_one() {
    let before: Vec<f64> = (1..=1000).map(f64::from).collect();
    assert_eq!(shopfeat::status::psi(&before, &before), 0.0);
    // The top decile doubles: 9 buckets of 100 and one of 200 out of 1,100.
    let now: Vec<f64> = (1..=1000).chain(901..=1000).map(f64::from).collect();
    let (small, big) = (100.0 / 1100.0, 200.0 / 1100.0);
    let expected = 9.0 * (small - 0.1) * (small / 0.1f64).ln() + (big - 0.1) * (big / 0.1f64).ln();
    assert!((shopfeat::status::psi(&now, &before) - expected).abs() < 1e-12, "{} vs {expected}", shopfeat::status::psi(&now, &before));
    // Too few values to judge.
    assert_eq!(shopfeat::status::psi(&before[..50], &now[..50]), 0.0);
}

#[test]
fn the_last_export_what_it_would_send_now_and_the_inbox_backlog() {
    let dir = tempfile::tempdir().unwrap();
    assert!(shopfeat(dir.path(), &["-q", "run"]).status.success());
    let gorse = crate::gorse_standin::Gorse::start(None);
    assert!(shopfeat(dir.path(), &["-q", "export", "gorse", "--url", &gorse.url]).status.success());
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let old = inbox.join("orders_updated-9.json");
    std::fs::write(&old, "{}").unwrap();
    std::fs::File::options().write(true).open(&old).unwrap().set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 3600)).unwrap();
    let out = shopfeat(dir.path(), &["status", "--inbox", inbox.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains(&format!("to {} prefix=\"\" (", gorse.url)), "{text}");
    assert!(text.contains("export now    would send 0 rows, delete 0"), "{text}");
    assert!(text.contains("inbox         1 files waiting"), "{text}");
    let (level, value) = line(&out, "inbox_backlog");
    assert_eq!(level, "warn");
    assert!(value.starts_with("1 files, the oldest 3.0 h"), "{value}");
    // Products deleted since: the next export would delete them.
    let hooks = dir.path().join("more/webhooks");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::write(hooks.join("products_delete-1.json"), r#"{"id": 7100000001}"#).unwrap();
    assert!(shopfeat(dir.path(), &["-q", "run", dir.path().join("more").to_str().unwrap(), "--as-of", "2025-11-30T23:59:59Z"]).status.success());
    let text = String::from_utf8_lossy(&shopfeat(dir.path(), &["status"]).stdout).into_owned();
    assert!(text.contains("export now    would send") && !text.contains("delete 0\n"), "{text}");
}

/// A product event of the sample's shape.
fn product_event(id: &str, product: i64, timestamp: &str) -> String {
    serde_json::json!({
        "clientId": "dirty-client", "customerId": null, "id": id, "name": "product_viewed", "timestamp": timestamp, "type": "standard",
        "context": {"document": {"location": {"href": "https://shop.example/products/p", "pathname": "/products/p", "search": ""}, "referrer": "", "title": "t"}, "navigator": {"userAgent": "Mozilla/5.0"}},
        "data": {"productVariant": {"id": "gid://shopify/ProductVariant/1", "price": {"amount": 1.0, "currencyCode": "USD"}, "product": {"id": format!("gid://shopify/Product/{product}"), "title": "p", "type": "t", "vendor": "v"}}}
    })
    .to_string()
}

/// An order webhook of customer `customer` with one line of `quantity` of a sample product.
fn order(id: i64, customer: i64, quantity: i64) -> String {
    serde_json::json!({
        "id": id, "admin_graphql_api_id": format!("gid://shopify/Order/{id}"), "name": format!("#D{id}"), "currency": "USD",
        "created_at": "2025-11-30T10:00:00Z", "processed_at": "2025-11-30T10:00:00Z", "updated_at": "2025-11-30T10:00:00Z",
        "cancel_reason": null, "cancelled_at": null, "customer": {"id": customer}, "discount_codes": [], "financial_status": "paid",
        "fulfillment_status": null, "refunds": [], "source_name": "web", "tags": "", "test": false,
        "subtotal_price": "10.00", "total_discounts": "0.00", "total_price": "10.00", "total_tax": "0.00",
        "line_items": [{"id": id * 10, "price": "10.00", "product_id": 7100000177i64, "quantity": quantity, "sku": "S", "title": "Rugged Black Ring", "total_discount": "0.00", "variant_id": 42000000477i64, "vendor": "Oakhaus"}]
    })
    .to_string()
}

#[test]
fn a_shop_with_dirty_data_fails_the_data_checks() {
    let dir = tempfile::tempdir().unwrap();
    assert!(shopfeat(dir.path(), &["-q", "run"]).status.success());
    let clean = shopfeat(dir.path(), &["status"]);
    for check in ["events_in_future", "negative_prices_or_quantities", "orders_of_unknown_customers", "events_of_unknown_products", "skipped_share", "features_behind_data", "conflicting_versions"] {
        assert_eq!(line(&clean, check).0, "ok", "{check} on the sample");
    }
    // Three events from 2099, forty of a product nobody knows, five broken lines;
    // four orders of customers nobody knows, one with a negative quantity.
    let dirty = dir.path().join("dirty");
    std::fs::create_dir_all(dirty.join("webhooks")).unwrap();
    let mut events: Vec<String> = (0..3).map(|i| product_event(&format!("future-{i}"), 7_100_000_177, "2099-01-01T00:00:00.000Z")).collect();
    events.extend((0..40).map(|i| product_event(&format!("unknown-{i}"), 9_999_999_999, "2025-11-30T12:00:00.000Z")));
    events.extend((0..5).map(|i| format!("{{\"id\": \"broken-{i}\", \"name\": ")));
    std::fs::write(dirty.join("events.jsonl"), events.join("\n") + "\n").unwrap();
    for i in 0..4 {
        std::fs::write(dirty.join(format!("webhooks/orders_updated-{i}.json")), order(5_900_000_000 + i, 8_800_000_000 + i, if i == 0 { -2 } else { 1 })).unwrap();
    }
    assert!(shopfeat(dir.path(), &["-q", "run", dirty.to_str().unwrap(), "--as-of", "2025-11-30T23:59:59Z"]).status.success());
    let out = shopfeat(dir.path(), &["status"]);
    assert_eq!(line(&out, "events_in_future"), ("warn".into(), "3 (0 (more than 5 min ahead of now))".into()));
    assert_eq!(line(&out, "negative_prices_or_quantities"), ("warn".into(), "1 (0)".into()));
    // The sample's 341 orders of known customers, and these four.
    assert_eq!(line(&out, "orders_of_unknown_customers"), ("warn".into(), "1.16% (4 of 345) (warn > 0.01)".into()));
    // The sample's 4 of 2983 product events, and these 43 (40 unknown).
    assert_eq!(line(&out, "events_of_unknown_products"), ("warn".into(), "1.45% (44 of 3026) (warn > 0.01)".into()));
    // 5 of the last landing's 56 records (48 event lines, 4 orders, their 4 lines) were skipped: past 5×1%.
    let (level, value) = line(&out, "skipped_share");
    assert_eq!(level, "fail", "{value}");
    assert!(value.starts_with("8.93% (5 of 56)"), "{value}");
    // The events from 2099 are far past the features' as_of.
    assert_eq!(line(&out, "features_behind_data").0, "warn");
    assert_eq!(out.status.code(), Some(2));

    // The same ids again in a new snapshot: one order unchanged (normal), one with
    // another total under the same updated_at (the source disagrees with itself).
    let again = dir.path().join("again/webhooks");
    std::fs::create_dir_all(&again).unwrap();
    std::fs::write(again.join("orders_updated-1.json"), order(5_900_000_001, 8_800_000_001, 1)).unwrap();
    std::fs::write(again.join("orders_updated-2.json"), order(5_900_000_002, 8_800_000_002, 1).replace("\"total_price\":\"10.00\"", "\"total_price\":\"12.00\"")).unwrap();
    assert!(shopfeat(dir.path(), &["-q", "ingest", dir.path().join("again").to_str().unwrap()]).status.success());
    assert_eq!(line(&shopfeat(dir.path(), &["status"]), "conflicting_versions"), ("warn".into(), "orders 1 (0 ids with two contents under one updated_at)".into()));

    // A generation older than the config file allows fails.
    let config = dir.path().join("shopfeat.toml");
    std::fs::write(&config, "[status]\ngeneration_age_hours = 0.0001\n").unwrap();
    // 0.36 s, failing at twice that; ages are whole seconds.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(line(&shopfeat(dir.path(), &["--config", config.to_str().unwrap(), "status"]), "generation_age").0, "fail");
}

#[test]
fn status_shows_the_raw_store_per_entity() {
    let dir = tempfile::tempdir().unwrap();
    assert!(shopfeat(dir.path(), &["-q", "run"]).status.success());
    // A second snapshot of products only: Shopify's example product, as a webhook lands it.
    let inbox = tempfile::tempdir().unwrap();
    std::fs::create_dir(inbox.path().join("webhooks")).unwrap();
    std::fs::copy(crate::common::rest_examples().join("product.json"), inbox.path().join("webhooks/products_update-1.json")).unwrap();
    assert!(shopfeat(dir.path(), &["-q", "ingest", inbox.path().to_str().unwrap()]).status.success());
    let out = shopfeat(dir.path(), &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let raw = &status[0]["raw"];
    // Counted here from the manifests and the files themselves.
    let manifests: Vec<serde_json::Value> = std::fs::read_dir(dir.path().join("sample/raw/_snapshots"))
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    assert_eq!(manifests.len(), 2);
    for entity in ["products", "orders", "events"] {
        let holding: Vec<&serde_json::Value> = manifests.iter().filter(|m| m["files"][entity].is_string()).collect();
        let rows: u64 = holding.iter().map(|m| m["rows"][entity].as_u64().unwrap()).sum();
        let bytes: u64 = holding.iter().map(|m| std::fs::metadata(dir.path().join(m["files"][entity].as_str().unwrap())).unwrap().len()).sum();
        assert_eq!(raw[entity]["snapshots"].as_u64(), Some(holding.len() as u64), "{entity}: {raw}");
        assert_eq!(raw[entity]["rows"].as_u64(), Some(rows), "{entity}: {raw}");
        assert_eq!(raw[entity]["bytes"].as_u64(), Some(bytes), "{entity}: {raw}");
    }
    assert_eq!(raw["products"]["snapshots"].as_u64(), Some(2), "the webhook's snapshot holds products");
    assert_eq!(raw["orders"]["snapshots"].as_u64(), Some(1));
    let text = String::from_utf8_lossy(&shopfeat(dir.path(), &["status"]).stdout).into_owned();
    assert!(text.lines().any(|l| l.trim_start().starts_with("raw") && l.contains("products") && l.contains("2 snapshots")), "{text}");
}

/// Small snapshots pile up while compaction is off: `status` says compaction is
/// overdue (warn above `[status] small_snapshots`, fail above 8×), and is quiet
/// once `compact` merged them; an interrupted compaction is a warning too.
#[test]
fn status_warns_when_compaction_is_overdue() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("shopfeat.toml");
    std::fs::write(&config, "[retention]\ncompact_after = 0\n[status]\nsmall_snapshots = 3\n").unwrap();
    let with_config = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        shopfeat(dir.path(), &all)
    };
    assert!(with_config(&["-q", "run"]).status.success());
    let inbox = tempfile::tempdir().unwrap();
    std::fs::create_dir(inbox.path().join("webhooks")).unwrap();
    for i in 0..4 {
        let payload = serde_json::json!({"id": 7_100_000_000u64 + i, "title": format!("t{i}"), "updated_at": "2025-11-20T00:00:00Z", "variants": []});
        std::fs::write(inbox.path().join("webhooks/products_update-1.json"), payload.to_string()).unwrap();
        assert!(with_config(&["-q", "ingest", inbox.path().to_str().unwrap()]).status.success());
    }
    let compaction = |out: std::process::Output| -> serde_json::Value {
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        status[0]["checks"].as_array().unwrap().iter().find(|c| c["check"] == "raw_compaction").cloned().expect("a raw_compaction check")
    };
    let check = compaction(with_config(&["status", "--json"]));
    assert_eq!(check["level"], "warn", "5 small snapshots, warn above 3: {check}");
    assert!(check["value"].as_str().unwrap().contains("5 small snapshots"), "{check}");

    assert!(with_config(&["-q", "compact"]).status.success());
    let check = compaction(with_config(&["status", "--json"]));
    assert_eq!(check["level"], "ok", "{check}");
    assert!(check["value"].as_str().unwrap().contains("1 small snapshots"), "{check}");

    // A compaction killed before it published leaves its intent: a warning until the next one.
    std::fs::write(dir.path().join("sample/raw/_rewrite.json"), r#"{"what": "compaction", "snapshots": [{"snapshot": "20250101T000000000000000-00000001.c1", "replaces": []}], "committed": false}"#).unwrap();
    let check = compaction(with_config(&["status", "--json"]));
    assert_eq!(check["level"], "warn", "{check}");
    assert!(check["value"].as_str().unwrap().contains("interrupted"), "{check}");
    assert!(with_config(&["-q", "compact"]).status.success());
    assert_eq!(compaction(with_config(&["status", "--json"]))["level"], "ok");
}
