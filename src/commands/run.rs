use super::Outcome;
use crate::cli::{Global, PairArgs, ShopifyArgs};
use crate::config::Config;
use crate::pipeline::{self, Landing, RunOptions, RunReport, Source};
use crate::shopify::Mode;
use crate::sinks::gorse;
use crate::history::Recorder;
use crate::lock::ShopLock;
use crate::storage::DataRoot;
use anyhow::{bail, Result};
use std::io::Write;
use std::path::PathBuf;

/// The nightly job: fetch the shop from Shopify when one is configured, else land
/// its raw files (skipped when these exact files were landed before), compute
/// every feature table, write Parquet and DuckDB, print a
/// summary (rows per table, expected vs actual entities, time per stage), and
/// export what changed to Gorse when a Gorse URL is configured (GORSE_URL or
/// `[gorse] url`).
///
/// With no arguments it runs on the sample shop in `data/sample` into `./out`, at
/// the sample's own clock (its `manifest.json`), so 30-day windows are not empty.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Shop directories or files to land first (default: data/sample).
    pub inputs: Vec<PathBuf>,
    /// The point in time T (RFC 3339 or YYYY-MM-DD, UTC); default: the `as_of` of the
    /// input directory's manifest.json, else now.
    #[arg(long, value_parser = crate::time::parse_time)]
    pub as_of: Option<i64>,
    #[command(flatten)]
    pub pairs: PairArgs,
    /// Generations of outputs to keep, the new one included (older ones are removed).
    #[arg(long, default_value_t = crate::sinks::generation::KEEP, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub keep_generations: usize,
    /// With a shop to fetch from: incremental (records updated since the last
    /// fetch; historical when the shop was never fetched) or historical.
    #[arg(long, value_enum, default_value_t = Mode::Incremental)]
    pub mode: Mode,
    #[command(flatten)]
    pub shopify: ShopifyArgs,
    /// Exit non-zero (2) when any record was skipped while landing (it is kept in
    /// the snapshot's rejected file).
    #[arg(long)]
    pub strict: bool,
    /// Print the report as one JSON object on stdout (the summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &Global, args: RunArgs) -> Result<Outcome> {
    let config = Config::load(global.config.as_deref())?;
    let source = match args.shopify.api_url(&config)? {
        Some(_) if !args.inputs.is_empty() => bail!("give either input files or a shop to fetch (--shop-domain, --api-url, [shopify]), not both"),
        Some(api_url) => Source::Shopify(args.shopify.options(&api_url, &config, args.mode)?),
        None => Source::Files(args.inputs),
    };
    let options = RunOptions {
        source,
        as_of: args.as_of,
        pairs: args.pairs.options(),
        keep_generations: args.keep_generations,
        gorse: config.gorse_url().map(|url| gorse::Options::from_config(&url, &config)),
    };
    let root = DataRoot::open(&global.root)?;
    let _lock = ShopLock::acquire(&root, &global.shop)?;
    let recorder = Recorder::start(&root, &global.shop, "run")?;
    let result = pipeline::run(&root, &global.shop, &options);
    match &result {
        Ok(report) => recorder.end(report.failed.clone(), Some(report))?,
        Err(e) => recorder.end::<RunReport>(Some(format!("{e:#}")), None)?,
    }
    let report = result?;
    // The morning page beside the features; a run that computed its features
    // is not failed for a report it could not draw.
    match crate::report::render(&root, &global.shop, &config.status, chrono::Utc::now()).and_then(|html| super::report::publish_html(&root, &global.shop, &html)) {
        Ok(path) => tracing::info!("report {path}"),
        Err(e) => tracing::warn!("the HTML report was not written: {e:#}"),
    }
    super::print_report(args.json, &report, |out| print_run(out, &report, &root))?;
    report.check()?;
    let landed = match &report.land {
        Landing::Ingest(i) => &i.landed,
        Landing::Fetch(f) => &f.fetched.landed,
    };
    Ok(super::skipped_records(landed, args.strict))
}

fn print_run(out: &mut dyn Write, report: &RunReport, root: &DataRoot) -> std::io::Result<()> {
    match &report.land {
        Landing::Fetch(fetched) => super::fetch::print_fetched(out, fetched)?,
        Landing::Ingest(ingested) if ingested.already_landed => writeln!(out, "inputs already landed")?,
        Landing::Ingest(ingested) => writeln!(out, "landed {} rows, {} skipped", ingested.landed.landed_total(), ingested.landed.skipped_total())?,
    }
    writeln!(out, "shop {} at {} → {}/{}", report.shop, report.compute.as_of, root.describe(), report.shop)?;
    super::compute::print_tables(out, &report.compute)?;
    if let Some(export) = &report.export {
        super::export::print_exported(out, export)?;
    }
    let total: f64 = report.stages().iter().map(|s| s.seconds).sum();
    writeln!(out, "run {total:.2} s")
}
