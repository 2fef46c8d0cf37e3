//! interaction_features — one row per (customer, product) with at least one linked
//! `product_viewed`, `product_added_to_cart` or `product_removed_from_cart` event, or
//! a valid purchase, at or before T.

use super::expr::{capped, count_if, is_event, rate, whole_days, zero};
use super::registry::{feature, feature_at, FeatureTable, Kind::*, Reads};
use super::{with_read, Inputs};
use crate::vocabulary::EventName::*;
use polars::prelude::*;

/// The registry entries of interaction_features, in catalog order.
pub fn table() -> FeatureTable {
    FeatureTable {
        name: "interaction_features",
        key: &[("customer_id", I64), ("product_id", I64)],
        own: &[],
        shop_wide: &[],
        features: vec![
            feature("view_count", I64, "linked `product_viewed` events, all time", move || zero("views")),
            feature("cart_add_count", I64, "linked `product_added_to_cart` events", move || zero("cart_adds")),
            feature("cart_remove_count", I64, "linked `product_removed_from_cart` events", move || zero("cart_removes")),
            feature("purchase_count", I64, "valid orders containing the product", move || zero("orders")),
            feature("units_purchased", I64, "units in those orders", move || zero("units")),
            feature("first_view_at", Ts, "first linked view", || col("first_view")),
            feature("last_view_at", Ts, "latest linked view", || col("last_view")),
            feature("first_purchase_at", Ts, "first valid order with the product", || col("first_purchase")),
            feature("last_purchase_at", Ts, "latest valid order with the product", || col("last_purchase")),
            feature("view_to_purchase_days", I64, "max(0, first_purchase_at - first_view_at) in whole days; null unless both", move || {
                whole_days(col("first_purchase_at"), col("first_view_at")).clip_min(lit(0i64))
            }),
            feature("interaction_span_days", I64, "latest - earliest of the four dates, whole days", move || whole_days(col("latest"), col("earliest"))),
            feature("interaction_score", F64, "views + 3·cart adds + 7·purchases", || {
                (col("view_count") + lit(3i64) * col("cart_add_count") + lit(7i64) * col("purchase_count")).cast(DataType::Float64)
            }),
            feature_at("affinity_score", F64, "(0.3·min(cart_adds/views, 1) + 0.5·min(purchases/cart_adds, 1) + 0.2·[purchased]) · (0.7 + 0.3·max(0, 1 - days_since_last_view/365)), clamped 0..1; with no views the first term is 0 and the recency factor 1; the purchases/cart-adds term is 0 without cart adds", |t| {
                let browse = capped(rate(col("cart_add_count"), col("view_count")), 1.0);
                let buy = capped(rate(col("purchase_count"), col("cart_add_count")), 1.0);
                let purchased = col("purchase_count").gt(lit(0)).cast(DataType::Float64);
                let days_since_view = whole_days(lit(t), col("last_view_at")).cast(DataType::Float64);
                let recency = when(col("view_count").gt(lit(0)))
                    .then(lit(0.7) + lit(0.3) * (lit(1.0) - days_since_view / lit(365.0)).clip_min(lit(0.0)))
                    .otherwise(lit(1.0));
                ((lit(0.3) * browse + lit(0.5) * buy + lit(0.2) * purchased) * recency).clip(lit(0.0), lit(1.0))
            }),
            feature("refunded_units", I64, "units of the product refunded (by T) on the customer's valid orders", move || zero("refund_units")),
            feature("refund_rate", F64, "refunded_units / units_purchased", || rate(col("refunded_units"), col("units_purchased"))),
            // Beyond the catalog: the timestamp of the Gorse `add_to_cart` feedback.
            feature("last_cart_add_at", Ts, "latest linked `product_added_to_cart`", || col("last_cart_add")),
        ],
    }
}

/// The base frame: every (customer, product) with events or purchases, with the
/// refunds when `reads` reads them.
pub fn base(inputs: &Inputs, reads: &Reads) -> PolarsResult<LazyFrame> {
    let key = || [col("customer_id"), col("product_id")];
    let is = is_event;
    let views = is(ProductViewed);
    // The storefront's events and the purchased lines of each (customer, product)
    // as rows of one frame, aggregated in one group-by: cheaper than aggregating
    // each and joining the two on both keys.
    let linked = || col("customer_id").is_not_null().and(col("product_id").is_not_null());
    let events = inputs
        .events()
        .filter(linked().and(views.clone().or(is(ProductAddedToCart)).or(is(ProductRemovedFromCart))))
        .select([col("customer_id"), col("product_id"), col("event"), col("timestamp"), lit(NULL).cast(DataType::Int64).alias("order_id"), lit(NULL).cast(DataType::Int64).alias("quantity")]);
    // One row per (customer, product, order): counting rows counts orders.
    let orders = inputs
        .valid_lines()
        .filter(linked())
        .group_by([col("customer_id"), col("product_id"), col("order_id")])
        .agg([col("quantity").sum().cast(DataType::Int64), col("ordered_at").first().alias("timestamp")])
        .select([col("customer_id"), col("product_id"), lit(NULL).cast(DataType::UInt32).alias("event"), col("timestamp"), col("order_id"), col("quantity")]);
    let bought = || col("order_id").is_not_null();
    // The times of the rows where `cond` holds (a plain min/max over a masked
    // column, cheaper in a group-by than filtering each group).
    let at = |cond: Expr| when(cond).then(col("timestamp")).otherwise(lit(NULL));
    let both = concat([events, orders], UnionArgs::default())?.group_by(key()).agg([
        count_if(views.clone()).alias("views"),
        count_if(is(ProductAddedToCart)).alias("cart_adds"),
        count_if(is(ProductRemovedFromCart)).alias("cart_removes"),
        at(views.clone()).min().alias("first_view"),
        at(views).max().alias("last_view"),
        at(is(ProductAddedToCart)).max().alias("last_cart_add"),
        count_if(bought()).alias("orders"),
        col("quantity").sum().alias("units"),
        at(bought()).min().alias("first_purchase"),
        at(bought()).max().alias("last_purchase"),
    ]);
    let owners = inputs.valid_orders().select([col("order_id"), col("customer_id")]);
    let refunds = inputs
        .valid_refunds()
        .join(owners, [col("order_id")], [col("order_id")], JoinArgs::new(JoinType::Inner))
        .filter(col("customer_id").is_not_null().and(col("product_id").is_not_null()))
        .group_by(key())
        .agg([col("quantity").sum().alias("refund_units")]);
    let dates = || [col("first_view"), col("last_view"), col("first_purchase"), col("last_purchase")];
    Ok(with_read(both, refunds, &["customer_id", "product_id"], reads)?
        .with_columns([polars::lazy::dsl::min_horizontal(dates())?.alias("earliest"), polars::lazy::dsl::max_horizontal(dates())?.alias("latest")]))
}

/// interaction_features at `T`.
pub fn build(inputs: &Inputs) -> PolarsResult<LazyFrame> {
    Ok(table().project(known(inputs, &Reads::all())?, &inputs.shop_id, inputs.as_of))
}

/// The key and `outputs` of interaction_features at `T`, building only what they read.
pub fn build_only(inputs: &Inputs, outputs: &[&str]) -> PolarsResult<LazyFrame> {
    let table = table();
    Ok(table.project_only(known(inputs, &table.reads(outputs))?, inputs.as_of, outputs))
}

/// The base rows of products and customers not deleted in Shopify.
fn known(inputs: &Inputs, reads: &Reads) -> PolarsResult<LazyFrame> {
    Ok(inputs.without_deleted_customers(inputs.without_deleted_products(base(inputs, reads)?, "product_id")))
}
