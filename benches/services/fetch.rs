//! A historical run (fetch + compute) of a generated shop through the tests' fake
//! Admin API (`shopify_fake.rs`), then an incremental run after 1% of its orders,
//! products and customers change.
//! `SHOPFEAT_BENCH=fetch SHOPFEAT_FETCH_SHOP=~/.cache/shopfeat-bench/medium-42 cargo bench --bench pipeline`

use crate::shopify_fake::{read_shop, Shopify};
use serde_json::json;
use shopfeat::config::Secret;
use shopfeat::pipeline::{self, ComputeOptions};
use shopfeat::shopify::{FetchOptions, Mode};
use shopfeat::storage::DataRoot;
use std::path::PathBuf;
use std::time::Duration;

pub fn run() {
    let shop_dir = PathBuf::from(std::env::var("SHOPFEAT_FETCH_SHOP").expect("SHOPFEAT_FETCH_SHOP: a generated shop directory"));
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(shop_dir.join("manifest.json")).expect("manifest")).expect("manifest JSON");
    let as_of = shopfeat::time::parse_time(manifest["as_of"].as_str().expect("as_of")).expect("as_of");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut shop = read_shop(&shop_dir);
    let token = "shpat_bench";
    let fake = Shopify::start(token, shop.clone(), "2025-12-01T00:00:00Z");
    let root = DataRoot::open(dir.path().join("root").to_str().expect("utf-8 path")).expect("root");
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    std::fs::copy(shop_dir.join("events.jsonl"), inbox.join("events.jsonl")).expect("events into the inbox");
    let mut options = FetchOptions::new(&fake.url, Secret::new(token), Mode::Historical);
    options.inbox = Some(inbox);
    options.inbox_settle = Duration::ZERO;
    options.polling.max = Duration::from_millis(20);
    let timed = |what: &str, options: &FetchOptions| {
        let fetched = pipeline::fetch(&root, "bench", options).expect("fetch");
        let computed = pipeline::compute_and_publish(&root, "bench", &ComputeOptions::at(as_of)).expect("compute");
        let fetch_s: f64 = fetched.stages.iter().map(|s| s.seconds).sum();
        let compute_s: f64 = computed.stages.iter().map(|s| s.seconds).sum();
        println!("{what}: {} objects; fetch + land {fetch_s:.1} s, compute {compute_s:.1} s, total {:.1} s", fetched.fetched.objects.values().sum::<u64>(), fetch_s + compute_s);
    };
    timed("historical", &options);
    for entity in ["orders", "products", "customers"] {
        let records = shop.get_mut(entity).expect("entity");
        let n = records.len();
        for record in records.iter_mut().step_by(100).take(n / 100) {
            let mut root = record.root();
            root["updatedAt"] = json!("2025-12-01T12:00:00Z");
            root["tags"] = json!(["changed"]);
            record.set_root(&root);
        }
    }
    fake.set_shop(shop);
    fake.set_clock("2025-12-02T00:00:00Z");
    options.mode = Mode::Incremental;
    options.inbox = None;
    timed("incremental after a 1% change", &options);
}
