use super::Outcome;
use crate::cli::Global;
use crate::generate::{self, PresetName};
use anyhow::Result;
use std::path::PathBuf;

/// Write a synthetic shop in Shopify's raw shapes (bulk JSONL, web-pixel events,
/// webhook payloads) plus `manifest.json` with its clock, expected row counts and
/// planted bundles. The same preset and seed always give byte-identical files.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Size of the shop.
    #[arg(long, value_enum, default_value = "sample")]
    pub preset: PresetName,
    /// Random seed; change it for another shop of the same size.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Directory to write the shop into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Gzip the JSONL files (`*.jsonl.gz`), as the committed sample is.
    #[arg(long)]
    pub gzip: bool,
}

pub fn run(_global: &Global, args: GenerateArgs) -> Result<Outcome> {
    let started = std::time::Instant::now();
    let progress = crate::progress::Progress::new(0, "generate", false);
    let manifest = generate::generate(args.preset, args.seed, &args.out, args.gzip, &progress)?;
    progress.finish();
    tracing::info!(
        out = %args.out.display(),
        seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
        "generated {:?} shop: {}",
        args.preset,
        manifest.expected_rows.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
    );
    Ok(Outcome::Success)
}
