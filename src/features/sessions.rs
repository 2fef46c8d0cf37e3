//! Sessions: one browser's (`client_id`) events ordered by time; a gap of more than
//! 30 minutes starts a new session (exactly 30:00 continues it). Inside the engine
//! a session is an integer (`session`, its rank in browser and time order), which
//! group-bys and joins hash cheaply; session_features names it `session_id` =
//! `client_id:<start in ms>`, stable across reruns.

use super::expr::{count_if, is_event, url_host};
use crate::normalize::{Shared, EVENT_ROW as ROW};
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

/// When each session browsed each product, and each pair of products: what
/// product_embeddings (the sessions' contexts) and product_pair_features (co-views,
/// co-carts) read of the sessions, with times.
///
/// A session of the events up to any `T` is a session of all the events cut
/// at `T` (one starts where its browser's previous event is over 30 minutes
/// before: nothing later moves that), so it had browsed a product by `T`
/// exactly when its first such event is `<= T`, and both products of a pair
/// when the later of the two is. The times from every event of a store
/// therefore give the sessions' contexts and counts at each of many `T` (a
/// training set's cut-offs) with no sessionizing, sorting or pairing per `T`.
#[derive(Clone)]
pub struct BrowseTimes {
    /// (`session`, `product_id`, `at`): the first view or cart add of each
    /// product in each session, sorted by session and product.
    pub browsed: LazyFrame,
    /// (`_pair`, `product_id_a`, `product_id_b`, `at`): per session and pair
    /// (a < b) it viewed both of, the later of the two products' first views
    /// (`_pair` packs the pair into one integer: [`together`]).
    pub viewed_together: LazyFrame,
    /// The same of cart adds.
    pub carted_together: LazyFrame,
}

impl BrowseTimes {
    /// The times of the sessionized `events` ([`sessionized`]).
    pub fn of(events: &LazyFrame) -> BrowseTimes {
        let browse = is_event(EventName::ProductViewed).or(is_event(EventName::ProductAddedToCart));
        BrowseTimes {
            browsed: firsts(events.clone(), browse).sort(["session", "product_id"], SortMultipleOptions::default()),
            viewed_together: together(firsts(events.clone(), is_event(EventName::ProductViewed))),
            carted_together: together(firsts(events.clone(), is_event(EventName::ProductAddedToCart))),
        }
    }

    /// The times of every event of a store, in memory: for its tables at any
    /// `T` (a training set's cut-offs, [`super::Inputs::browse_times`]).
    pub fn of_every_event(shared: &Shared) -> anyhow::Result<BrowseTimes> {
        let times = BrowseTimes::of(&sessionized(shared.events_at(i64::MAX)?.rows)?);
        let plans = vec![times.browsed, times.viewed_together, times.carted_together];
        let [browsed, viewed_together, carted_together]: [DataFrame; 3] = crate::normalize::collect_all(plans)?.try_into().map_err(|_| anyhow::anyhow!("three frames"))?;
        Ok(BrowseTimes { browsed: browsed.lazy(), viewed_together: viewed_together.lazy(), carted_together: carted_together.lazy() })
    }
}

/// (`session`, `product_id`, `at`): the first event of each product in each
/// session for which `test` holds.
fn firsts(events: LazyFrame, test: Expr) -> LazyFrame {
    events
        .filter(test.and(col("product_id").is_not_null()))
        .group_by([col("session"), col("product_id")])
        .agg([col("timestamp").cast(DataType::Int64).min().alias("at")])
}

/// Per session and pair (a < b) of `firsts`' products, the later of the two
/// times, with `_pair`: the products numbered in id order, so a pair packs
/// into one 64-bit key (`a·2³² + b`), grouped on that one integer instead of
/// two ids.
fn together(firsts: LazyFrame) -> LazyFrame {
    let firsts = firsts.cache();
    let numbered = firsts.clone().select([col("product_id")]).unique(None, UniqueKeepStrategy::Any).sort(["product_id"], SortMultipleOptions::default()).with_row_index("_n", None);
    let firsts = firsts.join(numbered, [col("product_id")], [col("product_id")], JoinArgs::new(JoinType::Inner));
    let side = |id: &str, n: &str, at: &str| firsts.clone().select([col("session"), col("product_id").alias(id), col("_n").cast(DataType::UInt64).alias(n), col("at").alias(at)]);
    let later = when(col("_at_a").gt(col("_at_b"))).then(col("_at_a")).otherwise(col("_at_b"));
    side("product_id_a", "_a", "_at_a")
        .join(side("product_id_b", "_b", "_at_b"), [col("session")], [col("session")], JoinArgs::new(JoinType::Inner))
        .filter(col("_a").lt(col("_b")))
        .select([(col("_a") * lit(1u64 << 32) + col("_b")).alias("_pair"), col("product_id_a"), col("product_id_b"), later.alias("at")])
}
