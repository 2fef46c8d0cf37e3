//! Customer lifetime value: the BG/NBD model of repeat purchases and the
//! Gamma-Gamma model of spend, fitted per shop by maximum likelihood, and the
//! predictions customer_lifetime_features reads from them.
//!
//! Deterministic (a fixed start and a derivative-free search), and never NaN: a
//! shop with too few customers, or a fit that does not converge, gets a status
//! and no predictions.

pub mod bgnbd;
pub mod gamma_gamma;
pub mod hyp2f1;
mod optimize;

use bgnbd::{BgNbd, History};
use gamma_gamma::{GammaGamma, Spend};
use serde::{Deserialize, Serialize};

/// Fewest customers with a purchase for a BG/NBD fit (four parameters).
pub const MIN_CUSTOMERS: usize = 30;
/// Fewest repeat customers: the BG/NBD dropout and the Gamma-Gamma fit both
/// rest on them.
pub const MIN_REPEAT_CUSTOMERS: usize = 10;

/// How the shop's fit went (the `model_fit` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FitStatus {
    #[serde(rename = "ok")]
    Ok,
    #[serde(rename = "too few customers")]
    TooFewCustomers,
    #[serde(rename = "did not converge")]
    DidNotConverge,
}

impl FitStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FitStatus::Ok => "ok",
            FitStatus::TooFewCustomers => "too few customers",
            FitStatus::DidNotConverge => "did not converge",
        }
    }
}

/// One shop's fitted models, as the run report and `shopfeat status` show them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFit {
    pub status: FitStatus,
    /// Customers with at least one purchase (the BG/NBD fit's data).
    pub customers: usize,
    /// Those with a repeat purchase (the Gamma-Gamma fit's data).
    pub repeat_customers: usize,
    /// r, α (per day), a, b.
    pub bgnbd: Option<BgNbd>,
    pub bgnbd_log_likelihood: Option<f64>,
    /// p, q, γ.
    pub gamma_gamma: Option<GammaGamma>,
    pub gamma_gamma_log_likelihood: Option<f64>,
    /// Seconds spent fitting and scoring.
    #[serde(default)]
    pub seconds: f64,
}

impl ModelFit {
    /// Both models, when they are usable for predictions.
    pub fn models(&self) -> Option<(BgNbd, GammaGamma)> {
        (self.status == FitStatus::Ok).then_some((self.bgnbd?, self.gamma_gamma?))
    }
}

/// Fits both models to `customers` (every distinct history of a customer with a
/// purchase, with how many customers have it) and the repeat customers' `spends`.
pub fn fit(customers: &[(History, f64)], spends: &[Spend]) -> ModelFit {
    let n = customers.iter().map(|(_, count)| count).sum::<f64>() as usize;
    let mut fit = ModelFit {
        status: FitStatus::TooFewCustomers,
        customers: n,
        repeat_customers: spends.len(),
        bgnbd: None,
        bgnbd_log_likelihood: None,
        gamma_gamma: None,
        gamma_gamma_log_likelihood: None,
        seconds: 0.0,
    };
    if n < MIN_CUSTOMERS || spends.len() < MIN_REPEAT_CUSTOMERS {
        return fit;
    }
    fit.status = FitStatus::DidNotConverge;
    let Some((bgnbd, purchases)) = bgnbd::fit(customers) else { return fit };
    fit.bgnbd = Some(bgnbd);
    fit.bgnbd_log_likelihood = Some(-purchases.value * n as f64);
    let Some((gamma_gamma, spend)) = gamma_gamma::fit(spends) else { return fit };
    fit.gamma_gamma = Some(gamma_gamma);
    fit.gamma_gamma_log_likelihood = Some(-spend.value * spends.len() as f64);
    let finite = [bgnbd.r, bgnbd.alpha, bgnbd.a, bgnbd.b, gamma_gamma.p, gamma_gamma.q, gamma_gamma.gamma].iter().all(|v| v.is_finite() && *v > 0.0);
    // q > 1: otherwise the Gamma-Gamma mean spend does not exist.
    if purchases.converged && spend.converged && finite && gamma_gamma.q > 1.0 {
        fit.status = FitStatus::Ok;
    }
    fit
}

/// One customer's predictions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub p_alive: f64,
    pub purchases_30d: f64,
    pub purchases_90d: f64,
    pub value_90d: f64,
}

/// The predictions for a customer with `history` and mean repeat spend `m` (0
/// without repeat purchases), in days; `None` when a number would not be finite.
pub fn predict(models: (BgNbd, GammaGamma), history: &History, m: f64) -> Option<Prediction> {
    let (bgnbd, gamma_gamma) = models;
    let purchases_30d = bgnbd.expected_purchases(history, 30.0)?;
    let purchases_90d = bgnbd.expected_purchases(history, 90.0)?;
    let spend = gamma_gamma.conditional_mean(history.x, m)?;
    let prediction = Prediction { p_alive: bgnbd.p_alive(history), purchases_30d, purchases_90d, value_90d: purchases_90d * spend };
    [prediction.p_alive, purchases_30d, purchases_90d, prediction.value_90d].iter().all(|v| v.is_finite()).then_some(prediction)
}
