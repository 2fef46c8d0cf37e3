//! `export gorse` against the stand-in (gorse_standin.rs): the sample shop read
//! back object by object, faults, resume after a kill, incremental exports, bad
//! keys, a Gorse that is down, dry runs.

use crate::common::*;
use crate::gorse_standin::{Faults, Gorse, Store};
use polars::prelude::*;
use serde_json::Value;
use shopfeat::config::Secret;
use shopfeat::sinks::gorse::{self, Options, Retry};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const KEY: &str = "s3cr3t-gorse-key";
const SAMPLE_AS_OF: &str = "2025-11-30T23:59:59Z";

/// The sample shop landed and computed into a temporary root, shop `test`.
fn computed_sample() -> Landed {
    let landed = land(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")]);
    crate::common::compute(&landed.root, "test", ts(SAMPLE_AS_OF), Default::default()).unwrap();
    landed
}

fn features(landed: &Landed, table: &str) -> DataFrame {
    let path = feature_file(&landed.root, "test", table);
    ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap()
}

fn options(gorse: &Gorse) -> Options {
    let mut o = Options::new(&gorse.url);
    o.key = Some(Secret::new(KEY));
    o.batch_size = 100;
    o.retry = Retry { max_retries: 12, base_delay: Duration::from_millis(2), max_delay: Duration::from_millis(40) };
    o
}

fn micros(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap().timestamp_micros()
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn by_id<'a>(objects: &'a [Value], field: &str) -> BTreeMap<String, &'a Value> {
    objects.iter().map(|o| (o[field].as_str().unwrap().to_string(), o)).collect()
}

#[test]
fn the_sample_shop_reads_back_object_by_object() {
    let landed = computed_sample();
    let gorse = Gorse::start(Some(KEY));
    let report = gorse::export(&landed.root, "test", &options(&gorse)).unwrap();

    let products = features(&landed, "product_features");
    let items = gorse.list("items");
    assert_eq!(items.len(), products.height(), "one item per product, nothing else");
    let items = by_id(&items, "ItemId");
    let col = |f: &DataFrame, c: &str| f.column(c).unwrap().as_materialized_series().clone();
    let (ids, active, published) = (col(&products, "product_id"), col(&products, "is_active"), col(&products, "published_at").cast(&DataType::Int64).unwrap());
    let (types, handles, tiers, popularity, video) = (col(&products, "product_type"), col(&products, "collection_handles"), col(&products, "price_tier"), col(&products, "popularity_score"), col(&products, "has_video_content"));
    let embeddings = features(&landed, "product_embeddings");
    let vectors: BTreeMap<i64, Vec<f32>> = (0..embeddings.height())
        .filter_map(|i| {
            let id = embeddings.column("product_id").unwrap().i64().unwrap().get(i)?;
            Some((id, embeddings.column("embedding").unwrap().list().unwrap().get_as_series(i)?.f32().unwrap().into_no_null_iter().collect()))
        })
        .collect();
    let (mut hidden, mut embedded) = (0, 0);
    for row in 0..products.height() {
        let id = ids.i64().unwrap().get(row).unwrap();
        let item = items[&id.to_string()];
        let is_active = active.bool().unwrap().get(row).unwrap();
        hidden += !is_active as usize;
        assert_eq!(item["IsHidden"], Value::Bool(!is_active), "{id}");
        let mut expected: Vec<String> = handles.list().unwrap().get_as_series(row).unwrap().str().unwrap().iter().flatten().map(str::to_string).collect();
        if let Some(t) = types.str().unwrap().get(row).filter(|t| !t.is_empty()) {
            expected.push(format!("type:{t}"));
        }
        assert_eq!(item["Categories"], serde_json::json!(expected), "{id}");
        match published.i64().unwrap().get(row) {
            Some(t) => assert_eq!(micros(&item["Timestamp"]), t, "{id}"),
            None => assert_eq!(item["Timestamp"], "0001-01-01T00:00:00Z", "{id}: sent without a timestamp"),
        }
        let labels = &item["Labels"];
        assert_eq!(labels["price_tier"].as_str(), tiers.str().unwrap().get(row), "{id}");
        assert_eq!(labels["popularity"].as_f64().unwrap(), round4(popularity.f64().unwrap().get(row).unwrap()), "{id}");
        assert_eq!(labels["has_video"].as_u64().unwrap(), video.bool().unwrap().get(row).unwrap() as u64, "{id}");
        for (name, value) in labels.as_object().unwrap() {
            if name == "embedding" {
                continue;
            }
            assert!(value.is_string() || value.as_f64().is_some_and(|x| (0.0..=1.0).contains(&x)), "{id}: label {name} = {value}");
        }
        // The vector of product_embeddings, to 5 decimals; no key without one.
        let sent: Option<Vec<f64>> = labels.get("embedding").map(|v| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect());
        let expected: Option<Vec<f64>> = vectors.get(&id).map(|v| v.iter().map(|x| (f64::from(*x) * 100_000.0).round() / 100_000.0).collect());
        assert_eq!(sent, expected, "{id}: the embedding label");
        embedded += expected.is_some() as usize;
    }
    assert!(hidden > 0 && hidden < products.height(), "the sample has active and hidden products ({hidden} hidden)");
    assert!(embedded > 0 && embedded < products.height(), "{embedded} items with an embedding label");

    let customers = features(&landed, "user_features");
    let users = gorse.list("users");
    assert_eq!(users.len(), customers.height(), "one user per customer, nothing else");
    let users = by_id(&users, "UserId");
    let (cids, segments, health) = (col(&customers, "customer_id"), col(&customers, "rfm_segment"), col(&customers, "customer_health_score"));
    for row in 0..customers.height() {
        let id = cids.i64().unwrap().get(row).unwrap().to_string();
        let labels = &users[&id]["Labels"];
        assert_eq!(labels["rfm_segment"].as_str(), segments.str().unwrap().get(row), "{id}");
        assert_eq!(labels["health"].as_f64().unwrap(), health.i64().unwrap().get(row).unwrap() as f64 / 100.0, "{id}");
    }
    // The lifetime labels, from customer_lifetime_features: p_alive as it is,
    // expected value on the log scale; none for customers without a history.
    let lifetime = features(&landed, "customer_lifetime_features");
    let (lids, p_alive, value) = (col(&lifetime, "customer_id"), col(&lifetime, "p_alive"), col(&lifetime, "expected_value_90d"));
    let mut with_labels = 0;
    for row in 0..lifetime.height() {
        let labels = &users[&lids.i64().unwrap().get(row).unwrap().to_string()]["Labels"];
        match (p_alive.f64().unwrap().get(row), value.f64().unwrap().get(row)) {
            (Some(p), Some(v)) => {
                assert_eq!(labels["p_alive"].as_f64().unwrap(), round4(p));
                assert_eq!(labels["expected_value_90d"].as_f64().unwrap(), round4(v.ln_1p() / 10_000f64.ln_1p()));
                with_labels += 1;
            }
            _ => assert!(labels.get("p_alive").is_none() && labels.get("expected_value_90d").is_none(), "{labels}"),
        }
    }
    assert!(with_labels > 30, "{with_labels} users with lifetime labels");

    // Feedback: one per positive count of each interaction, with its latest time.
    let interactions = features(&landed, "interaction_features");
    let mut expected = BTreeMap::new();
    let number = |c: &str| col(&interactions, c).cast(&DataType::Int64).unwrap();
    for (kind, count, at) in [("purchase", "purchase_count", "last_purchase_at"), ("add_to_cart", "cart_add_count", "last_cart_add_at"), ("view", "view_count", "last_view_at")] {
        let (customer, product, count, at) = (number("customer_id"), number("product_id"), number(count), number(at));
        for row in 0..interactions.height() {
            if count.i64().unwrap().get(row).unwrap() > 0 {
                let key = (kind.to_string(), customer.i64().unwrap().get(row).unwrap().to_string(), product.i64().unwrap().get(row).unwrap().to_string());
                expected.insert(key, (count.i64().unwrap().get(row).unwrap() as f64, at.i64().unwrap().get(row).unwrap()));
            }
        }
    }
    let feedback = gorse.list("feedback");
    let got: BTreeMap<(String, String, String), (f64, i64)> = feedback
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap().to_string();
            ((s("FeedbackType"), s("UserId"), s("ItemId")), (f["Value"].as_f64().unwrap(), micros(&f["Timestamp"])))
        })
        .collect();
    let missing: Vec<_> = expected.iter().filter(|(k, v)| got.get(*k) != Some(v)).take(5).collect();
    let extra: Vec<_> = got.iter().filter(|(k, v)| expected.get(*k) != Some(v)).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty() && got.len() == expected.len(), "missing or different: {missing:?}; unexpected: {extra:?}");
    assert!(expected.keys().any(|k| k.0 == "add_to_cart") && expected.keys().any(|k| k.0 == "purchase"));
    assert_eq!(report.upserted, [products.height() as u64, customers.height() as u64, expected.len() as u64]);
    assert_eq!(report.deleted, [0, 0, 0]);
}

#[test]
fn faults_and_retries_leave_the_same_final_state() {
    let landed = computed_sample();
    let clean = Gorse::start(Some(KEY));
    gorse::export(&landed.root, "test", &options(&clean)).unwrap();

    let faulty = Gorse::start(Some(KEY));
    faulty.set_faults(Faults { server_error: 0.2, too_many: 0.1, slow: 0.05, slow_for: Duration::from_millis(800), dropped: 0.05, latency: Duration::ZERO });
    let mut o = options(&faulty);
    o.batch_size = 40;
    o.timeout = Duration::from_millis(300);
    let other = landed.root.local_dir().unwrap().join("other");
    let root = shopfeat::storage::DataRoot::open(other.to_str().unwrap()).unwrap();
    copy_dir(&landed.root.local_dir().unwrap().join("test"), &other.join("test"));
    let report = gorse::export(&root, "test", &o).unwrap();
    assert!(report.retries >= 10, "{} retries", report.retries);
    assert_eq!(faulty.store(), clean.store());
}

#[test]
fn a_second_export_sends_only_what_changed() {
    let landed = computed_sample();
    let gorse = Gorse::start(Some(KEY));
    gorse::export(&landed.root, "test", &options(&gorse)).unwrap();
    let first = gorse.store();

    gorse.reset_counts();
    let report = gorse::export(&landed.root, "test", &options(&gorse)).unwrap();
    assert_eq!((report.rows_sent(), gorse.total_requests()), (0, 0), "nothing changed, nothing sent");

    // Three products change their price tier; one disappears from the catalog.
    let path = feature_file(&landed.root, "test", "product_features");
    let mut products = features(&landed, "product_features");
    let ids: Vec<i64> = products.column("product_id").unwrap().i64().unwrap().iter().flatten().collect();
    // The product with the most feedback disappears.
    let mut feedback_per_item: BTreeMap<i64, usize> = BTreeMap::new();
    for (_, _, item) in first.feedback.keys() {
        *feedback_per_item.entry(item.parse().unwrap()).or_default() += 1;
    }
    let removed = *feedback_per_item.iter().max_by_key(|(_, n)| **n).unwrap().0;
    let changed: Vec<i64> = ids.iter().copied().filter(|id| *id != removed).take(3).collect();
    let tiers = products.column("price_tier").unwrap().str().unwrap().iter().zip(&ids).map(|(t, id)| if changed.contains(id) { Some("changed") } else { t }).collect::<StringChunked>();
    products.with_column(tiers.into_series().with_name("price_tier".into()).into()).unwrap();
    let keep = products.column("product_id").unwrap().i64().unwrap().not_equal(removed);
    let mut products = products.filter(&keep).unwrap();
    ParquetWriter::new(std::fs::File::create(&path).unwrap()).finish(&mut products).unwrap();

    gorse.reset_counts();
    let report = gorse::export(&landed.root, "test", &options(&gorse)).unwrap();
    let removed_feedback = first.feedback.keys().filter(|(_, _, item)| *item == removed.to_string()).count() as u64;
    assert_eq!(report.upserted, [3, 0, 0]);
    assert_eq!(report.deleted, [1, 0, removed_feedback]);
    let requests = gorse.requests();
    assert_eq!(requests.get("POST /api/items"), Some(&1));
    assert_eq!(requests.get("DELETE /api/item"), Some(&1));
    assert_eq!(requests.get("DELETE /api/feedback"), Some(&removed_feedback));
    assert_eq!(requests.len(), 3, "{requests:?}");
    let now = gorse.store();
    assert!(!now.items.contains_key(&removed.to_string()));
    for id in &changed {
        assert_eq!(now.items[&id.to_string()]["Labels"]["price_tier"], "changed");
    }
    assert_eq!(now.items.len(), first.items.len() - 1);
    // Rows were deleted: the rows file was written whole, naming none of them.
    let (rows_file, journal) = ("test/state/gorse-rows.parquet", "test/state/gorse-rows-journal.parquet");
    assert!(landed.root.get(journal).unwrap().is_none());
    let written = landed.root.get(rows_file).unwrap().expect("the rows Gorse holds");
    let keys = ParquetReader::new(std::io::Cursor::new(written.clone())).finish().unwrap();
    assert!(!keys.column("key").unwrap().str().unwrap().iter().flatten().any(|k| k == format!("item:{removed}")));

    // Two more products change, nothing is deleted: those rows go to the
    // journal, the rows file stays as it was; the next export reads both and
    // has nothing to send.
    let again: Vec<i64> = ids.iter().copied().filter(|id| *id != removed && !changed.contains(id)).take(2).collect();
    let tiers = products.column("price_tier").unwrap().str().unwrap().iter().zip(products.column("product_id").unwrap().i64().unwrap().iter()).map(|(t, id)| if again.contains(&id.unwrap()) { Some("changed again") } else { t }).collect::<StringChunked>();
    products.with_column(tiers.into_series().with_name("price_tier".into()).into()).unwrap();
    ParquetWriter::new(std::fs::File::create(&path).unwrap()).finish(&mut products).unwrap();
    let report = gorse::export(&landed.root, "test", &options(&gorse)).unwrap();
    assert_eq!((report.upserted, report.deleted), ([2, 0, 0], [0, 0, 0]));
    assert_eq!(landed.root.get(rows_file).unwrap().unwrap(), written, "the rows file is not rewritten for a few rows");
    assert!(landed.root.get(journal).unwrap().is_some());
    let report = gorse::export(&landed.root, "test", &options(&gorse)).unwrap();
    assert_eq!(report.rows_sent(), 0, "the journal read back: nothing changed since");

    // --full resends every row; deletions are already done. Every row
    // recorded again: the rows file is written whole, the journal removed.
    let mut o = options(&gorse);
    o.full = true;
    let report = gorse::export(&landed.root, "test", &o).unwrap();
    assert_eq!(report.upserted[0], products.height() as u64);
    assert_eq!(report.deleted, [0, 0, 0]);
    assert!(landed.root.get(journal).unwrap().is_none());
    assert_ne!(landed.root.get(rows_file).unwrap().unwrap(), written);
    let report = gorse::export(&landed.root, "test", &options(&gorse)).unwrap();
    assert_eq!(report.rows_sent(), 0);
}

#[test]
fn a_dry_run_writes_the_requests_without_the_key_and_sends_nothing() {
    let landed = computed_sample();
    let gorse = Gorse::start(Some(KEY));
    let file = landed.root.local_dir().unwrap().join("requests.jsonl");
    let mut o = options(&gorse);
    o.dry_run = Some(file.clone());
    let report = gorse::export(&landed.root, "test", &o).unwrap();
    assert_eq!(gorse.total_requests(), 0);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(KEY));
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len() as u64, report.requests);
    assert_eq!(lines[0]["method"], "POST");
    assert_eq!(lines[0]["path"], "/api/items");
    let rows: u64 = lines.iter().map(|l| l["body"].as_array().map_or(0, |b| b.len() as u64)).sum();
    assert_eq!(rows, report.rows_sent());
    assert!(lines.iter().any(|l| l["method"] == "PUT" && l["path"] == "/api/feedback"));
    // Nothing was delivered, so nothing is remembered.
    assert!(!landed.root.local_dir().unwrap().join("test/state.json").exists());
}

#[test]
fn ids_get_the_prefix_and_a_prefix_with_a_slash_is_refused() {
    let landed = computed_sample();
    let gorse = Gorse::start(None);
    let mut o = options(&gorse);
    o.prefix = "shop1-".into();
    gorse::export(&landed.root, "test", &o).unwrap();
    let store = gorse.store();
    assert!(store.items.keys().chain(store.users.keys()).all(|id| id.starts_with("shop1-")));
    assert!(store.feedback.keys().all(|(_, u, i)| u.starts_with("shop1-") && i.starts_with("shop1-")));
    o.prefix = "shop/1".into();
    let err = gorse::export(&landed.root, "test", &o).unwrap_err().to_string();
    assert!(err.contains("prefix") && err.contains("'/'"), "{err}");
}

fn shopfeat(root: &Path, args: &[&str], key: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shopfeat"));
    c.args(["--root", root.to_str().unwrap(), "--shop", "test"]).args(args).env_remove("RUST_LOG").env_remove("GORSE_URL").env("GORSE_API_KEY", key);
    c
}

#[test]
fn a_bad_key_is_one_clear_error_line_without_the_key() {
    let landed = computed_sample();
    let gorse = Gorse::start(Some(KEY));
    let out = shopfeat(landed.root.local_dir().unwrap(), &["-vv", "export", "gorse", "--url", &gorse.url], "wrong-key-123").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap();
    assert!(last.starts_with("error: ") && last.contains("refused the API key") && last.contains("401: unauthorized"), "{stderr}");
    assert!(!stderr.contains("wrong-key-123") && !String::from_utf8_lossy(&out.stdout).contains("wrong-key-123"));
    assert!(gorse.store().items.is_empty());
}

#[test]
fn gorse_down_means_bounded_retries_then_a_clear_error() {
    let landed = computed_sample();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let out = shopfeat(landed.root.local_dir().unwrap(), &["export", "gorse", "--url", &url, "--max-retries", "3"], KEY).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gave no answer") && stderr.contains("after 4 attempts") && stderr.contains("could not connect"), "{stderr}");
    assert!(!stderr.contains(KEY));
    // 3 backoffs of at most 0.25·(1 + 2 + 4) s.
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

#[test]
fn a_killed_export_resumes_and_ends_in_the_same_state() {
    let landed = computed_sample();
    let root = landed.root.local_dir().unwrap().to_path_buf();
    let reference = Gorse::start(Some(KEY));
    let full = export_cli(&root.join("reference"), &landed, &reference);

    let gorse = Gorse::start(Some(KEY));
    gorse.set_faults(Faults { latency: Duration::from_millis(25), ..Faults::default() });
    let args = ["export", "gorse", "--url", &gorse.url, "--batch-size", "20", "--in-flight", "2", "--checkpoint-secs", "0.05"];
    let mut child = shopfeat(&root, &args, KEY).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while gorse.total_requests() < full / 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before_kill = gorse.total_requests();
    assert!(before_kill < full, "killed before the end ({before_kill} of {full})");

    gorse.reset_counts();
    gorse.set_faults(Faults::default());
    let out = shopfeat(&root, &args, KEY).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let resumed = gorse.total_requests();
    assert!(resumed < full, "resumed with {resumed} requests, a full export is {full}");
    assert!(resumed + before_kill >= full);
    assert_eq!(gorse.store(), reference.store());
}

/// An export that fails while it writes its record of what Gorse holds whole
/// — after removing the journal, before the new rows file (failpoint
/// `gorse-rows-whole`) — leaves the older rows file: the next export sends the
/// journaled rows again (and deletes again what was deleted), never skips one,
/// and Gorse ends as a clean export of the same tables leaves it.
#[test]
fn an_export_failing_between_its_journal_and_its_rows_file_resends_and_skips_nothing() {
    let landed = computed_sample();
    let root = landed.root.local_dir().unwrap().to_path_buf();
    let gorse = Gorse::start(Some(KEY));
    let export = |failpoints: &str| shopfeat(&root, &["export", "gorse", "--url", &gorse.url, "--batch-size", "20"], KEY).env("SHOPFEAT_FAILPOINTS", failpoints).output().unwrap();
    let (rows_file, journal) = (root.join("test/state/gorse-rows.parquet"), root.join("test/state/gorse-rows-journal.parquet"));
    let out = export("");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first_record = std::fs::read(&rows_file).unwrap();

    // Rewrites product_features: `tier` for `changed`, without `removed`.
    let path = feature_file(&landed.root, "test", "product_features");
    let ids: Vec<i64> = features(&landed, "product_features").column("product_id").unwrap().i64().unwrap().iter().flatten().collect();
    let rewrite = |changed: &[i64], tier: &str, removed: Option<i64>| {
        let mut products = features(&landed, "product_features");
        let tiers = products.column("price_tier").unwrap().str().unwrap().iter().zip(&ids).map(|(t, id)| if changed.contains(id) { Some(tier) } else { t }).collect::<StringChunked>();
        products.with_column(tiers.into_series().with_name("price_tier".into()).into()).unwrap();
        let keep = products.column("product_id").unwrap().i64().unwrap().not_equal(removed.unwrap_or(i64::MIN));
        ParquetWriter::new(std::fs::File::create(&path).unwrap()).finish(&mut products.filter(&keep).unwrap()).unwrap();
    };
    // Two products change: their rows are journaled.
    rewrite(&ids[..2], "journaled", None);
    assert!(export("").status.success());
    assert!(journal.is_file());
    assert_eq!(std::fs::read(&rows_file).unwrap(), first_record);
    // One more changes and one goes: the deletion makes the record be written
    // whole, and the export fails between the journal and the rows file.
    rewrite(&ids[..3], "journaled", Some(ids[5]));
    let out = export("gorse-rows-whole=fail");
    assert!(!out.status.success(), "the failpoint fails the export");
    assert!(!journal.exists(), "the journal went first");
    assert_eq!(std::fs::read(&rows_file).unwrap(), first_record, "the older record stays");

    let out = export("");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reference = Gorse::start(Some(KEY));
    export_cli(&root.join("reference"), &landed, &reference);
    assert_eq!(gorse.store(), reference.store(), "Gorse holds what a clean export of the same tables gives");
    assert!(!gorse.store().items.contains_key(&ids[5].to_string()));
    for id in &ids[..3] {
        assert_eq!(gorse.store().items[&id.to_string()]["Labels"]["price_tier"], "journaled");
    }
    // And the record is whole again: nothing left to send.
    gorse.reset_counts();
    assert!(export("").status.success());
    assert_eq!(gorse.total_requests(), 0);
    assert!(!journal.exists());
}

/// Exports a copy of the sample's features through the binary; returns the requests.
fn export_cli(root: &PathBuf, landed: &Landed, gorse: &Gorse) -> u64 {
    copy_dir(&landed.root.local_dir().unwrap().join("test/features"), &root.join("test/features"));
    let out = shopfeat(root, &["export", "gorse", "--url", &gorse.url, "--batch-size", "20"], KEY).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    gorse.total_requests()
}

#[test]
fn run_exports_when_a_gorse_url_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let gorse = Gorse::start(Some(KEY));
    let config = dir.path().join("shopfeat.toml");
    std::fs::write(&config, format!("[gorse]\nurl = \"{}\"\napi_key = \"{KEY}\"\nbatch_size = 500\n", gorse.url)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shopfeat"))
        .args(["--root", dir.path().join("out").to_str().unwrap(), "--config", config.to_str().unwrap(), "run"])
        .env_remove("GORSE_URL")
        .env_remove("GORSE_API_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("gorse: sent 350 items, 381 users"), "{stdout}");
    let store: Store = gorse.store();
    assert_eq!((store.items.len(), store.users.len()), (350, 381));
    let ids: BTreeSet<&String> = store.feedback.keys().map(|(_, _, i)| i).collect();
    assert!(ids.iter().all(|i| store.items.contains_key(*i)));
}

#[test]
fn credentials_in_the_gorse_url_are_never_written_down() {
    let landed = computed_sample();
    let gorse = Gorse::start(None);
    let url = gorse.url.replace("http://", "http://admin:hunter2@");
    gorse::export(&landed.root, "test", &Options { url, ..options(&gorse) }).unwrap();
    let state = std::fs::read_to_string(landed.root.local_dir().unwrap().join("test/state.json")).unwrap();
    assert!(state.contains(&gorse.url) && !state.contains("hunter2") && !state.contains("admin"), "{state}");
    assert_eq!(gorse.store().items.len(), 350);
}

/// Every object a dry run would upsert, by key (`ItemId`, `UserId`, or
/// `type/UserId/ItemId` for feedback).
fn dry_run_objects(landed: &Landed, gorse: &Gorse, full: bool) -> BTreeMap<String, Value> {
    let file = landed.root.local_dir().unwrap().join("objects.jsonl");
    let mut o = options(gorse);
    (o.dry_run, o.full, o.allow_mass_delete) = (Some(file.clone()), full, true);
    gorse::export(&landed.root, "test", &o).unwrap();
    let mut objects = BTreeMap::new();
    for line in std::fs::read_to_string(&file).unwrap().lines() {
        let request: Value = serde_json::from_str(line).unwrap();
        for object in request["body"].as_array().into_iter().flatten() {
            let key = match (&object["ItemId"], &object["UserId"], &object["FeedbackType"]) {
                (Value::String(item), _, Value::Null) => item.clone(),
                (Value::Null, Value::String(user), _) => user.clone(),
                (Value::String(item), Value::String(user), Value::String(kind)) => format!("{kind}/{user}/{item}"),
                other => panic!("not an object Gorse takes: {other:?}"),
            };
            objects.insert(key, object.clone());
        }
    }
    objects
}

/// `column` changed in every fifth row (starting at `offset`): numbers, text,
/// flags, times and lists each get another value; nulls get one.
fn perturbed(frame: &DataFrame, column: &str, offset: usize) -> DataFrame {
    let c = frame.column(column).unwrap().as_materialized_series().clone();
    let hit = |i: usize| i % 5 == offset % 5;
    let changed: Series = match c.dtype() {
        DataType::Int64 => c.i64().unwrap().iter().enumerate().map(|(i, v)| if hit(i) { Some(v.unwrap_or(3) * 2 + 1) } else { v }).collect::<Int64Chunked>().into_series(),
        DataType::Float64 => c.f64().unwrap().iter().enumerate().map(|(i, v)| if hit(i) { Some(v.unwrap_or(0.2) * 1.5 + 0.37) } else { v }).collect::<Float64Chunked>().into_series(),
        DataType::Boolean => c.bool().unwrap().iter().enumerate().map(|(i, v)| if hit(i) { Some(!v.unwrap_or(false)) } else { v }).collect::<BooleanChunked>().into_series(),
        DataType::String => c.str().unwrap().iter().enumerate().map(|(i, v)| if hit(i) { Some(format!("{}~", v.unwrap_or("x"))) } else { v.map(str::to_string) }).collect::<StringChunked>().into_series(),
        DataType::Datetime(_, _) | DataType::Date => {
            let physical = c.to_physical_repr().cast(&DataType::Int64).unwrap();
            let moved: Int64Chunked = physical.i64().unwrap().iter().enumerate().map(|(i, v)| if hit(i) { Some(v.unwrap_or(1_700_000_000_000_000) + 1_000_000) } else { v }).collect();
            moved.into_series().cast(c.dtype()).unwrap()
        }
        DataType::List(inner) => {
            let extra = Series::new("".into(), [if **inner == DataType::String { "extra" } else { "1" }]).cast(inner).unwrap();
            let list = c.list().unwrap();
            let lists: Vec<Option<Series>> = (0..list.len())
                .map(|i| {
                    let l = list.get_as_series(i);
                    if hit(i) { Some(l.unwrap_or_else(|| extra.clear()).append(&extra).unwrap().clone()) } else { l }
                })
                .collect();
            Series::new("".into(), lists).cast(c.dtype()).unwrap()
        }
        other => panic!("{column}: no perturbation for {other}"),
    };
    let mut frame = frame.clone();
    frame.with_column(changed.with_name(column.into()).into_column()).unwrap();
    frame
}

/// Fingerprints cover every value of an object: whichever column changes, the
/// export sends exactly the objects whose JSON changed (found by comparing what a
/// full dry run would send before and after) — none missed, none extra.
#[test]
fn an_export_sends_exactly_the_objects_whose_json_changed() {
    let landed = computed_sample();
    let gorse = Gorse::start(Some(KEY));
    gorse::export(&landed.root, "test", &options(&gorse)).unwrap();
    let before = dry_run_objects(&landed, &gorse, true);
    let mut columns_that_matter = 0;
    for table in ["product_features", "user_features", "interaction_features", "customer_lifetime_features"] {
        let original = features(&landed, table);
        let path = feature_file(&landed.root, "test", table);
        for (n, column) in original.get_column_names().into_iter().enumerate() {
            let mut changed = perturbed(&original, column, n);
            ParquetWriter::new(std::fs::File::create(&path).unwrap()).finish(&mut changed).unwrap();
            let after = dry_run_objects(&landed, &gorse, true);
            let differ: BTreeSet<&String> = after.iter().filter(|(key, object)| before.get(*key) != Some(*object)).map(|(key, _)| key).collect();
            let sent = dry_run_objects(&landed, &gorse, false);
            assert_eq!(sent.keys().collect::<BTreeSet<_>>(), differ, "{table}.{column} changed");
            // A changed id can also drop objects (feedback of a user no longer known).
            columns_that_matter += usize::from(!differ.is_empty() || after.len() != before.len());
        }
        let mut original = original;
        ParquetWriter::new(std::fs::File::create(&path).unwrap()).finish(&mut original).unwrap();
    }
    // Items: id, hidden, categories (2 columns), comment, timestamp and 12 labels;
    // users: id and 14 labels; feedback: 2 ids and 3 × (count, time); the
    // lifetime table: its customer id and 2 labels.
    assert_eq!(columns_that_matter, 18 + 15 + 8 + 3);
    assert!(dry_run_objects(&landed, &gorse, false).is_empty(), "the tables restored, nothing to send");
}
