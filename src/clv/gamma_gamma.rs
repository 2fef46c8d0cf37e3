//! The Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee, "RFM and
//! CLV: using iso-value curves for customer base analysis", JMR 2005; Fader &
//! Hardie's note "The Gamma-Gamma model of monetary value", 2013): a customer's
//! transaction values are gamma(p, ν) around their mean, and ν is gamma(q, γ)
//! across customers. It is fitted on repeat customers: x repeat transactions
//! with mean value m̄.

use super::optimize::{in_chunks, minimize, Minimum};
use libm::lgamma;

/// One repeat customer: repeat transactions `x` (> 0) and their mean value `m`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spend {
    pub x: f64,
    pub m: f64,
}

/// Fitted parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

impl GammaGamma {
    /// The log-likelihood of one repeat customer's mean value.
    pub fn log_likelihood(&self, s: &Spend) -> f64 {
        let GammaGamma { p, q, gamma } = *self;
        let (x, m) = (s.x, s.m);
        lgamma(p * x + q) - lgamma(p * x) - lgamma(q) + q * gamma.ln() + (p * x - 1.0) * m.ln() + p * x * x.ln()
            - (p * x + q) * (gamma + m * x).ln()
    }

    /// The expected value of a transaction of a customer with `x` repeat
    /// transactions of mean `m` (with `x` = 0: the population mean p·γ/(q−1));
    /// `None` when q ≤ 1 (the mean does not exist).
    pub fn conditional_mean(&self, x: f64, m: f64) -> Option<f64> {
        let GammaGamma { p, q, gamma } = *self;
        (q > 1.0).then(|| p * (gamma + m * x) / (p * x + q - 1.0))
    }
}

/// The log-likelihood of `customers` (sorted by x): [`GammaGamma::log_likelihood`]
/// summed, the terms that depend only on x computed once per x.
pub fn total_log_likelihood(model: &GammaGamma, customers: &[Spend]) -> f64 {
    let GammaGamma { p, q, gamma } = *model;
    let shared = q * gamma.ln() - lgamma(q);
    let (mut last_x, mut per_x) = (f64::NAN, 0.0);
    let mut total = 0.0;
    for s in customers {
        let (x, m) = (s.x, s.m);
        if x != last_x {
            per_x = shared + lgamma(p * x + q) - lgamma(p * x) + p * x * x.ln();
            last_x = x;
        }
        total += per_x + (p * x - 1.0) * m.ln() - (p * x + q) * (gamma + m * x).ln();
    }
    total
}

/// The maximum-likelihood fit over repeat customers (each x > 0, m > 0), searched
/// in log-parameters from p = q = 1 and γ = the mean of m.
pub fn fit(customers: &[Spend]) -> Option<(GammaGamma, Minimum)> {
    let n = customers.len() as f64;
    let mean = customers.iter().map(|s| s.m).sum::<f64>() / n;
    let mut sorted = customers.to_vec();
    sorted.sort_by(|s, t| s.x.total_cmp(&t.x));
    let params = |p: &[f64]| GammaGamma { p: p[0].exp(), q: p[1].exp(), gamma: p[2].exp() };
    let cost = |p: &[f64]| {
        let ll = in_chunks(&sorted, |chunk| total_log_likelihood(&params(p), chunk));
        if ll.is_finite() { -ll / n } else { f64::INFINITY }
    };
    let minimum = minimize(cost, &[0.0, 0.0, mean.max(1e-3).ln()])?;
    Some((params(&minimum.point), minimum))
}
