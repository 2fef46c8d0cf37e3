use super::Outcome;
use crate::cli::Global;
use crate::commands::{compute, export, fetch};
use crate::config::Config;
use crate::shopify::{self, Mode};
use crate::state::ShopState;
use crate::land;
use crate::storage::DataRoot;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    #[arg(long, value_parser = super::parse_time)]
    pub as_of: Option<i64>,
    #[command(flatten)]
    pub pairs: compute::PairArgs,
    /// With a shop to fetch from: incremental (records updated since the last
    /// fetch; historical when the shop was never fetched) or historical.
    #[arg(long, value_enum, default_value_t = Mode::Incremental)]
    pub mode: Mode,
    #[command(flatten)]
    pub shopify: fetch::ShopifyArgs,
}

pub fn run(global: &Global, args: RunArgs) -> Result<Outcome> {
    let config = Config::load(global.config.as_deref())?;
    let root = DataRoot::open(&global.root)?;
    let started = Instant::now();
    let (as_of, landed_note) = match args.shopify.api_url(&config)? {
        Some(api_url) => {
            if !args.inputs.is_empty() {
                bail!("give either input files or a shop to fetch (--shop-domain, --api-url, [shopify]), not both");
            }
            let never_fetched = ShopState::load(&root, &global.shop)?.watermarks.is_empty();
            let mode = if never_fetched && args.mode == Mode::Incremental {
                tracing::info!("shop {} was never fetched: fetching it whole", global.shop);
                Mode::Historical
            } else {
                args.mode
            };
            let report = shopify::fetch(&root, &global.shop, &args.shopify.options(&api_url, &config, mode)?)?;
            fetch::print_report(&report);
            (args.as_of.unwrap_or_else(|| chrono::Utc::now().timestamp_micros()), "")
        }
        None => land_files(&root, &global.shop, args.inputs, args.as_of)?,
    };
    let ingest_time = started.elapsed();

    let started = Instant::now();
    let computed = compute::compute(&root, &global.shop, as_of, args.pairs.options())?;
    let compute_time = started.elapsed();

    let t = chrono::DateTime::from_timestamp_micros(as_of).unwrap_or_default();
    println!("shop {} at {} → {}/{}", global.shop, t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), root.describe(), global.shop);
    println!("{:<28} {:>8} {:>9}", "table", "rows", "expected");
    for (name, frame) in &computed.tables {
        let expected = computed.expected.iter().find(|(n, _)| n == name).map(|(_, e)| e.to_string()).unwrap_or_else(|| "-".into());
        println!("{:<28} {:>8} {:>9}", name, frame.height(), expected);
    }
    println!("land {:.2} s{landed_note}, compute and write {:.2} s", ingest_time.as_secs_f64(), compute_time.as_secs_f64());
    let mismatched: Vec<&str> = computed
        .tables
        .iter()
        .filter(|(name, frame)| computed.expected.iter().any(|(n, e)| n == name && *e != frame.height()))
        .map(|(n, _)| *n)
        .collect();
    if !mismatched.is_empty() {
        bail!("row counts differ from the entity counts for {}", mismatched.join(", "));
    }
    if let Some(url) = export::configured_url(&config) {
        let options = export::options(&url, &config);
        let report = crate::sinks::gorse::export(&root, &global.shop, &options)?;
        export::print_report(&report, &options);
    }
    Ok(Outcome::Success)
}

/// Lands the input files (default: data/sample) unless these exact files were
/// landed before; returns T (the flag, else the inputs' manifest clock, else now).
fn land_files(root: &DataRoot, shop: &str, inputs: Vec<PathBuf>, as_of: Option<i64>) -> Result<(i64, &'static str)> {
    let inputs = if inputs.is_empty() { vec![PathBuf::from("data/sample")] } else { inputs };
    if !inputs.iter().all(|p| p.exists()) {
        bail!("{} not found (run from the repository root, or name the shop's files)", inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    let as_of = match as_of {
        Some(t) => t,
        None => manifest_clock(&inputs[0])?.unwrap_or_else(|| chrono::Utc::now().timestamp_micros()),
    };
    let files = land::collect_inputs(&inputs)?;
    let fingerprint = land::fingerprint(&files)?;
    let landed_before = land::snapshots(root, shop)?.iter().any(|m| m.fingerprint.as_deref() == Some(fingerprint.as_str()));
    if landed_before {
        tracing::info!("these inputs were landed before; not landing them again");
    } else {
        let bar = crate::progress::bar(files.iter().filter_map(|f| std::fs::metadata(&f.path).ok()).map(|m| m.len()).sum(), "ingest", true);
        let report = land::land(root, shop, &files, &bar)?;
        bar.finish_and_clear();
        if report.skipped_total() > 0 {
            tracing::warn!("{} records skipped while landing (see the warnings above)", report.skipped_total());
        }
    }
    Ok((as_of, if landed_before { " (already landed)" } else { "" }))
}

/// The `as_of` of a generated shop's `manifest.json`, when there is one.
fn manifest_clock(input: &Path) -> Result<Option<i64>> {
    let path = input.join("manifest.json");
    if !path.is_file() {
        return Ok(None);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?).with_context(|| format!("{}: not JSON", path.display()))?;
    match manifest.get("as_of").and_then(|v| v.as_str()) {
        Some(s) => super::parse_time(s).map(Some).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
        None => Ok(None),
    }
}
