//! `serve` on the open internet: weak secrets refused at start, pixel floods
//! bounded (per-event size, per-shop inbox quota, rate per token) while webhooks
//! keep being acknowledged, a redelivery that waits for the first write's
//! outcome, scheduled full cycles that are not skipped while the shop is busy,
//! probes that answer before webhook subscriptions finish.

use crate::serve::{example_product, files_in, metric, pixel_event, quiet_options, scheduled_spec, spawn_serve, spec, Log, DOMAIN, ORIGIN, PIXEL_TOKEN, SECRET};
use crate::webhook_client::{deliver, request, Server};
use serde_json::{json, Value};
use shopfeat::land::inbox::Amount;
use shopfeat::serve::ShopSpec;
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn shopfeat_serve(root: &Path, config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shopfeat"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--root", root.to_str().unwrap(), "--config", config.to_str().unwrap(), "--shop", "s", "serve", "--listen", "127.0.0.1:0", "--fast-catch-up-minutes", "0"])
        .args(args)
        .env_remove("SHOPIFY_API_SECRET")
        .env_remove("SHOPFEAT_PIXEL_TOKEN")
        .env_remove("SHOPFEAT_FAILPOINTS")
        .env_remove("RUST_LOG");
    command
}

#[test]
fn weak_secrets_are_refused_at_start_from_the_file_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let single = ["--shop-domain", DOMAIN];
    // (config file, environment, arguments, what the one error line says)
    let cases: Vec<(String, Vec<(&str, &str)>, &[&str], &str)> = vec![
        ("[shopify]\napi_secret = \"\"\n".into(), vec![], &single, "[shopify] api_secret in the config file cannot be used: it is empty"),
        ("[shopify]\napi_secret = \"tiny-key\"\n".into(), vec![], &single, "[shopify] api_secret in the config file cannot be used: it has 8 bytes, fewer than 16"),
        (String::new(), vec![("SHOPIFY_API_SECRET", "   \t     \t         ")], &single, "the environment variable SHOPIFY_API_SECRET cannot be used: it is only whitespace"),
        (format!("[shopify]\napi_secret = \"{SECRET}\"\n[serve]\npixel_token = \"\"\n"), vec![], &single, "[serve] pixel_token in the config file cannot be used: it is empty"),
        (format!("[shopify]\napi_secret = \"{SECRET}\"\n"), vec![("SHOPFEAT_PIXEL_TOKEN", "tiny-key")], &single, "the environment variable SHOPFEAT_PIXEL_TOKEN cannot be used: it has 8 bytes"),
        (
            format!("[shopify]\napi_secret = \"{SECRET}\"\n[[shops]]\nid = \"north\"\nshop_domain = \"north.myshopify.com\"\ntoken_env = \"NORTH_TOKEN\"\npixel_token_env = \"NORTH_PIXEL\"\n"),
            vec![("NORTH_TOKEN", "shpat_north"), ("NORTH_PIXEL", "tiny-key")],
            &[],
            "shop north: the environment variable NORTH_PIXEL cannot be used: it has 8 bytes",
        ),
    ];
    for (i, (config, env, args, expected)) in cases.into_iter().enumerate() {
        let file = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&file, &config).unwrap();
        let mut command = shopfeat_serve(dir.path(), &file, args);
        command.envs(env).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(20) {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("case {i}: serve started with a weak secret ({config:?})");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert!(!status.success(), "case {i}: {stderr}");
        assert!(stderr.contains(expected), "case {i}: {stderr}");
        assert_eq!(stderr.lines().filter(|l| l.contains("cannot be used")).count(), 1, "case {i}: one clear line: {stderr}");
        assert!(!stderr.contains("tiny-key"), "case {i}: the secret is never printed: {stderr}");
    }
}

/// Peak resident memory of process `pid` until `done`, sampled every 10 ms
/// from /proc (a high-water mark the process cannot reset).
fn sample_peak_rss(pid: u32, done: &std::sync::atomic::AtomicBool) -> u64 {
    let mut peak = 0;
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let kb: u64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0);
            peak = peak.max(kb * 1024);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    peak
}

fn post_pixel(addr: SocketAddr, body: &[u8]) -> crate::webhook_client::Response {
    request(addr, "POST", "/pixel/s", &[("Origin", ORIGIN), ("X-Shopfeat-Token", PIXEL_TOKEN)], body).expect("the server answers")
}

/// Events of about `bytes` each (their padding in a custom field).
fn padded_event(id: &str, bytes: usize) -> Value {
    let mut event = pixel_event(id);
    event["customData"] = json!("x".repeat(bytes));
    event
}

#[test]
fn a_pixel_flood_is_bounded_and_webhooks_are_still_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    // Last night's run, so cycles have a shop to compute.
    let nightly = Command::new(env!("CARGO_BIN_EXE_shopfeat")).current_dir(env!("CARGO_MANIFEST_DIR")).args(["-q", "--root", dir.path().to_str().unwrap(), "--shop", "s", "run", "data/sample"]).output().unwrap();
    assert!(nightly.status.success(), "{}", String::from_utf8_lossy(&nightly.stderr));
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        format!("[shopify]\napi_secret = \"{SECRET}\"\n[serve]\npixel_token = \"{PIXEL_TOKEN}\"\nstorefront_origins = [\"{ORIGIN}\"]\nmax_event_bytes = 4096\npixel_quota_files = 40\npixel_quota_bytes = 2097152\npixel_requests_per_sec = 100000\n"),
    )
    .unwrap();
    let log = Log::default();
    let (mut child, addr) = spawn_serve(shopfeat_serve(dir.path(), &config, &["--shop-domain", DOMAIN, "--debounce-ms", "200", "--max-delay-secs", "1"]), log.clone());
    let done = std::sync::atomic::AtomicBool::new(false);
    let huge = serde_json::to_vec(&json!([padded_event("huge", 1 << 20)])).unwrap();
    let small: Vec<u8> = serde_json::to_vec(&(0..20).map(|i| padded_event(&format!("small-{i}"), 500)).collect::<Vec<_>>()).unwrap();
    let (peak, statuses, acked) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| sample_peak_rss(child.id(), &done));
        // 8 visitors' worth of 1 MB events (320 MB in all), and ordinary batches.
        let flooders: Vec<_> = (0..8)
            .map(|_| {
                let (huge, small) = (&huge, &small);
                scope.spawn(move || (0..40).map(|_| (post_pixel(addr, huge).status, post_pixel(addr, small).status)).collect::<Vec<_>>())
            })
            .collect();
        // Shopify's deliveries meanwhile.
        let body = serde_json::to_vec(&example_product()).unwrap();
        let acked = (0..20)
            .map(|n| {
                std::thread::sleep(Duration::from_millis(20));
                deliver(addr, SECRET, DOMAIN, "products/update", &format!("during-flood-{n}"), &body).status
            })
            .collect::<Vec<u16>>();
        let statuses: Vec<(u16, u16)> = flooders.into_iter().flat_map(|f| f.join().unwrap()).collect();
        // Let the cycles land what was accepted.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !files_in(&dir.path().join("s/inbox")).iter().all(|f| !f.to_str().unwrap().ends_with(".jsonl")) || !files_in(&dir.path().join("s/inbox/webhooks")).is_empty() {
            assert!(Instant::now() < deadline, "the inbox was never landed\n{}", log.lock().unwrap().join("\n"));
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(500));
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (sampler.join().unwrap(), statuses, acked)
    });
    let metrics = request(addr, "GET", "/metrics", &[], b"").unwrap().body;
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());

    eprintln!("flood: peak RSS of serve {:.0} MB", peak as f64 / 1e6);
    assert!(acked.iter().all(|&s| s == 200), "every webhook acknowledged during the flood: {acked:?}");
    assert!(statuses.iter().all(|(huge, _)| *huge == 413), "a 1 MB event is over the 4 KiB limit");
    let accepted = statuses.iter().filter(|(_, s)| *s == 200).count();
    let over_quota = statuses.iter().filter(|(_, s)| *s == 429).count();
    assert!(accepted >= 40, "batches within the quota are taken: {accepted}");
    assert_eq!(accepted + over_quota, statuses.len(), "ordinary batches are taken or told to come back: {statuses:?}");
    assert_eq!(metric(&metrics, "shopfeat_refusals_total{route=\"pixel\",reason=\"event_too_large\"}"), Some(320.0), "{metrics}");
    if over_quota > 0 {
        assert_eq!(metric(&metrics, "shopfeat_refusals_total{route=\"pixel\",reason=\"quota\"}"), Some(over_quota as f64), "{metrics}");
    }
    // The bound: a serve process whose cycles compute the sample shop, with
    // every refused megabyte never held past its request.
    assert!(peak < 400 << 20, "peak RSS {:.0} MB during the flood and its cycles", peak as f64 / 1e6);
}

#[test]
fn the_pixel_quota_answers_429_with_retry_after_and_counts_apart_from_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = quiet_options(dir.path(), spec(dir.path()));
    options.pixel_quota = Amount { files: 3, bytes: 1 << 20 };
    options.webhook_quota = Amount { files: 2, bytes: 1 << 20 };
    options.pixel_requests_per_sec = 1000.0;
    let server = Server::start(options);
    let batch = serde_json::to_vec(&json!([pixel_event("q")])).unwrap();
    let answers: Vec<u16> = (0..5).map(|_| post_pixel(server.addr, &batch).status).collect();
    assert_eq!(answers, [200, 200, 200, 429, 429]);
    let refused = post_pixel(server.addr, &batch);
    assert!(refused.headers.get("retry-after").and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s >= 1), "{:?}", refused.headers);
    // The webhooks' own quota: the full pixel quota does not touch it.
    let body = serde_json::to_vec(&example_product()).unwrap();
    let webhooks: Vec<u16> = (0..3).map(|n| deliver(server.addr, SECRET, DOMAIN, "products/update", &format!("q-{n}"), &body).status).collect();
    assert_eq!(webhooks, [200, 200, 429]);
    // A refused delivery is not remembered: once there is room it is written.
    let metrics = request(server.addr, "GET", "/metrics", &[], b"").unwrap().body;
    assert_eq!(metric(&metrics, "shopfeat_refusals_total{route=\"pixel\",reason=\"quota\"}"), Some(3.0), "{metrics}");
    assert_eq!(metric(&metrics, "shopfeat_refusals_total{route=\"webhook\",reason=\"quota\"}"), Some(1.0), "{metrics}");
    assert_eq!(metric(&metrics, "shopfeat_inbox_files{shop=\"s\"}"), Some(5.0), "{metrics}");
    drop(server);
    std::fs::remove_file(files_in(&dir.path().join("s/inbox/webhooks"))[0].clone()).unwrap();
    let server = Server::start(quiet_options(dir.path(), spec(dir.path())));
    assert_eq!(deliver(server.addr, SECRET, DOMAIN, "products/update", "q-2", &body).body, "ok\n", "the refused delivery was never marked received");
}

#[test]
fn pixel_posts_are_rate_limited_per_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = quiet_options(dir.path(), spec(dir.path()));
    // One post every two seconds, a burst of one.
    options.pixel_requests_per_sec = 0.5;
    let server = Server::start(options);
    let batch = serde_json::to_vec(&json!([pixel_event("r")])).unwrap();
    let answers: Vec<crate::webhook_client::Response> = (0..2).map(|_| post_pixel(server.addr, &batch)).collect();
    assert_eq!(answers.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 429]);
    assert_eq!(answers[1].headers.get("retry-after").map(String::as_str), Some("2"), "{:?}", answers[1].headers);
    // Webhooks are not pixel posts.
    let body = serde_json::to_vec(&example_product()).unwrap();
    assert_eq!(deliver(server.addr, SECRET, DOMAIN, "products/update", "not-rated", &body).status, 200);
    let metrics = request(server.addr, "GET", "/metrics", &[], b"").unwrap().body;
    assert_eq!(metric(&metrics, "shopfeat_refusals_total{route=\"pixel\",reason=\"rate\"}"), Some(1.0), "{metrics}");
}

#[test]
fn big_batches_are_counted_before_they_are_parsed_and_big_events_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = quiet_options(dir.path(), spec(dir.path()));
    options.max_pixel_events = 3;
    options.max_event_bytes = 1024;
    let server = Server::start(options);
    // Five elements where three are allowed, the fifth not even valid JSON: the
    // count stops the parse at the fourth.
    let five = format!("[{}, {}, {}, {{\"d\": 4}}, {{\"broken\": ]", pixel_event("a"), pixel_event("b"), pixel_event("c"));
    let refused = post_pixel(server.addr, five.as_bytes());
    assert_eq!((refused.status, refused.body.as_str()), (413, "more than 3 events in one batch; at most 3\n"));
    let ndjson = (0..4).map(|i| pixel_event(&format!("n{i}")).to_string() + "\n").collect::<String>();
    let refused = post_pixel(server.addr, ndjson.as_bytes());
    assert_eq!((refused.status, refused.body.as_str()), (413, "4 events in one batch; at most 3\n"));
    let big = serde_json::to_vec(&json!([pixel_event("ok"), padded_event("big", 2000)])).unwrap();
    let refused = post_pixel(server.addr, &big);
    assert_eq!(refused.status, 413);
    assert!(refused.body.starts_with("event 2 has "), "{}", refused.body);
    let three = serde_json::to_vec(&json!([pixel_event("x"), pixel_event("y"), pixel_event("z")])).unwrap();
    assert_eq!(post_pixel(server.addr, &three).body, "{\"accepted\":3}\n");
    let metrics = request(server.addr, "GET", "/metrics", &[], b"").unwrap().body;
    assert_eq!(metric(&metrics, "shopfeat_refusals_total{route=\"pixel\",reason=\"too_many_events\"}"), Some(2.0), "{metrics}");
    assert_eq!(metric(&metrics, "shopfeat_refusals_total{route=\"pixel\",reason=\"event_too_large\"}"), Some(1.0), "{metrics}");
    assert_eq!(files_in(&dir.path().join("s/inbox")).iter().filter(|f| f.to_str().unwrap().ends_with(".jsonl")).count(), 1, "only the batch within the limits");
}

#[test]
fn slow_requests_time_out_and_requests_past_the_in_flight_limit_get_503() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = quiet_options(dir.path(), spec(dir.path()));
    options.request_timeout = Duration::from_millis(1500);
    options.max_in_flight = 2;
    let server = Server::start(options);
    // Two clients that send their headers, then trickle nothing of their body.
    let slow: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(server.addr).unwrap();
            use std::io::Write;
            write!(s, "POST /pixel/s HTTP/1.1\r\nHost: t\r\nX-Shopfeat-Token: {PIXEL_TOKEN}\r\nContent-Length: 100\r\n\r\n[").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let batch = serde_json::to_vec(&json!([pixel_event("x")])).unwrap();
    let busy = post_pixel(server.addr, &batch);
    assert_eq!(busy.status, 503, "{}", busy.body);
    assert!(busy.headers.contains_key("retry-after"));
    // Webhooks have their own limit.
    let body = serde_json::to_vec(&example_product()).unwrap();
    assert_eq!(deliver(server.addr, SECRET, DOMAIN, "products/update", "while-busy", &body).status, 200);
    for mut s in slow {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    }
    assert_eq!(post_pixel(server.addr, &batch).status, 200, "free again");
    let metrics = request(server.addr, "GET", "/metrics", &[], b"").unwrap().body;
    assert_eq!(metric(&metrics, "shopfeat_refusals_total{route=\"pixel\",reason=\"timeout\"}"), Some(2.0), "{metrics}");
    assert_eq!(metric(&metrics, "shopfeat_refusals_total{route=\"pixel\",reason=\"busy\"}"), Some(1.0), "{metrics}");
}

/// What the server sends on `stream` before it closes it (within 5 s).
fn until_closed(stream: &mut std::net::TcpStream) -> Result<String, std::io::Error> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[test]
fn connections_are_capped_and_a_client_that_trickles_its_head_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = quiet_options(dir.path(), spec(dir.path()));
    options.max_connections = 3;
    options.header_timeout = Duration::from_millis(700);
    let server = Server::start(options);
    // Half a request head, then nothing; and two connections that say nothing.
    let mut trickling = std::net::TcpStream::connect(server.addr).unwrap();
    use std::io::Write;
    trickling.write_all(b"POST /webhooks/shopify HTTP/1.1\r\nHost: t\r\n").unwrap();
    let mut silent: Vec<std::net::TcpStream> = (0..2).map(|_| std::net::TcpStream::connect(server.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    // A fourth is closed as it arrives.
    let started = Instant::now();
    let mut extra = std::net::TcpStream::connect(server.addr).unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(!until_closed(&mut extra).unwrap_or_default().contains("200 OK"), "no answer past the connection cap");
    assert!(started.elapsed() < Duration::from_millis(600), "closed at once, not after the header timeout");
    // The header timeout closes the other three.
    let started = Instant::now();
    assert!(!until_closed(&mut trickling).unwrap_or_default().contains("200 OK"));
    for s in &mut silent {
        let _ = until_closed(s);
    }
    assert!(started.elapsed() < Duration::from_secs(3), "cut off after the header timeout: {:?}", started.elapsed());
    // Then the server answers again.
    assert_eq!(request(server.addr, "GET", "/healthz", &[], b"").unwrap().status, 200);
    let metrics = request(server.addr, "GET", "/metrics", &[], b"").unwrap().body;
    assert_eq!(metric(&metrics, "shopfeat_refusals_total{route=\"connection\",reason=\"connections\"}"), Some(1.0), "{metrics}");
}

/// `serve` for shop `s` whose inbox writes do what `failpoints` says.
fn serve_with_failpoints(root: &Path, failpoints: &str, log: Log) -> (std::process::Child, SocketAddr) {
    let config = root.join("serve.toml");
    std::fs::write(&config, format!("[shopify]\napi_secret = \"{SECRET}\"\n")).unwrap();
    let mut command = shopfeat_serve(root, &config, &["--shop-domain", DOMAIN, "--debounce-ms", "600000", "--max-delay-secs", "600"]);
    command.env("SHOPFEAT_FAILPOINTS", failpoints);
    spawn_serve(command, log)
}

fn stop(mut child: std::process::Child) {
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_redelivery_during_the_first_write_waits_for_it_and_a_lost_write_is_written_again() {
    let body = serde_json::to_vec(&example_product()).unwrap();

    // The first write takes 1.5 s; Shopify redelivers meanwhile.
    let dir = tempfile::tempdir().unwrap();
    let webhooks = dir.path().join("s/inbox/webhooks");
    let (child, addr) = serve_with_failpoints(dir.path(), "inbox-write=1*sleep(1500)", Log::default());
    std::thread::scope(|scope| {
        let first = scope.spawn(|| deliver(addr, SECRET, DOMAIN, "products/update", "slow-1", &body));
        std::thread::sleep(Duration::from_millis(300));
        let again = deliver(addr, SECRET, DOMAIN, "products/update", "slow-1", &body);
        assert_eq!(again.status, 200);
        assert_eq!(files_in(&webhooks).len(), 1, "acknowledged only once the delivery is on disk");
        assert_eq!(first.join().unwrap().body, "ok\n");
    });
    assert_eq!(files_in(&webhooks).len(), 1, "written once");
    stop(child);

    // Shopify hangs up after 200 ms (its timeout, scaled down); the write then fails.
    let dir = tempfile::tempdir().unwrap();
    let webhooks = dir.path().join("s/inbox/webhooks");
    let (child, addr) = serve_with_failpoints(dir.path(), "inbox-write=1*sleep(1000)+fail", Log::default());
    {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let hmac = shopfeat::serve::sign(&shopfeat::config::Secret::new(SECRET), &body);
        use std::io::Write;
        write!(stream, "POST /webhooks/shopify HTTP/1.1\r\nHost: t\r\nX-Shopify-Hmac-Sha256: {hmac}\r\nX-Shopify-Shop-Domain: {DOMAIN}\r\nX-Shopify-Topic: products/update\r\nX-Shopify-Webhook-Id: lost-1\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
        stream.write_all(&body).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    } // the connection closes unanswered
    std::thread::sleep(Duration::from_millis(2500));
    let retried = deliver(addr, SECRET, DOMAIN, "products/update", "lost-1", &body);
    assert_eq!((retried.status, retried.body.as_str()), (200, "ok\n"), "the failed write released the id, so the retry is written");
    assert_eq!(files_in(&webhooks).len(), 1);
    stop(child);
}

#[test]
fn a_scheduled_full_cycle_runs_while_deliveries_keep_the_shop_busy() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = quiet_options(dir.path(), scheduled_spec(dir.path()));
    options.debounce = Duration::from_millis(100);
    options.max_delay = Duration::from_millis(300);
    let server = Server::start(options);
    let template = example_product();
    // Deliveries back to back for 11 s: the shop always has one waiting.
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(11) {
        let mut product = template.clone();
        product["id"] = json!(2_000_000 + n);
        assert_eq!(deliver(server.addr, SECRET, DOMAIN, "products/update", &format!("busy-{n}"), &serde_json::to_vec(&product).unwrap()).status, 200);
        n += 1;
        std::thread::sleep(Duration::from_millis(40));
    }
    let metrics = request(server.addr, "GET", "/metrics", &[], b"").unwrap().body;
    let full = metric(&metrics, "shopfeat_cycles_total{shop=\"s\",kind=\"full\",outcome=\"ok\"}").unwrap_or(0.0);
    let incremental = metric(&metrics, "shopfeat_cycles_total{shop=\"s\",kind=\"incremental\",outcome=\"ok\"}").unwrap_or(0.0);
    eprintln!("{n} deliveries in 11 s: {full} full cycles, {incremental} incremental");
    assert!(full >= 2.0, "full cycles every 2 s ran though the shop was never idle: {metrics}");
    assert!(incremental >= 1.0, "{metrics}");
}

#[test]
fn probes_answer_before_webhook_subscriptions_finish() {
    let dir = tempfile::tempdir().unwrap();
    // A Shopify that accepts connections and never answers.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", black_hole.local_addr().unwrap());
    let mut fetch = shopfeat::shopify::FetchOptions::new(&url, shopfeat::config::Secret::new("shpat_black_hole"), shopfeat::shopify::Mode::Historical);
    fetch.timeout = Duration::from_secs(20);
    let mut options = quiet_options(dir.path(), ShopSpec { full_source: Some(shopfeat::pipeline::Source::Shopify(fetch)), ..spec(dir.path()) });
    options.public_url = Some("https://shopfeat.app.example".into());
    let started = Instant::now();
    let server = Server::start(options);
    let health = request(server.addr, "GET", "/healthz", &[], b"").unwrap();
    assert_eq!(health.status, 200, "{}", health.body);
    let body = serde_json::to_vec(&example_product()).unwrap();
    assert_eq!(deliver(server.addr, SECRET, DOMAIN, "products/update", "early-1", &body).status, 200);
    assert!(started.elapsed() < Duration::from_secs(5), "answered while the subscription waits on Shopify: {:?}", started.elapsed());
    let metrics = request(server.addr, "GET", "/metrics", &[], b"").unwrap().body;
    assert_eq!(metric(&metrics, "shopfeat_inbox_files{shop=\"s\"}"), Some(1.0), "{metrics}");
    drop(black_hole);
}
