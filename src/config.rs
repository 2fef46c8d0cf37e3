//! The optional config file (TOML). It is the one place besides the environment
//! where secrets may live; flags never take a secret, so none lands in shell
//! history, and [`Secret`] never prints its value.
//!
//! ```toml
//! [gorse]
//! url = "http://127.0.0.1:8088"
//! api_key = "…"            # or GORSE_API_KEY
//! prefix = "shop1-"         # optional, prepended to every item and user id
//!
//! [shopify]
//! shop_domain = "example.myshopify.com"
//! access_token = "shpat_…"  # or SHOPIFY_ACCESS_TOKEN
//! api_version = "2026-10"   # optional; default: the latest stable version
//! api_secret = "…"          # or SHOPIFY_API_SECRET: verifies webhook deliveries
//!
//! [serve]                   # `shopfeat serve`; every field optional
//! listen = "0.0.0.0:8080"
//! debounce_ms = 2000
//! fast_catch_up_minutes = 15  # catalog, order, refund deliveries reach Gorse at once; a full recompute follows (0: no fast lane)
//! max_event_bytes = 16384   # limits of the intake (README, "Live intake")
//! pixel_quota_bytes = 268435456
//!
//! [retention]
//! compact_after = 64        # small raw snapshots before a run compacts them (0: never)
//! history_days = 365        # optional: drop versions superseded longer ago (default: keep all)
//!
//! [storage]
//! cache_bytes = 8589934592  # an object-store root's local cache per shop (LRU)
//!
//! [[shops]]                 # a fleet: `serve` and `run --all` take every shop
//! id = "shop1"
//! shop_domain = "shop1.myshopify.com"
//! token_env = "SHOP1_TOKEN"             # the variable holding its Admin API token
//! pixel_token_env = "SHOP1_PIXEL_TOKEN" # the variable holding its pixel ingest token
//! storefront_origins = ["https://shop1.example"]
//! schedule = "0 3 * * *"                # a full cycle every night at 03:00 UTC
//! ```

use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The file read when `--config` is not given and it exists.
pub const DEFAULT_PATH: &str = "shopfeat.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub gorse: GorseConfig,
    #[serde(default)]
    pub shopify: ShopifyConfig,
    /// Thresholds of `shopfeat status`.
    #[serde(default)]
    pub status: crate::status::Thresholds,
    #[serde(default)]
    pub serve: ServeConfig,
    /// What the raw store keeps, and when it is compacted.
    #[serde(default)]
    pub retention: RetentionConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    /// The fleet: every shop `serve` and `run --all` take.
    #[serde(default)]
    pub shops: Vec<ShopEntry>,
}

/// `[storage]`: the data root.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// An object-store root's local cache of raw files, per shop, in bytes
    /// (default 8 GiB, or SHOPFEAT_CACHE_BYTES): least recently used files
    /// are evicted past it.
    pub cache_bytes: Option<u64>,
}

/// `[retention]`: the raw store over a shop's lifetime.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Small raw snapshots a shop may hold before a `run` or `serve` cycle
    /// compacts them (default 64; 0: never, `shopfeat compact` only).
    pub compact_after: Option<usize>,
    /// Compaction drops versions of products, collections, customers and
    /// orders superseded more than this many days before it runs; `--as-of`
    /// earlier than that horizon then fails. Default: keep every version.
    /// Events, deletions and refunds are never dropped.
    pub history_days: Option<u32>,
}

impl Config {
    /// `[retention]`, defaults filled in.
    pub fn compaction(&self) -> crate::land::compact::Policy {
        let default = crate::land::compact::Policy::default();
        crate::land::compact::Policy { after: self.retention.compact_after.unwrap_or(default.after), history_days: self.retention.history_days }
    }
}

/// `shopfeat serve` (flags win).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    pub listen: Option<String>,
    /// Quiet time after the last delivery before a shop's cycle starts.
    pub debounce_ms: Option<u64>,
    /// The fast lane: minutes from the first fast cycle to the full recompute
    /// that follows it (default 15); 0 turns the fast lane off.
    pub fast_catch_up_minutes: Option<u64>,
    /// Shops whose cycles may run at once.
    pub jobs: Option<usize>,
    /// The largest request body accepted (bytes).
    pub max_body_bytes: Option<usize>,
    /// The largest pixel event (bytes of its JSON; default 16 KiB).
    pub max_event_bytes: Option<usize>,
    /// The most events in one pixel batch (default 10,000).
    pub max_pixel_events: Option<usize>,
    /// What may wait in a shop's inbox before intake answers 429: webhook
    /// deliveries (default 100,000 files, 1 GiB) and pixel batches (default
    /// 20,000 files, 256 MiB), each on its own.
    pub webhook_quota_files: Option<u64>,
    pub webhook_quota_bytes: Option<u64>,
    pub pixel_quota_files: Option<u64>,
    pub pixel_quota_bytes: Option<u64>,
    /// Requests of one route served at once (default 256; more get 503).
    pub max_in_flight: Option<usize>,
    /// The longest a request may take, body included (default 15 s; 408 after).
    pub request_timeout_secs: Option<u64>,
    /// Pixel posts per second per ingest token (default 50).
    pub pixel_requests_per_sec: Option<f64>,
    /// Connections open at once (default 4096; more are closed at once).
    pub max_connections: Option<usize>,
    /// The longest a client may take to send a request's head, or idle between
    /// requests (default 10 s).
    pub header_timeout_secs: Option<u64>,
    /// Single-shop serve: the pixel ingest token (else SHOPFEAT_PIXEL_TOKEN).
    pub pixel_token: Option<Secret>,
    /// Single-shop serve: the storefront origins allowed to post pixel events
    /// (default: https://<shop domain>).
    #[serde(default)]
    pub storefront_origins: Vec<String>,
    /// Single-shop serve: the cron schedule of the full cycle.
    pub schedule: Option<String>,
}

/// One shop of the fleet (`[[shops]]`). Secrets are named, not written: each
/// `*_env` field names the environment variable that holds the value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopEntry {
    /// The folder under the root (letters, digits, '.', '_', '-').
    pub id: String,
    pub shop_domain: Option<String>,
    pub api_url: Option<String>,
    pub api_version: Option<String>,
    /// The variable holding this shop's Admin API token (default:
    /// SHOPIFY_ACCESS_TOKEN).
    pub token_env: Option<String>,
    /// Instead of a Shopify source: local exports, landed as `run INPUTS…` does.
    #[serde(default)]
    pub inputs: Vec<PathBuf>,
    /// This shop's own Gorse (default: `[gorse] url`).
    pub gorse_url: Option<String>,
    /// Prepended to this shop's Gorse ids (default: `[gorse] prefix`).
    pub gorse_prefix: Option<String>,
    pub min_co_purchases: Option<u32>,
    pub max_pairs_per_product: Option<u32>,
    pub embedding_dimension: Option<u32>,
    pub embedding_min_support: Option<u32>,
    /// Cron expression (UTC) of this shop's full cycle under `serve`.
    pub schedule: Option<String>,
    /// The variable holding this shop's pixel ingest token.
    pub pixel_token_env: Option<String>,
    /// Origins allowed to post pixel events (default: https://<shop_domain>).
    #[serde(default)]
    pub storefront_origins: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GorseConfig {
    pub url: Option<String>,
    pub api_key: Option<Secret>,
    pub prefix: Option<String>,
    pub batch_size: Option<usize>,
    pub in_flight: Option<usize>,
    /// The largest share (0..1) of what Gorse holds one export may delete.
    pub max_delete_share: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopifyConfig {
    pub shop_domain: Option<String>,
    pub api_url: Option<String>,
    pub access_token: Option<Secret>,
    pub api_version: Option<String>,
    /// The app's API secret, which signs webhook deliveries.
    pub api_secret: Option<Secret>,
}

/// A credential: readable by the code that sends it, never by a log or a file.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The fewest bytes a secret guarding an internet-facing endpoint may have (the
/// webhook signing key, a pixel ingest token): shorter ones can be guessed.
pub const MIN_SECRET_BYTES: usize = 16;

impl Secret {
    /// Ok when the secret can guard an endpoint on the open internet: not empty,
    /// not whitespace, at least [`MIN_SECRET_BYTES`] long. An empty HMAC key lets
    /// anyone sign deliveries, so a weak secret is refused, never used. The error
    /// names `source` (where the secret came from), never the value.
    pub fn check_strong(&self, source: &str) -> Result<()> {
        let why = if self.0.is_empty() {
            "it is empty".to_string()
        } else if self.0.trim().is_empty() {
            "it is only whitespace".to_string()
        } else if self.0.len() < MIN_SECRET_BYTES {
            format!("it has {} bytes, fewer than {MIN_SECRET_BYTES}", self.0.len())
        } else {
            return Ok(());
        };
        anyhow::bail!("{source} cannot be used: {why} (give at least {MIN_SECRET_BYTES} random bytes, e.g. the output of `openssl rand -hex 32`)")
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Config {
    /// Reads `path`, or [`DEFAULT_PATH`] when it exists, or nothing.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let path: PathBuf = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_PATH).is_file() => PathBuf::from(DEFAULT_PATH),
            None => return Ok(Config::default()),
        };
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config: Config = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), describe_error(&text, &e)))?;
        config.check_shops().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        // A shop's inputs are where the config file says, wherever it is run from.
        let base = path.parent().unwrap_or(Path::new(""));
        for shop in &mut config.shops {
            shop.inputs = shop.inputs.iter().map(|p| if p.is_relative() { base.join(p) } else { p.clone() }).collect();
        }
        Ok(config)
    }

    /// Shop ids valid and unique, each shop with at most one source.
    fn check_shops(&self) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for (i, shop) in self.shops.iter().enumerate() {
            crate::storage::shop_id(&shop.id).map_err(|e| anyhow::anyhow!("[[shops]] #{}: {e}", i + 1))?;
            if !seen.insert(shop.id.as_str()) {
                anyhow::bail!("[[shops]] #{}: shop id {:?} is listed twice", i + 1, shop.id);
            }
            if !shop.inputs.is_empty() && (shop.shop_domain.is_some() || shop.api_url.is_some()) {
                anyhow::bail!("[[shops]] {}: give either inputs or a shop to fetch (shop_domain, api_url), not both", shop.id);
            }
        }
        Ok(())
    }
}

/// Where a config file is wrong and why, without quoting it: toml's own message
/// shows the offending line, which may hold a secret.
fn describe_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {}", e.message().trim_end())
        }
        None => e.message().trim_end().to_string(),
    }
}

impl Config {
    /// The Gorse URL `run` exports to, when one is configured (GORSE_URL, else
    /// `[gorse] url`).
    pub fn gorse_url(&self) -> Option<String> {
        std::env::var("GORSE_URL").ok().filter(|u| !u.is_empty()).or(self.gorse.url.clone())
    }
}

/// A secret from the environment variable `var` alone (a `[[shops]]` entry's
/// `*_env` field).
pub fn secret_from_env(var: &str) -> Option<Secret> {
    std::env::var(var).ok().filter(|v| !v.is_empty()).map(Secret)
}

/// A secret that guards one of `serve`'s endpoints: from the environment variable
/// `var` when it is set and not empty, else the config file's `key`; `None` when
/// neither gives one, an error when the one given is weak
/// ([`Secret::check_strong`]), wherever it came from.
pub fn guard_secret(var: &str, configured: Option<&Secret>, key: &str) -> Result<Option<Secret>> {
    let (secret, source) = match std::env::var(var) {
        Ok(v) if !v.is_empty() => (Secret(v), format!("the environment variable {var}")),
        _ => match configured {
            Some(s) => (s.clone(), format!("{key} in the config file")),
            None => return Ok(None),
        },
    };
    secret.check_strong(&source)?;
    Ok(Some(secret))
}

/// A secret from the environment variable `var`, else from the config file.
pub fn secret(var: &str, configured: Option<&Secret>) -> Option<Secret> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(Secret(v)),
        _ => configured.cloned(),
    }
}
