//! `shopfeat serve` under load, against the tests' in-process Gorse stand-in:
//! - latency from a `products/update` delivery acknowledged to the item updated
//!   in Gorse (the fast lane), three times, for a shop computed and exported
//!   beforehand;
//! - latency from an `orders/create` delivery (a customer who bought before, a
//!   product new to them) acknowledged to its purchase feedback in Gorse (the
//!   fast lane), three times;
//! - a `customers/update` delivery → its debounced cycle (the whole shop
//!   recomputed, published and exported) ended, three times: the process's
//!   first such cycle, the next, which starts from the events and order
//!   tables the first kept, and one after a pixel batch, whose events are
//!   added to the kept ones;
//! - webhook deliveries paced at a target rate for a few seconds while cycles
//!   run, each acknowledgement timed (p50, p99, max).
//!
//! `SHOPFEAT_BENCH=serve cargo bench --bench pipeline`; env
//! `SHOPFEAT_SERVE_PRESET` (sample, default; medium or large), `SHOPFEAT_SERVE_RATE`
//! (deliveries/s, default 1000), `SHOPFEAT_SERVE_SECONDS` (default 5),
//! `SHOPFEAT_SERVE_KEEP` (0: cycles keep nothing between them).

use crate::gorse_standin::Gorse;
use crate::webhook_client::{deliver, Server};
use serde_json::json;
use shopfeat::config::Secret;
use shopfeat::generate::PresetName;
use shopfeat::land::inbox::Inbox;
use shopfeat::serve::{ServeOptions, ShopSpec};
use shopfeat::storage::DataRoot;
use std::time::{Duration, Instant};

const SECRET: &str = "bench-app-secret";
const DOMAIN: &str = "bench.myshopify.com";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A REST product payload for `id`, as a `products/update` delivery carries it.
fn product(id: i64, title: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id, "title": title, "vendor": "Bench", "product_type": "Bench", "handle": format!("p-{id}"), "status": "active",
        "created_at": "2025-01-01T00:00:00Z", "updated_at": shopfeat::time::now_rfc3339(), "published_at": "2025-01-01T00:00:00Z",
        "tags": "", "variants": [{"id": id * 10 + 1, "product_id": id, "title": "Default", "price": "10.00", "sku": null,
        "inventory_quantity": 5, "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z"}], "images": []
    }))
    .expect("JSON")
}

/// A REST order `id` of `customer` for one unit of `product`, created now.
fn order(id: i64, customer: i64, product: i64) -> Vec<u8> {
    let now = shopfeat::time::now_rfc3339();
    serde_json::to_vec(&json!({
        "id": id, "name": format!("#B{id}"), "created_at": now, "updated_at": now, "processed_at": now, "test": false,
        "currency": "USD", "financial_status": "paid", "total_price": "10.00", "subtotal_price": "10.00", "total_discounts": "0.00",
        "customer": {"id": customer},
        "line_items": [{"id": id * 10, "product_id": product, "variant_id": null, "title": "Bench", "quantity": 1, "price": "10.00", "total_discount": "0.00"}]
    }))
    .expect("JSON")
}

pub fn run() {
    let preset = match std::env::var("SHOPFEAT_SERVE_PRESET").as_deref().unwrap_or("sample") {
        "medium" => PresetName::Medium,
        "large" => PresetName::Large,
        _ => PresetName::Sample,
    };
    let (shop_dir, _) = crate::cached_shop(preset);
    let dir = tempfile::tempdir().expect("temp dir");
    let root_url = dir.path().display().to_string();
    let root = DataRoot::open(&root_url).expect("root");
    let gorse = Gorse::start(None);
    let gorse_options = shopfeat::sinks::gorse::Options::new(&gorse.url);
    // Last night's run at the time cycles use (now), so a cycle sends Gorse what
    // the delivery changed, not what moving T from the shop's clock to now did.
    let nightly = shopfeat::pipeline::RunOptions {
        source: shopfeat::pipeline::Source::Files(vec![shop_dir.clone()]),
        as_of: Some(shopfeat::time::now_us()),
        pairs: Default::default(),
        keep_generations: 2,
        gorse: Some(gorse_options.clone()),
        compaction: shopfeat::land::compact::Policy::never(),
        kept: None,
    };
    let started = Instant::now();
    shopfeat::pipeline::run(&root, "bench", &nightly).expect("the nightly run").check().expect("rows");
    println!("{preset:?}: nightly run with export {:.2} s, {} items in Gorse", started.elapsed().as_secs_f64(), gorse.store().items.len());

    let inbox = Inbox::new(dir.path().join("bench/inbox"));
    let spec = ShopSpec {
        id: "bench".into(),
        domain: Some(DOMAIN.into()),
        inbox: inbox.clone(),
        full_source: None,
        gorse: Some(gorse_options),
        pairs: Default::default(),
        schedule: None,
        pixel_token: None,
        origins: vec![],
    };
    let mut options = ServeOptions::new("127.0.0.1:0", &root_url, vec![spec], Secret::new(SECRET));
    // Under a steady stream no pause ever comes: a cycle starts a second after
    // the first waiting delivery, so cycles run while the load goes on.
    options.max_delay = Duration::from_secs(1);
    // `SHOPFEAT_SERVE_KEEP=0`: every cycle normalizes from the store alone
    // (`--no-keep-normalized`), to compare.
    let keep = env_or("SHOPFEAT_SERVE_KEEP", 1) != 0;
    options.keep_normalized = keep;
    let debounce = options.debounce;
    let server = Server::start(options);
    let item_ids: Vec<String> = gorse.store().items.keys().take(3).cloned().collect();

    let mut latencies = vec![];
    for (round, item) in item_ids.iter().enumerate() {
        let id: i64 = item.parse().expect("numeric item id");
        let title = format!("bench rename {round}");
        let sent = Instant::now();
        let ack = deliver(server.addr, SECRET, DOMAIN, "products/update", &format!("latency-{round}"), &product(id, &title));
        assert_eq!(ack.status, 200);
        loop {
            if gorse.item(item).is_some_and(|i| i["Comment"] == title.as_str()) {
                break;
            }
            assert!(sent.elapsed() < Duration::from_secs(300), "the item never changed in Gorse");
            std::thread::sleep(Duration::from_millis(10));
        }
        latencies.push(sent.elapsed().as_secs_f64());
        // Let the cycle finish its run history before the next round.
        std::thread::sleep(Duration::from_millis(200));
    }
    // An order of a customer Gorse has, for a product they never bought.
    let users = gorse.user_ids();
    let mut order_latencies = vec![];
    for round in 0..3 {
        let customer = &users[round * 7 % users.len()];
        let item = &item_ids[round];
        assert!(gorse.feedback("purchase", customer, item).is_none(), "a product new to the customer");
        let sent = Instant::now();
        let ack = deliver(server.addr, SECRET, DOMAIN, "orders/create", &format!("order-{round}"), &order(8_000_000 + round as i64, customer.parse().expect("numeric user id"), item.parse().expect("numeric item id")));
        assert_eq!(ack.status, 200);
        while gorse.feedback("purchase", customer, item).is_none() {
            assert!(sent.elapsed() < Duration::from_secs(300), "the purchase never reached Gorse");
            std::thread::sleep(Duration::from_millis(10));
        }
        order_latencies.push(sent.elapsed().as_secs_f64());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Where a fast cycle's time goes: the stages of the last one of each kind.
    let history = shopfeat::history::load(&root, "bench").expect("history");
    for named in ["products", "orders"] {
        let reports = history.iter().rev().filter(|r| r.command == "serve fast").map(|r| (r, serde_json::from_str::<serde_json::Value>(r.report.as_deref().unwrap_or("{}")).expect("report JSON")));
        let Some((record, report)) = reports.into_iter().find(|(_, report)| report[named].as_array().is_some_and(|ids| !ids.is_empty())) else { continue };
        let stages: Vec<String> = [&report["land"]["stages"], &report["stages"]]
            .iter()
            .filter_map(|s| s.as_array())
            .flatten()
            .map(|s| format!("{} {:.3}", s["stage"].as_str().unwrap_or("?"), s["seconds"].as_f64().unwrap_or(0.0)))
            .collect();
        println!("{preset:?}: last fast cycle for {named}: {:.3} s in all; its stages (s): {}", record.seconds.unwrap_or(0.0), stages.join(", "));
    }
    println!("{preset:?}: products/update acknowledged → item updated in Gorse (fast lane): {:?} s", latencies.iter().map(|l| format!("{l:.3}")).collect::<Vec<_>>());
    println!("{preset:?}: orders/create acknowledged → its purchase feedback in Gorse (fast lane): {:?} s", order_latencies.iter().map(|l| format!("{l:.3}")).collect::<Vec<_>>());

    // A delivery the fast lane does not take: the debounced cycle recomputes
    // the whole shop. Twice: the process's first such cycle makes what it
    // keeps of the shop's normalization (`ServeOptions::keep_normalized`), the
    // next starts from it, as every later cycle of a long-lived server does.
    // A third after a batch of pixel events (written to the inbox as the
    // pixel route writes it): the new events are added to the kept ones.
    let rounds = ["the process's first", "the next", "the next, after 100 pixel events"];
    for (round, what) in rounds.into_iter().enumerate() {
        let what = format!("{what}{}", if keep { "" } else { ", nothing kept: SHOPFEAT_SERVE_KEEP=0" });
        if round == 2 {
            let at = shopfeat::time::now_rfc3339();
            let batch: String = (0..100).map(|n| format!("{}\n", json!({"id": format!("bench-pixel-{n}"), "name": "page_viewed", "clientId": format!("bench-browser-{}", n % 7), "timestamp": at}))).collect();
            inbox.write_events(batch.as_bytes()).expect("a pixel batch in the inbox");
        }
        let customer = serde_json::to_vec(&json!({"id": 1, "email": "bench@example.com", "state": "enabled", "created_at": "2025-01-01T00:00:00Z", "updated_at": shopfeat::time::now_rfc3339()})).expect("JSON");
        let sent = Instant::now();
        assert_eq!(deliver(server.addr, SECRET, DOMAIN, "customers/update", &format!("full-cycle-{round}"), &customer).status, 200);
        let full = loop {
            let history = shopfeat::history::load(&root, "bench").expect("history");
            let mut ended = history.into_iter().filter(|r| r.command == "serve incremental" && r.outcome != "running");
            if let Some(record) = ended.nth(round) {
                break record;
            }
            assert!(sent.elapsed() < Duration::from_secs(900), "the debounced cycle never ended");
            std::thread::sleep(Duration::from_millis(50));
        };
        let elapsed = sent.elapsed().as_secs_f64();
        if let Some(report) = full.report.as_deref() {
            let report: serde_json::Value = serde_json::from_str(report).expect("report JSON");
            let stages: Vec<String> = [&report["land"]["stages"], &report["compute"]["stages"], &report["export"]["stages"]]
                .iter()
                .filter_map(|s| s.as_array())
                .flatten()
                .map(|s| format!("{} {:.2}", s["stage"].as_str().unwrap_or("?"), s["seconds"].as_f64().unwrap_or(0.0)))
                .collect();
            let sent: u64 = ["upserted", "deleted"].iter().flat_map(|k| report["export"][k].as_object().into_iter().flat_map(|m| m.values().filter_map(|v| v.as_u64()))).sum();
            let total = full.seconds.unwrap_or(0.0);
            println!("{preset:?}: customers/update acknowledged → its debounced cycle ({what}) ended: {elapsed:.2} s (debounce {debounce:?}); the cycle {total:.2} s; its stages (s): {}; rows sent to Gorse: {sent}", stages.join(", "));
        }
    }

    let rate: f64 = env_or("SHOPFEAT_SERVE_RATE", 1000.0);
    let seconds: f64 = env_or("SHOPFEAT_SERVE_SECONDS", 5.0);
    let senders = 16;
    let total = (rate * seconds) as usize;
    let start = Instant::now();
    let acks = std::sync::Mutex::new(Vec::with_capacity(total));
    std::thread::scope(|scope| {
        for sender in 0..senders {
            let acks = &acks;
            let addr = server.addr;
            scope.spawn(move || {
                let mut mine = vec![];
                for n in (sender..total).step_by(senders) {
                    // Paced: delivery n leaves at n / rate seconds.
                    let due = start + Duration::from_secs_f64(n as f64 / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let body = product(9_000_000 + n as i64, "load");
                    let sent = Instant::now();
                    let ack = deliver(addr, SECRET, DOMAIN, "products/update", &format!("load-{n}"), &body);
                    mine.push((ack.status, sent.elapsed().as_secs_f64() * 1000.0));
                }
                acks.lock().expect("acks").extend(mine);
            });
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    let acks = acks.into_inner().expect("acks");
    let ok = acks.iter().filter(|(s, _)| *s == 200).count();
    let mut ms: Vec<f64> = acks.iter().map(|(_, ms)| *ms).collect();
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((ms.len() as f64 * p) as usize).min(ms.len() - 1)];
    let cycles_done = || {
        let metrics = crate::webhook_client::request(server.addr, "GET", "/metrics", &[], b"").expect("metrics").body;
        metrics.lines().filter(|l| l.starts_with("shopfeat_cycles_total{")).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum::<f64>()
    };
    let during = cycles_done();
    println!(
        "{preset:?}: {ok} of {total} deliveries acknowledged in {elapsed:.2} s = {:.0}/s; acknowledgement p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ok as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        ms[ms.len() - 1]
    );
    assert_eq!(ok, total, "every delivery acknowledged");
    // The load's own cycles (the first starts max_delay into it) ran beside it.
    let after_load = Instant::now();
    while cycles_done() <= during && after_load.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("{preset:?}: cycles during the load: {} ended within it, the one running at its end ended {:.1} s later", during - latencies.len() as f64 - 1.0, after_load.elapsed().as_secs_f64());
}
