//! The Admin GraphQL API: one endpoint, the access token in a header, and the
//! ways Shopify says "later" — the cost throttle (`THROTTLED` with
//! `extensions.cost.throttleStatus`), HTTP 429 with `Retry-After`, 5xx — each
//! classified for the shared retry driver ([`crate::retry`]) and waited out within
//! bounds. A refused token stops at once.

use crate::config::Secret;
use crate::retry::{describe, retry_after, Attempt, Retry, Stop};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

pub struct Admin {
    http: reqwest::Client,
    endpoint: String,
    version: String,
    token: Secret,
    retry: Retry,
    /// Shopify answered as another API version (the asked one is out of support);
    /// said once.
    version_warned: std::sync::atomic::AtomicBool,
}

impl Admin {
    /// `api_url` is the shop's base (`https://NAME.myshopify.com` or a proxy);
    /// requests go to `<api_url>/admin/api/<version>/graphql.json`.
    pub fn new(api_url: &str, version: &str, token: Secret, retry: Retry, timeout: Duration) -> Result<Admin> {
        crate::http::check_credential_transport(api_url, "Shopify access token")?;
        let http = crate::http::client(timeout)?;
        let endpoint = format!("{}/admin/api/{version}/graphql.json", api_url.trim_end_matches('/'));
        Ok(Admin { http, endpoint, version: version.to_string(), token, retry, version_warned: Default::default() })
    }

    /// Runs one GraphQL document and returns its `data`.
    pub async fn graphql(&self, query: &str, variables: Value) -> Result<Value> {
        let body = json!({ "query": query, "variables": variables });
        match self.retry.drive(|| self.graphql_once(&body)).await {
            Ok((data, _)) => Ok(data),
            Err(Stop::Fatal(e)) => Err(e),
            Err(Stop::GaveUp { attempts, last }) => bail!("Shopify at {} gave no answer after {attempts} attempts; last: {last}", crate::http::without_credentials(&self.endpoint)),
        }
    }

    /// Runs a mutation that must not run twice (it starts something). Waits and
    /// refusals that prove Shopify did not run it (the cost throttle, 429, a
    /// refused connection) are retried as usual; an attempt that may have reached
    /// Shopify — a timeout, a dropped connection, a 5xx — is not retried here but
    /// answered [`Sent::Uncertain`], for the caller to look up what happened.
    pub async fn mutate(&self, query: &str, variables: Value) -> Result<Sent> {
        let body = json!({ "query": query, "variables": variables });
        let attempt = || async {
            match self.graphql_once(&body).await {
                Attempt::Done(data) => Attempt::Done(Sent::Answered(data)),
                Attempt::Failed { why, at_least } if never_ran(&why) => Attempt::Failed { why, at_least },
                Attempt::Failed { why, .. } => Attempt::Done(Sent::Uncertain(why)),
                Attempt::Wait { after } => Attempt::Wait { after },
                Attempt::Fatal(e) => Attempt::Fatal(e),
            }
        };
        match self.retry.drive(attempt).await {
            Ok((sent, _)) => Ok(sent),
            Err(Stop::Fatal(e)) => Err(e),
            Err(Stop::GaveUp { attempts, last }) => bail!("Shopify at {} gave no answer after {attempts} attempts; last: {last}", crate::http::without_credentials(&self.endpoint)),
        }
    }

    /// One request, classified: the cost throttle is waited out as Shopify
    /// computes it; 429 (with `Retry-After`), 5xx and dropped connections are
    /// retried; a refused token or a GraphQL error stops at once.
    async fn graphql_once(&self, body: &Value) -> Attempt<Value, anyhow::Error> {
        let sent = self.http.post(&self.endpoint).header("X-Shopify-Access-Token", self.token.expose()).json(body).send().await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Attempt::Failed { why: describe(&e), at_least: None },
        };
        if let Some(redirect) = crate::http::redirect_error(&response) {
            return Attempt::Fatal(anyhow!("Shopify at {} {redirect}", crate::http::without_credentials(&self.endpoint)));
        }
        let status = response.status().as_u16();
        let at_least = retry_after(response.headers());
        self.check_version(response.headers());
        let text = match crate::http::read_limited(response).await {
            Ok(t) => t,
            Err(e @ crate::http::BodyError::TooLarge) => return Attempt::Fatal(anyhow!("Shopify's answer could not be read: {e}")),
            Err(e) => return Attempt::Failed { why: e.to_string(), at_least: None },
        };
        match status {
            200..=299 => {}
            401 | 403 => return Attempt::Fatal(anyhow!("Shopify refused the access token ({status}: {}); set SHOPIFY_ACCESS_TOKEN or [shopify] access_token", short(&text))),
            429 => return Attempt::Failed { why: format!("429 {}", short(&text)), at_least },
            500..=599 => return Attempt::Failed { why: format!("{status} {}", short(&text)), at_least: None },
            _ => return Attempt::Fatal(anyhow!("Shopify rejected the request ({status}: {})", short(&text))),
        }
        let answer: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(_) => return Attempt::Fatal(anyhow!("Shopify answered with something that is not JSON: {}", short(&text))),
        };
        match answer.get("errors").filter(|e| !e.is_null()) {
            Some(errors) if is_throttled(errors) => Attempt::Wait { after: throttle_wait(&answer).unwrap_or(self.retry.base_delay) },
            Some(errors) => Attempt::Fatal(anyhow!("Shopify GraphQL error: {}", messages(errors))),
            None => Attempt::Done(answer.get("data").cloned().unwrap_or(Value::Null)),
        }
    }

    /// Warns (once) when Shopify answers as another API version than the one
    /// asked for: it does so when the asked one left its support window, and
    /// shapes may then differ from what this fetcher expects.
    fn check_version(&self, headers: &reqwest::header::HeaderMap) {
        use std::sync::atomic::Ordering;
        let Some(answered) = headers.get("x-shopify-api-version").and_then(|v| v.to_str().ok()) else { return };
        if answered != self.version && !self.version_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!("Shopify answered as API version {answered}, not {} (out of support?): use --api-version {answered} or later", self.version);
        }
    }

    /// Streams the file at `url` (a bulk operation's result, on Shopify's storage:
    /// no token is sent there) into `dest`, chunk by chunk; a broken download is
    /// started again, within the retry bounds.
    pub async fn download(&self, url: &str, dest: &Path) -> Result<u64> {
        let attempt = || async {
            match self.download_once(url, dest).await {
                Ok(bytes) => Attempt::Done(bytes),
                Err(e) => Attempt::<u64, anyhow::Error>::Failed { why: format!("{e:#}"), at_least: None },
            }
        };
        match self.retry.drive(attempt).await {
            Ok((bytes, _)) => Ok(bytes),
            Err(Stop::Fatal(e)) => Err(e),
            Err(Stop::GaveUp { attempts, last }) => bail!("cannot download the bulk result after {attempts} attempts: {last}"),
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

/// What a mutation sent with [`Admin::mutate`] gave.
pub enum Sent {
    /// Shopify's `data`.
    Answered(Value),
    /// No answer, though Shopify may have run it (why).
    Uncertain(String),
}

/// Whether a failed attempt (as [`Admin::graphql_once`] words it) surely never
/// ran: a 429 is refused before running, and a connection that was never made
/// carried nothing.
fn never_ran(why: &str) -> bool {
    why.starts_with("429 ") || why.starts_with("could not connect")
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
    // JSON numbers are finite, but a huge cost is not: never panic, the driver caps the wait.
    Duration::try_from_secs_f64(((requested - available).max(0.0) / rate).max(0.05)).ok()
}

fn messages(errors: &Value) -> String {
    match errors.as_array() {
        Some(list) => list.iter().map(|e| e.get("message").and_then(Value::as_str).unwrap_or("?").to_string()).collect::<Vec<_>>().join("; "),
        None => short(&errors.to_string()),
    }
}
