//! One retry driver for every remote API (Shopify's GraphQL endpoint, bulk result
//! downloads, Gorse): the loop, the backoff and the limits live here once; each
//! client only classifies what one attempt gave ([`Attempt`]), as Vector's
//! `RetryLogic` does.
//!
//! Backoff is exponential, capped, with jitter so that clients that failed
//! together do not retry together.

use std::future::Future;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Retry {
    /// Attempts after the first that may fail.
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { max_retries: 6, base_delay: Duration::from_millis(250), max_delay: Duration::from_secs(15) }
    }
}

/// What one attempt gave, as its client classifies it.
pub enum Attempt<T, E> {
    Done(T),
    /// A transient failure (5xx, 429, timeout, dropped connection): tried again
    /// after the backoff, or after `at_least` when the service asked for more
    /// (`Retry-After`, capped at the maximum delay); counts against `max_retries`.
    Failed { why: String, at_least: Option<Duration> },
    /// The service asked to come back later without anything failing (Shopify's
    /// cost throttle): waited out as asked (capped), counted against
    /// [`MAX_WAITS`], not against `max_retries`.
    Wait { after: Duration },
    /// A failure another attempt cannot mend (a refused key, a rejected request).
    Fatal(E),
}

/// "Come back later" answers waited out per call before giving up.
pub const MAX_WAITS: u32 = 30;

/// Why [`Retry::drive`] stopped without a result.
#[derive(Debug)]
pub enum Stop<E> {
    Fatal(E),
    /// Every attempt failed; `last` is the last failure.
    GaveUp { attempts: u32, last: String },
}

impl Retry {
    /// The wait before retry `attempt` (0-based): `d/2 + rand·d/2` with
    /// `d = base·2^attempt`, capped at `max_delay`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let d = self.base_delay.saturating_mul(1u32 << attempt.min(16)).min(self.max_delay);
        d.mul_f64(0.5 + 0.5 * jitter())
    }

    /// Runs `attempt` until it is done, fails for good, or runs out of retries or
    /// waits. Returns the result and how many times it was retried.
    pub async fn drive<T, E, F, Fut>(&self, mut attempt: F) -> Result<(T, u32), Stop<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Attempt<T, E>>,
    {
        let (mut failures, mut waits) = (0u32, 0u32);
        loop {
            match attempt().await {
                Attempt::Done(value) => return Ok((value, failures)),
                Attempt::Fatal(e) => return Err(Stop::Fatal(e)),
                Attempt::Wait { .. } if waits >= MAX_WAITS => {
                    return Err(Stop::GaveUp { attempts: failures + waits + 1, last: format!("still asked to wait after {waits} waits") });
                }
                Attempt::Wait { after } => {
                    waits += 1;
                    tracing::debug!(seconds = after.as_secs_f64(), "asked to wait; waiting");
                    tokio::time::sleep(after.min(self.max_delay)).await;
                }
                Attempt::Failed { why, .. } if failures >= self.max_retries => {
                    return Err(Stop::GaveUp { attempts: failures + 1, last: why });
                }
                Attempt::Failed { why, at_least } => {
                    let wait = self.delay(failures).max(at_least.unwrap_or_default().min(self.max_delay));
                    tracing::debug!(attempt = failures + 1, seconds = wait.as_secs_f64(), "{why}; retrying");
                    failures += 1;
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// A `Retry-After` header in seconds, read safely: a negative, non-finite or
/// unparseable value is ignored (the backoff applies), a huge one is capped by
/// the driver.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// A number in 0..1 that differs between calls and processes.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The source chain of a transport error in one line (timed out, refused, reset…).
pub fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    let mut why = kind.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        why = format!("{why}: {s}");
        source = s.source();
    }
    why
}
