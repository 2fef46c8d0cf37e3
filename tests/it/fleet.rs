//! Many shops: `run --all` over the config file's `[[shops]]` (bounded parallel
//! processes, one failure never stopping another, a summary), `--shard I/N`,
//! `--cycle KEY`, and four workers plus a late duplicate over one S3 bucket.

use shopfeat::fleet::Shard;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const AS_OF: &str = "2025-11-30T23:59:59Z";

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A config file listing `shops` as (id, inputs folder).
fn write_config(dir: &Path, shops: &[(String, PathBuf)]) -> PathBuf {
    let mut text = String::new();
    for (id, inputs) in shops {
        text.push_str(&format!("[[shops]]\nid = {id:?}\ninputs = [{:?}]\n\n", inputs.display().to_string()));
    }
    let path = dir.join("shopfeat.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn shopfeat(root: &str, config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shopfeat"));
    c.args(["--root", root, "--config", config.to_str().unwrap()]).args(args).env_remove("SHOPFEAT_SHOP").env_remove("RUST_LOG").env_remove("GORSE_URL").env_remove("SHOPFEAT_CYCLE").env_remove("JOB_COMPLETION_INDEX");
    c
}

fn runs(out: &Output) -> BTreeMap<String, serde_json::Value> {
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
    list.into_iter().map(|r| (r["shop"].as_str().unwrap().to_string(), r)).collect()
}

fn outcomes(out: &Output) -> BTreeMap<String, String> {
    runs(out).into_iter().map(|(k, v)| (k, v["outcome"].as_str().unwrap().to_string())).collect()
}

/// A feature table of `shop` under a local root, as a DataFrame.
fn table(root: &Path, shop: &str, name: &str) -> polars::prelude::DataFrame {
    use polars::prelude::SerReader;
    let root = shopfeat::storage::DataRoot::open(root.to_str().unwrap()).unwrap();
    polars::prelude::ParquetReader::new(std::fs::File::open(crate::common::feature_file(&root, shop, name)).unwrap()).finish().unwrap()
}

#[test]
fn shards_split_the_fleet_into_disjoint_parts() {
    let shops: Vec<String> = (0..500).map(|i| format!("shop-{i}")).collect();
    let shards: Vec<Shard> = (0..4).map(|i| format!("{i}/4").parse().unwrap()).collect();
    let mut sizes = vec![0; 4];
    for shop in &shops {
        let holders: Vec<usize> = (0..4).filter(|i| shards[*i].holds(shop)).collect();
        assert_eq!(holders.len(), 1, "{shop} is in exactly one shard: {holders:?}");
        sizes[holders[0]] += 1;
    }
    assert!(sizes.iter().all(|n| (75..=175).contains(n)), "shards of similar size: {sizes:?}");
    // The hash is fixed: the same shard on every machine and release.
    assert!("1/4".parse::<Shard>().unwrap().holds("shop-0") == (shopfeat::hash::fnv1a(b"shop-0") % 4 == 1));
    for bad in ["4/4", "1", "a/2", "0/0", "-1/3"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad}");
    }
}

#[test]
fn run_all_runs_every_shop_apart_and_summarises() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let shops = vec![("big".to_string(), repo("data/sample")), ("small".to_string(), repo("tests/fixtures/shop")), ("broken".to_string(), dir.path().join("no-such-export"))];
    let config = write_config(dir.path(), &shops);
    let out = shopfeat(root.to_str().unwrap(), &config, &["run", "--all", "--jobs", "2", "--json", "--as-of", AS_OF]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a failed shop fails the whole: {stderr}");
    let runs = runs(&out);
    assert_eq!(runs.keys().collect::<Vec<_>>(), ["big", "broken", "small"]);
    for ok in ["big", "small"] {
        assert_eq!(runs[ok]["outcome"], "ok", "{stderr}");
        assert!(runs[ok]["rows"].as_u64().unwrap() > 0);
        assert!(runs[ok]["peak_rss_bytes"].as_u64().unwrap() > 10 << 20, "a process's own peak");
    }
    assert_eq!(runs["broken"]["outcome"], "failed");
    assert!(runs["broken"]["error"].as_str().unwrap().contains("not found"), "{}", runs["broken"]);
    assert!(runs["big"]["rows"].as_u64() > runs["small"]["rows"].as_u64());
    // Every line of a shop's log names it.
    assert!(stderr.lines().any(|l| l.starts_with("shop=big ")) && stderr.lines().any(|l| l.starts_with("shop=broken error: ")), "{stderr}");
    assert!(stderr.contains("3 shops: 2 ok, 1 failed, 0 locked, 0 done before"), "{stderr}");
    // The next round's default --jobs reads these peaks back from the run history.
    let data = shopfeat::storage::DataRoot::open(root.to_str().unwrap()).unwrap();
    let peak = shopfeat::fleet::last_peak(&data, "big").expect("a peak in big's history");
    // A stage's peak is sampled, the process's is the kernel's high-water mark,
    // whose counters lag the sampled size by a few pages.
    assert!(peak > 10 << 20 && peak <= runs["big"]["peak_rss_bytes"].as_u64().unwrap() + (8 << 20), "{peak}: a stage's peak, at most the process's");
    assert_eq!(shopfeat::fleet::last_peak(&data, "broken"), None, "no successful run, no peak");
    let jobs = shopfeat::fleet::default_jobs(&data, &["big".into(), "small".into(), "broken".into()]);
    assert!((1..=std::thread::available_parallelism().unwrap().get()).contains(&jobs));

    // The same outputs as a single-shop run of the same inputs.
    let alone = dir.path().join("alone");
    let single = Command::new(env!("CARGO_BIN_EXE_shopfeat"))
        .args(["--root", alone.to_str().unwrap(), "--shop", "big", "run", repo("data/sample").to_str().unwrap(), "--as-of", AS_OF])
        .env_remove("GORSE_URL")
        .env_remove("SHOPFEAT_CONFIG")
        .output()
        .unwrap();
    assert!(single.status.success(), "{}", String::from_utf8_lossy(&single.stderr));
    // (Row order is not part of a table's contract: pairs come in any order.)
    let sorted = |df: polars::prelude::DataFrame| {
        let columns: Vec<String> = df.get_column_names().iter().map(|c| c.to_string()).collect();
        df.sort(columns, Default::default()).unwrap()
    };
    for name in ["product_features", "user_features", "product_pair_features", "session_features"] {
        assert!(sorted(table(&root, "big", name)).equals_missing(&sorted(table(&alone, "big", name))), "{name} differs from a single-shop run");
    }
}

#[test]
fn a_cycle_runs_each_shop_once_and_a_locked_shop_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let shops = vec![("one".to_string(), repo("tests/fixtures/shop")), ("two".to_string(), repo("tests/fixtures/shop"))];
    let config = write_config(dir.path(), &shops);
    let all = |extra: &[&str]| {
        let mut args = vec!["run", "--all", "--json", "--as-of", AS_OF];
        args.extend(extra);
        shopfeat(root.to_str().unwrap(), &config, &args).output().unwrap()
    };
    let first = all(&["--cycle", "2026-12-04"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(outcomes(&first), BTreeMap::from([("one".into(), "ok".into()), ("two".into(), "ok".into())]));
    let again = all(&["--cycle", "2026-12-04"]);
    assert!(again.status.success());
    assert_eq!(outcomes(&again), BTreeMap::from([("one".into(), "done".into()), ("two".into(), "done".into())]), "{}", String::from_utf8_lossy(&again.stderr));

    // A shop another process holds is reported locked, not failed.
    let data = shopfeat::storage::DataRoot::open(root.to_str().unwrap()).unwrap();
    let held = shopfeat::lock::ShopLock::acquire(&data, "one").unwrap();
    let next = all(&["--cycle", "2026-12-05"]);
    assert!(next.status.success(), "{}", String::from_utf8_lossy(&next.stderr));
    assert_eq!(outcomes(&next), BTreeMap::from([("one".into(), "locked".into()), ("two".into(), "ok".into())]));
    drop(held);
    let history = shopfeat::history::load(&data, "one").unwrap();
    assert_eq!(history.iter().filter(|r| r.command == "run").count(), 1, "shop one ran once in all");
}

/// Shops of the S3 fleet test (SHOPFEAT_FLEET_SHOPS; the 50 for a full run).
fn fleet_size() -> usize {
    std::env::var("SHOPFEAT_FLEET_SHOPS").ok().and_then(|v| v.parse().ok()).unwrap_or(12)
}

#[test]
fn four_workers_and_a_late_duplicate_share_one_bucket() {
    let Some(moto) = crate::s3::moto() else { return };
    let dir = tempfile::tempdir().unwrap();
    let inputs = [repo("data/sample"), repo("tests/fixtures/shop")];
    let shops: Vec<(String, PathBuf)> = (0..fleet_size()).map(|i| (format!("shop-{i:03}"), inputs[i % 2].clone())).collect();
    let config = write_config(dir.path(), &shops);
    let root = "s3://shopfeat/fleet";
    let worker = |shard: &str| {
        let mut c = shopfeat(root, &config, &["run", "--all", "--json", "--jobs", "1", "--as-of", AS_OF, "--cycle", "round-1", "--shard", shard]);
        c.env("AWS_ENDPOINT", &moto.endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "shopfeat-test")
            .env("AWS_SECRET_ACCESS_KEY", "shopfeat-test-secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_CONDITIONAL_PUT", "etag")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    let workers: Vec<_> = (0..4).map(|i| worker(&format!("{i}/4"))).collect();
    // The duplicate of index 2 (a retried pod) starts once the original is under way.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let duplicate = worker("2/4");
    let outputs: Vec<Output> = workers.into_iter().map(|w| w.wait_with_output().unwrap()).collect();
    let duplicate = duplicate.wait_with_output().unwrap();

    let mut ran = BTreeSet::new();
    for (i, out) in outputs.iter().enumerate() {
        assert!(out.status.success(), "worker {i}: {}", String::from_utf8_lossy(&out.stderr));
        for (shop, outcome) in outcomes(out) {
            assert!(format!("{i}/4").parse::<Shard>().unwrap().holds(&shop));
            if outcome == "ok" {
                assert!(ran.insert(shop.clone()), "{shop} ran twice");
            }
        }
    }
    assert!(duplicate.status.success(), "{}", String::from_utf8_lossy(&duplicate.stderr));
    let late = outcomes(&duplicate);
    for (shop, outcome) in &late {
        if outcome == "ok" {
            assert!(ran.insert(shop.clone()), "{shop} ran in the original and in the duplicate");
        } else {
            assert!(outcome == "locked" || outcome == "done", "{shop}: {outcome}");
        }
    }
    assert_eq!(ran, shops.iter().map(|(id, _)| id.clone()).collect::<BTreeSet<_>>(), "every shop computed exactly once in the round");
    eprintln!("duplicate of shard 2: {late:?}");

    // Each shop's outputs in the bucket equal a single-process local run: all
    // that an export would send to Gorse, row by row.
    let local = dir.path().join("local");
    for (id, input) in shops.iter().take(2) {
        let single = Command::new(env!("CARGO_BIN_EXE_shopfeat"))
            .args(["--root", local.to_str().unwrap(), "--shop", id, "run", input.to_str().unwrap(), "--as-of", AS_OF])
            .env_remove("GORSE_URL")
            .env_remove("SHOPFEAT_CONFIG")
            .output()
            .unwrap();
        assert!(single.status.success(), "{}", String::from_utf8_lossy(&single.stderr));
        let on_s3 = dry_run(&moto, root, &config, id, &dir.path().join(format!("{id}-s3.jsonl")));
        let on_disk = dry_run(&moto, local.to_str().unwrap(), &config, id, &dir.path().join(format!("{id}-local.jsonl")));
        assert!(!on_s3.is_empty());
        assert_eq!(on_s3, on_disk, "{id}: the bucket's outputs equal a local single-shop run");
    }
}

/// Every row an export of `shop` would send, sorted.
fn dry_run(moto: &crate::s3::Moto, root: &str, config: &Path, shop: &str, file: &Path) -> Vec<String> {
    let out = shopfeat(root, config, &["--shop", shop, "export", "gorse", "--url", "http://127.0.0.1:1", "--dry-run", file.to_str().unwrap()])
        .env("AWS_ENDPOINT", &moto.endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "shopfeat-test")
        .env("AWS_SECRET_ACCESS_KEY", "shopfeat-test-secret")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut rows: Vec<String> = std::fs::read_to_string(file).unwrap().lines().flat_map(|line| {
        let request: serde_json::Value = serde_json::from_str(line).unwrap();
        let head = format!("{} {}", request["method"], request["path"]);
        match request["body"].as_array() {
            Some(items) => items.iter().map(|i| format!("{head} {i}")).collect(),
            None => vec![head],
        }
    }).collect();
    rows.sort();
    rows
}
