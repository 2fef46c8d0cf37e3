//! session_features — one row per session (see [`super::sessions`]) at or before T.

use super::expr::device_type;
use super::registry::{feature, FeatureTable, Kind::*};
use super::{with, Inputs};
use polars::prelude::*;

const SEARCH_ENGINES: &str = "google|bing|duckduckgo|yahoo|baidu|yandex|ecosia|ask|aol";
const SOCIAL_NETWORKS: &str = "facebook|instagram|tiktok|pinterest|twitter|x|t|linkedin|reddit|youtube|snapchat|threads";
const MAIL_HOSTS: &str = "mail|outlook|webmail|gmail";

/// A host matches a name on whole dot-separated labels (`x.com` is not `dropbox.com`).
fn host_has_label(host: Expr, names: &str) -> Expr {
    host.str().contains(lit(format!(r"(^|\.)({names})(\.|$)")), false).fill_null(lit(false))
}

/// The registry entries of session_features, in catalog order.
pub fn table() -> FeatureTable {
    let is_email_campaign = || col("landing_url").str().contains(lit(r"[?&]utm_medium=email(&|#|$)"), false).fill_null(lit(false));
    FeatureTable {
        name: "session_features",
        key: &[("session_id", Str)],
        own: &[],
        shop_wide: &[],
        features: vec![
            feature("client_id", Str, "the browser", || col("client")),
            feature("customer_id", I64, "linked customer (identity stitching), null for anonymous", || col("customer")),
            feature("started_at", Ts, "first event", || col("start")),
            feature("ended_at", Ts, "last event", || col("end")),
            feature("duration_seconds", I64, "ended_at - started_at, floored to seconds", || (col("ended_at").cast(DataType::Int64) - col("started_at").cast(DataType::Int64)).floor_div(lit(1_000_000i64))),
            feature("event_count", I64, "events in the session", || col("events")),
            feature("page_view_count", I64, "`page_viewed` events", || col("n_page_viewed")),
            feature("product_view_count", I64, "`product_viewed` events", || col("n_product_viewed")),
            feature("collection_view_count", I64, "`collection_viewed` events", || col("n_collection_viewed")),
            feature("search_count", I64, "`search_submitted` events", || col("n_search_submitted")),
            feature("cart_add_count", I64, "`product_added_to_cart` events", || col("n_product_added_to_cart")),
            feature("cart_remove_count", I64, "`product_removed_from_cart` events", || col("n_product_removed_from_cart")),
            feature("cart_view_count", I64, "`cart_viewed` events", || col("n_cart_viewed")),
            feature("unique_products_viewed", I64, "distinct products of `product_viewed` events", || col("products_viewed")),
            feature("checkout_started", Bool, "any `checkout_started`", || col("n_checkout_started").gt(lit(0))),
            feature("checkout_completed", Bool, "any `checkout_completed`", || col("n_checkout_completed").gt(lit(0))),
            feature("order_id", I64, "the order of the session's last `checkout_completed`", || col("last_order_id")),
            feature("order_value", F64, "that order's total_price (null if the order is unknown)", || col("order_total")),
            feature("is_bounce", Bool, "exactly one event", || col("event_count").eq(lit(1))),
            feature("cart_abandoned", Bool, "cart_add_count > 0 and no checkout_completed", || col("cart_add_count").gt(lit(0)).and(col("checkout_completed").not())),
            feature("landing_page", Str, "URL path of the first event, without query", || col("first_path").str().replace(lit(r"\?.*$"), lit(""), false)),
            feature("exit_page", Str, "URL path of the last event, without query", || col("last_path").str().replace(lit(r"\?.*$"), lit(""), false)),
            feature("referrer_domain", Str, "full lower-case host of the first event's referrer; null when none or the shop's own host", || {
                when(col("first_referrer_host").eq(col("landing_host")).fill_null(lit(false))).then(lit(NULL).cast(DataType::String)).otherwise(col("first_referrer_host"))
            }),
            feature("traffic_source", Str, "first match: landing URL with utm_medium=email → email; no referrer or the shop's own host → direct; mail host → email; search engine → search; social network → social; else referral (hosts match on whole labels)", move || {
                let host = || col("referrer_domain");
                when(is_email_campaign()).then(lit("email"))
                    .when(host().is_null()).then(lit("direct"))
                    .when(host_has_label(host(), MAIL_HOSTS)).then(lit("email"))
                    .when(host_has_label(host(), SEARCH_ENGINES)).then(lit("search"))
                    .when(host_has_label(host(), SOCIAL_NETWORKS)).then(lit("social"))
                    .otherwise(lit("referral"))
            }),
            feature("device_type", Str, "from the first event's user agent, case-insensitive, first match: bot/crawler/spider → bot; ipad, tablet, or android without mobile → tablet; mobile/iphone/android → mobile; else desktop", || device_type(col("first_user_agent"))),
        ],
    }
}

/// The base frame: one row per session with its aggregates and its order's total.
pub fn base(inputs: &Inputs) -> PolarsResult<LazyFrame> {
    let orders = inputs.main.orders.clone().select([col("order_id").alias("last_order_id"), col("total_price").alias("order_total")]);
    Ok(with(inputs.session_facts.clone(), orders, "last_order_id"))
}

/// session_features at `T`.
pub fn build(inputs: &Inputs) -> PolarsResult<LazyFrame> {
    Ok(table().project(base(inputs)?, &inputs.shop_id, inputs.as_of))
}
