//! customer_behavior_features — one row per customer id with at least one linked
//! event at or before T (also an id missing from the customer list).

use super::expr::{capped, count_if, days_since, device_type, is_event, normalized_query, rate, whole_days};
use super::registry::{feature, feature_at, FeatureTable, Kind::*};
use super::{with, Inputs};
use crate::vocabulary::EventName::{self, *};
use polars::prelude::*;

/// The registry entries of customer_behavior_features, in catalog order.
pub fn table() -> FeatureTable {
    FeatureTable {
        name: "customer_behavior_features",
        key: &[("customer_id", I64)],
        own: &[],
        shop_wide: &[],
        features: vec![
            feature("session_count", I64, "sessions of the customer's linked browsers", || col("sessions")),
            feature("total_event_count", I64, "linked events", || col("events")),
            feature("avg_events_per_session", F64, "total_event_count / session_count", || rate(col("total_event_count"), col("session_count"))),
            feature("avg_session_duration_seconds", F64, "mean of the sessions' duration_seconds", || col("mean_duration")),
            feature("product_view_count", I64, "`product_viewed`, all time", || col("n_product_viewed")),
            feature("collection_view_count", I64, "`collection_viewed`", || col("n_collection_viewed")),
            feature("cart_add_count", I64, "`product_added_to_cart`", || col("n_product_added_to_cart")),
            feature("cart_remove_count", I64, "`product_removed_from_cart`", || col("n_product_removed_from_cart")),
            feature("cart_view_count", I64, "`cart_viewed`", || col("n_cart_viewed")),
            feature("search_count", I64, "`search_submitted`", || col("n_search_submitted")),
            feature("checkout_started_count", I64, "`checkout_started`", || col("n_checkout_started")),
            feature("checkout_completed_count", I64, "`checkout_completed`", || col("n_checkout_completed")),
            feature("first_event_at", Ts, "first linked event", || col("first_event")),
            feature("last_event_at", Ts, "latest linked event", || col("last_event")),
            feature_at("days_since_first_event", I64, "whole days since first_event_at", |t| days_since(t, "first_event_at")),
            feature_at("days_since_last_event", I64, "whole days since last_event_at", |t| days_since(t, "last_event_at")),
            feature("cross_session_span_days", I64, "last - first event, whole days", || whole_days(col("last_event_at"), col("first_event_at"))),
            feature("sessions_per_week", F64, "session_count / max(cross_session_span_days / 7, 1)", || {
                col("session_count").cast(DataType::Float64) / (col("cross_session_span_days").cast(DataType::Float64) / lit(7.0)).clip_min(lit(1.0))
            }),
            feature("most_active_hour", I64, "UTC hour 0..23 with the most events (ties → earliest)", || col("top_hour")),
            feature("most_active_weekday", I64, "0 = Monday .. 6 with the most events (ties → earliest)", || col("top_weekday")),
            feature("unique_products_viewed", I64, "distinct products of `product_viewed`", || col("products_viewed_all")),
            feature("unique_collections_viewed", I64, "distinct collections of `collection_viewed`", || col("collections_viewed")),
            feature("top_search_terms", ListStr, "up to 5 normalized queries by count, ties alphabetically; empty without searches", || col("search_terms")),
            feature("browse_to_cart_rate", F64, "cart_add_count / product_view_count", || rate(col("cart_add_count"), col("product_view_count"))),
            feature("cart_to_purchase_rate", F64, "checkout_completed_count / cart_add_count", || rate(col("checkout_completed_count"), col("cart_add_count"))),
            feature("search_to_purchase_rate", F64, "checkout_completed_count / search_count", || rate(col("checkout_completed_count"), col("search_count"))),
            feature("device_count", I64, "distinct device types of its sessions", || col("devices")),
            feature("engagement_score", F64, "0.4·min(events/50, 1) + 0.3·min(unique_products_viewed/20, 1) + 0.3·min(sessions/10, 1)", || {
                lit(0.4) * capped(col("total_event_count").cast(DataType::Float64) / lit(50.0), 1.0)
                    + lit(0.3) * capped(col("unique_products_viewed").cast(DataType::Float64) / lit(20.0), 1.0)
                    + lit(0.3) * capped(col("session_count").cast(DataType::Float64) / lit(10.0), 1.0)
            }),
            feature("recency_score", F64, "exp(-days_since_last_event / 10)", || (lit(0.0) - col("days_since_last_event").cast(DataType::Float64) / lit(10.0)).exp()),
            feature("diversity_score", F64, "min(distinct event names / 8, 1)", || capped(col("event_names").cast(DataType::Float64) / lit(8.0), 1.0)),
            feature("behavioral_score", F64, "0.4·engagement + 0.3·recency + 0.3·diversity", || {
                lit(0.4) * col("engagement_score") + lit(0.3) * col("recency_score") + lit(0.3) * col("diversity_score")
            }),
        ],
    }
}

/// The most frequent `value` per customer, ties to the smallest.
fn most_frequent(events: LazyFrame, value: Expr, alias: &str) -> LazyFrame {
    events
        .select([col("customer_id"), value.alias("_value")])
        .group_by([col("customer_id"), col("_value")])
        .agg([len().alias("_n")])
        .group_by([col("customer_id")])
        .agg([col("_value").sort_by([col("_n"), col("_value")], SortMultipleOptions::default().with_order_descending_multi([true, false])).first().cast(DataType::Int64).alias(alias)])
}

/// The base frame: one row per linked customer id.
pub fn base(inputs: &Inputs) -> PolarsResult<LazyFrame> {
    let events = inputs.sessions.clone().filter(col("customer_id").is_not_null());
    let is = is_event;
    // A browser's events all carry its customer, so a session is the customer's whole.
    let per_session = inputs.session_facts.clone().filter(col("customer").is_not_null())
        .select([
            col("customer").alias("customer_id"),
            ((col("end").cast(DataType::Int64) - col("start").cast(DataType::Int64)).floor_div(lit(1_000_000i64))).alias("duration"),
            device_type(col("first_user_agent")).alias("device"),
            col("session_id"),
        ])
        .group_by([col("customer_id")])
        .agg([
            len().cast(DataType::Int64).alias("sessions"),
            col("duration").cast(DataType::Float64).mean().alias("mean_duration"),
            col("device").n_unique().cast(DataType::Int64).alias("devices"),
        ]);
    let mut aggs = vec![
        len().cast(DataType::Int64).alias("events"),
        col("timestamp").min().alias("first_event"),
        col("timestamp").max().alias("last_event"),
        col("product_id").filter(is(ProductViewed)).drop_nulls().n_unique().cast(DataType::Int64).alias("products_viewed_all"),
        col("collection_id").filter(is(CollectionViewed)).drop_nulls().n_unique().cast(DataType::Int64).alias("collections_viewed"),
        col("event").n_unique().cast(DataType::Int64).alias("event_names"),
    ];
    aggs.extend(EventName::ALL.map(|name| count_if(is(name)).alias(format!("n_{}", name.as_str()))));
    let totals = events.clone().group_by([col("customer_id")]).agg(aggs);
    let terms = events
        .clone()
        .filter(is(SearchSubmitted).and(col("search_query").is_not_null()))
        .select([col("customer_id"), normalized_query(col("search_query")).alias("term")])
        .filter(col("term").neq(lit("")))
        .group_by([col("customer_id"), col("term")])
        .agg([len().alias("n")])
        .group_by([col("customer_id")])
        .agg([col("term").sort_by([col("n"), col("term")], SortMultipleOptions::default().with_order_descending_multi([true, false])).head(Some(5)).alias("search_terms")]);
    let hours = most_frequent(events.clone(), col("timestamp").dt().hour(), "top_hour");
    let weekdays = most_frequent(events, col("timestamp").dt().weekday() - lit(1), "top_weekday");
    let mut frame = totals;
    for other in [per_session, terms, hours, weekdays] {
        frame = with(frame, other, "customer_id");
    }
    let no_terms = lit(Series::new_empty(PlSmallStr::EMPTY, &DataType::String)).implode(false);
    Ok(frame.with_column(col("search_terms").fill_null(no_terms)))
}

/// customer_behavior_features at `T`.
pub fn build(inputs: &Inputs) -> PolarsResult<LazyFrame> {
    Ok(table().project(base(inputs)?, &inputs.shop_id, inputs.as_of))
}
