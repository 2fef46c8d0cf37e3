//! Ingest throughput against its floor, on generated shops.
//!
//! For each preset (env `SHOPFEAT_BENCH_PRESETS`, default `sample,medium`): generate
//! the shop once (cached in `$HOME/.cache/shopfeat-bench`), then time
//! - `ingest`: land every file as a Parquet snapshot (decode, type, write);
//! - the peer in the same run: `serde_json` parsing every line of the same files
//!   into values and nothing else — the least any JSON landing must pay;
//! - `normalize`: all ten main tables collected from the snapshots.
//!
//! Prints one table; `ingest / parse` is the cost of landing over bare parsing.
//! Run: `cargo bench --bench ingest`.

use shopfeat::generate::{self, PresetName};
use shopfeat::land;
use shopfeat::normalize::{self, RawTables};
use shopfeat::storage::DataRoot;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn cached_shop(preset: PresetName) -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    let dir = Path::new(&home).join(".cache/shopfeat-bench").join(format!("{preset:?}-42").to_lowercase());
    if !dir.join("manifest.json").exists() {
        let started = Instant::now();
        generate::generate(preset, 42, &dir, false, &indicatif::ProgressBar::hidden()).expect("generate");
        eprintln!("generated {preset:?} in {:.1} s", started.elapsed().as_secs_f64());
    }
    dir
}

/// Parses every line of every input with serde_json; returns the line count.
fn parse_only(inputs: &[land::InputFile]) -> u64 {
    let mut lines = 0;
    for input in inputs {
        let file = std::fs::File::open(&input.path).expect("open");
        match input.kind {
            land::InputKind::Lines => {
                for line in BufReader::with_capacity(1 << 20, file).lines() {
                    let line = line.expect("read");
                    if !line.trim().is_empty() {
                        let _: serde_json::Value = serde_json::from_str(&line).expect("json");
                        lines += 1;
                    }
                }
            }
            land::InputKind::Payload => {
                let mut text = String::new();
                BufReader::new(file).read_to_string(&mut text).expect("read");
                let _: serde_json::Value = serde_json::from_str(&text).expect("json");
                lines += 1;
            }
        }
    }
    lines
}

fn main() {
    let presets = std::env::var("SHOPFEAT_BENCH_PRESETS").unwrap_or_else(|_| "sample,medium".into());
    println!("{:<8} {:>9} {:>11} {:>9} {:>9} {:>8} {:>12}", "preset", "raw MB", "ingest s", "MB/s", "parse s", "ratio", "normalize s");
    for name in presets.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let preset = <PresetName as clap::ValueEnum>::from_str(name, true).expect("preset: sample, medium or large");
        let shop = cached_shop(preset);
        let inputs = land::collect_inputs(&[shop]).expect("inputs");
        let bytes: u64 = inputs.iter().map(|i| std::fs::metadata(&i.path).map(|m| m.len()).unwrap_or(0)).sum();

        let started = Instant::now();
        parse_only(&inputs);
        let parse = started.elapsed().as_secs_f64();

        let root_dir = tempfile::tempdir().expect("tempdir");
        let root = DataRoot::open(root_dir.path().to_str().expect("utf-8 path")).expect("root");
        let started = Instant::now();
        land::land(&root, "bench", &inputs, &indicatif::ProgressBar::hidden()).expect("ingest");
        let ingest = started.elapsed().as_secs_f64();

        let started = Instant::now();
        let raw = RawTables::open(&root, "bench").expect("raw");
        let tables = normalize::normalize(&raw, None).expect("normalize");
        normalize::collect_all(tables.named().into_iter().map(|(_, lf)| lf).collect()).expect("collect");
        let normalize = started.elapsed().as_secs_f64();

        let mb = bytes as f64 / 1e6;
        println!("{:<8} {:>9.1} {:>11.2} {:>9.1} {:>9.2} {:>8.2} {:>12.2}", name, mb, ingest, mb / ingest, parse, ingest / parse, normalize);
    }
}
