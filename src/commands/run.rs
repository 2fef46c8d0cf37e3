use super::Outcome;
use crate::cli::{Global, PairArgs, ShopifyArgs};
use crate::config::Config;
use crate::pipeline::{self, Landing, RunOptions, RunReport, Source};
use crate::shopify::Mode;
use crate::sinks::gorse;
use crate::history::Recorder;
use crate::lock::ShopLock;
use crate::state::ShopState;
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
/// A shop listed in the config file's `[[shops]]` runs from its entry.
///
/// Exit codes: 1 an error, 2 rows that differ from entity counts (or, with
/// `--all`, a shop that failed), 3 the shop is locked by another process, 4 the
/// shop already completed this `--cycle`.
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
    /// Every shop of the config file's `[[shops]]`, each in its own process under
    /// its lock; one shop's failure never stops another. Ends with a summary
    /// (shop, outcome, rows, time, peak memory); exits 2 when any shop failed.
    #[arg(long, conflicts_with = "inputs")]
    pub all: bool,
    /// With --all: shops run at once [default: as many as fit in the available
    /// memory at the shops' last peaks (run history), at most one per core].
    #[arg(long, requires = "all", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub jobs: Option<usize>,
    /// With --all: only the shops of shard I of N (a stable hash of the shop id);
    /// default: JOB_COMPLETION_INDEX of SHOPFEAT_SHARDS when both are set
    /// (Kubernetes Indexed Jobs).
    #[arg(long, requires = "all", value_name = "I/N")]
    pub shard: Option<crate::fleet::Shard>,
    /// A key naming this round of runs (a date, a Job's id): a shop that already
    /// completed it is left alone (exit 4), so a retried or duplicated worker
    /// never runs a shop twice in one round [env: SHOPFEAT_CYCLE].
    #[arg(long, env = "SHOPFEAT_CYCLE", value_name = "KEY")]
    pub cycle: Option<String>,
}

pub fn run(global: &Global, args: RunArgs) -> Result<Outcome> {
    let config = Config::load(global.config.as_deref())?;
    if args.all {
        return run_all(global, &args, &config);
    }
    let options = run_options(&global.shop, &args, &config)?;
    let root = DataRoot::open(&global.root)?;
    let _lock = match ShopLock::acquire(&root, &global.shop) {
        Ok(lock) => lock,
        Err(e) if e.downcast_ref::<crate::lock::Locked>().is_some() => return Ok(Outcome::Exit(crate::fleet::EXIT_LOCKED, format!("{e:#}"))),
        Err(e) => return Err(e),
    };
    if let Some(cycle) = &args.cycle {
        if ShopState::load(&root, &global.shop)?.last_cycle.as_deref() == Some(cycle.as_str()) {
            return Ok(Outcome::Exit(crate::fleet::EXIT_DONE, format!("shop {} already completed cycle {cycle}", global.shop)));
        }
    }
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
    if let Some(cycle) = &args.cycle {
        // Under the lock, after everything the round asked of the shop.
        let mut state = ShopState::load(&root, &global.shop)?;
        state.last_cycle = Some(cycle.clone());
        state.save(&root, &global.shop)?;
    }
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

/// What to run: a shop of the config file's `[[shops]]` by its entry (unless
/// the flags name a source), else the inputs, or the shop the flags or
/// `[shopify]` name.
fn run_options(shop: &str, args: &RunArgs, config: &Config) -> Result<RunOptions> {
    let flags_name_a_source = !args.inputs.is_empty() || args.shopify.shop_domain.is_some() || args.shopify.api_url.is_some();
    if let Some(entry) = config.shops.iter().find(|s| s.id == shop).filter(|_| !flags_name_a_source) {
        let shop = crate::fleet::resolve(entry, config, args.mode)?;
        let source = match shop.source {
            Some(Source::Shopify(mut fetch)) => {
                fetch.inbox = args.shopify.inbox.clone();
                Source::Shopify(fetch)
            }
            Some(source) => source,
            None => bail!("shop {} in the config file has no source: give it shop_domain, api_url or inputs", shop.id),
        };
        return Ok(RunOptions { source, as_of: args.as_of, pairs: shop.pairs, keep_generations: args.keep_generations, gorse: shop.gorse, compaction: config.compaction(), kept: None });
    }
    let source = match args.shopify.api_url(config)? {
        Some(_) if !args.inputs.is_empty() => bail!("give either input files or a shop to fetch (--shop-domain, --api-url, [shopify]), not both"),
        Some(api_url) => Source::Shopify(args.shopify.options(&api_url, config, args.mode)?),
        None => Source::Files(args.inputs.clone()),
    };
    Ok(RunOptions {
        source,
        as_of: args.as_of,
        pairs: args.pairs.options(),
        keep_generations: args.keep_generations,
        gorse: config.gorse_url().map(|url| gorse::Options::from_config(&url, config)),
        compaction: config.compaction(),
        kept: None,
    })
}

/// `run --all`: every configured shop (of this shard), each as its own
/// `shopfeat run --shop ID` process.
fn run_all(global: &Global, args: &RunArgs, config: &Config) -> Result<Outcome> {
    if config.shops.is_empty() {
        bail!("--all runs the shops of the config file, and it lists none: add [[shops]] entries (see `shopfeat serve --help` for the format)");
    }
    let shard = match args.shard {
        Some(s) => Some(s),
        None => crate::fleet::Shard::from_env()?,
    };
    let root = DataRoot::open(&global.root)?;
    let mut shops: Vec<String> = config.shops.iter().map(|s| s.id.clone()).filter(|id| shard.is_none_or(|s| s.holds(id))).collect();
    // A shop forgotten by `shop/redact` (its app uninstalled) is not run again.
    for shop in shops.clone() {
        if let Some(t) = crate::privacy::shop::tombstone(&root, &shop)? {
            tracing::info!("shop {shop} is gone (shop/redact {} done {}): not run", t.request_id, t.done_at);
            shops.retain(|s| *s != shop);
        }
    }
    let jobs = args.jobs.unwrap_or_else(|| crate::fleet::default_jobs(&root, &shops));
    let described = shard.map(|s| format!(" (shard {}/{})", s.index, s.count)).unwrap_or_default();
    tracing::info!("running {} of {} shops{described}, {jobs} at once", shops.len(), config.shops.len());
    let exe = std::env::current_exe()?;
    let command = |shop: &str| {
        let mut c = std::process::Command::new(&exe);
        c.arg("--root").arg(&global.root).arg("--shop").arg(shop);
        if let Some(config) = &global.config {
            c.arg("--config").arg(config);
        }
        for _ in 0..global.verbose {
            c.arg("-v");
        }
        for _ in 0..global.quiet {
            c.arg("-q");
        }
        c.args(["run", "--json", "--mode", if args.mode == Mode::Historical { "historical" } else { "incremental" }]);
        c.arg("--keep-generations").arg(args.keep_generations.to_string());
        if let Some(t) = args.as_of {
            c.arg("--as-of").arg(crate::time::rfc3339(t));
        }
        if let Some(cycle) = &args.cycle {
            c.arg("--cycle").arg(cycle);
        }
        if args.strict {
            c.arg("--strict");
        }
        c
    };
    let runs = crate::fleet::run_all(&shops, jobs, &command);
    super::print_report(args.json, &runs, |out| print_fleet(out, &runs))?;
    let failed = runs.iter().filter(|r| r.outcome == "failed").count();
    Ok(if failed > 0 { Outcome::Exit(2, format!("{failed} of {} shops failed", runs.len())) } else { Outcome::Success })
}

fn print_fleet(out: &mut dyn Write, runs: &[crate::fleet::ShopRun]) -> std::io::Result<()> {
    writeln!(out, "{:<24} {:<8} {:>10} {:>9} {:>10}  error", "shop", "outcome", "rows", "seconds", "peak MB")?;
    for r in runs {
        let rows = r.rows.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
        let peak = r.peak_rss_bytes.map(|b| format!("{:.0}", b as f64 / 1e6)).unwrap_or_else(|| "-".into());
        writeln!(out, "{:<24} {:<8} {rows:>10} {:>9.2} {peak:>10}  {}", r.shop, r.outcome, r.seconds, r.error.as_deref().unwrap_or(""))?;
    }
    let count = |o: &str| runs.iter().filter(|r| r.outcome == o).count();
    writeln!(out, "{} shops: {} ok, {} failed, {} locked, {} done before", runs.len(), count("ok"), count("failed"), count("locked"), count("done"))
}
