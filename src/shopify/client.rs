//! The Admin GraphQL API: one endpoint, the access token in a header, and the
//! ways Shopify says "later" — the cost throttle (`THROTTLED` with
//! `extensions.cost.throttleStatus`), HTTP 429 with `Retry-After`, 5xx — each
//! waited out within bounds. A refused token stops at once.

use crate::config::Secret;
use crate::retry::{describe, Retry};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// Throttled answers waited out per request before giving up.
const MAX_THROTTLED: u32 = 30;

pub struct Admin {
    http: reqwest::Client,
    endpoint: String,
    token: Secret,
    retry: Retry,
}

impl Admin {
    /// `api_url` is the shop's base (`https://NAME.myshopify.com` or a proxy);
    /// requests go to `<api_url>/admin/api/<version>/graphql.json`.
    pub fn new(api_url: &str, version: &str, token: Secret, retry: Retry, timeout: Duration) -> Result<Admin> {
        let http = reqwest::Client::builder().timeout(timeout).connect_timeout(timeout.min(Duration::from_secs(10))).build()?;
        let endpoint = format!("{}/admin/api/{version}/graphql.json", api_url.trim_end_matches('/'));
        Ok(Admin { http, endpoint, token, retry })
    }

    /// Runs one GraphQL document and returns its `data`.
    pub async fn graphql(&self, query: &str, variables: Value) -> Result<Value> {
        let body = json!({ "query": query, "variables": variables });
        let (mut failures, mut throttled) = (0u32, 0u32);
        let mut last = String::new();
        loop {
            if failures > self.retry.max_retries {
                bail!("Shopify at {} gave no answer after {} attempts; last: {last}", self.endpoint, failures);
            }
            let sent = self.http.post(&self.endpoint).header("X-Shopify-Access-Token", self.token.expose()).json(&body).send().await;
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    last = describe(&e);
                    self.pause(&mut failures, None).await;
                    continue;
                }
            };
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok());
            let text = match response.text().await {
                Ok(t) => t,
                Err(e) => {
                    last = describe(&e);
                    self.pause(&mut failures, None).await;
                    continue;
                }
            };
            match status {
                200..=299 => {}
                401 | 403 => bail!("Shopify refused the access token ({status}: {}); set SHOPIFY_ACCESS_TOKEN or [shopify] access_token", short(&text)),
                429 => {
                    last = format!("429 {}", short(&text));
                    self.pause(&mut failures, retry_after.map(Duration::from_secs_f64)).await;
                    continue;
                }
                500..=599 => {
                    last = format!("{status} {}", short(&text));
                    self.pause(&mut failures, None).await;
                    continue;
                }
                _ => bail!("Shopify rejected the request ({status}: {})", short(&text)),
            }
            let answer: Value = serde_json::from_str(&text).with_context(|| format!("Shopify answered with something that is not JSON: {}", short(&text)))?;
            if let Some(errors) = answer.get("errors").filter(|e| !e.is_null()) {
                if is_throttled(errors) && throttled < MAX_THROTTLED {
                    throttled += 1;
                    let wait = throttle_wait(&answer).unwrap_or(self.retry.base_delay);
                    tracing::debug!(seconds = wait.as_secs_f64(), "throttled by Shopify's cost limit; waiting");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                bail!("Shopify GraphQL error: {}", messages(errors));
            }
            return Ok(answer.get("data").cloned().unwrap_or(Value::Null));
        }
    }

    async fn pause(&self, failures: &mut u32, at_least: Option<Duration>) {
        let wait = self.retry.delay(*failures).max(at_least.unwrap_or_default());
        *failures += 1;
        tokio::time::sleep(wait).await;
    }

    /// Streams the file at `url` (a bulk operation's result, on Shopify's storage:
    /// no token is sent there) into `dest`, chunk by chunk; a broken download is
    /// started again, within the retry bounds.
    pub async fn download(&self, url: &str, dest: &Path) -> Result<u64> {
        let mut failures = 0;
        loop {
            match self.download_once(url, dest).await {
                Ok(bytes) => return Ok(bytes),
                Err(e) if failures < self.retry.max_retries => {
                    tracing::debug!("download failed ({e:#}); starting again");
                    self.pause(&mut failures, None).await;
                }
                Err(e) => return Err(e.context(format!("cannot download the bulk result after {} attempts", failures + 1))),
            }
        }
    }

    async fn download_once(&self, url: &str, dest: &Path) -> Result<u64> {
        let mut response = self.http.get(url).timeout(Duration::from_secs(3600)).send().await.map_err(|e| anyhow::anyhow!(describe(&e)))?;
        if !response.status().is_success() {
            bail!("download answered {}", response.status());
        }
        let mut file = std::io::BufWriter::new(std::fs::File::create(dest).with_context(|| format!("cannot write {}", dest.display()))?);
        let mut bytes = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(|e| anyhow::anyhow!(describe(&e)))? {
            file.write_all(&chunk)?;
            bytes += chunk.len() as u64;
        }
        file.flush()?;
        Ok(bytes)
    }
}

fn short(text: &str) -> String {
    text.trim().chars().take(300).collect()
}

fn is_throttled(errors: &Value) -> bool {
    errors.as_array().is_some_and(|list| list.iter().any(|e| e.pointer("/extensions/code").and_then(Value::as_str) == Some("THROTTLED")))
}

/// How long until the bucket holds the query's cost again.
fn throttle_wait(answer: &Value) -> Option<Duration> {
    let cost = answer.pointer("/extensions/cost")?;
    let requested = cost.get("requestedQueryCost")?.as_f64()?;
    let status = cost.get("throttleStatus")?;
    let available = status.get("currentlyAvailable")?.as_f64()?;
    let rate = status.get("restoreRate")?.as_f64()?.max(1.0);
    Some(Duration::from_secs_f64(((requested - available).max(0.0) / rate).max(0.05)))
}

fn messages(errors: &Value) -> String {
    match errors.as_array() {
        Some(list) => list.iter().map(|e| e.get("message").and_then(Value::as_str).unwrap_or("?").to_string()).collect::<Vec<_>>().join("; "),
        None => short(&errors.to_string()),
    }
}
