//! Sessions: one browser's (`client_id`) events ordered by time; a gap of more than
//! 30 minutes starts a new session (exactly 30:00 continues it). Inside the engine
//! a session is an integer (`session`, its rank in browser and time order), which
//! group-bys and joins hash cheaply; session_features names it `session_id` =
//! `client_id:<start in ms>`, stable across reruns.

use super::expr::{count_if, is_event, url_host};
use crate::normalize::EVENT_ROW as ROW;
use crate::vocabulary::EventName;
use polars::prelude::*;

const SESSION_GAP_US: i64 = 30 * 60 * 1_000_000;

/// `events` with `session`, `_row` (their order) and `is_last_in_session`. The
/// events come sorted by browser (a number per `client_id`), time and landing
/// order, as normalization leaves them.
///
/// In that order, a session starts where the browser changes or the
/// gap to the previous event exceeds 30 minutes, so every step is a shift or a
/// running sum over the sorted rows — no per-browser window is needed.
pub fn sessionized(events: LazyFrame) -> PolarsResult<LazyFrame> {
    let ts = || col("timestamp").cast(DataType::Int64);
    let new_browser = col("browser").neq_missing(col("browser").shift(lit(1)));
    let long_gap = (ts() - ts().shift(lit(1))).gt(lit(SESSION_GAP_US));
    let starts = new_browser.or(long_gap).fill_null(lit(true));
    // The last event of a session is followed by a start (or by nothing).
    let is_last = col("_starts").shift(lit(-1)).fill_null(lit(true));
    Ok(events
        .with_row_index("_row", None)
        .with_column(starts.alias("_starts"))
        .with_columns([
            col("_starts").cast(DataType::Int64).cum_sum(false).alias("session"),
            is_last.alias("is_last_in_session"),
        ])
        .drop(cols(["_starts"])))
}

/// A number per segment of a session, for events in session order: a segment
/// starts where a session does and at every event for which `opens` holds (a
/// collection view, a search), so the events after such an event, up to the
/// next one, share its number. Numbers are distinct across sessions, so the
/// segment alone identifies it — a running sum, no per-session window.
pub fn segment(opens: Expr) -> Expr {
    let new_session = col("session").neq_missing(col("session").shift(lit(1))).fill_null(lit(true));
    opens.fill_null(lit(false)).or(new_session).cast(DataType::Int64).cum_sum(false)
}

/// One row per session: its events' counts by name, its customer, start, end
/// and last order, and the rows of its first and last events (`_first_row`,
/// `_last_row`, for [`with_details`]).
pub fn session_counts(events: LazyFrame) -> LazyFrame {
    let mut aggs = vec![
        col(ROW).first().alias("_first_row"),
        col(ROW).last().alias("_last_row"),
        col("customer_id").first().alias("customer"),
        col("timestamp").min().alias("start"),
        col("timestamp").max().alias("end"),
        len().cast(DataType::Int64).alias("events"),
        col("product_id").filter(is_event(EventName::ProductViewed)).drop_nulls().n_unique().cast(DataType::Int64).alias("products_viewed"),
        col("order_id").filter(is_event(EventName::CheckoutCompleted)).last().alias("last_order_id"),
    ];
    aggs.extend(EventName::ALL.map(|name| count_if(is_event(name)).alias(format!("n_{}", name.as_str()))));
    events.group_by_stable([col("session")]).agg(aggs)
}

/// The events' details (`details`: by `_event_row`) of the first and last
/// events of `counts`' sessions, and no other.
pub fn details_of(details: LazyFrame, counts: &DataFrame) -> PolarsResult<LazyFrame> {
    let mut rows = counts.column("_first_row")?.as_materialized_series().clone();
    rows.append(counts.column("_last_row")?.as_materialized_series())?;
    let rows = DataFrame::new_infer_height(vec![rows.with_name(ROW.into()).into()])?.lazy();
    Ok(details
        .select([col(ROW), col("client_id"), col("url"), col("path"), col("referrer"), col("user_agent")])
        .join(rows, [col(ROW)], [col(ROW)], JoinArgs::new(JoinType::Semi)))
}

/// One row per session with its first/last facts (client, landing URL, paths,
/// referrer, user agent): `counts` ([`session_counts`]) with the details of
/// their first and last events. session_features and
/// customer_behavior_features both read it.
pub fn with_details(counts: LazyFrame, details: LazyFrame) -> LazyFrame {
    let first = details.clone().select([
        col(ROW).alias("_first_row"),
        col("client_id").alias("client"),
        col("path").alias("first_path"),
        col("url").alias("landing_url"),
        col("referrer").alias("first_referrer"),
        col("user_agent").alias("first_user_agent"),
    ]);
    let last = details.select([col(ROW).alias("_last_row"), col("path").alias("last_path")]);
    let mut in_order = JoinArgs::new(JoinType::Left);
    in_order.maintain_order = MaintainOrderJoin::Left;
    let session_id = col("client") + lit(":") + col("start").cast(DataType::Int64).floor_div(lit(1000i64)).cast(DataType::String);
    counts
        .join(first, [col("_first_row")], [col("_first_row")], in_order.clone())
        .join(last, [col("_last_row")], [col("_last_row")], in_order)
        .drop(cols(["_first_row", "_last_row"]))
        .with_column(session_id.alias("session_id"))
        // Hosts from the first event's URLs: once per session, not per event.
        .with_columns([url_host(col("landing_url")).alias("landing_host"), url_host(col("first_referrer")).alias("first_referrer_host")])
}
