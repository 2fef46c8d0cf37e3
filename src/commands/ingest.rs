use super::Outcome;
use crate::cli::Global;
use crate::land::LandReport;
use crate::pipeline;
use crate::lock::ShopLock;
use crate::storage::DataRoot;
use anyhow::Result;
use std::io::Write;
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
    /// Exit non-zero (2) when any record was skipped or a child line was left
    /// unattached.
    #[arg(long)]
    pub strict: bool,
    /// Print the report as one JSON object on stdout (the summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &Global, args: IngestArgs) -> Result<Outcome> {
    let root = DataRoot::open(&global.root)?;
    let _lock = ShopLock::acquire(&root, &global.shop)?;
    let report = pipeline::ingest(&root, &global.shop, &args.inputs)?;
    tracing::info!(
        snapshot = %report.landed.snapshot,
        files = report.landed.files,
        mb_per_s = format!("{:.1}", report.mb_per_s()),
        "landed {} rows into {}/{}",
        report.landed.landed_total(),
        root.describe(),
        crate::land::raw_dir(&global.shop)
    );
    super::print_report(args.json, &report, |out| print_landed(out, &report.landed))?;
    let (skipped, unattached) = (report.landed.skipped_total(), report.landed.unattached_total());
    if (skipped > 0 || unattached > 0) && args.strict {
        return Ok(Outcome::Failed(format!("{skipped} records skipped, {unattached} child lines unattached (--strict)")));
    }
    Ok(Outcome::Success)
}

/// Landed and skipped rows per entity.
pub fn print_landed(out: &mut dyn Write, report: &LandReport) -> std::io::Result<()> {
    let mut entities: Vec<&String> = report.landed.keys().chain(report.skipped.keys()).collect();
    entities.sort();
    entities.dedup();
    writeln!(out, "{:<22} {:>10} {:>8} {:>10}", "entity", "landed", "skipped", "unattached")?;
    for e in entities {
        let n = |m: &std::collections::BTreeMap<String, u64>| *m.get(e).unwrap_or(&0);
        writeln!(out, "{:<22} {:>10} {:>8} {:>10}", e, n(&report.landed), n(&report.skipped), n(&report.unattached))?;
    }
    let listed = report.problems.len() as u64;
    let problems = report.skipped_total() + report.unattached_total();
    if problems > listed {
        writeln!(out, "({} more problems not listed)", problems - listed)?;
    }
    Ok(())
}
