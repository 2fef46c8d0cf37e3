//! The BG/NBD model (Fader, Hardie & Lee, "Counting your customers the easy way",
//! Marketing Science 2005): while alive a customer buys at a Poisson rate λ
//! (gamma-distributed across customers, shape r and rate α), and after each purchase
//! drops out with probability p (beta-distributed, a and b).
//!
//! A customer is (x, tₓ, T): repeat purchases, the time of the last one and the
//! time observed, all from the first purchase. Times are in whatever unit the
//! caller uses (the feature table uses days; α scales with the unit, r, a and b
//! do not).

use super::hyp2f1::hyp2f1;
use super::optimize::{in_chunks, minimize, Minimum};
use libm::lgamma;

/// One customer's summary: repeat purchases `x`, last purchase `t_x` and age `t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct History {
    pub x: f64,
    pub t_x: f64,
    pub t: f64,
}

/// Fitted parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

impl BgNbd {
    /// The log-likelihood of one customer (the paper's equation 6, in logs).
    pub fn log_likelihood(&self, h: &History) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let x = h.x;
        let a1 = lgamma(r + x) - lgamma(r) + r * alpha.ln();
        let a2 = lgamma(a + b) + lgamma(b + x) - lgamma(b) - lgamma(a + b + x);
        let a3 = -(r + x) * (alpha + h.t).ln();
        if x > 0.0 {
            let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + h.t_x).ln();
            a1 + a2 + log_add_exp(a3, a4)
        } else {
            a1 + a2 + a3
        }
    }

    /// The probability that a customer with this history is still alive at T;
    /// 1 without a repeat purchase (the model's customers can only drop out right
    /// after a purchase).
    pub fn p_alive(&self, h: &History) -> f64 {
        if h.x == 0.0 {
            return 1.0;
        }
        1.0 / (1.0 + self.dropout_odds(h))
    }

    /// a/(b+x−1) · ((α+T)/(α+tₓ))^(r+x): the odds of having dropped out, in logs
    /// so a long silence does not overflow.
    fn dropout_odds(&self, h: &History) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        ((a / (b + h.x - 1.0)).ln() + (r + h.x) * ((alpha + h.t).ln() - (alpha + h.t_x).ln())).exp()
    }

    /// Expected purchases in the next `horizon` (same unit) of a customer with
    /// this history (the paper's equation 10); `None` when the hypergeometric
    /// series does not converge.
    pub fn expected_purchases(&self, h: &History, horizon: f64) -> Option<f64> {
        let BgNbd { r, alpha, a, b } = *self;
        let (x, t) = (h.x, h.t);
        let z = horizon / (alpha + t + horizon);
        let f = hyp2f1(r + x, b + x, a + b + x - 1.0, z)?;
        let decay = ((alpha + t) / (alpha + t + horizon)).powf(r + x);
        let numerator = (a + b + x - 1.0) / (a - 1.0) * (1.0 - decay * f);
        let odds = if x > 0.0 { self.dropout_odds(h) } else { 0.0 };
        Some(numerator / (1.0 + odds))
    }
}

/// ln(eˣ + eʸ) without overflow.
fn log_add_exp(x: f64, y: f64) -> f64 {
    let m = x.max(y);
    m + ((x - m).exp() + (y - m).exp()).ln()
}

/// The log-likelihood of `customers` (each with how many customers share that
/// history), the terms that depend only on x computed once per x.
pub fn total_log_likelihood(model: &BgNbd, customers: &[(History, f64)]) -> f64 {
    let BgNbd { r, alpha, a, b } = *model;
    let shared = lgamma(a + b) - lgamma(r) - lgamma(b) + r * alpha.ln();
    let (mut last_x, mut per_x, mut dropout) = (f64::NAN, 0.0, 0.0);
    let mut total = 0.0;
    for (h, count) in customers {
        let x = h.x;
        if x != last_x {
            per_x = shared + lgamma(r + x) + lgamma(b + x) - lgamma(a + b + x);
            dropout = if x > 0.0 { a.ln() - (b + x - 1.0).ln() } else { 0.0 };
            last_x = x;
        }
        let stayed = -(r + x) * (alpha + h.t).ln();
        let ll = if x > 0.0 { per_x + log_add_exp(stayed, dropout - (r + x) * (alpha + h.t_x).ln()) } else { per_x + stayed };
        total += count * ll;
    }
    total
}

/// The maximum-likelihood fit over `customers` (history, how many customers
/// have it), searched in log-parameters (so every parameter stays positive) from
/// r = a = b = 1 and α = the mean age.
pub fn fit(customers: &[(History, f64)]) -> Option<(BgNbd, Minimum)> {
    let mut customers = customers.to_vec();
    customers.sort_by(|(p, _), (q, _)| p.x.total_cmp(&q.x));
    let n: f64 = customers.iter().map(|(_, count)| count).sum();
    let mean_age = customers.iter().map(|(h, count)| h.t * count).sum::<f64>() / n;
    let params = |p: &[f64]| BgNbd { r: p[0].exp(), alpha: p[1].exp(), a: p[2].exp(), b: p[3].exp() };
    let cost = |p: &[f64]| {
        let ll = in_chunks(&customers, |chunk| total_log_likelihood(&params(p), chunk));
        if ll.is_finite() { -ll / n } else { f64::INFINITY }
    };
    let start = [0.0, mean_age.max(1e-3).ln(), 0.0, 0.0];
    let minimum = minimize(cost, &start)?;
    Some((params(&minimum.point), minimum))
}
