//! Gorse's REST API over HTTP: one request at a time per call, retried by the
//! shared driver ([`crate::retry`]) on what may pass (5xx, 429, timeouts, dropped
//! connections), stopped at once on what will not (other 4xx, with Gorse's
//! plain-text error body).

use crate::config::Secret;
pub use crate::retry::Retry;
use crate::http::BodyError;
use crate::retry::{describe, retry_after, Attempt, Stop};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum GorseError {
    #[error("Gorse refused the API key ({status}: {body}); set GORSE_API_KEY or [gorse] api_key in the config file")]
    Unauthorized { status: u16, body: String },
    #[error("Gorse {redirect} for {method} {path}")]
    Redirected { method: &'static str, path: String, redirect: String },
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
        if key.is_some() {
            crate::http::check_credential_transport(url, "Gorse API key")?;
        }
        let http = crate::http::client(timeout)?;
        Ok(Client { http, base: url.trim_end_matches('/').to_string(), key, retry })
    }

    /// Sends one request until it succeeds, fails for good, or runs out of retries.
    pub async fn send(&self, method: &'static str, path: &str, body: Option<bytes::Bytes>) -> Result<Sent, GorseError> {
        match self.retry.drive(|| self.once(method, path, body.clone())).await {
            Ok(((), retries)) => Ok(Sent { retries }),
            Err(Stop::Fatal(e)) => Err(e),
            Err(Stop::GaveUp { attempts, last }) => Err(GorseError::GaveUp { url: crate::http::without_credentials(&self.base), method, path: path.to_string(), attempts, last }),
        }
    }

    /// One attempt, classified: what may pass (5xx, 429, timeouts, dropped
    /// connections) is retried; a refused key or another 4xx is not.
    async fn once(&self, method: &'static str, path: &str, body: Option<bytes::Bytes>) -> Attempt<(), GorseError> {
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
            Err(e) => return Attempt::Failed { why: describe(&e), at_least: None },
        };
        if let Some(redirect) = crate::http::redirect_error(&response) {
            return Attempt::Fatal(GorseError::Redirected { method, path: path.to_string(), redirect });
        }
        let status = response.status();
        let at_least = retry_after(response.headers());
        let text = match crate::http::read_limited(response).await {
            Ok(t) => t,
            Err(e @ BodyError::TooLarge) => return Attempt::Fatal(GorseError::Rejected { method, path: path.to_string(), status: status.as_u16(), body: e.to_string() }),
            Err(e) => return Attempt::Failed { why: e.to_string(), at_least: None },
        };
        let body = text.trim().chars().take(500).collect::<String>();
        match status.as_u16() {
            200..=299 => Attempt::Done(()),
            // Deleting what is already gone is done.
            404 if method == "DELETE" => Attempt::Done(()),
            429 => Attempt::Failed { why: format!("429 {body}"), at_least },
            s @ 500..=599 => Attempt::Failed { why: format!("{s} {body}"), at_least: None },
            s @ (401 | 403) => Attempt::Fatal(GorseError::Unauthorized { status: s, body }),
            s => Attempt::Fatal(GorseError::Rejected { method, path: path.to_string(), status: s, body }),
        }
    }
}
