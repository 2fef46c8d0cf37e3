use super::Outcome;
use crate::cli::Global;
use crate::config::{self, Config};
use crate::retry::Retry;
use crate::shopify::{self, FetchOptions, FetchReport, Mode};
use crate::storage::DataRoot;
use anyhow::{bail, Result};
use std::path::PathBuf;
use std::time::Duration;

/// Pull the shop from Shopify's Admin API into a raw snapshot: every record
/// (historical) or those updated since the last fetch (incremental), with GraphQL
/// bulk operations, plus the webhook and event files in `--inbox`.
///
/// The access token comes from SHOPIFY_ACCESS_TOKEN or `[shopify] access_token` in
/// the config file, never from a flag. Watermarks (per entity, in the shop's
/// state.json) advance only after the snapshot is written.
#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    #[command(flatten)]
    pub shopify: ShopifyArgs,
    /// historical: the whole shop, replacing earlier snapshots, watermarks reset;
    /// incremental: records updated since the watermarks.
    #[arg(long, value_enum, default_value_t = Mode::Incremental)]
    pub mode: Mode,
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
    /// Admin API version [default: 2025-01, else `[shopify] api_version`].
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
        Ok(options)
    }
}

pub fn run(global: &Global, args: FetchArgs) -> Result<Outcome> {
    let config = Config::load(global.config.as_deref())?;
    let Some(api_url) = args.shopify.api_url(&config)? else {
        bail!("which shop? pass --shop-domain NAME.myshopify.com (or --api-url), or set [shopify] shop_domain in the config file");
    };
    let options = args.shopify.options(&api_url, &config, args.mode)?;
    let root = DataRoot::open(&global.root)?;
    let report = shopify::fetch(&root, &global.shop, &options)?;
    print_report(&report);
    Ok(Outcome::Success)
}

pub fn print_report(report: &FetchReport) {
    let objects: Vec<String> = report.objects.iter().map(|(e, n)| format!("{n} {e}")).collect();
    println!("fetched {} objects ({}); {} inbox files", report.objects.values().sum::<u64>(), objects.join(", "), report.inbox_files);
    println!("snapshot {}: {} rows landed, {} skipped", report.landed.snapshot, report.landed.landed_total(), report.landed.skipped_total());
    for (entity, mark) in &report.watermarks {
        println!("watermark {entity:<12} {mark}");
    }
}
