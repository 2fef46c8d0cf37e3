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
    /// Give customers tastes, as real shops' have: each keeps to two product
    /// types (`--taste-strength` of their lines) and re-buys three staples
    /// (`--taste-repeat` of their orders). Off by default: the presets stay
    /// byte-identical.
    #[arg(long)]
    pub tastes: bool,
    /// With `--tastes`: share of a customer's lines from their two product types.
    #[arg(long, default_value_t = 0.7, requires = "tastes")]
    pub taste_strength: f64,
    /// With `--tastes`: share of a customer's orders that re-buy a staple.
    #[arg(long, default_value_t = 0.3, requires = "tastes")]
    pub taste_repeat: f64,
}

pub fn run(_global: &Global, args: GenerateArgs) -> Result<Outcome> {
    let started = std::time::Instant::now();
    let progress = crate::progress::Progress::new(0, "generate", false);
    for (flag, share) in [("--taste-strength", args.taste_strength), ("--taste-repeat", args.taste_repeat)] {
        anyhow::ensure!((0.0..=1.0).contains(&share), "{flag} {share} is not a share between 0 and 1");
    }
    let tastes = args.tastes.then_some(generate::Tastes { strength: args.taste_strength, repeat: args.taste_repeat });
    let manifest = generate::generate_with(args.preset, args.seed, tastes, &args.out, args.gzip, &progress)?;
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
