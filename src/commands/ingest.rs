use super::Outcome;
use crate::cli::Global;
use crate::land;
use crate::storage::DataRoot;
use anyhow::{bail, Result};
use std::path::PathBuf;

/// Land raw files as one immutable Parquet snapshot under `<root>/<shop>/raw/`.
///
/// Reads bulk JSONL (products, collections, customers, orders), web-pixel event
/// JSONL and REST webhook payloads (`webhooks/<topic>-*.json`, e.g.
/// `orders_updated-1.json`), plain or gzipped. A directory gives its `*.jsonl[.gz]`
/// files and its `webhooks/*.json[.gz]`. Records that cannot be read are skipped and
/// reported with file and line; the summary counts landed and skipped rows per
/// entity. Nothing is visible to later steps until the whole snapshot is written.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Shop directories or files to land.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Exit non-zero (2) when any record was skipped.
    #[arg(long)]
    pub strict: bool,
}

pub fn run(global: &Global, args: IngestArgs) -> Result<Outcome> {
    let root = DataRoot::open(&global.root)?;
    let inputs = land::collect_inputs(&args.inputs)?;
    if inputs.is_empty() {
        bail!("no input files found in {}", args.inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    let total: u64 = inputs.iter().filter_map(|i| std::fs::metadata(&i.path).ok()).map(|m| m.len()).sum();
    let started = std::time::Instant::now();
    let bar = crate::progress::bar(total, "ingest", true);
    let report = land::land(&root, &global.shop, &inputs, &bar)?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        snapshot = %report.snapshot,
        files = report.files,
        mb_per_s = format!("{:.1}", report.bytes as f64 / 1e6 / seconds.max(1e-9)),
        "landed {} rows into {}/{}",
        report.landed_total(),
        root.describe(),
        land::raw_dir(&global.shop)
    );
    print_summary(&report);
    let skipped = report.skipped_total();
    if skipped > 0 && args.strict {
        return Ok(Outcome::Failed(format!("{skipped} records skipped (--strict)")));
    }
    Ok(Outcome::Success)
}

fn print_summary(report: &land::LandReport) {
    let mut entities: Vec<&String> = report.landed.keys().chain(report.skipped.keys()).collect();
    entities.sort();
    entities.dedup();
    println!("{:<22} {:>10} {:>8}", "entity", "landed", "skipped");
    for e in entities {
        println!("{:<22} {:>10} {:>8}", e, report.landed.get(e).unwrap_or(&0), report.skipped.get(e).unwrap_or(&0));
    }
    let listed = report.problems.len() as u64;
    if report.skipped_total() > listed {
        println!("({} more problems not listed)", report.skipped_total() - listed);
    }
}
