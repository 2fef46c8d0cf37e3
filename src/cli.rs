//! The command line: global flags and one subcommand per stage.

use crate::commands;
use crate::config::{self, Config};
use crate::features::{embeddings::EmbeddingOptions, pairs::PairOptions};
use crate::retry::Retry;
use crate::shopify::{self, FetchOptions, Mode};
use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

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
    /// Shop id: the folder under the root that holds this shop's data (letters,
    /// digits, '.', '_', '-').
    #[arg(long, global = true, default_value = "sample", env = "SHOPFEAT_SHOP", value_parser = crate::storage::shop_id)]
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
    Compact(commands::compact::CompactArgs),
    Features(commands::features::FeaturesArgs),
    Evaluate(commands::evaluate::EvaluateArgs),
    Similar(commands::similar::SimilarArgs),
    Trainset(commands::trainset::TrainsetArgs),
    Run(commands::run::RunArgs),
    Export(commands::export::ExportArgs),
    Status(commands::status::StatusArgs),
    Privacy(commands::privacy::PrivacyArgs),
    Report(commands::report::ReportArgs),
    Serve(commands::serve::ServeArgs),
}

/// Bounds on the co-occurrence tables (product_pair_features and
/// product_embeddings), for `compute`, `run` and the commands that recompute.
#[derive(Debug, Clone, clap::Args)]
pub struct PairArgs {
    /// Drop product pairs bought together in fewer valid orders than this.
    #[arg(long, default_value_t = 1, env = "SHOPFEAT_MIN_CO_PURCHASES", value_parser = clap::value_parser!(u32).range(1..))]
    pub min_co_purchases: u32,
    /// Keep at most this many partners per product (highest lift first; ties: count,
    /// then id); default: unlimited.
    #[arg(long, env = "SHOPFEAT_MAX_PAIRS_PER_PRODUCT", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pairs_per_product: Option<u32>,
    /// Numbers per product_embeddings vector (the Gorse item label `embedding`).
    #[arg(long, default_value_t = 32, env = "SHOPFEAT_EMBEDDING_DIMENSION", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub embedding_dimension: u32,
    /// Orders and sessions (holding another product too) a product must be in
    /// to get an embedding.
    #[arg(long, default_value_t = 3, env = "SHOPFEAT_EMBEDDING_MIN_SUPPORT", value_parser = clap::value_parser!(u32).range(1..))]
    pub embedding_min_support: u32,
}

impl PairArgs {
    pub fn options(&self) -> PairOptions {
        let embeddings = EmbeddingOptions { dimension: self.embedding_dimension as usize, min_support: self.embedding_min_support };
        PairOptions { min_co_purchases: self.min_co_purchases, max_pairs_per_product: self.max_pairs_per_product, embeddings }
    }
}

/// Where the shop is, for `fetch` and `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShopifyArgs {
    /// The shop, NAME.myshopify.com (else `[shopify] shop_domain`).
    #[arg(long, value_name = "DOMAIN")]
    pub shop_domain: Option<String>,
    /// Base URL in place of the shop domain: a proxy, or a local test server
    /// (http://127.0.0.1:PORT serving /admin/api/<version>/graphql.json).
    #[arg(long, value_name = "URL", conflicts_with = "shop_domain")]
    pub api_url: Option<String>,
    /// Admin API version [default: `[shopify] api_version`, else the latest stable
    /// version this release knows, 2026-10].
    #[arg(long)]
    pub api_version: Option<String>,
    /// A folder of webhook payloads (`orders_updated-1.json`, …) and event files
    /// (`events-*.jsonl`) to land in the same snapshot; landed files move to
    /// `<inbox>/landed/<snapshot>/`.
    #[arg(long, value_name = "DIR")]
    pub inbox: Option<PathBuf>,
    /// Seconds by which each fetch overlaps the previous one.
    #[arg(long, default_value_t = 300)]
    pub overlap_secs: u64,
    /// Retries per request (5xx, 429, dropped connections) before giving up.
    #[arg(long, default_value_t = 8)]
    pub max_retries: u32,
    /// Let a historical fetch in which an entity (products, customers…) comes back
    /// empty replace the records landed before (refused otherwise: it would delete
    /// them all, and then Gorse's items or users).
    #[arg(long)]
    pub allow_mass_delete: bool,
}

impl ShopifyArgs {
    /// The base URL, from the flags or the config file; `None` when neither names a shop.
    pub fn api_url(&self, config: &Config) -> Result<Option<String>> {
        if let Some(url) = self.api_url.clone().or(config.shopify.api_url.clone()) {
            return Ok(Some(url));
        }
        match self.shop_domain.as_deref().or(config.shopify.shop_domain.as_deref()) {
            Some(domain) => Ok(Some(shopify::shop_url(domain)?)),
            None => Ok(None),
        }
    }

    pub fn options(&self, api_url: &str, config: &Config, mode: Mode) -> Result<FetchOptions> {
        let Some(token) = config::secret("SHOPIFY_ACCESS_TOKEN", config.shopify.access_token.as_ref()) else {
            bail!("no Shopify access token: set SHOPIFY_ACCESS_TOKEN or [shopify] access_token in the config file");
        };
        let mut options = FetchOptions::new(api_url, token, mode);
        if let Some(v) = self.api_version.clone().or(config.shopify.api_version.clone()) {
            options.api_version = v;
        }
        options.inbox = self.inbox.clone();
        options.overlap = Duration::from_secs(self.overlap_secs);
        options.retry = Retry { max_retries: self.max_retries, ..Retry::default() };
        options.allow_mass_delete = self.allow_mass_delete;
        Ok(options)
    }
}
