//! The pipeline at three sizes, each stage timed with its peak memory, against
//! two peers measured in the same run on the same data:
//! - ingest against a bare `serde_json` parse of the same lines (the least any
//!   JSON landing must pay);
//! - the heavy feature work, table by table (product and user aggregates, pair
//!   co-purchase and co-view counts, sessions, interactions, collection views and
//!   clicks: `shopfeat::peer::TABLES`), computed by our feature plans and by DuckDB
//!   SQL (`sql/peer/`) from the same normalized Parquet files, checked equal value
//!   by value.
//! - `trainset` over 26 weekly cut-offs ending at the compute's `T` (sample and
//!   medium; a `large` cut-off takes about as long as a compute) against the
//!   compute of all tables at `T` in the same run (the mean of one compute
//!   before it and one after): the ratio issue 29 bounds.
//!
//! Stages run as `shopfeat` child processes so each one's peak RSS is its own.
//! Presets: env `SHOPFEAT_BENCH_PRESETS` (default `sample,medium`; `large` needs
//! ~12 GB of disk and ~15 minutes). Shops are generated once into
//! `~/.cache/shopfeat-bench`. Run: `cargo bench --bench pipeline`.
//!
//! `SHOPFEAT_BENCH` picks what runs: `pipeline` (the default, above), `export`
//! (Gorse export throughput into the tests' stand-in), `fetch` (a historical and
//! an incremental run through the tests' fake Admin API) or `serve` (webhook →
//! Gorse latency, acknowledgements under load), `fast` (the fast lane's cycles on
//! a landed root, `SHOPFEAT_FAST_ROOT`), `fleet` (`run --all` over 200
//! sample-sized shops) or `lifecycle` (compute as 10,000 cycles' snapshots pile
//! up, with and without compaction); see `benches/services/`. `peers` runs the
//! peer tables alone, several times each (`SHOPFEAT_PEER_PRESET`, default
//! `medium`, on the root a `pipeline` run left; `SHOPFEAT_PEER_RUNS`).

use shopfeat::features::Inputs;
use shopfeat::generate::{self, PresetName};
use shopfeat::land;
use shopfeat::normalize::{self, RawTables};
use shopfeat::peer;
use shopfeat::storage::DataRoot;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The allocator `shopfeat` runs with (`src/main.rs`; with mimalloc's
/// `override` the C side's `malloc` too): what runs in this process — the
/// serve bench's cycles, both sides of the peer tables — is measured as a user
/// runs it, not with the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// The tests' loopback stand-ins for Gorse and the Admin API, shared with the
// service benchmarks (their own tests compile only under `cargo test`).
#[allow(dead_code)]
#[path = "../tests/it/http.rs"]
mod http;
#[allow(dead_code)]
#[path = "../tests/it/gorse_standin.rs"]
mod gorse_standin;
#[allow(dead_code)]
#[path = "../tests/it/graphql.rs"]
mod graphql;
#[allow(dead_code)]
#[path = "../tests/it/shopify_fake.rs"]
mod shopify_fake;
#[path = "services/export.rs"]
mod export_bench;
#[path = "services/fetch.rs"]
mod fetch_bench;
#[allow(dead_code)]
#[path = "../tests/it/webhook_client.rs"]
mod webhook_client;
#[path = "services/serve.rs"]
mod serve_bench;
#[path = "services/fleet.rs"]
mod fleet_bench;
#[path = "services/lifecycle.rs"]
mod lifecycle_bench;
#[path = "services/fast.rs"]
mod fast_bench;

const BIN: &str = env!("CARGO_BIN_EXE_shopfeat");

/// Seconds, peak resident MB and stdout of one child process.
struct Measured {
    seconds: f64,
    peak_mb: f64,
    stdout: String,
}

fn measure(command: &mut Command) -> Measured {
    let started = Instant::now();
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).env_remove("RUST_LOG").spawn().expect("spawn shopfeat");
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out_reader = read_all(Box::new(child.stdout.take().expect("stdout")));
    let err_reader = read_all(Box::new(child.stderr.take().expect("stderr")));
    // The child's own peak RSS, as `run --all` reads it.
    let (code, peak) = shopfeat::fleet::wait_with_peak(&mut child);
    let seconds = started.elapsed().as_secs_f64();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    assert_eq!(code, Some(0), "{command:?} failed:\n{stderr}");
    Measured { seconds, peak_mb: peak.unwrap_or(0) as f64 / (1 << 20) as f64, stdout }
}

fn shopfeat(root: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(["--root", root.to_str().expect("utf-8 path"), "--shop", "bench"]);
    c
}

fn cached_shop(preset: PresetName) -> (PathBuf, Option<Measured>) {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    let dir = Path::new(&home).join(".cache/shopfeat-bench").join(format!("{preset:?}-42").to_lowercase());
    if dir.join("manifest.json").exists() {
        return (dir, None);
    }
    let name = format!("{preset:?}").to_lowercase();
    let generated = measure(Command::new(BIN).args(["generate", "--preset", &name, "--seed", "42", "--out", dir.to_str().expect("utf-8 path")]));
    (dir, Some(generated))
}

fn as_of(shop: &Path) -> i64 {
    let manifest: generate::Manifest = serde_json::from_slice(&std::fs::read(shop.join("manifest.json")).expect("manifest")).expect("manifest JSON");
    shopfeat::time::parse_time(&manifest.as_of).expect("as_of")
}

/// Parses every line of every input with serde_json; nothing else.
fn parse_only(inputs: &[land::InputFile]) {
    for input in inputs {
        let file = std::fs::File::open(&input.path).expect("open");
        match input.kind {
            land::InputKind::Lines => {
                for line in BufReader::with_capacity(1 << 20, file).lines() {
                    let line = line.expect("read");
                    if !line.trim().is_empty() {
                        let _: serde_json::Value = serde_json::from_str(&line).expect("json");
                    }
                }
            }
            land::InputKind::Payload => {
                let mut text = String::new();
                BufReader::new(file).read_to_string(&mut text).expect("read");
                let _: serde_json::Value = serde_json::from_str(&text).expect("json");
            }
        }
    }
}

/// The seconds of `stage` in a `--json` report's `stages`.
fn stage_seconds(report: &serde_json::Value, stage: &str) -> f64 {
    report["stages"].as_array().into_iter().flatten().find(|s| s["stage"] == stage).and_then(|s| s["seconds"].as_f64()).unwrap_or(f64::NAN)
}

/// Each peer table both ways on the same main-table files: (table, ours s, DuckDB s).
fn peer_tables(root: &Path, t: i64) -> Vec<(&'static str, f64, f64)> {
    peer_tables_in(root, &root.join("peer-main"), t, 1).into_iter().map(|(table, ours, duckdb)| (table, ours[0], duckdb[0])).collect()
}

/// [`peer_tables`] with the main tables written to `dir`, each table run
/// `runs` times both ways (alternately): every run's seconds.
fn peer_tables_in(root: &Path, dir: &Path, t: i64, runs: usize) -> Vec<(&'static str, Vec<f64>, Vec<f64>)> {
    let data = DataRoot::open(root.to_str().expect("utf-8 path")).expect("root");
    let raw = RawTables::open(&data, "bench").expect("raw");
    let main = normalize::normalize(&raw, Some(t)).expect("normalize").materialize().expect("materialize");
    peer::write_main(&main, dir).expect("write main tables");
    let inputs = Inputs::lazy(peer::read_main(dir, &main).expect("read main tables"), "bench", t, Default::default()).expect("inputs");
    drop(main);
    let conn = peer::duckdb_connection(dir, t).expect("duckdb");
    let mut timings = vec![];
    for table in &peer::TABLES {
        let (mut ours_seconds, mut duckdb_seconds) = (vec![], vec![]);
        if std::env::var("SHOPFEAT_PEER_EXPLAIN").as_deref() == Ok(table.name) {
            eprintln!("{}", table.ours(&inputs).unwrap().explain(true).unwrap());
        }
        for _ in 0..runs {
            let started = Instant::now();
            let ours = table.ours(&inputs).and_then(|plan| plan.collect()).expect("our plan");
            ours_seconds.push(started.elapsed().as_secs_f64());
            let started = Instant::now();
            table.run_duckdb(&conn, dir, t).expect("peer SQL");
            duckdb_seconds.push(started.elapsed().as_secs_f64());
            let theirs = table.duckdb_result(&conn, dir).expect("read DuckDB's table");
            table.compare(&ours, &theirs).expect("ours and DuckDB agree");
        }
        timings.push((table.name, ours_seconds, duckdb_seconds));
    }
    timings
}

/// The peer tables alone, on the root a `pipeline` run left for a preset
/// (`~/.cache/shopfeat-bench/<preset>-root`, or `SHOPFEAT_PEER_ROOT`), each
/// table both ways `SHOPFEAT_PEER_RUNS` times (default 5), alternately: the
/// median of each side and its ratio. `SHOPFEAT_PEER_EXPLAIN=<table>` prints
/// our optimized plan of that table first.
fn peers_only() {
    let preset = std::env::var("SHOPFEAT_PEER_PRESET").unwrap_or_else(|_| "medium".into());
    let name = <PresetName as clap::ValueEnum>::from_str(&preset, true).expect("preset: sample, medium or large");
    let (shop, _) = cached_shop(name);
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    let root = std::env::var("SHOPFEAT_PEER_ROOT").map(PathBuf::from).unwrap_or_else(|_| Path::new(&home).join(".cache/shopfeat-bench").join(format!("{preset}-root")));
    let runs = std::env::var("SHOPFEAT_PEER_RUNS").ok().and_then(|n| n.parse().ok()).unwrap_or(5);
    let scratch = tempfile::tempdir_in(root.parent().expect("parent")).expect("tempdir");
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("| {preset} peer table | ours (median of {runs}) | DuckDB | ours / DuckDB | ours, every run |");
    println!("|---|---|---|---|---|");
    for (table, ours, duckdb) in peer_tables_in(&root, scratch.path(), as_of(&shop), runs) {
        let every = ours.iter().map(|s| format!("{s:.3}")).collect::<Vec<_>>().join(", ");
        let (ours, duckdb) = (median(ours), median(duckdb));
        println!("| {table} | {ours:.3} s | {duckdb:.3} s | {:.2} | {every} |", ours / duckdb);
    }
}

fn main() {
    match std::env::var("SHOPFEAT_BENCH").as_deref().unwrap_or("pipeline") {
        "pipeline" => pipeline(),
        "export" => export_bench::run(),
        "fetch" => fetch_bench::run(),
        "serve" => serve_bench::run(),
        "fleet" => fleet_bench::run(),
        "lifecycle" => lifecycle_bench::run(),
        "fast" => fast_bench::run(),
        "peers" => peers_only(),
        other => panic!("SHOPFEAT_BENCH={other}: pipeline, peers, export, fetch, serve, fast, fleet or lifecycle"),
    }
}

fn pipeline() {
    let presets = std::env::var("SHOPFEAT_BENCH_PRESETS").unwrap_or_else(|_| "sample,medium".into());
    let rows = [
        "| preset | raw JSON | generate | ingest (peak) | ingest / bare parse | compute all tables (peak) | normalize · features · write |",
        "|---|---|---|---|---|---|---|",
    ];
    let mut peers = vec!["| preset | peer table | ours | DuckDB | ours / DuckDB |".to_string(), "|---|---|---|---|---|".to_string()];
    // Seconds per stage (ingest, normalize, features, write) by preset, for the ratios.
    let mut stage_seconds_by_preset: Vec<(String, [f64; 4])> = vec![];
    let mut table: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
    let mut notes = vec![];
    for name in presets.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let preset = <PresetName as clap::ValueEnum>::from_str(name, true).expect("preset: sample, medium or large");
        let (shop, generated) = cached_shop(preset);
        let t = as_of(&shop);
        let inputs = land::collect_inputs(std::slice::from_ref(&shop)).expect("inputs");
        let mb = inputs.iter().map(|i| std::fs::metadata(&i.path).map(|m| m.len()).unwrap_or(0)).sum::<u64>() as f64 / 1e6;
        let scratch = tempfile::tempdir_in(shop.parent().expect("cache dir")).expect("tempdir");
        let root = scratch.path().join("root");

        let ingest = measure(shopfeat(&root).args(["-q", "ingest", shop.to_str().expect("utf-8 path")]));
        let started = Instant::now();
        parse_only(&inputs);
        let parse = started.elapsed().as_secs_f64();
        let time = chrono::DateTime::from_timestamp_micros(t).expect("as_of").to_rfc3339();
        let compute = measure(shopfeat(&root).args(["-q", "compute", "--json", "--as-of", &time]));
        let report: serde_json::Value = serde_json::from_str(&compute.stdout).expect("compute --json prints one JSON object");
        let stages = ["normalize", "features", "write"].map(|stage| stage_seconds(&report, stage));
        for (table, ours, duckdb) in peer_tables(&root, t) {
            peers.push(format!("| {name} | {table} | {ours:.2} s | {duckdb:.2} s | {:.2} |", ours / duckdb));
            eprintln!("{}", peers.last().expect("row"));
        }
        stage_seconds_by_preset.push((name.to_string(), [ingest.seconds, stages[0], stages[1], stages[2]]));
        if preset != PresetName::Large {
            let first = chrono::DateTime::from_timestamp_micros(t - 25 * 7 * 86_400_000_000).expect("first cut-off").to_rfc3339();
            let out = scratch.path().join("trainset");
            let cutoffs = format!("{first}..{time}/7d");
            let trainset = measure(shopfeat(&root).args(["-q", "trainset", "--cutoffs", &cutoffs, "--out", out.to_str().expect("utf-8 path"), "--json"]));
            let manifest: serde_json::Value = serde_json::from_str(&trainset.stdout).expect("trainset --json prints its manifest");
            // The compute again, right after: one compute's time drifts by a
            // fifth between runs on a shared machine; the ratio takes the mean
            // of the one before the training set and the one after.
            let again = measure(shopfeat(&root).args(["-q", "compute", "--json", "--as-of", &time]));
            let mean = (compute.seconds + again.seconds) / 2.0;
            let line = format!(
                "{name}: `trainset` over 26 weekly cut-offs (default candidates, star layout): {:.1} s, {:.0} MB peak, {} rows = {:.1}× the compute of all tables at the last cut-off ({:.2} s: the mean of {:.2} s before and {:.2} s after)",
                trainset.seconds, trainset.peak_mb, manifest["rows"], trainset.seconds / mean, mean, compute.seconds, again.seconds
            );
            eprintln!("{line}");
            notes.push(line);
        }

        let generate = generated.map(|g| format!("{:.1} s, {:.0} MB", g.seconds, g.peak_mb)).unwrap_or_else(|| "cached".into());
        table.push(format!(
            "| {name} | {mb:.0} MB | {generate} | {:.1} s ({:.0} MB/s), {:.0} MB | {:.1}× | {:.1} s, {:.0} MB | {:.1} · {:.1} · {:.1} s |",
            ingest.seconds, mb / ingest.seconds, ingest.peak_mb, ingest.seconds / parse, compute.seconds, compute.peak_mb,
            stages[0], stages[1], stages[2]
        ));
        eprintln!("{}", table.last().expect("row"));

        if preset == PresetName::Sample {
            // The nightly job end to end on the committed sample: land, compute, write, summary.
            let run_root = scratch.path().join("run");
            let run = measure(Command::new(BIN).current_dir(env!("CARGO_MANIFEST_DIR")).args(["--root", run_root.to_str().expect("utf-8 path"), "run"]));
            eprintln!("shopfeat run on data/sample: {:.2} s, {:.0} MB peak", run.seconds, run.peak_mb);
            notes.push(format!("`shopfeat run` on data/sample (land, compute, write, summary): {:.2} s, {:.0} MB peak", run.seconds, run.peak_mb));
        }
    }
    println!("{}\n", table.join("\n"));
    println!("{}\n", peers.join("\n"));
    let seconds = |preset: &str| stage_seconds_by_preset.iter().find(|(p, _)| p == preset).map(|(_, s)| *s);
    if let (Some(medium), Some(large)) = (seconds("medium"), seconds("large")) {
        let ratios: Vec<String> = ["ingest", "normalize", "features", "write"].iter().zip(large.iter().zip(medium)).map(|(stage, (l, m))| format!("{stage} {:.1}×", l / m)).collect();
        println!("large / medium per stage: {}\n", ratios.join(", "));
    }
    for note in notes {
        println!("{note}");
    }
}
