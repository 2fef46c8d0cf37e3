//! Safe to leave running: each test plays one way a production run could lose or
//! corrupt data (a redirect, a hostile header or body, a mass deletion, a path out
//! of the root, a secret in an error) and checks it is refused.

use crate::common::*;
use crate::gorse_standin::Gorse;
use crate::http::{self, Reply};
use crate::shopify_fake::{read_shop, Faults, Shopify};
use polars::prelude::*;
use shopfeat::config::Secret;
use shopfeat::retry::Retry;
use shopfeat::shopify::{self, bulk::Polling, FetchOptions, Mode};
use shopfeat::sinks::gorse::{self, Options};
use shopfeat::storage::DataRoot;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "shpat_safety_token";
const KEY: &str = "gorse-safety-key";

fn sample_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")
}

fn computed_sample() -> Landed {
    let landed = land(&[sample_dir()]);
    compute(&landed.root, "test", ts("2025-11-30T23:59:59Z"), Default::default()).unwrap();
    landed
}

fn gorse_options(url: &str) -> Options {
    let mut o = Options::new(url);
    o.key = Some(Secret::new(KEY));
    o.retry = Retry { max_retries: 5, base_delay: Duration::from_millis(2), max_delay: Duration::from_millis(40) };
    o
}

fn fetch_options(url: &str, mode: Mode) -> FetchOptions {
    let mut o = FetchOptions::new(url, Secret::new(TOKEN), mode);
    o.retry = Retry { max_retries: 5, base_delay: Duration::from_millis(10), max_delay: Duration::from_millis(200) };
    o.polling = Polling { first: Duration::from_millis(15), max: Duration::from_millis(60), deadline: Duration::from_secs(60) };
    o
}

/// A server that records what reaches it and answers 200.
fn elsewhere() -> (String, Arc<Mutex<Vec<(String, Option<String>, Option<String>)>>>) {
    let seen = Arc::new(Mutex::new(vec![]));
    let log = seen.clone();
    let url = http::start(move |r| {
        log.lock().unwrap().push((format!("{} {}", r.method, r.path), r.headers.get("x-api-key").cloned(), r.headers.get("x-shopify-access-token").cloned()));
        Reply::json(200, &serde_json::json!({"RowAffected": 1, "data": {}}))
    });
    (url, seen)
}

/// A server that redirects every request to `target` with `status`.
fn redirecting(status: u16, target: String) -> String {
    http::start(move |r| {
        let mut reply = Reply::text(status, "moved");
        reply.headers.push(("Location", format!("{target}{}", r.path)));
        reply
    })
}

#[test]
fn a_redirect_from_gorse_is_an_error_and_nothing_counts_as_delivered() {
    let landed = computed_sample();
    for status in [301, 302, 303, 307] {
        let (target, seen) = elsewhere();
        let err = gorse::export(&landed.root, "test", &gorse_options(&redirecting(status, target))).unwrap_err().to_string();
        assert!(err.contains(&format!("answered {status} redirecting to")) && err.contains("not followed"), "{err}");
        assert!(seen.lock().unwrap().is_empty(), "{status}: nothing (and no key) reached the other host");
        let delivered = landed.root.get("test/state/gorse-rows.parquet").unwrap().map(|b| ParquetReader::new(std::io::Cursor::new(b)).finish().unwrap().height());
        assert_eq!(delivered.unwrap_or(0), 0, "{status}: no row counts as delivered");
    }
}

#[test]
fn a_redirect_from_shopify_is_an_error_and_the_token_stays_home() {
    let dir = tempfile::tempdir().unwrap();
    let (target, seen) = elsewhere();
    let root = DataRoot::open(dir.path().to_str().unwrap()).unwrap();
    let err = format!("{:#}", shopify::fetch(&root, "test", &fetch_options(&redirecting(302, target), Mode::Historical)).unwrap_err());
    assert!(err.contains("answered 302 redirecting to") && !err.contains(TOKEN), "{err}");
    assert!(seen.lock().unwrap().is_empty(), "the token never reached the other host");
}

#[test]
fn hostile_retry_after_values_neither_panic_nor_hang() {
    for value in ["-1", "NaN", "inf", "1e12", "31536000", "soon"] {
        let dir = tempfile::tempdir().unwrap();
        let fake = Shopify::start(TOKEN, read_shop(&sample_dir()), "2025-12-01T00:00:00Z");
        fake.set_faults(Faults { too_many: 2, retry_after: Some(value.into()), ..Faults::default() });
        let started = Instant::now();
        let root = DataRoot::open(dir.path().to_str().unwrap()).unwrap();
        shopify::fetch(&root, "test", &fetch_options(&fake.url, Mode::Historical)).unwrap_or_else(|e| panic!("Retry-After {value}: {e:#}"));
        assert!(started.elapsed() < Duration::from_secs(20), "Retry-After {value}: {:?}", started.elapsed());
        assert_eq!(fake.faults().too_many, 0);
    }
}

#[test]
fn an_oversized_answer_is_refused_without_reading_it_all() {
    let landed = computed_sample();
    let huge = http::start(|_| Reply::text(200, &"x".repeat(40 << 20)));
    let err = gorse::export(&landed.root, "test", &gorse_options(&huge)).unwrap_err().to_string();
    assert!(err.contains("larger than 32 MB"), "{err}");
}

#[test]
fn credentials_never_travel_over_plain_http_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::open(dir.path().to_str().unwrap()).unwrap();
    let err = format!("{:#}", shopify::fetch(&root, "test", &fetch_options("http://user:pw@shop.example.com", Mode::Historical)).unwrap_err());
    assert!(err.contains("refusing to send the Shopify access token over plain http to http://shop.example.com"), "{err}");
    assert!(!err.contains("pw@"), "{err}");
    let landed = computed_sample();
    let err = gorse::export(&landed.root, "test", &gorse_options("http://gorse.example:8088")).unwrap_err().to_string();
    assert!(err.contains("refusing to send the Gorse API key over plain http"), "{err}");
}

fn shopfeat(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_shopfeat")).args(args).env_remove("RUST_LOG").output().unwrap()
}

#[test]
fn a_shop_id_cannot_leave_the_root() {
    let root = tempfile::tempdir().unwrap();
    for shop in ["../elsewhere", "a/b", "..", ".", "", "x*"] {
        let out = shopfeat(&["--root", root.path().to_str().unwrap(), "--shop", shop, "compute"]);
        assert_eq!(out.status.code(), Some(2), "{shop:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not a shop id"), "{shop:?}");
    }
}

#[test]
fn a_snapshot_manifest_cannot_point_outside_the_shop() {
    let landed = land(&[fixture("features")]);
    let dir = landed.root.local_dir().unwrap().join("test/raw/_snapshots");
    let manifest_path = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["files"]["products"] = serde_json::json!("../../../etc/passwd");
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let err = shopfeat::pipeline::normalize(&landed.root, "test", None).err().expect("refused").to_string();
    assert!(err.contains("is not where landing writes it"), "{err}");
}

#[test]
fn a_config_error_never_shows_the_line_that_may_hold_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("shopfeat.toml");
    std::fs::write(&config, "[shopify]\naccess_token = \"shpat_do_not_print_me\nshop_domain = \"x.myshopify.com\"\n").unwrap();
    let out = shopfeat(&["--config", config.to_str().unwrap(), "--root", dir.path().to_str().unwrap(), "fetch"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("shopfeat.toml: line 2") && !stderr.contains("shpat_do_not_print_me"), "{stderr}");
}

#[test]
fn a_completed_operation_without_its_file_or_with_a_short_one_is_not_an_empty_shop() {
    for faults in [Faults { lose_url: true, ..Faults::default() }, Faults { truncate: true, ..Faults::default() }] {
        let dir = tempfile::tempdir().unwrap();
        let fake = Shopify::start(TOKEN, read_shop(&sample_dir()), "2025-12-01T00:00:00Z");
        fake.set_faults(faults.clone());
        let root = DataRoot::open(dir.path().to_str().unwrap()).unwrap();
        let err = format!("{:#}", shopify::fetch(&root, "test", &fetch_options(&fake.url, Mode::Historical)).unwrap_err());
        let expected = if faults.lose_url { "but no result URL" } else { "lines of the" };
        assert!(err.contains(expected), "{err}");
        assert!(shopfeat::land::snapshots(&root, "test").unwrap().is_empty(), "nothing landed");
    }
}

#[test]
fn a_product_deleted_while_a_historical_fetch_runs_stays_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let shop = read_shop(&sample_dir());
    let victim: i64 = shop["products"][3].id.rsplit('/').next().unwrap().parse().unwrap();
    let fake = Shopify::start(TOKEN, shop, "2025-12-01T00:00:00Z");
    fake.set_faults(Faults { operation_time: Some(Duration::from_millis(600)), ..Faults::default() });
    let root = DataRoot::open(dir.path().to_str().unwrap()).unwrap();
    // While the bulk queries run (the export still holds the product), its
    // products/delete webhook lands.
    let hook_dir = dir.path().join("hooks");
    std::fs::create_dir_all(&hook_dir).unwrap();
    let hook = hook_dir.join("products_delete-1.json");
    std::fs::write(&hook, serde_json::json!({"id": victim}).to_string()).unwrap();
    let landed_meanwhile = std::thread::scope(|s| {
        let webhook = s.spawn(|| {
            while fake.queries().is_empty() {
                std::thread::sleep(Duration::from_millis(5));
            }
            let files = shopfeat::land::collect_inputs(std::slice::from_ref(&hook)).unwrap();
            shopfeat::land::land(&root, "test", &files, &shopfeat::progress::Progress::hidden()).unwrap();
            fake.queries().len()
        });
        shopify::fetch(&root, "test", &fetch_options(&fake.url, Mode::Historical)).unwrap();
        webhook.join().unwrap()
    });
    let manifests = shopfeat::land::snapshots(&root, "test").unwrap();
    assert_eq!(manifests.len(), 2);
    assert!(!manifests[0].full && manifests[1].full, "the webhook landed before the fetch's snapshot (after {landed_meanwhile} queries)");
    let products = shopfeat::pipeline::normalize(&root, "test", None).unwrap().products.collect().unwrap();
    let ids: Vec<Option<i64>> = products.column("product_id").unwrap().i64().unwrap().iter().collect();
    assert!(ids.len() > 300 && !ids.contains(&Some(victim)), "product {victim} was deleted while the fetch ran");
}

#[test]
fn a_truncated_inbox_file_is_rejected_with_its_reason_and_a_fresh_one_waits() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Shopify::start(TOKEN, read_shop(&sample_dir()), "2025-12-01T00:00:00Z");
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let events = std::fs::read(sample_dir().join("events.jsonl.gz")).unwrap();
    std::fs::write(inbox.join("events-cut.jsonl.gz"), &events[..events.len() / 2]).unwrap();
    std::fs::copy(sample_dir().join("webhooks/orders_updated-1.json"), inbox.join("orders_updated-1.json")).unwrap();
    // Both settled: older than the settle time.
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    for f in ["events-cut.jsonl.gz", "orders_updated-1.json"] {
        std::fs::File::options().write(true).open(inbox.join(f)).unwrap().set_modified(old).unwrap();
    }
    // A file still being written.
    std::fs::write(inbox.join("events-fresh.jsonl"), b"").unwrap();
    let root = DataRoot::open(dir.path().join("root").to_str().unwrap()).unwrap();
    let mut options = fetch_options(&fake.url, Mode::Historical);
    options.inbox = Some(inbox.clone());
    let report = shopify::fetch(&root, "test", &options).unwrap();
    let snapshot = &report.landed.snapshot;
    let rejected = inbox.join("rejected").join(snapshot);
    assert!(rejected.join("events-cut.jsonl.gz").is_file());
    let reason = std::fs::read_to_string(rejected.join("events-cut.jsonl.gz.reason")).unwrap();
    assert!(reason.contains("the rest of the file is skipped"), "{reason}");
    assert!(inbox.join("landed").join(snapshot).join("orders_updated-1.json").is_file());
    assert!(inbox.join("events-fresh.jsonl").is_file(), "left for the next run");
    assert_eq!(report.inbox_files, 2);
    // The next run is not failed by it.
    shopify::fetch(&root, "test", &fetch_options(&fake.url, Mode::Incremental)).unwrap();
}

#[test]
fn a_record_skipped_by_a_fetch_is_kept_and_fails_a_strict_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut shop = read_shop(&sample_dir());
    // Shopify changes a field's type: the order no longer lands.
    let order = &mut shop.get_mut("orders").unwrap()[2];
    let mut root = order.root();
    root["test"] = serde_json::json!("no");
    order.set_root(&root);
    let order_id = order.id.clone();
    let fake = Shopify::start(TOKEN, shop, "2025-12-01T00:00:00Z");
    let run = |strict: bool| {
        let mut args = vec!["--root".to_string(), dir.path().join("root").display().to_string(), "--shop".into(), "test".into(), "fetch".into(), "--api-url".into(), fake.url.clone(), "--mode".into(), "historical".into()];
        if strict {
            args.push("--strict".into());
        }
        std::process::Command::new(env!("CARGO_BIN_EXE_shopfeat")).args(&args).env_remove("RUST_LOG").env("SHOPIFY_ACCESS_TOKEN", TOKEN).output().unwrap()
    };
    let lenient = run(false);
    let stderr = String::from_utf8_lossy(&lenient.stderr).into_owned();
    assert!(lenient.status.success(), "{stderr}");
    assert!(stderr.contains("records were not landed") && stderr.contains("--mode historical"), "{stderr}");
    let strict = run(true);
    assert_eq!(strict.status.code(), Some(2), "{}", String::from_utf8_lossy(&strict.stderr));
    // The record is kept whole, with its reason.
    let root = DataRoot::open(dir.path().join("root").to_str().unwrap()).unwrap();
    let manifest = shopfeat::land::snapshots(&root, "test").unwrap().pop().unwrap();
    let rejected = ParquetReader::new(std::io::Cursor::new(root.get(manifest.rejected.as_ref().unwrap()).unwrap().unwrap())).finish().unwrap();
    let records: Vec<&str> = rejected.column("record").unwrap().str().unwrap().iter().flatten().collect();
    assert!(records.iter().any(|r| r.contains(&order_id)), "{records:?}");
}

#[test]
fn a_historical_fetch_that_finds_no_products_does_not_delete_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut shop = read_shop(&sample_dir());
    let fake = Shopify::start(TOKEN, shop.clone(), "2025-12-01T00:00:00Z");
    let root = DataRoot::open(dir.path().to_str().unwrap()).unwrap();
    shopify::fetch(&root, "test", &fetch_options(&fake.url, Mode::Historical)).unwrap();
    shop.insert("products".into(), vec![]);
    fake.set_shop(shop);
    let err = format!("{:#}", shopify::fetch(&root, "test", &fetch_options(&fake.url, Mode::Historical)).unwrap_err());
    assert!(err.contains("returned no products") && err.contains("--allow-mass-delete"), "{err}");
    assert_eq!(shopfeat::land::snapshots(&root, "test").unwrap().len(), 1, "the first snapshot still counts");
    let mut options = fetch_options(&fake.url, Mode::Historical);
    options.allow_mass_delete = true;
    shopify::fetch(&root, "test", &options).unwrap();
    let products = shopfeat::pipeline::normalize(&root, "test", None).unwrap().products.collect().unwrap();
    assert_eq!(products.height(), 0, "asked for: the shop has no products now");
}

#[test]
fn an_export_that_would_delete_a_third_of_gorse_stops() {
    let landed = computed_sample();
    let gorse = Gorse::start(Some(KEY));
    gorse::export(&landed.root, "test", &gorse_options(&gorse.url)).unwrap();
    // product_features loses 40% of its rows (a broken fetch, a wrong shop…).
    let path = feature_file(&landed.root, "test", "product_features");
    let products = ParquetReader::new(std::fs::File::open(&path).unwrap()).finish().unwrap();
    let mut kept = products.head(Some(products.height() * 6 / 10));
    ParquetWriter::new(std::fs::File::create(&path).unwrap()).finish(&mut kept).unwrap();
    let err = gorse::export(&landed.root, "test", &gorse_options(&gorse.url)).unwrap_err().to_string();
    assert!(err.contains("refusing to delete") && err.contains("--allow-mass-delete"), "{err}");
    assert_eq!(gorse.store().items.len(), 350, "nothing was deleted");
    let mut options = gorse_options(&gorse.url);
    options.allow_mass_delete = true;
    let report = gorse::export(&landed.root, "test", &options).unwrap();
    assert_eq!(report.deleted[0], 140);
    assert_eq!(gorse.store().items.len(), 210);
}
