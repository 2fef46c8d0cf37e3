//! search_product_features — one row per (normalized query, product) that appeared
//! in a `search_submitted` result list at or before T.

use super::expr::{count_if, is_event, normalized_query, rate};
use super::registry::{feature, FeatureTable, Kind::*};
use super::sessions::segment;
use super::Inputs;
use crate::vocabulary::EventName::*;
use polars::prelude::*;

/// The registry entries of search_product_features, in catalog order.
pub fn table() -> FeatureTable {
    FeatureTable {
        name: "search_product_features",
        key: &[("search_query", Str), ("product_id", I64)],
        own: &[],
        shop_wide: &[],
        features: vec![
            feature("impression_count", I64, "times the product was in a result list for the query (once per list)", || col("impressions")),
            feature("click_count", I64, "searches of the query (with the product listed) after which the product was viewed in the same session before the next search — one per search", || col("clicks")),
            feature("purchase_count", I64, "sessions with such a click whose `checkout_completed` (anywhere in the session) contains the product", || col("purchases")),
            feature("avg_position", F64, "mean 1-based position in the result lists (first position when listed twice)", || col("mean_position")),
            feature("click_through_rate", F64, "click_count / impression_count", || rate(col("click_count"), col("impression_count"))),
            feature("conversion_rate", F64, "purchase_count / click_count", || rate(col("purchase_count"), col("click_count"))),
            feature("last_searched_at", Ts, "latest search of the query whose list held the product", || col("last_search")),
        ],
    }
}

/// The base frame: one row per (query, product) with impressions.
pub fn base(inputs: &Inputs) -> PolarsResult<LazyFrame> {
    let is = is_event;
    // Each search opens a segment of its session; a view belongs to the segment it falls in.
    let events = inputs.sessions.clone().with_column(segment(is(SearchSubmitted)).alias("segment"));
    let position = col("_row").cum_count(false).over([col("_row")])?;
    let impressions = events
        .clone()
        .filter(is(SearchSubmitted))
        .select([col("_row"), col("session"), col("segment"), col("timestamp"), normalized_query(col("search_query")).alias("search_query"), col("product_ids").alias("product_id")])
        .filter(col("search_query").is_not_null().and(col("search_query").neq(lit(""))))
        .explode(cols(["product_id"]), ExplodeOptions { empty_as_null: false, keep_nulls: false })
        .with_column(position.cast(DataType::Int64).alias("position"))
        .unique_stable_generic(Some(vec![col("_row"), col("product_id")]), UniqueKeepStrategy::First);
    let views = events
        .clone()
        .filter(is(ProductViewed).and(col("product_id").is_not_null()))
        .select([col("segment"), col("product_id"), lit(true).alias("clicked")])
        .unique(None, UniqueKeepStrategy::Any);
    let bought = events
        .filter(is(CheckoutCompleted))
        .select([col("session"), col("product_ids").alias("product_id")])
        .explode(cols(["product_id"]), ExplodeOptions { empty_as_null: false, keep_nulls: false })
        .select([col("session"), col("product_id"), lit(true).alias("bought")])
        .unique(None, UniqueKeepStrategy::Any);
    let click_keys = || [col("segment"), col("product_id")];
    let session_keys = || [col("session"), col("product_id")];
    let clicked = col("clicked").fill_null(lit(false));
    Ok(impressions
        .join(views, click_keys(), click_keys(), JoinArgs::new(JoinType::Left))
        .join(bought, session_keys(), session_keys(), JoinArgs::new(JoinType::Left))
        .group_by([col("search_query"), col("product_id")])
        .agg([
            len().cast(DataType::Int64).alias("impressions"),
            count_if(clicked.clone()).alias("clicks"),
            col("session").filter(clicked.and(col("bought").fill_null(lit(false)))).n_unique().cast(DataType::Int64).alias("purchases"),
            col("position").cast(DataType::Float64).mean().alias("mean_position"),
            col("timestamp").max().alias("last_search"),
        ]))
}

/// search_product_features at `T`.
pub fn build(inputs: &Inputs) -> PolarsResult<LazyFrame> {
    Ok(table().project(inputs.without_deleted_products(base(inputs)?, "product_id"), &inputs.shop_id, inputs.as_of))
}
