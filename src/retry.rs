//! Backoff for the two remote APIs (Shopify, Gorse): exponential, capped, with
//! jitter so that clients that failed together do not retry together.

use std::time::Duration;

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
    /// The wait before retry `attempt` (0-based): `d/2 + rand·d/2` with
    /// `d = base·2^attempt`, capped at `max_delay`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let d = self.base_delay.saturating_mul(1u32 << attempt.min(16)).min(self.max_delay);
        d.mul_f64(0.5 + 0.5 * jitter())
    }
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
