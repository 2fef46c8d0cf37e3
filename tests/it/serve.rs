//! `shopfeat serve` over real HTTP on loopback: webhook deliveries signed as
//! Shopify signs them (valid, tampered, wrong secret, replayed, oversized, for an
//! unknown shop), pixel batches from an allowed and a foreign origin, a cycle
//! that carries a delivery to Gorse, and SIGTERM in the middle of a burst.

use crate::gorse_standin::Gorse;
use crate::webhook_client::{deliver, request, Server};
use serde_json::{json, Value};
use shopfeat::config::Secret;
use shopfeat::land::inbox::Inbox;
use shopfeat::serve::{self, ServeOptions, ShopSpec};
use std::collections::BTreeSet;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(crate) const SECRET: &str = "hush-this-is-the-app-secret";
pub(crate) const DOMAIN: &str = "sample-shop.myshopify.com";
pub(crate) const ORIGIN: &str = "https://sample-shop.example";
pub(crate) const PIXEL_TOKEN: &str = "pixel-ingest-token-1";

pub(crate) fn spec(dir: &Path) -> ShopSpec {
    ShopSpec {
        id: "s".into(),
        domain: Some(DOMAIN.into()),
        inbox: Inbox::new(dir.join("s").join("inbox")),
        full_source: None,
        gorse: None,
        pairs: Default::default(),
        schedule: None,
        pixel_token: Some(Secret::new(PIXEL_TOKEN)),
        origins: vec![ORIGIN.into()],
    }
}

/// Options that never start a cycle during a test (a minute of debounce, no
/// fast lane).
pub(crate) fn quiet_options(dir: &Path, spec: ShopSpec) -> ServeOptions {
    let mut options = ServeOptions::new("127.0.0.1:0", &dir.display().to_string(), vec![spec], Secret::new(SECRET));
    options.fast_catch_up = None;
    options.debounce = Duration::from_secs(60);
    options.max_delay = Duration::from_secs(60);
    options.max_body = 64 << 10;
    options.shutdown_grace = Duration::from_secs(1);
    options
}

/// Shopify's documented example product (REST 2025-01), as a `products/update`
/// delivery carries it.
pub(crate) fn example_product() -> Value {
    let list: Value = serde_json::from_slice(&std::fs::read(crate::common::rest_examples().join("product.json")).unwrap()).unwrap();
    list["products"][0].clone()
}

pub(crate) fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).map(|e| e.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect()).unwrap_or_default();
    files.sort();
    files
}

/// The metric line `name{labels}`'s value.
pub(crate) fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.split(' ').next()?.parse().ok()))
}

#[test]
fn signatures_are_shopifys_hmac_sha256_in_base64() {
    // RFC 4231, test case 2 (HMAC-SHA256): the digest 5bdcc146…3843, which
    // Shopify's scheme sends base64-encoded.
    let secret = Secret::new("Jefe");
    let body = b"what do ya want for nothing?";
    assert_eq!(serve::sign(&secret, body), "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
    assert!(serve::verify_hmac(&secret, body, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="));
    assert!(!serve::verify_hmac(&secret, b"what do ya want for nothing!", "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="));
    assert!(!serve::verify_hmac(&Secret::new("jefe"), body, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="));
    assert!(!serve::verify_hmac(&secret, body, "not base64 at all"));
    assert!(!serve::verify_hmac(&secret, body, ""));

    // Shopify's documented example product, as a delivery carries it, signed by an
    // independent implementation (Python's hmac, as Shopify's docs verify it).
    let dir = tempfile::tempdir().unwrap();
    let payload = serde_json::to_vec_pretty(&example_product()).unwrap();
    std::fs::write(dir.path().join("body.json"), &payload).unwrap();
    let python = std::process::Command::new("python3")
        .args(["-c", "import base64, hashlib, hmac, sys; print(base64.b64encode(hmac.new(sys.argv[1].encode(), open(sys.argv[2], 'rb').read(), hashlib.sha256).digest()).decode())", SECRET])
        .arg(dir.path().join("body.json"))
        .output()
        .expect("python3 runs");
    let expected = String::from_utf8(python.stdout).unwrap();
    assert_eq!(serve::sign(&Secret::new(SECRET), &payload), expected.trim());
    assert!(serve::verify_hmac(&Secret::new(SECRET), &payload, expected.trim()));
}

#[test]
fn deliveries_are_verified_written_once_and_refusals_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(quiet_options(dir.path(), spec(dir.path())));
    let webhooks = dir.path().join("s/inbox/webhooks");
    let body = serde_json::to_vec(&example_product()).unwrap();

    let ok = deliver(server.addr, SECRET, DOMAIN, "products/update", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", &body);
    assert_eq!(ok.status, 200, "{}", ok.body);
    let written = files_in(&webhooks);
    assert_eq!(written.len(), 1);
    assert_eq!(std::fs::read(&written[0]).unwrap(), body, "the payload is written byte for byte");
    let name = written[0].file_name().unwrap().to_str().unwrap();
    assert!(name.ends_with(".products+update.b54557e4-bdd9-4b37-8a5f-bf7d70bcd043.json"), "{name}");

    // A replay (Shopify retries, or the same event twice) is acknowledged, not written again.
    let replay = deliver(server.addr, SECRET, DOMAIN, "products/update", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", &body);
    assert_eq!((replay.status, replay.body.as_str()), (200, "already received\n"));

    // Refusals: tampered body, wrong secret, no signature, unknown shop, too large.
    let hmac = serve::sign(&Secret::new(SECRET), &body);
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let headers = [("X-Shopify-Hmac-Sha256", hmac.as_str()), ("X-Shopify-Shop-Domain", DOMAIN), ("X-Shopify-Topic", "products/update"), ("X-Shopify-Webhook-Id", "tampered-1")];
    assert_eq!(request(server.addr, "POST", "/webhooks/shopify", &headers, &tampered).unwrap().status, 401);
    assert_eq!(deliver(server.addr, "another-apps-secret", DOMAIN, "products/update", "wrong-secret-1", &body).status, 401);
    let unsigned = [("X-Shopify-Shop-Domain", DOMAIN), ("X-Shopify-Topic", "products/update"), ("X-Shopify-Webhook-Id", "unsigned-1")];
    assert_eq!(request(server.addr, "POST", "/webhooks/shopify", &unsigned, &body).unwrap().status, 401);
    assert_eq!(deliver(server.addr, SECRET, "someone-else.myshopify.com", "products/update", "other-shop-1", &body).status, 404);
    let huge = [b"{\"id\":1,\"pad\":\"".as_slice(), &vec![b'x'; 100 << 10], b"\"}"].concat();
    assert_eq!(deliver(server.addr, SECRET, DOMAIN, "products/update", "huge-1", &huge).status, 413);
    // Name order is arrival order (the landing's tie-break between equal updated_at).
    for n in 0..30 {
        assert_eq!(deliver(server.addr, SECRET, DOMAIN, "orders/updated", &format!("order-{n:02}"), b"{}").status, 200);
    }
    let order: Vec<String> = files_in(&webhooks).iter().filter_map(|p| p.file_name()?.to_str()?.split('.').nth(2).map(str::to_string)).filter(|id| id.starts_with("order-")).collect();
    assert_eq!(order, (0..30).map(|n| format!("order-{n:02}")).collect::<Vec<_>>());
    // A topic no feature reads is acknowledged and dropped.
    assert_eq!(deliver(server.addr, SECRET, DOMAIN, "app/uninstalled", "uninstalled-1", b"{}").body, "ignored\n");
    assert_eq!(files_in(&webhooks).len(), 31, "nothing refused or ignored was written");
    assert!(files_in(&dir.path().join("s/inbox/.incoming")).is_empty());

    let health = request(server.addr, "GET", "/healthz", &[], b"").unwrap();
    assert_eq!(health.status, 200);
    let metrics = request(server.addr, "GET", "/metrics", &[], b"").unwrap().body;
    assert_eq!(metric(&metrics, "shopfeat_http_requests_total{route=\"webhook\",status=\"401\"}"), Some(3.0), "{metrics}");
    assert_eq!(metric(&metrics, "shopfeat_http_requests_total{route=\"webhook\",status=\"200\"}"), Some(33.0), "{metrics}");
    assert_eq!(metric(&metrics, "shopfeat_http_requests_total{route=\"webhook\",status=\"413\"}"), Some(1.0), "{metrics}");
    assert_eq!(metric(&metrics, "shopfeat_webhook_deliveries_total{shop=\"s\",outcome=\"written\"}"), Some(31.0), "{metrics}");
    assert_eq!(metric(&metrics, "shopfeat_webhook_deliveries_total{shop=\"s\",outcome=\"duplicate\"}"), Some(1.0), "{metrics}");
    assert_eq!(metric(&metrics, "shopfeat_inbox_files{shop=\"s\"}"), Some(31.0), "{metrics}");
    drop(server);

    // A restarted server still knows the delivery.
    let server = Server::start(quiet_options(dir.path(), spec(dir.path())));
    let replay = deliver(server.addr, SECRET, DOMAIN, "products/update", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", &body);
    assert_eq!((replay.status, replay.body.as_str()), (200, "already received\n"));
    assert_eq!(files_in(&webhooks).len(), 31);
}

pub(crate) fn pixel_event(id: &str) -> Value {
    json!({"id": id, "name": "product_viewed", "clientId": "browser-1", "timestamp": "2026-11-30T10:00:00.000Z",
           "context": {"document": {"location": {"href": "https://sample-shop.example/products/a"}}},
           "data": {"productVariant": {"id": "gid://shopify/ProductVariant/11", "product": {"id": "gid://shopify/Product/1"}}}})
}

#[test]
fn pixel_batches_need_an_allowed_origin_and_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(quiet_options(dir.path(), spec(dir.path())));
    let inbox = dir.path().join("s/inbox");

    let preflight = request(server.addr, "OPTIONS", "/pixel/s", &[("Origin", ORIGIN), ("Access-Control-Request-Method", "POST")], b"").unwrap();
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.headers.get("access-control-allow-origin").map(String::as_str), Some(ORIGIN));
    assert!(preflight.headers["access-control-allow-headers"].contains("x-shopfeat-token"));
    let foreign_preflight = request(server.addr, "OPTIONS", "/pixel/s", &[("Origin", "https://evil.example")], b"").unwrap();
    assert_eq!(foreign_preflight.status, 403);
    assert!(!foreign_preflight.headers.contains_key("access-control-allow-origin"));

    let array = serde_json::to_vec(&json!([pixel_event("e1"), pixel_event("e2")])).unwrap();
    let ok = request(server.addr, "POST", "/pixel/s", &[("Origin", ORIGIN), ("X-Shopfeat-Token", PIXEL_TOKEN), ("Content-Type", "application/json")], &array).unwrap();
    assert_eq!((ok.status, ok.body.as_str()), (200, "{\"accepted\":2}\n"));
    assert_eq!(ok.headers.get("access-control-allow-origin").map(String::as_str), Some(ORIGIN));
    let ndjson = [pixel_event("e3"), pixel_event("e4"), pixel_event("e5")].iter().map(|e| e.to_string() + "\n").collect::<String>();
    let bearer = format!("Bearer {PIXEL_TOKEN}");
    let ok = request(server.addr, "POST", "/pixel/s", &[("Authorization", bearer.as_str())], ndjson.as_bytes()).unwrap();
    assert_eq!((ok.status, ok.body.as_str()), (200, "{\"accepted\":3}\n"));
    let beacon = request(server.addr, "POST", &format!("/pixel/s?token={PIXEL_TOKEN}"), &[("Origin", ORIGIN)], pixel_event("e6").to_string().as_bytes()).unwrap();
    assert_eq!(beacon.status, 200, "{}", beacon.body);

    // Refused, and not written: a foreign origin (even with the token), no token,
    // a wrong token, a body that is not events, an unknown shop.
    let refused = [
        (vec![("Origin", "https://evil.example"), ("X-Shopfeat-Token", PIXEL_TOKEN)], array.clone(), "/pixel/s", 403),
        (vec![("Origin", ORIGIN)], array.clone(), "/pixel/s", 401),
        (vec![("X-Shopfeat-Token", "pixel-ingest-token-2")], array.clone(), "/pixel/s", 401),
        (vec![("X-Shopfeat-Token", PIXEL_TOKEN)], b"{\"id\": ".to_vec(), "/pixel/s", 400),
        (vec![("X-Shopfeat-Token", PIXEL_TOKEN)], b"[1, 2]".to_vec(), "/pixel/s", 400),
        (vec![("X-Shopfeat-Token", PIXEL_TOKEN)], array.clone(), "/pixel/nobody", 404),
    ];
    for (headers, body, path, status) in refused {
        let r = request(server.addr, "POST", path, &headers, &body).unwrap();
        assert_eq!(r.status, status, "{headers:?} {path}: {}", r.body);
    }
    let files: Vec<PathBuf> = files_in(&inbox).into_iter().filter(|p| p.extension().is_some_and(|e| e == "jsonl")).collect();
    assert_eq!(files.len(), 3, "{files:?}");
    let events: Vec<Value> = files.iter().flat_map(|f| std::fs::read_to_string(f).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect::<Vec<Value>>()).collect();
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["e1", "e2", "e3", "e4", "e5", "e6"], "batches in arrival order, events whole");
    assert_eq!(events[0], pixel_event("e1"));
    let metrics = request(server.addr, "GET", "/metrics", &[], b"").unwrap().body;
    assert_eq!(metric(&metrics, "shopfeat_pixel_events_total{shop=\"s\"}"), Some(6.0), "{metrics}");
    assert_eq!(metric(&metrics, "shopfeat_http_requests_total{route=\"pixel\",status=\"403\"}"), Some(2.0), "{metrics}");
}

pub(crate) fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")
}

/// The sample as shop `s`, computed and exported as last night's run leaves it.
pub(crate) fn run_and_export_sample(root: &shopfeat::storage::DataRoot, gorse: &shopfeat::sinks::gorse::Options) {
    let nightly = shopfeat::pipeline::RunOptions {
        source: shopfeat::pipeline::Source::Files(vec![sample_dir()]),
        as_of: None,
        pairs: Default::default(),
        keep_generations: 2,
        gorse: Some(gorse.clone()),
        compaction: shopfeat::land::compact::Policy::never(),
        kept: None,
    };
    shopfeat::pipeline::run(root, "s", &nightly).unwrap().check().unwrap();
}

/// Shopify's example product as `product_id`, renamed `title`, updated now.
pub(crate) fn renamed(product_id: i64, title: &str) -> Value {
    let mut product = example_product();
    product["id"] = json!(product_id);
    product["title"] = json!(title);
    product["updated_at"] = json!(shopfeat::time::now_rfc3339());
    for variant in product["variants"].as_array_mut().unwrap() {
        variant["product_id"] = json!(product_id);
    }
    product
}

#[test]
fn a_product_update_reaches_gorse_through_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let root_url = dir.path().display().to_string();
    let gorse = Gorse::start(None);
    let gorse_options = shopfeat::sinks::gorse::Options::new(&gorse.url);
    let root = shopfeat::storage::DataRoot::open(&root_url).unwrap();
    run_and_export_sample(&root, &gorse_options);
    let items = gorse.store().items;
    let (item_id, before) = items.iter().next().map(|(k, v)| (k.clone(), v.clone())).expect("items exported");
    let product_id: i64 = item_id.parse().expect("numeric item ids without a prefix");

    let mut options = quiet_options(dir.path(), ShopSpec { gorse: Some(gorse_options), ..spec(dir.path()) });
    options.debounce = Duration::from_millis(100);
    options.max_delay = Duration::from_secs(2);
    let server = Server::start(options);

    let product = renamed(product_id, "Renamed by a webhook");
    // Two versions with the same updated_at, back to back: the later arrival wins.
    let mut earlier = product.clone();
    earlier["title"] = json!("Renamed first");
    let sent = Instant::now();
    assert_eq!(deliver(server.addr, SECRET, DOMAIN, "products/update", "5f1c3e1a-0000-4000-8000-000000000000", &serde_json::to_vec(&earlier).unwrap()).status, 200);
    let ok = deliver(server.addr, SECRET, DOMAIN, "products/update", "5f1c3e1a-0000-4000-8000-000000000001", &serde_json::to_vec(&product).unwrap());
    assert_eq!(ok.status, 200);
    let deadline = Instant::now() + Duration::from_secs(120);
    let after = loop {
        let item = gorse.item(&item_id).unwrap();
        if item["Comment"] == "Renamed by a webhook" {
            break item;
        }
        assert!(Instant::now() < deadline, "the item never changed in Gorse: {item}");
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("delivery → Gorse in {:.2} s", sent.elapsed().as_secs_f64());
    assert_eq!(before["Comment"].as_str().is_some_and(|c| c != "Renamed by a webhook"), true);
    assert_eq!(after["ItemId"], before["ItemId"]);
    let records = shopfeat::history::load(&root, "s").unwrap();
    assert_eq!(records.iter().filter(|r| r.command == "serve incremental").count(), 1, "both versions landed in one cycle, so the tie-break decided");
    // Landed and filed away; recorded in the run history like any run.
    assert!(files_in(&dir.path().join("s/inbox/webhooks")).is_empty());
    // The cycle ends its run-history record just after the export.
    let cycle = loop {
        let records = shopfeat::history::load(&root, "s").unwrap();
        let cycle = records.into_iter().find(|r| r.command == "serve incremental").expect("a cycle in the history");
        if cycle.outcome != "running" || Instant::now() > deadline {
            break cycle;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(cycle.outcome, "ok", "{:?}", cycle.error);
    let metrics = request(server.addr, "GET", "/metrics", &[], b"").unwrap().body;
    assert_eq!(metric(&metrics, "shopfeat_cycles_total{shop=\"s\",kind=\"incremental\",outcome=\"ok\"}"), Some(1.0), "{metrics}");
    assert_eq!(metric(&metrics, "shopfeat_inbox_files{shop=\"s\"}"), Some(0.0), "{metrics}");
    assert!(metric(&metrics, "shopfeat_feature_age_seconds{shop=\"s\"}").is_some_and(|age| age < 120.0), "{metrics}");
}

/// Deliveries in the burst of the SIGTERM test (SHOPFEAT_SERVE_BURST; more for a
/// longer soak).
fn burst_size() -> usize {
    std::env::var("SHOPFEAT_SERVE_BURST").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

pub(crate) type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Starts `command` (a `shopfeat … serve --listen 127.0.0.1:0`) and waits for the
/// address it listens on; its stderr lines go to `log`.
pub(crate) fn spawn_serve(mut command: std::process::Command, log: Log) -> (std::process::Child, SocketAddr) {
    let mut child = command.stderr(std::process::Stdio::piped()).spawn().unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(addr) = line.split("listening on http://").nth(1).and_then(|rest| rest.split(' ').next()) {
                let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
            }
            log.lock().unwrap().push(line);
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("serve says where it listens");
    (child, addr)
}

/// `serve` for the one shop `burst` under `root`, without the fast lane (the
/// deliveries wait in the inbox for the debounced cycle).
fn burst_serve(root: &Path, extra: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shopfeat"));
    command
        .args(["--root", root.to_str().unwrap(), "--shop", "burst", "serve", "--shop-domain", "burst.myshopify.com", "--listen", "127.0.0.1:0", "--fast-catch-up-minutes", "0"])
        .args(extra)
        .env("SHOPIFY_API_SECRET", SECRET)
        .env_remove("SHOPFEAT_CONFIG");
    command
}

fn webhook_ids(dir: &Path) -> BTreeSet<String> {
    files_in(dir).iter().filter_map(|p| p.file_name()?.to_str()?.split('.').nth(2).map(str::to_string)).collect()
}

#[test]
fn sigterm_during_a_burst_loses_no_acknowledged_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let (mut child, addr) = spawn_serve(burst_serve(dir.path(), &["--debounce-ms", "600000", "--max-delay-secs", "600"]), log.clone());
    let total = burst_size();
    let acked = std::sync::Mutex::new(BTreeSet::new());
    let sent = std::sync::atomic::AtomicUsize::new(0);
    let template = example_product();
    std::thread::scope(|scope| {
        for worker in 0..8 {
            let (acked, sent, template) = (&acked, &sent, &template);
            scope.spawn(move || {
                for i in (worker..total).step_by(8) {
                    let mut product = template.clone();
                    product["id"] = json!(1_000_000 + i);
                    let body = serde_json::to_vec(&product).unwrap();
                    let id = format!("burst-{i:05}");
                    let hmac = serve::sign(&Secret::new(SECRET), &body);
                    let headers = [("X-Shopify-Hmac-Sha256", hmac.as_str()), ("X-Shopify-Shop-Domain", "burst.myshopify.com"), ("X-Shopify-Topic", "products/update"), ("X-Shopify-Webhook-Id", id.as_str())];
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    match request(addr, "POST", "/webhooks/shopify", &headers, &body) {
                        Ok(r) if r.status == 200 => {
                            acked.lock().unwrap().insert(id);
                        }
                        _ => {} // refused or cut off by the shutdown: Shopify would retry it
                    }
                }
            });
        }
        // SIGTERM once a third of the burst is acknowledged.
        while acked.lock().unwrap().len() < total / 3 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // SAFETY: a signal to our own child process.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    });
    let status = child.wait().unwrap();
    assert!(status.success(), "serve exits cleanly on SIGTERM: {status:?}\n{}", log.lock().unwrap().join("\n"));
    let acked = acked.into_inner().unwrap();
    let inbox = dir.path().join("burst/inbox");
    let written = webhook_ids(&inbox.join("webhooks"));
    eprintln!("burst: {} sent, {} acknowledged, {} written", sent.into_inner(), acked.len(), written.len());
    assert!(acked.len() >= total / 3 && acked.len() < total, "the SIGTERM fell inside the burst: {} of {total}", acked.len());
    let lost: Vec<&String> = acked.difference(&written).collect();
    assert!(lost.is_empty(), "acknowledged but not in the inbox: {lost:?}");
    assert!(files_in(&inbox.join(".incoming")).is_empty(), "no half-written file");
    // `shopfeat status` shows the backlog of serve's inbox without being told where it is.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_shopfeat")).args(["--root", dir.path().to_str().unwrap(), "--shop", "burst", "status", "--json"]).env_remove("SHOPFEAT_CONFIG").output().unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status[0]["inbox_files"].as_u64(), Some(written.len() as u64), "{status}");
    for file in files_in(&inbox.join("webhooks")) {
        let product: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(product["title"], template["title"]);
    }

    // A restart lands everything accepted before it.
    let (mut child, _addr) = spawn_serve(burst_serve(dir.path(), &["--debounce-ms", "50"]), log.clone());
    let root = shopfeat::storage::DataRoot::open(&dir.path().display().to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let cycled = || shopfeat::history::load(&root, "burst").unwrap().iter().any(|r| r.command == "serve incremental" && r.outcome == "ok");
    while !cycled() {
        assert!(Instant::now() < deadline, "the restarted server never ran a cycle\n{}", log.lock().unwrap().join("\n"));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(files_in(&inbox.join("webhooks")).is_empty());
    let landed: BTreeSet<String> = std::fs::read_dir(inbox.join("landed")).unwrap().flatten().flat_map(|s| webhook_ids(&s.path().join("webhooks"))).collect();
    assert_eq!(landed, written, "every written delivery landed once");
    use polars::prelude::SerReader;
    let products = polars::prelude::ParquetReader::new(std::fs::File::open(crate::common::feature_file(&root, "burst", "product_features")).unwrap()).finish().unwrap();
    assert_eq!(products.height(), written.len(), "one product per landed delivery");
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

pub(crate) fn fetch_options(fake: &crate::shopify_fake::Shopify, polling: Duration) -> shopfeat::shopify::FetchOptions {
    let mut o = shopfeat::shopify::FetchOptions::new(&fake.url, Secret::new("shpat_serve"), shopfeat::shopify::Mode::Historical);
    o.retry = shopfeat::retry::Retry { max_retries: 5, base_delay: Duration::from_millis(10), max_delay: Duration::from_millis(200) };
    o.polling = shopfeat::shopify::bulk::Polling { first: polling, max: polling, deadline: Duration::from_secs(600) };
    o
}

#[test]
fn shops_fetched_from_shopify_are_subscribed_to_bulk_operations_finish_once() {
    let dir = tempfile::tempdir().unwrap();
    let fake = crate::shopify_fake::Shopify::start("shpat_serve", crate::shopify_fake::read_shop(&sample_dir()), "2025-12-01T00:00:00Z");
    let with_shopify = || {
        let mut options = quiet_options(dir.path(), ShopSpec { full_source: Some(shopfeat::pipeline::Source::Shopify(fetch_options(&fake, Duration::from_millis(50)))), ..spec(dir.path()) });
        options.public_url = Some("https://shopfeat.app.example/".into());
        options
    };
    drop(Server::start(with_shopify()));
    drop(Server::start(with_shopify())); // a restart: the subscription exists, which is fine
    assert_eq!(fake.subscriptions(), [("BULK_OPERATIONS_FINISH".to_string(), "https://shopfeat.app.example/webhooks/shopify".to_string())]);
    let subscribe = fake.documents().into_iter().find(|(_, d)| d.contains("webhookSubscriptionCreate")).unwrap();
    assert_eq!(subscribe.0, shopfeat::shopify::queries::API_VERSION);
}

#[test]
fn a_bulk_operations_finish_delivery_ends_the_wait_for_the_next_poll() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(quiet_options(dir.path(), spec(dir.path())));
    let fake = crate::shopify_fake::Shopify::start("shpat_serve", crate::shopify_fake::read_shop(&sample_dir()), "2025-12-01T00:00:00Z");
    // Polls a minute apart: without the webhook, a fetch takes minutes.
    let options = fetch_options(&fake, Duration::from_secs(60));
    let root = shopfeat::storage::DataRoot::open(&dir.path().display().to_string()).unwrap();
    let started = Instant::now();
    let done = std::sync::atomic::AtomicBool::new(false);
    let fetched = std::thread::scope(|scope| {
        let fetch = scope.spawn(|| {
            let r = shopfeat::shopify::fetch(&root, "fetched", &options);
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            r
        });
        // Shopify's deliveries as each operation finishes (the fake's take 40 ms).
        let mut n = 0;
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(300));
            n += 1;
            let body = json!({"admin_graphql_api_id": format!("gid://shopify/BulkOperation/{n}"), "status": "completed", "type": "query"}).to_string();
            let r = deliver(server.addr, SECRET, DOMAIN, "bulk_operations/finish", &format!("finish-{n}"), body.as_bytes());
            assert_eq!(r.status, 200);
            assert!(started.elapsed() < Duration::from_secs(120), "the fetch did not end");
        }
        fetch.join().unwrap()
    });
    let report = fetched.unwrap();
    assert!(report.objects.values().sum::<u64>() > 0);
    assert!(started.elapsed() < Duration::from_secs(50), "woken by the deliveries, not by the minute-long polls: {:?}", started.elapsed());
    // The deliveries hold no records: nothing went to the inbox.
    assert!(files_in(&dir.path().join("s/inbox/webhooks")).is_empty());
    let metrics = request(server.addr, "GET", "/metrics", &[], b"").unwrap().body;
    assert!(metric(&metrics, "shopfeat_webhook_deliveries_total{shop=\"s\",outcome=\"bulk_finished\"}").is_some_and(|n| n >= 1.0), "{metrics}");
}

/// Shop `s` with a full cycle of the fixture shop every two seconds.
pub(crate) fn scheduled_spec(dir: &Path) -> ShopSpec {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shop");
    ShopSpec {
        full_source: Some(shopfeat::pipeline::Source::Files(vec![fixture])),
        schedule: Some(shopfeat::commands::serve::schedule("s", "*/2 * * * * *").unwrap()),
        ..spec(dir)
    }
}

#[test]
fn a_scheduled_full_cycle_lands_the_shops_full_source() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(quiet_options(dir.path(), scheduled_spec(dir.path())));
    let root = shopfeat::storage::DataRoot::open(&dir.path().display().to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let full = loop {
        let records = shopfeat::history::load(&root, "s").unwrap();
        if let Some(r) = records.into_iter().find(|r| r.command == "serve full" && r.outcome != "running") {
            break r;
        }
        assert!(Instant::now() < deadline, "no scheduled cycle ran");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(full.outcome, "ok", "{:?}", full.error);
    let report: Value = serde_json::from_str(full.report.as_deref().unwrap()).unwrap();
    assert!(report["land"]["landed"]["orders"].as_u64().unwrap() > 0, "{report}");
    assert!(report["compute"]["generation"].is_string());
    let metrics = request(server.addr, "GET", "/metrics", &[], b"").unwrap().body;
    assert!(metric(&metrics, "shopfeat_cycles_total{shop=\"s\",kind=\"full\",outcome=\"ok\"}").is_some_and(|n| n >= 1.0), "{metrics}");
    assert!(shopfeat::commands::serve::schedule("s", "every day").is_err());
}

#[test]
fn serve_takes_every_shop_of_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleet.toml");
    std::fs::write(
        &config,
        "[shopify]\napi_secret = \"hush-this-is-the-app-secret\"\n\n\
         [[shops]]\nid = \"north\"\nshop_domain = \"north.myshopify.com\"\ntoken_env = \"NORTH_TOKEN\"\npixel_token_env = \"NORTH_PIXEL\"\n\n\
         [[shops]]\nid = \"south\"\nshop_domain = \"south.myshopify.com\"\ntoken_env = \"SOUTH_TOKEN\"\nstorefront_origins = [\"https://south.example\"]\n",
    )
    .unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shopfeat"));
    command
        .args(["--root", dir.path().to_str().unwrap(), "--config", config.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0", "--debounce-ms", "600000", "--fast-catch-up-minutes", "0"])
        .env("NORTH_TOKEN", "shpat_north")
        .env("SOUTH_TOKEN", "shpat_south")
        .env("NORTH_PIXEL", "north-pixel-token")
        .env_remove("SHOPIFY_API_SECRET");
    let log = Log::default();
    let (mut child, addr) = spawn_serve(command, log.clone());
    let body = serde_json::to_vec(&example_product()).unwrap();
    assert_eq!(deliver(addr, SECRET, "north.myshopify.com", "products/update", "n-1", &body).status, 200);
    assert_eq!(deliver(addr, SECRET, "SOUTH.myshopify.com", "products/create", "s-1", &body).status, 200, "domains compare without case");
    assert_eq!(deliver(addr, SECRET, "west.myshopify.com", "products/update", "w-1", &body).status, 404);
    assert_eq!(files_in(&dir.path().join("north/inbox/webhooks")).len(), 1);
    assert_eq!(files_in(&dir.path().join("south/inbox/webhooks")).len(), 1);
    let batch = serde_json::to_vec(&json!([pixel_event("n1")])).unwrap();
    let north = request(addr, "POST", "/pixel/north", &[("Origin", "https://north.myshopify.com"), ("X-Shopfeat-Token", "north-pixel-token")], &batch).unwrap();
    assert_eq!(north.status, 200, "the default origin is the shop domain's");
    let south = request(addr, "POST", "/pixel/south", &[("Origin", "https://south.example"), ("X-Shopfeat-Token", "north-pixel-token")], &batch).unwrap();
    assert_eq!(south.status, 401, "south has no pixel token: its intake is closed");
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(100));
    let log = log.lock().unwrap().clone();
    assert!(log.iter().any(|l| l.contains("shop south: no pixel ingest token")), "{log:?}");
    assert!(!log.iter().any(|l| l.contains("shpat_") || l.contains("hush-this") || l.contains("north-pixel-token")), "no secret in the log: {log:?}");
}

#[test]
fn a_cycle_whose_export_failed_is_retried_though_its_inbox_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let root = shopfeat::storage::DataRoot::open(&dir.path().display().to_string()).unwrap();
    let gorse = Gorse::start(None);
    let mut gorse_options = shopfeat::sinks::gorse::Options::new(&gorse.url);
    gorse_options.retry = shopfeat::retry::Retry { max_retries: 1, base_delay: Duration::from_millis(5), max_delay: Duration::from_millis(10) };
    run_and_export_sample(&root, &gorse_options);
    let item_id = gorse.store().items.keys().next().unwrap().clone();

    // Gorse is down when the delivery's cycle exports.
    gorse.set_faults(crate::gorse_standin::Faults { server_error: 1.0, ..Default::default() });
    let mut options = quiet_options(dir.path(), ShopSpec { gorse: Some(gorse_options), ..spec(dir.path()) });
    options.debounce = Duration::from_millis(50);
    let server = Server::start(options);
    let product = renamed(item_id.parse().unwrap(), "Renamed while Gorse was down");
    assert_eq!(deliver(server.addr, SECRET, DOMAIN, "products/update", "down-1", &serde_json::to_vec(&product).unwrap()).status, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !shopfeat::history::load(&root, "s").unwrap().iter().any(|r| r.command == "serve incremental" && r.outcome == "failed") {
        assert!(Instant::now() < deadline, "the export never failed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(files_in(&dir.path().join("s/inbox/webhooks")).is_empty(), "the failed cycle landed the delivery");

    // Gorse is back: the retry, with nothing new in the inbox, delivers the change.
    gorse.set_faults(Default::default());
    while gorse.item(&item_id).unwrap()["Comment"] != "Renamed while Gorse was down" {
        assert!(Instant::now() < deadline, "the failed cycle was never retried");
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = request(server.addr, "GET", "/metrics", &[], b"").unwrap().body;
    assert!(metric(&metrics, "shopfeat_cycles_total{shop=\"s\",kind=\"incremental\",outcome=\"failed\"}").is_some_and(|n| n >= 1.0), "{metrics}");
}

#[test]
fn serve_on_an_object_store_root_cycles_from_a_local_inbox() {
    let Some(moto) = crate::s3::moto() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = "s3://shopfeat/serve";
    let status = || -> Value {
        let out = crate::s3::shopfeat(&moto, root, &["status", "--json"]).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
    };
    let nightly = crate::s3::shopfeat(&moto, root, &["-q", "run", "data/sample"]).output().unwrap();
    assert!(nightly.status.success(), "{}", String::from_utf8_lossy(&nightly.stderr));
    let first_generation = status()[0]["generation"].clone();

    // An object-store root needs a local inbox.
    let refused = crate::s3::shopfeat(&moto, root, &["serve", "--shop-domain", "s3shop.myshopify.com"]).env("SHOPIFY_API_SECRET", SECRET).output().unwrap();
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("give --inboxes DIR"), "{}", String::from_utf8_lossy(&refused.stderr));
    let inbox = dir.path().join("inboxes");
    let mut command = crate::s3::shopfeat(&moto, root, &["serve", "--shop-domain", "s3shop.myshopify.com", "--listen", "127.0.0.1:0", "--inboxes", inbox.to_str().unwrap(), "--debounce-ms", "50", "--fast-catch-up-minutes", "0"]);
    command.env("SHOPIFY_API_SECRET", SECRET);
    let log = Log::default();
    let (mut child, addr) = spawn_serve(command, log.clone());
    let product = renamed(990_000_001, "Sold only since this morning");
    assert_eq!(deliver(addr, SECRET, "s3shop.myshopify.com", "products/create", "s3-1", &serde_json::to_vec(&product).unwrap()).status, 200);
    assert_eq!(files_in(&inbox.join("s3shop/webhooks")).len(), 1, "written locally first");
    let waiting = crate::s3::shopfeat(&moto, root, &["status", "--json", "--inboxes", inbox.to_str().unwrap()]).output().unwrap();
    let waiting: Value = serde_json::from_slice(&waiting.stdout).unwrap();
    assert!(waiting[0]["inbox_files"].as_u64().is_some(), "status reads serve's inboxes: {waiting}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let after = loop {
        let s = status();
        if s[0]["last_success"]["command"] == "serve incremental" {
            break s;
        }
        assert!(Instant::now() < deadline, "no cycle on the bucket\n{}", log.lock().unwrap().join("\n"));
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_ne!(after[0]["generation"], first_generation, "a new generation in the bucket");
    assert!(files_in(&inbox.join("s3shop/webhooks")).is_empty());
    let metrics = request(addr, "GET", "/metrics", &[], b"").unwrap().body;
    assert!(metric(&metrics, "shopfeat_feature_age_seconds{shop=\"s3shop\"}").is_some_and(|age| age < 120.0), "{metrics}");
    assert_eq!(request(addr, "GET", "/healthz", &[], b"").unwrap().status, 200);
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}
