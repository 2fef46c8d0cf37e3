use super::Outcome;
use crate::cli::Global;
use crate::config::Config;
use crate::pipeline::{self, ExportReport};
use crate::sinks::gorse::{Options, Retry};
use crate::history::Recorder;
use crate::lock::ShopLock;
use crate::storage::DataRoot;
use anyhow::{bail, Result};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Export the shop's feature tables to a recommender.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub target: ExportTarget,
}

#[derive(Debug, clap::Subcommand)]
pub enum ExportTarget {
    Gorse(GorseArgs),
}

/// Send items (product_features), users (user_features) and feedback
/// (interaction_features: purchase, add_to_cart, view) to Gorse's REST API.
///
/// Only rows that changed since the last export to the same Gorse are sent, and
/// rows that disappeared are deleted; an interrupted export resumes where it
/// stopped. The API key comes from GORSE_API_KEY or `[gorse] api_key` in the
/// config file, never from a flag.
#[derive(Debug, clap::Args)]
pub struct GorseArgs {
    /// Gorse server, e.g. http://127.0.0.1:8088 (else GORSE_URL, else `[gorse] url`).
    #[arg(long, env = "GORSE_URL")]
    pub url: Option<String>,
    /// Prefix for every item and user id, e.g. `shop1-` (letters, digits, - _ . :).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Rows per request [default: 1000].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: Option<u32>,
    /// Requests in flight at once [default: 4].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub in_flight: Option<u32>,
    /// Send every row, changed or not (deletions still apply).
    #[arg(long)]
    pub full: bool,
    /// Write the requests as JSONL to FILE instead of sending them (no key in it).
    #[arg(long, value_name = "FILE")]
    pub dry_run: Option<PathBuf>,
    /// Seconds before a request counts as lost and is retried.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Retries per request (exponential backoff with jitter) before giving up.
    #[arg(long, default_value_t = 6)]
    pub max_retries: u32,
    /// Seconds between saves of the checkpoint while sending.
    #[arg(long, default_value_t = 5.0)]
    pub checkpoint_secs: f64,
    /// Delete whatever disappeared, even more than `[gorse] max_delete_share`
    /// (default 20%) of what Gorse holds.
    #[arg(long)]
    pub allow_mass_delete: bool,
    /// Print the report as one JSON object on stdout (the summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &Global, args: ExportArgs) -> Result<Outcome> {
    let ExportTarget::Gorse(args) = args.target;
    let config = Config::load(global.config.as_deref())?;
    let Some(url) = args.url.clone().or(config.gorse.url.clone()) else {
        bail!("no Gorse URL: pass --url, set GORSE_URL, or set [gorse] url in the config file");
    };
    let mut options = Options::from_config(&url, &config);
    if let Some(prefix) = args.prefix {
        options.prefix = prefix;
    }
    if let Some(n) = args.batch_size {
        options.batch_size = n as usize;
    }
    if let Some(n) = args.in_flight {
        options.in_flight = n as usize;
    }
    options.full = args.full;
    options.allow_mass_delete = args.allow_mass_delete;
    options.dry_run = args.dry_run;
    options.timeout = seconds(args.timeout, "--timeout")?;
    options.retry = Retry { max_retries: args.max_retries, ..Retry::default() };
    options.checkpoint_every = seconds(args.checkpoint_secs, "--checkpoint-secs")?;
    let root = DataRoot::open(&global.root)?;
    let _lock = ShopLock::acquire(&root, &global.shop)?;
    let recorder = Recorder::start(&root, &global.shop, "export")?;
    let result = pipeline::export_gorse(&root, &global.shop, &options);
    recorder.finish(result.as_ref())?;
    let report = result?;
    super::print_report(args.json, &report, |out| print_exported(out, &report))?;
    Ok(Outcome::Success)
}

/// Rows sent and deleted per kind, requests, retries, throughput.
pub fn print_exported(out: &mut dyn Write, report: &ExportReport) -> std::io::Result<()> {
    let g = &report.gorse;
    let verb = if report.dry_run.is_some() { "would send" } else { "sent" };
    let [items, users, feedback] = g.upserted;
    let [del_items, del_users, del_feedback] = g.deleted;
    writeln!(out, "gorse: {verb} {items} items, {users} users, {feedback} feedback; deleted {del_items} items, {del_users} users, {del_feedback} feedback; {} unchanged", g.unchanged)?;
    writeln!(out, "gorse: {} requests, {} retries, {:.2} s ({:.0} rows/s)", g.requests, g.retries, g.seconds, g.rows_sent() as f64 / g.seconds.max(1e-9))?;
    if let Some(path) = &report.dry_run {
        writeln!(out, "gorse: requests written to {path}")?;
    }
    Ok(())
}

fn seconds(value: f64, flag: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| anyhow::anyhow!("{flag} must be a non-negative number of seconds"))
}
