//! customer_lifetime_features — one row per customer in the catalog at `T`: the
//! purchase history the lifetime-value models read, in whole UTC days, and their
//! predictions from the shop's fit ([`crate::clv`]). A purchase day is a UTC day
//! with at least one valid order; its value is the sum of those orders'
//! `total_price` (refunds are not subtracted, as in the models' papers). Customers
//! without a valid order have no history and no predictions.

use super::expr::money_sum;
use super::registry::{feature, FeatureTable, Kind::*};
use super::{with, Inputs};
use crate::clv::{self, bgnbd::History, gamma_gamma::Spend, ModelFit};
use crate::time::DAY_US;
use polars::prelude::*;

/// The registry entries of customer_lifetime_features, in catalog order.
pub fn table() -> FeatureTable {
    FeatureTable {
        name: "customer_lifetime_features",
        key: &[("customer_id", I64)],
        own: &[],
        // The model is fitted to every customer of the shop.
        shop_wide: &["p_alive", "purchases_30d", "purchases_90d", "value_90d", "fit_status"],
        features: vec![
            feature("frequency", I64, "repeat purchase days: distinct UTC days with a valid order − 1; null without one", || col("repeat_days")),
            feature("recency_days", I64, "days from the first purchase day to the last", || col("last_day") - col("first_day")),
            feature("age_days", I64, "days from the first purchase day to T's day", || col("t_day") - col("first_day")),
            feature("monetary_value", F64, "mean value of the repeat purchase days (each day's valid orders' total_price summed; the first day left out), as the Gamma-Gamma model reads it; null without a repeat day", || col("repeat_mean")),
            feature("p_alive", F64, "BG/NBD probability that the customer is still active at T (1 without a repeat purchase); null unless model_fit is ok", || col("p_alive")),
            feature("expected_purchases_30d", F64, "BG/NBD expected purchase days in the 30 days after T", || col("purchases_30d")),
            feature("expected_purchases_90d", F64, "BG/NBD expected purchase days in the 90 days after T", || col("purchases_90d")),
            feature("expected_value_90d", F64, "expected_purchases_90d × the Gamma-Gamma expected value of a purchase day given the customer's repeat days (the shop's mean without any)", || col("value_90d")),
            feature("model_fit", Str, "the shop's fit: ok, too few customers (fewer than 30 buyers or 10 repeat buyers) or did not converge", || col("fit_status")),
        ],
    }
}

/// The histories of the customers with a valid order, their predictions and the
/// shop's fit: computed once per run ([`Inputs::new`]).
#[derive(Clone)]
pub struct Fitted {
    pub scored: DataFrame,
    pub fit: ModelFit,
}

/// Per customer with a valid order (in the catalog or not: the models learn from
/// every buyer): first and last purchase day, repeat days and their mean value.
fn histories(inputs: &Inputs) -> LazyFrame {
    let day = col("created_at").cast(DataType::Int64).floor_div(lit(DAY_US));
    let first_value = col("value").sort_by([col("day")], SortMultipleOptions::default()).first();
    let repeat_days = len().cast(DataType::Int64) - lit(1i64);
    inputs
        .valid_orders()
        .filter(col("customer_id").is_not_null())
        .group_by([col("customer_id"), day.alias("day")])
        .agg([money_sum(col("total_price")).alias("value")])
        .group_by([col("customer_id")])
        .agg([
            col("day").min().alias("first_day"),
            col("day").max().alias("last_day"),
            repeat_days.clone().alias("repeat_days"),
            when(repeat_days.clone().gt(lit(0i64))).then((money_sum(col("value")) - first_value) / repeat_days.cast(DataType::Float64)).otherwise(lit(NULL)).alias("repeat_mean"),
        ])
        .with_column(lit(inputs.as_of.div_euclid(DAY_US)).cast(DataType::Int64).alias("t_day"))
}

/// Fits the shop's models on its customers' histories and scores every customer
/// with a history.
pub fn fit(inputs: &Inputs) -> PolarsResult<Fitted> {
    let started = std::time::Instant::now();
    // In customer order (a group-by's order varies): the likelihoods then add up
    // in the same order on every run, and the fit is deterministic.
    let frame = histories(inputs).sort(["customer_id"], SortMultipleOptions::default()).collect()?;
    let int = |c: &str| -> PolarsResult<Vec<i64>> { Ok(frame.column(c)?.i64()?.iter().map(|v| v.unwrap_or(0)).collect()) };
    let (first, last, repeat, t_day) = (int("first_day")?, int("last_day")?, int("repeat_days")?, int("t_day")?);
    let means: Vec<Option<f64>> = frame.column("repeat_mean")?.f64()?.iter().collect();
    let history = |i: usize| History { x: repeat[i] as f64, t_x: (last[i] - first[i]) as f64, t: (t_day[i] - first[i]) as f64 };

    // Customers sharing a history count once, weighted: far fewer terms per
    // likelihood evaluation on a large shop.
    let mut distinct: std::collections::BTreeMap<(i64, i64, i64), f64> = Default::default();
    for i in 0..frame.height() {
        *distinct.entry((repeat[i], last[i] - first[i], t_day[i] - first[i])).or_default() += 1.0;
    }
    let weighted: Vec<(History, f64)> = distinct.into_iter().map(|((x, t_x, t), n)| (History { x: x as f64, t_x: t_x as f64, t: t as f64 }, n)).collect();
    // Repeat spend must be positive for the Gamma-Gamma model (a free order has none).
    let spends: Vec<Spend> = (0..frame.height()).filter_map(|i| means[i].filter(|m| *m > 0.0).map(|m| Spend { x: repeat[i] as f64, m })).collect();
    let mut fit = clv::fit(&weighted, &spends);

    let predictions: Vec<Option<clv::Prediction>> = (0..frame.height())
        .map(|i| fit.models().and_then(|models| clv::predict(models, &history(i), means[i].unwrap_or(0.0))))
        .collect();
    let column = |name: &str, value: fn(&clv::Prediction) -> f64| Column::new(name.into(), predictions.iter().map(|p| p.as_ref().map(value)).collect::<Vec<_>>());
    let mut scored = frame;
    scored.hstack_mut(&[
        column("p_alive", |p| p.p_alive),
        column("purchases_30d", |p| p.purchases_30d),
        column("purchases_90d", |p| p.purchases_90d),
        column("value_90d", |p| p.value_90d),
    ])?;
    fit.seconds = started.elapsed().as_secs_f64();
    tracing::debug!(status = fit.status.as_str(), customers = fit.customers, histories = weighted.len(), seconds = fit.seconds, "lifetime models fitted");
    Ok(Fitted { scored, fit })
}

/// customer_lifetime_features at `T` (fitting the models unless [`Inputs::new`] did).
pub fn build(inputs: &Inputs) -> PolarsResult<LazyFrame> {
    let fitted = match &inputs.lifetime {
        Some(fitted) => fitted.clone(),
        None => fit(inputs)?,
    };
    let customers = inputs.main.customers.clone().select([col("customer_id")]);
    let base = with(customers, fitted.scored.lazy(), "customer_id").with_column(lit(fitted.fit.status.as_str()).alias("fit_status"));
    Ok(table().project(base, &inputs.shop_id, inputs.as_of))
}
