//! The object-store path against a real S3-compatible server on loopback (moto,
//! from PyPI; `.ci/run` installs it and sets SHOPFEAT_MOTO_SERVER): ingest,
//! compute, the generation switch, the per-shop lock between overlapping runs, and
//! the Gorse export reading from the bucket, with the same results as a local root.
//! Credentials come from the standard AWS variables.

use crate::gorse_standin::Gorse;
use crate::shopify_fake::{read_shop, Faults, Shopify};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub endpoint: String,
    /// moto's access log (one line per request it answered).
    log: tempfile::NamedTempFile,
}

impl Moto {
    /// The requests moto answered so far, as `METHOD /path` (its access log:
    /// an instrument outside shopfeat).
    pub fn requests(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.log.path()).unwrap();
        text.lines()
            .filter_map(|l| l.split('"').nth(1))
            .map(|r| r.chars().filter(|c| !c.is_control()).collect::<String>())
            .map(|r| r.split("[0m").next().unwrap_or(&r).rsplit('[').next().unwrap_or(&r).trim_start_matches(|c: char| c.is_ascii_digit() || c == ';' || c == 'm').to_string())
            .filter(|r| r.contains(" HTTP/1."))
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto's S3 on a free loopback port, with one bucket; `None` outside CI when
/// moto is not installed.
pub fn moto() -> Option<Moto> {
    let server = match std::env::var("SHOPFEAT_MOTO_SERVER") {
        Ok(s) if !s.is_empty() => s,
        _ if std::env::var_os("CI").is_some() => panic!("SHOPFEAT_MOTO_SERVER is not set: .ci/run installs moto and sets it"),
        _ => return None,
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(server).args(["-H", "127.0.0.1", "-p", &port.to_string()]).stdout(Stdio::null()).stderr(log.reopen().unwrap()).spawn().expect("start moto_server");
    let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}"), log };
    let started = Instant::now();
    loop {
        // Creating the bucket is also the readiness probe.
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = write!(s, "PUT /shopfeat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200") {
                return Some(moto);
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn shopfeat(moto: &Moto, root: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shopfeat"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--root", root, "--shop", "s3shop"])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("GORSE_URL")
        .env("AWS_ENDPOINT", &moto.endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "shopfeat-test")
        .env("AWS_SECRET_ACCESS_KEY", "shopfeat-test-secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONDITIONAL_PUT", "etag")
        .env("SHOPIFY_ACCESS_TOKEN", "shpat_s3");
    c
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every row a dry-run export would send, with its request, sorted (row order
/// within batches is not part of what Gorse ends up with).
fn dry_run(moto: &Moto, root: &str, dir: &Path, name: &str) -> Vec<String> {
    let rows = export_rows(moto, root, dir, name);
    assert!(rows.len() > 1000, "{} rows", rows.len());
    rows
}

/// [`dry_run`], of a shop of any size.
fn export_rows(moto: &Moto, root: &str, dir: &Path, name: &str) -> Vec<String> {
    let file = dir.join(name);
    ok(shopfeat(moto, root, &["export", "gorse", "--url", "http://127.0.0.1:1", "--dry-run", file.to_str().unwrap()]).output().unwrap());
    let mut rows = vec![];
    for line in std::fs::read_to_string(file).unwrap().lines() {
        let request: serde_json::Value = serde_json::from_str(line).unwrap();
        let head = format!("{} {}", request["method"], request["path"]);
        match request["body"].as_array() {
            Some(items) => rows.extend(items.iter().map(|i| format!("{head} {i}"))),
            None => rows.push(head),
        }
    }
    rows.sort();
    rows
}

#[test]
fn a_shop_on_s3_computes_publishes_locks_and_exports_like_a_local_one() {
    let Some(moto) = moto() else {
        eprintln!("skipped: set SHOPFEAT_MOTO_SERVER to moto's moto_server (as .ci/run does)");
        return;
    };
    let s3 = "s3://shopfeat/shops";
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    let local = local.to_str().unwrap();

    // The nightly job on both roots: the same tables.
    let on_s3 = json(&ok(shopfeat(&moto, s3, &["-q", "run", "--json"]).output().unwrap()));
    let on_disk = json(&ok(shopfeat(&moto, local, &["-q", "run", "--json"]).output().unwrap()));
    assert_eq!(on_s3["compute"]["tables"], on_disk["compute"]["tables"]);
    assert_eq!(on_s3["compute"]["tables"][0]["rows"], 350);
    let first = on_s3["compute"]["generation"].as_str().unwrap().to_string();
    // Another compute switches the generation.
    let second = json(&ok(shopfeat(&moto, s3, &["-q", "compute", "--json", "--as-of", "2025-11-30T23:59:59Z"]).output().unwrap()));
    assert_ne!(second["generation"].as_str().unwrap(), first);
    // What the export would send, read from the bucket, equals the local root's.
    assert_eq!(dry_run(&moto, s3, dir.path(), "s3.jsonl"), dry_run(&moto, local, dir.path(), "local.jsonl"));
    // And a real export into the Gorse stand-in.
    let gorse = Gorse::start(None);
    ok(shopfeat(&moto, s3, &["-q", "export", "gorse", "--url", &gorse.url]).output().unwrap());
    assert_eq!((gorse.store().items.len(), gorse.store().users.len()), (350, 381));

    // Overlapping runs on the bucket: a slow fetch holds the shop; the second run
    // exits at once naming it.
    let fake = Shopify::start("shpat_s3", read_shop(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")), "2025-12-01T00:00:00Z");
    fake.set_faults(Faults { operation_time: Some(Duration::from_secs(3)), ..Faults::default() });
    let slow = shopfeat(&moto, s3, &["-q", "fetch", "--api-url", &fake.url, "--mode", "historical"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while fake.queries().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    let second_run = shopfeat(&moto, s3, &["-q", "run"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&second_run.stderr);
    assert_eq!(second_run.status.code(), Some(3), "locked: {stderr}");
    assert!(stderr.contains("shop s3shop is locked by"), "{stderr}");
    ok(slow.wait_with_output().unwrap());
    ok(shopfeat(&moto, s3, &["-q", "compute", "--as-of", "2025-11-30T23:59:59Z"]).output().unwrap());

    // Computes killed mid-upload: readers still see a whole generation (the one
    // before), and the next run completes with the same tables.
    let expected = dry_run(&moto, s3, dir.path(), "before-kills.jsonl");
    for (i, delay) in [150u64, 300, 450, 600].into_iter().enumerate() {
        let mut child = shopfeat(&moto, s3, &["-q", "compute", "--as-of", "2025-11-30T23:59:59Z"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(dry_run(&moto, s3, dir.path(), &format!("killed-{i}.jsonl")), expected, "after a compute killed at {delay} ms");
    }
    // With every log line on, the credentials never show.
    let verbose = ok(shopfeat(&moto, s3, &["-vv", "compute", "--as-of", "2025-11-30T23:59:59Z"]).output().unwrap());
    let logged = String::from_utf8_lossy(&verbose.stderr);
    assert!(logged.contains("stage done") && !logged.contains("shopfeat-test-secret"), "{logged}");
    assert_eq!(dry_run(&moto, s3, dir.path(), "after.jsonl"), expected);
}

/// The process state letter of `pid` (`T`: stopped).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next())
}

fn current_generation(moto: &Moto, root: &str) -> String {
    let out = shopfeat(moto, root, &["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    status[0]["generation"].as_str().unwrap_or_else(|| panic!("{status}")).to_string()
}

#[test]
fn a_run_frozen_past_its_lease_publishes_nothing_after_another_run_took_over() {
    let Some(moto) = moto() else { return };
    let root = "s3://shopfeat/fenced";
    let first = shopfeat(&moto, root, &["-q", "run", "data/sample"]).output().unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));

    // A run whose lease is 3 s freezes (SIGSTOP: every thread, its lock
    // renewer too) just before it would make its generation current.
    let mut frozen = shopfeat(&moto, root, &["run", "data/sample"])
        .env("SHOPFEAT_LOCK_LEASE_MS", "3000")
        .env("SHOPFEAT_FAILPOINTS", "publish=1*stop")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while process_state(frozen.id()) != Some('T') {
        assert!(frozen.try_wait().unwrap().is_none(), "the run ended without freezing");
        assert!(Instant::now() < deadline, "the run never reached its publish");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(3500));
    // Another run takes the expired lock over, publishes, and prunes the frozen
    // run's unpublished generation.
    let second = shopfeat(&moto, root, &["run", "data/sample"]).output().unwrap();
    let second_log = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{second_log}");
    assert!(second_log.contains("taking over the lock of shop s3shop"), "{second_log}");
    let published = current_generation(&moto, root);

    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(frozen.id() as libc::pid_t, libc::SIGCONT) };
    let woken = frozen.wait_with_output().unwrap();
    let woken_log = String::from_utf8_lossy(&woken.stderr);
    assert!(!woken.status.success(), "the woken run must fail: {woken_log}");
    assert!(woken_log.contains("this run no longer holds the shop's lock"), "{woken_log}");
    assert_eq!(current_generation(&moto, root), published, "CURRENT still names the second run's generation");
    let status = shopfeat(&moto, root, &["status"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&status.stderr).contains("error"), "the current generation reads whole: {}", String::from_utf8_lossy(&status.stderr));
    let export = shopfeat(&moto, root, &["-q", "compute"]).output().unwrap();
    assert!(export.status.success(), "the shop goes on: {}", String::from_utf8_lossy(&export.stderr));
}

/// A shop that lives on a bucket for many cycles (issue 24): each cycle lands a
/// small snapshot, computes and publishes; compaction keeps the snapshots few, so
/// the requests a cycle makes (counted by moto) stay flat instead of growing by
/// one per snapshot ever landed, the local cache holds only live files, and
/// what an export would send equals a twin that never compacts.
#[test]
fn a_long_lived_shop_on_s3_makes_as_many_requests_per_cycle_late_as_early() {
    let Some(moto) = moto() else { return };
    let root = "s3://shopfeat/lifetime";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("shopfeat.toml");
    std::fs::write(&config, "[retention]\ncompact_after = 4\n[storage]\ncache_bytes = 1\n").unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let never = dir.path().join("never.toml");
    std::fs::write(&never, "[retention]\ncompact_after = 0\n").unwrap();
    let twin = dir.path().join("twin");
    let twin = twin.to_str().unwrap();
    let cycle = |inputs: &Path| {
        let mut c = shopfeat(&moto, root, &["-q", "--config", config.to_str().unwrap(), "run", inputs.to_str().unwrap(), "--as-of", "2025-12-01T00:00:00Z"]);
        ok(c.env("TMPDIR", &tmp).output().unwrap());
        ok(shopfeat(&moto, twin, &["-q", "--config", never.to_str().unwrap(), "run", inputs.to_str().unwrap(), "--as-of", "2025-12-01T00:00:00Z"]).output().unwrap());
    };
    cycle(&crate::common::fixture("shop"));
    let mut per_cycle = vec![];
    for i in 0..24u64 {
        let inputs = dir.path().join(format!("cycle-{i}/webhooks"));
        std::fs::create_dir_all(&inputs).unwrap();
        let payload = serde_json::json!({"id": 2, "title": format!("Mug, edit {i}"), "updated_at": format!("2025-06-{:02}T00:00:00Z", i + 1), "variants": []});
        std::fs::write(inputs.join("products_update-1.json"), payload.to_string()).unwrap();
        let before = moto.requests().len();
        cycle(inputs.parent().unwrap());
        per_cycle.push(moto.requests()[before..].to_vec());
    }
    let counts: Vec<usize> = per_cycle.iter().map(Vec::len).collect();
    let compacted_rows = export_rows(&moto, root, dir.path(), "compacted.jsonl");
    assert!(compacted_rows.iter().any(|r| r.contains("Mug, edit 23")), "{compacted_rows:?}");
    assert_eq!(compacted_rows, export_rows(&moto, twin, dir.path(), "twin.jsonl"), "what Gorse would get from the compacted shop and from its uncompacted twin");
    eprintln!("requests per cycle: {counts:?}");
    // Compaction every fifth cycle or so makes the count periodic: compare the
    // worst of an early window with the worst of the last one.
    let early = counts[4..12].iter().max().unwrap();
    let late = counts[16..24].iter().max().unwrap();
    assert!(late <= early, "requests per cycle grew from {early} to {late}: {counts:?}\nlast cycle: {:#?}", per_cycle.last());
    // The bucket holds a few snapshots, and the replaced ones' files are gone.
    let keys = bucket_keys(&moto, "lifetime/s3shop/raw/");
    let manifests = keys.iter().filter(|k| k.contains("/_snapshots/")).count();
    let raw_files: Vec<&String> = keys.iter().filter(|k| k.ends_with(".parquet") && !k.contains("/_rejected/")).collect();
    assert!(manifests <= 5, "{manifests} snapshots: {keys:#?}");
    // The local cache holds the live raw files only (its limit is one byte: every
    // file not about to be read is evicted, and replaced ones went with them).
    let mut cached = vec![];
    collect_files(&tmp, &mut cached);
    let raw_cached: Vec<&String> = cached.iter().filter(|p| p.contains("/raw/")).collect();
    assert_eq!(raw_cached.len(), raw_files.len(), "cached {raw_cached:#?}, in the bucket {raw_files:#?}");
    assert!(raw_cached.iter().all(|p| raw_files.iter().any(|k| p.ends_with(k.trim_start_matches("lifetime/")))), "cached {raw_cached:#?}, in the bucket {raw_files:#?}");
}

/// The keys under `prefix` in moto's bucket (its S3 listing, read plainly).
fn bucket_keys(moto: &Moto, prefix: &str) -> Vec<String> {
    use std::io::{Read, Write};
    let port = moto.endpoint.rsplit(':').next().unwrap();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    write!(s, "GET /shopfeat?list-type=2&max-keys=1000&prefix={prefix} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer.split("<Key>").skip(1).filter_map(|k| k.split("</Key>").next()).map(String::from).collect()
}

fn collect_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            collect_files(&entry.path(), out);
        } else {
            out.push(entry.path().display().to_string());
        }
    }
}

/// Every object under `prefix` in moto's bucket, downloaded into `into` (a
/// signed S3 client of our own: moto refuses anonymous reads).
fn download_all(moto: &Moto, prefix: &str, into: &Path) {
    use futures::TryStreamExt;
    use object_store::{ObjectStore, ObjectStoreExt};
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&moto.endpoint)
        .with_allow_http(true)
        .with_bucket_name("shopfeat")
        .with_access_key_id("shopfeat-test")
        .with_secret_access_key("shopfeat-test-secret")
        .with_region("us-east-1")
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let prefix = object_store::path::Path::from(prefix);
        let objects: Vec<_> = store.list(Some(&prefix)).try_collect().await.unwrap();
        for object in objects {
            let bytes = store.get(&object.location).await.unwrap().bytes().await.unwrap();
            let path = into.join(object.location.as_ref());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, &bytes).unwrap();
        }
    });
}

/// `customers/redact` on an object-store root: afterwards no object of the shop
/// (nor the local cache of its raw files) names the customer.
#[test]
fn a_customer_is_erased_from_a_shop_on_s3() {
    let Some(moto) = moto() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Who to erase, found on a local run of the same sample.
    let local = dir.path().join("local");
    ok(shopfeat(&moto, local.to_str().unwrap(), &["-q", "run"]).output().unwrap());
    let data = shopfeat::storage::DataRoot::open(local.to_str().unwrap()).unwrap();
    let (id, email) = crate::privacy::a_customer_with_orders_and_events_of(&data, "s3shop");
    let customer = shopfeat::privacy::Customer { id: Some(id), email: Some(email.clone()), phone: None };
    let person = shopfeat::privacy::redact::identify(&data, &shopfeat::land::snapshots(&data, "s3shop").unwrap(), &customer, &[]).unwrap();

    let root = "s3://shopfeat/private";
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let run = |args: &[&str]| ok(shopfeat(&moto, root, args).env("TMPDIR", &tmp).output().unwrap());
    run(&["-q", "run"]);
    run(&["-q", "compute", "--as-of", "2025-11-30T23:59:59Z"]);
    let before = dir.path().join("before");
    download_all(&moto, "private/s3shop", &before);
    let mut found = vec![];
    crate::privacy::findings(&before, &person, &[id], &mut found);
    assert!(found.len() > 5, "the search finds them before: {found:#?}");

    run(&["-q", "privacy", "redact-customer", "--customer-id", &id.to_string(), "--email", &email, "--request-id", "s3-1"]);
    let after = dir.path().join("after");
    download_all(&moto, "private/s3shop", &after);
    let mut found = vec![];
    crate::privacy::findings(&after, &person, &[id], &mut found);
    crate::privacy::findings(&tmp, &person, &[id], &mut found);
    assert!(found.is_empty(), "still naming the customer on S3 or in the cache: {found:#?}");
    assert!(after.join("private/s3shop/privacy/audit/s3-1.json").exists());
}
