//! Many small shops on one machine: `run --all --jobs 2` over N sample-sized shops
//! against the same shops run one at a time (the sum of single-shop times / 2 is
//! what two perfectly parallel workers would take).
//! `SHOPFEAT_BENCH=fleet cargo bench --bench pipeline`; env
//! `SHOPFEAT_FLEET_BENCH_SHOPS` (default 200).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const AS_OF: &str = "2025-11-30T23:59:59Z";

pub fn run() {
    let shops: usize = std::env::var("SHOPFEAT_FLEET_BENCH_SHOPS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("fleet.toml");
    let entries: String = (0..shops).map(|i| format!("[[shops]]\nid = \"shop-{i:04}\"\ninputs = [{:?}]\n\n", sample.display().to_string())).collect();
    std::fs::write(&config, entries).expect("config");

    // One at a time, each its own process, as a cron line per shop would.
    let singles_root = dir.path().join("singles");
    let started = Instant::now();
    let mut single_seconds = vec![];
    for i in 0..shops {
        let one = Instant::now();
        let out = Command::new(crate::BIN)
            .args(["--root", singles_root.to_str().expect("utf-8"), "--shop", &format!("shop-{i:04}"), "-q", "run", sample.to_str().expect("utf-8"), "--as-of", AS_OF])
            .env_remove("GORSE_URL")
            .env_remove("SHOPFEAT_CONFIG")
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        single_seconds.push(one.elapsed().as_secs_f64());
    }
    let sum: f64 = single_seconds.iter().sum();
    println!("{shops} shops one at a time: {:.1} s (sum of single-shop times {sum:.1} s, {:.2} s each)", started.elapsed().as_secs_f64(), sum / shops as f64);

    let fleet_root = dir.path().join("fleet");
    let started = Instant::now();
    let out = Command::new(crate::BIN)
        .args(["--root", fleet_root.to_str().expect("utf-8"), "--config", config.to_str().expect("utf-8"), "-q", "run", "--all", "--jobs", "2", "--json", "--as-of", AS_OF])
        .env_remove("GORSE_URL")
        .output()
        .expect("run --all");
    let seconds = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("the summary as JSON");
    assert_eq!(runs.len(), shops);
    assert!(runs.iter().all(|r| r["outcome"] == "ok"));
    let peaks: Vec<u64> = runs.iter().filter_map(|r| r["peak_rss_bytes"].as_u64()).collect();
    let largest = *peaks.iter().max().expect("peaks") as f64 / 1e6;
    println!(
        "run --all --jobs 2: {seconds:.1} s = {:.2}× (sum of single-shop times / 2); largest shop peak {largest:.0} MB, so two at once stay under {:.0} MB",
        seconds / (sum / 2.0),
        2.0 * largest
    );
}
