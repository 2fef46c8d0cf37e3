//! The command line: global flags and one subcommand per stage.

use crate::commands;
use clap::{Parser, Subcommand};

/// Turns a Shopify shop's raw data (GraphQL bulk exports, webhook payloads,
/// web-pixel events) into machine-learning feature tables.
///
/// Data lives under a root (a local directory or an object-store URL):
/// `<root>/<shop>/raw/` holds immutable snapshots landed by `ingest` or `fetch`,
/// `<root>/<shop>/features/` the feature tables (and `features.duckdb`),
/// `<root>/<shop>/state.json` the fetch watermarks and the last Gorse export.
/// Secrets (Shopify token, Gorse key) come from the environment or `--config`.
#[derive(Debug, Parser)]
#[command(name = "shopfeat", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Data root: a local directory, or an object-store URL (s3://bucket/prefix,
    /// gs://…, az://…, file:///…). Credentials come from the usual environment
    /// variables of each store.
    #[arg(long, global = true, default_value = "./out", env = "SHOPFEAT_ROOT")]
    pub root: String,
    /// Shop id: the folder under the root that holds this shop's data.
    #[arg(long, global = true, default_value = "sample", env = "SHOPFEAT_SHOP")]
    pub shop: String,
    /// Config file (TOML) with the Shopify and Gorse settings and secrets; default:
    /// ./shopfeat.toml when it exists.
    #[arg(long, global = true, env = "SHOPFEAT_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// More log output (-v debug, -vv trace). RUST_LOG, when set, wins.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Generate(commands::generate::GenerateArgs),
    Fetch(commands::fetch::FetchArgs),
    Ingest(commands::ingest::IngestArgs),
    Normalize(commands::normalize::NormalizeArgs),
    Compute(commands::compute::ComputeArgs),
    Features(commands::features::FeaturesArgs),
    Run(commands::run::RunArgs),
    Export(commands::export::ExportArgs),
}
