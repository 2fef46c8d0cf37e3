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
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), describe_error(&text, &e)))
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

/// A secret from the environment variable `var`, else from the config file.
pub fn secret(var: &str, configured: Option<&Secret>) -> Option<Secret> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(Secret(v)),
        _ => configured.cloned(),
    }
}
