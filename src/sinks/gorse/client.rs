//! Gorse's REST API over HTTP: one request at a time per call, retried with
//! exponential backoff and jitter on what may pass (5xx, 429, timeouts, dropped
//! connections), stopped at once on what will not (other 4xx, with Gorse's
//! plain-text error body).

use crate::config::Secret;
use std::time::Duration;

/// Bounds on retrying one request.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Attempts after the first.
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { max_retries: 6, base_delay: Duration::from_millis(250), max_delay: Duration::from_secs(15) }
    }
}

impl Retry {
    /// Full jitter in the upper half: `d/2 + rand·d/2` with `d = base·2^attempt`,
    /// capped, so clients that failed together do not retry together.
    fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let d = self.base_delay.saturating_mul(1u32 << attempt.min(16)).min(self.max_delay);
        d.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GorseError {
    #[error("Gorse refused the API key ({status}: {body}); set GORSE_API_KEY or [gorse] api_key in the config file")]
    Unauthorized { status: u16, body: String },
    #[error("Gorse rejected {method} {path} ({status}: {body})")]
    Rejected { method: &'static str, path: String, status: u16, body: String },
    #[error("Gorse at {url} gave no answer to {method} {path} after {attempts} attempts; last: {last}")]
    GaveUp { url: String, method: &'static str, path: String, attempts: u32, last: String },
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<Secret>,
    retry: Retry,
}

/// What one request cost: how many times it was retried.
pub struct Sent {
    pub retries: u32,
}

impl Client {
    pub fn new(url: &str, key: Option<Secret>, timeout: Duration, retry: Retry) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder().timeout(timeout).connect_timeout(timeout.min(Duration::from_secs(10))).build()?;
        Ok(Client { http, base: url.trim_end_matches('/').to_string(), key, retry })
    }

    /// Sends one request until it succeeds, fails for good, or runs out of retries.
    pub async fn send(&self, method: &'static str, path: &str, body: Option<bytes::Bytes>) -> Result<Sent, GorseError> {
        let mut last = String::new();
        for attempt in 0..=self.retry.max_retries {
            if attempt > 0 {
                tokio::time::sleep(self.retry.delay(attempt - 1, jitter())).await;
            }
            match self.once(method, path, body.clone()).await {
                Ok(Outcome::Done) => return Ok(Sent { retries: attempt }),
                Ok(Outcome::Retry { why, after }) => {
                    tracing::debug!(method, path, attempt, "{why}; retrying");
                    if let Some(after) = after {
                        tokio::time::sleep(after.min(self.retry.max_delay)).await;
                    }
                    last = why;
                }
                Err(fatal) => return Err(fatal),
            }
        }
        Err(GorseError::GaveUp { url: self.base.clone(), method, path: path.to_string(), attempts: self.retry.max_retries + 1, last })
    }

    async fn once(&self, method: &'static str, path: &str, body: Option<bytes::Bytes>) -> Result<Outcome, GorseError> {
        let method_value = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut request = self.http.request(method_value, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.header("X-API-Key", key.expose());
        }
        if let Some(body) = body {
            request = request.header("Content-Type", "application/json").body(body);
        }
        let response = match request.send().await {
            Ok(r) => r,
            // Timeouts, refused or dropped connections: transient until proven otherwise.
            Err(e) => return Ok(Outcome::Retry { why: describe(&e), after: None }),
        };
        let status = response.status();
        let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) => return Ok(Outcome::Retry { why: describe(&e), after: None }),
        };
        let body = text.trim().chars().take(500).collect::<String>();
        match status.as_u16() {
            200..=299 => Ok(Outcome::Done),
            // Deleting what is already gone is done.
            404 if method == "DELETE" => Ok(Outcome::Done),
            429 => Ok(Outcome::Retry { why: format!("429 {body}"), after: retry_after }),
            s @ 500..=599 => Ok(Outcome::Retry { why: format!("{s} {body}"), after: None }),
            s @ (401 | 403) => Err(GorseError::Unauthorized { status: s, body }),
            s => Err(GorseError::Rejected { method, path: path.to_string(), status: s, body }),
        }
    }
}

enum Outcome {
    Done,
    Retry { why: String, after: Option<Duration> },
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    // The source chain says why (refused, reset…); the URL carries no secret.
    let mut why = kind.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        why = format!("{why}: {s}");
        source = s.source();
    }
    why
}

/// A number in 0..1 that differs between calls and processes.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}
