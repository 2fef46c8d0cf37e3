//! The domain's expressions, shared by the feature tables: rates that are never
//! NaN, windows before `T`, whole days, event tests, price tier, device type,
//! normalized search query, URL host. Feature table files import these from here
//! and never from each other.

use crate::time::DAY_US;
use crate::vocabulary::EventName;
use polars::prelude::*;

pub use crate::normalize::url_host;

/// The sum of a money column, exact: amounts carry at most 3 decimals (the
/// minor units of every currency), so they are summed as whole thousandths
/// (i64) and the total is the same whatever order the rows come in (also used
/// for Σ quantity·price², where a thousandth is below notice). A floating-point
/// sum depends on that order, which a parallel group-by does not fix: `medium`
/// gave `total_refunded_amount`s a last digit apart from run to run, and a
/// training set's content hash with them.
pub fn money_sum(amount: Expr) -> Expr {
    (amount * lit(1000.0)).round(0, RoundMode::HalfAwayFromZero).cast(DataType::Int64).sum().cast(DataType::Float64) / lit(1000.0)
}

/// `ts` (a timestamp column) as µs since the epoch.
fn us(ts: &str) -> Expr {
    col(ts).cast(DataType::Int64)
}

/// `T - days < ts <= T`.
pub fn within(as_of: i64, ts: &str, days: i64) -> Expr {
    us(ts).gt(lit(as_of - days * DAY_US)).and(us(ts).lt_eq(lit(as_of)))
}

/// `T - to_days < ts <= T - from_days` (e.g. "days 8..30": from 7, to 30).
pub fn between_days(as_of: i64, ts: &str, from_days: i64, to_days: i64) -> Expr {
    us(ts).gt(lit(as_of - to_days * DAY_US)).and(us(ts).lt_eq(lit(as_of - from_days * DAY_US)))
}

/// `ts <= T`.
pub fn by(as_of: i64, ts: &str) -> Expr {
    us(ts).lt_eq(lit(as_of))
}

/// Whole days from `earlier` to `later`: `floor((later - earlier) / 1 day)`; null
/// when either is null.
pub fn whole_days(later: Expr, earlier: Expr) -> Expr {
    (later.cast(DataType::Int64) - earlier.cast(DataType::Int64)).floor_div(lit(DAY_US))
}

/// Whole days from the timestamp column `ts` to `T`.
pub fn days_since(as_of: i64, ts: &str) -> Expr {
    whole_days(lit(as_of), col(ts))
}

/// A count column, 0 where the entity had none.
pub fn zero(c: &str) -> Expr {
    col(c).fill_null(lit(0))
}

/// An amount column, 0.0 where the entity had none.
pub fn zero_f(c: &str) -> Expr {
    col(c).fill_null(lit(0.0))
}

/// `a / b`, or 0.0 when `b` is 0 (never NaN or infinite).
pub fn rate(a: Expr, b: Expr) -> Expr {
    when(b.clone().cast(DataType::Float64).eq(lit(0.0)))
        .then(lit(0.0))
        .otherwise(a.cast(DataType::Float64) / b.cast(DataType::Float64))
}

/// `min(x, cap)` as f64.
pub fn capped(x: Expr, cap: f64) -> Expr {
    x.cast(DataType::Float64).clip_max(lit(cap))
}

/// Count of rows where `cond` holds, as i64.
pub fn count_if(cond: Expr) -> Expr {
    cond.cast(DataType::Int64).sum()
}

/// The event (a row of the events table) is a `name` event.
pub fn is_event(name: EventName) -> Expr {
    col("event").eq(lit(name.code()))
}

/// A product is active at `as_of` when its status is ACTIVE and it was published by then.
pub fn is_active(as_of: i64) -> Expr {
    col("status").eq(lit("ACTIVE")).and(col("published_at").cast(DataType::Int64).lt_eq(lit(as_of))).fill_null(lit(false))
}

/// `< 25` budget, `< 75` mid, `< 200` premium, else luxury; null for no price.
pub fn price_tier(price: Expr) -> Expr {
    when(price.clone().is_null()).then(lit(NULL).cast(DataType::String))
        .when(price.clone().lt(lit(25.0))).then(lit("budget"))
        .when(price.clone().lt(lit(75.0))).then(lit("mid"))
        .when(price.lt(lit(200.0))).then(lit("premium"))
        .otherwise(lit("luxury"))
}

/// bot / tablet / mobile / desktop from a user agent.
pub fn device_type(user_agent: Expr) -> Expr {
    let ua = || user_agent.clone().str().to_lowercase().fill_null(lit(""));
    let has = |pattern: &str| ua().str().contains(lit(pattern.to_string()), false);
    when(has("bot|crawler|spider")).then(lit("bot"))
        .when(has("ipad|tablet").or(has("android").and(has("mobile").not()))).then(lit("tablet"))
        .when(has("mobile|iphone|android")).then(lit("mobile"))
        .otherwise(lit("desktop"))
}

/// A search query as the catalog compares them: lower-cased, trimmed, inner
/// whitespace collapsed.
pub fn normalized_query(query: Expr) -> Expr {
    query.str().to_lowercase().str().strip_chars(lit(NULL)).str().replace_all(lit(r"\s+"), lit(" "), false)
}
