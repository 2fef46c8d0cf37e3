//! user_features — one row per customer in the catalog at `T` (also customers
//! with no orders); rates are never NaN, RFM scores are 0 without orders.

use super::expr::{count_if, days_since, money_sum, price_tier, rate, zero, zero_f};
use super::registry::{feature, feature_at, FeatureTable, Kind::*, Reads};
use super::{with_read, Inputs};
use crate::time::DAY_US;
use polars::prelude::*;

/// The registry entries of user_features, in catalog order.
pub fn table() -> FeatureTable {
    // Fractional days between the first and the last order.
    let span_days = || (col("last_order_at").cast(DataType::Int64) - col("first_order_at").cast(DataType::Int64)).cast(DataType::Float64) / lit(DAY_US as f64);
    let repeat = || col("total_purchases").gt_eq(lit(2));
    FeatureTable {
        name: "user_features",
        key: &[("customer_id", I64)],
        own: &["customer_state", "verified_email", "accepts_marketing", "tax_exempt", "has_default_address", "country_code", "province_code", "geographic_region", "tag_count", "customer_age_days"],
        shop_wide: &["r_score", "f_score", "m_score"],
        features: vec![
            feature("customer_state", Str, "ENABLED / DISABLED / INVITED / DECLINED", || col("state")),
            feature("verified_email", Bool, "from the customer", || col("verified_email").fill_null(lit(false))),
            feature("accepts_marketing", Bool, "email marketing state SUBSCRIBED", || col("accepts_marketing")),
            feature("tax_exempt", Bool, "from the customer", || col("tax_exempt").fill_null(lit(false))),
            feature("has_default_address", Bool, "the customer has a default address", || col("has_default_address")),
            feature("country_code", Str, "default address", || col("country_code")),
            feature("province_code", Str, "default address", || col("province_code")),
            feature("geographic_region", Str, "`province_code, country_code` (`NY, US`), just the country without a province (`GB`), null without an address", || {
                when(col("province_code").is_not_null()).then(col("province_code") + lit(", ") + col("country_code")).otherwise(col("country_code"))
            }),
            feature("tag_count", I64, "tags on the customer", || col("tags").list().len().fill_null(lit(0u32)).cast(DataType::Int64)),
            feature_at("customer_age_days", I64, "whole days since the customer was created", |t| days_since(t, "created_at")),
            feature("total_purchases", I64, "valid orders", move || zero("orders_all")),
            feature("total_spent", F64, "sum of order totals (total_price) of valid orders", move || zero_f("spent_all")),
            feature("avg_order_value", F64, "mean of those totals (0 when none)", || rate(col("total_spent"), col("total_purchases"))),
            feature("max_order_value", F64, "max of those totals (0 when none)", move || zero_f("max_total")),
            feature("total_units", I64, "units bought, custom lines too", move || zero("units")),
            feature("orders_30d", I64, "valid orders in 30d", move || zero("orders_in_30d")),
            feature("orders_90d", I64, "valid orders in 90d", move || zero("orders_in_90d")),
            feature("spent_30d", F64, "their totals", move || zero_f("spent_in_30d")),
            feature("spent_90d", F64, "their totals", move || zero_f("spent_in_90d")),
            feature("first_order_at", Ts, "first valid order", || col("first_order")),
            feature("last_order_at", Ts, "latest valid order", || col("last_order")),
            feature_at("days_since_first_order", I64, "null when no order", |t| days_since(t, "first_order_at")),
            feature_at("days_since_last_order", I64, "null when no order", |t| days_since(t, "last_order_at")),
            feature("avg_days_between_orders", F64, "(last - first) in fractional days / (total_purchases - 1); 0 with fewer than 2 orders", move || {
                when(repeat()).then(span_days() / (col("total_purchases") - lit(1)).cast(DataType::Float64)).otherwise(lit(0.0))
            }),
            feature("order_frequency_per_month", F64, "(total_purchases - 1) / max(span_days / 30, 1), span in fractional days; 0 with fewer than 2 orders", move || {
                let months = (span_days() / lit(30.0)).clip_min(lit(1.0));
                when(repeat()).then((col("total_purchases") - lit(1)).cast(DataType::Float64) / months).otherwise(lit(0.0))
            }),
            feature("distinct_products_purchased", I64, "every product id bought, also one no longer in the catalog", move || zero("products_bought")),
            feature("distinct_categories_purchased", I64, "distinct non-empty product_type among bought products", move || zero("categories_bought")),
            feature("preferred_category", Str, "product_type with the most units; ties → alphabetically first; null when none", || col("top_category")),
            feature("preferred_vendor", Str, "vendor with the most units; ties → alphabetically first; null when none", || col("top_vendor")),
            feature("avg_unit_price", F64, "quantity-weighted mean unit revenue, custom lines too; 0.0 without purchases", || rate(col("line_revenue"), col("total_units"))),
            feature("price_point_preference", Str, "price tier (as for products) of avg_unit_price; null when none", || {
                when(col("total_units").gt(lit(0))).then(price_tier(col("avg_unit_price"))).otherwise(lit(NULL).cast(DataType::String))
            }),
            feature("orders_with_discount", I64, "valid orders with total_discounts > 0", move || zero("discounted_orders")),
            feature("discount_sensitivity", F64, "orders_with_discount / total_purchases", || rate(col("orders_with_discount"), col("total_purchases"))),
            feature("total_discount_amount", F64, "sum of total_discounts over discounted orders", move || zero_f("discount_sum")),
            feature("avg_discount_amount", F64, "mean of total_discounts over discounted orders (0 when none)", || rate(col("total_discount_amount"), col("orders_with_discount"))),
            feature("refunded_orders", I64, "valid orders with any refund created by T", move || zero("orders_refunded")),
            feature("refund_rate", F64, "refunded_orders / total_purchases", || rate(col("refunded_orders"), col("total_purchases"))),
            feature("total_refunded_amount", F64, "sum of refund subtotals (by T, valid orders)", move || zero_f("refunded_sum")),
            feature("net_lifetime_value", F64, "total_spent - total_refunded_amount", || col("total_spent") - col("total_refunded_amount")),
            feature("recency_score", I64, "RFM quintile 1..5 of -days_since_last_order among customers with orders (ties share the lowest rank); 0 without orders", move || zero("r_score")),
            feature("frequency_score", I64, "RFM quintile 1..5 of total_purchases; 0 without orders", move || zero("f_score")),
            feature("monetary_score", I64, "RFM quintile 1..5 of total_spent rounded to cents; 0 without orders", move || zero("m_score")),
            feature("rfm_segment", Str, "champions (R≥4,F≥4,M≥4), loyal (F≥4), big_spenders (M≥4), new (R≥4, F≤2), at_risk (R≤2, F≥3), hibernating (R≤2), potential; `none` without orders", || {
                let (r, f, m) = (col("recency_score"), col("frequency_score"), col("monetary_score"));
                when(col("total_purchases").eq(lit(0))).then(lit("none"))
                    .when(r.clone().gt_eq(lit(4)).and(f.clone().gt_eq(lit(4))).and(m.clone().gt_eq(lit(4)))).then(lit("champions"))
                    .when(f.clone().gt_eq(lit(4))).then(lit("loyal"))
                    .when(m.gt_eq(lit(4))).then(lit("big_spenders"))
                    .when(r.clone().gt_eq(lit(4)).and(f.clone().lt_eq(lit(2)))).then(lit("new"))
                    .when(r.clone().lt_eq(lit(2)).and(f.gt_eq(lit(3)))).then(lit("at_risk"))
                    .when(r.lt_eq(lit(2))).then(lit("hibernating"))
                    .otherwise(lit("potential"))
            }),
            feature("customer_health_score", I64, "40 if ENABLED (10 if DISABLED, 0 otherwise) + 30 verified_email + 20 has_default_address + 10 if customer_age_days > 30, minus 30/15/5 when refund_rate > 0.5/0.25/0.1; clamped 0..=100", || {
                let points = |cond: Expr, p: i64| when(cond).then(lit(p)).otherwise(lit(0i64));
                let state = when(col("customer_state").eq(lit("ENABLED"))).then(lit(40i64))
                    .when(col("customer_state").eq(lit("DISABLED"))).then(lit(10i64))
                    .otherwise(lit(0i64));
                let penalty = when(col("refund_rate").gt(lit(0.5))).then(lit(30i64))
                    .when(col("refund_rate").gt(lit(0.25))).then(lit(15i64))
                    .when(col("refund_rate").gt(lit(0.1))).then(lit(5i64))
                    .otherwise(lit(0i64));
                (state + points(col("verified_email"), 30) + points(col("has_default_address"), 20)
                    + points(col("customer_age_days").gt(lit(30)).fill_null(lit(false)), 10) - penalty)
                    .clip(lit(0i64), lit(100i64))
            }),
            feature("churn_risk_score", F64, "share of 5 signals: days_since_last_order > 90; fewer than 5 linked events in 90d; order_frequency_per_month < 0.1; refund_rate > 0.2; more than one order but distinct_categories_purchased <= 1", move || {
                let signal = |cond: Expr| cond.fill_null(lit(false)).cast(DataType::Float64);
                (signal(col("days_since_last_order").gt(lit(90)))
                    + signal(zero("events_90d").lt(lit(5)))
                    + signal(col("order_frequency_per_month").lt(lit(0.1)))
                    + signal(col("refund_rate").gt(lit(0.2)))
                    + signal(col("total_purchases").gt(lit(1)).and(col("distinct_categories_purchased").lt_eq(lit(1)))))
                    / lit(5.0)
            }),
            feature("lifecycle_stage", Str, "new (no order), one_time (1 order), repeat_active (≥2, last order ≤ 60 days ago), repeat_dormant (≥2, ≤ 180), repeat_churned (≥2, > 180); whole days", || {
                let n = col("total_purchases");
                let days = col("days_since_last_order");
                when(n.clone().eq(lit(0))).then(lit("new"))
                    .when(n.eq(lit(1))).then(lit("one_time"))
                    .when(days.clone().lt_eq(lit(60))).then(lit("repeat_active"))
                    .when(days.lt_eq(lit(180))).then(lit("repeat_dormant"))
                    .otherwise(lit("repeat_churned"))
            }),
        ],
    }
}

/// The base frame: every customer at `T` with the aggregates its features read
/// (those `reads` reads).
pub fn base(inputs: &Inputs, reads: &Reads) -> PolarsResult<LazyFrame> {
    let orders = orders(inputs);
    let mut frame = inputs.main.customers.clone();
    for aggregates in [orders.clone(), lines(inputs), preferences(inputs, "product_type", "top_category"), preferences(inputs, "vendor", "top_vendor"), refunds(inputs), events(inputs), rfm(inputs, orders)] {
        frame = with_read(frame, aggregates, &["customer_id"], reads)?;
    }
    Ok(frame)
}

fn orders(inputs: &Inputs) -> LazyFrame {
    let d30 = inputs.within("created_at", 30);
    let d90 = inputs.within("created_at", 90);
    let discounted = col("total_discounts").fill_null(lit(0.0)).gt(lit(0.0));
    inputs.valid_orders().filter(col("customer_id").is_not_null()).group_by([col("customer_id")]).agg([
        len().cast(DataType::Int64).alias("orders_all"),
        money_sum(col("total_price")).alias("spent_all"),
        col("total_price").max().alias("max_total"),
        col("created_at").min().alias("first_order"),
        col("created_at").max().alias("last_order"),
        count_if(d30.clone()).alias("orders_in_30d"),
        count_if(d90.clone()).alias("orders_in_90d"),
        money_sum(col("total_price").filter(d30)).alias("spent_in_30d"),
        money_sum(col("total_price").filter(d90)).alias("spent_in_90d"),
        count_if(discounted.clone()).alias("discounted_orders"),
        money_sum(col("total_discounts").filter(discounted)).alias("discount_sum"),
    ])
}

fn lines(inputs: &Inputs) -> LazyFrame {
    inputs.valid_lines().filter(col("customer_id").is_not_null()).group_by([col("customer_id")]).agg([
        col("quantity").sum().alias("units"),
        money_sum(col("revenue")).alias("line_revenue"),
        col("product_id").drop_nulls().n_unique().cast(DataType::Int64).alias("products_bought"),
    ])
}

/// Per customer, the product `attribute` (type or vendor) with the most units
/// (ties: alphabetically first); also the count of distinct product types.
fn preferences(inputs: &Inputs, attribute: &str, alias: &str) -> LazyFrame {
    let catalog = inputs.main.products.clone().select([col("product_id"), col(attribute)]);
    let units = inputs
        .valid_lines()
        .filter(col("customer_id").is_not_null().and(col("product_id").is_not_null()))
        // The product's own type and vendor, not the line's copy.
        .select([col("customer_id"), col("product_id"), col("quantity")])
        .join(catalog, [col("product_id")], [col("product_id")], JoinArgs::new(JoinType::Inner))
        .filter(col(attribute).is_not_null().and(col(attribute).neq(lit(""))))
        .group_by([col("customer_id"), col(attribute)])
        .agg([col("quantity").sum().alias("units")]);
    let mut aggs = vec![col(attribute)
        .sort_by([col("units"), col(attribute)], SortMultipleOptions::default().with_order_descending_multi([true, false]))
        .first()
        .alias(alias)];
    if attribute == "product_type" {
        aggs.push(len().cast(DataType::Int64).alias("categories_bought"));
    }
    units.group_by([col("customer_id")]).agg(aggs)
}

fn refunds(inputs: &Inputs) -> LazyFrame {
    let owners = inputs.valid_orders().select([col("order_id"), col("customer_id")]);
    inputs
        .valid_refunds()
        .join(owners, [col("order_id")], [col("order_id")], JoinArgs::new(JoinType::Inner))
        .filter(col("customer_id").is_not_null())
        .group_by([col("customer_id")])
        .agg([col("order_id").n_unique().cast(DataType::Int64).alias("orders_refunded"), money_sum(col("subtotal")).alias("refunded_sum")])
}

/// Linked events of each customer in the last 90 days (a churn signal).
fn events(inputs: &Inputs) -> LazyFrame {
    inputs
        .events()
        .filter(col("customer_id").is_not_null().and(inputs.within("timestamp", 90)))
        .group_by([col("customer_id")])
        .agg([len().cast(DataType::Int64).alias("events_90d")])
}

/// RFM quintiles among the customers (in the catalog) with at least one valid
/// order: `1 + floor(5·(r − 1) / n)`, r the ascending rank with ties taking the
/// lowest rank.
fn rfm(inputs: &Inputs, orders: LazyFrame) -> LazyFrame {
    let t = inputs.as_of;
    let quintile = |x: Expr| {
        let r = x.rank(RankOptions { method: RankMethod::Min, descending: false }, None).cast(DataType::Int64);
        lit(1i64) + (lit(5i64) * (r - lit(1i64))).floor_div(len().cast(DataType::Int64))
    };
    inputs
        .main
        .customers
        .clone()
        .select([col("customer_id")])
        .join(orders, [col("customer_id")], [col("customer_id")], JoinArgs::new(JoinType::Inner))
        .select([
            col("customer_id"),
            quintile(lit(0i64) - days_since(t, "last_order")).alias("r_score"),
            quintile(col("orders_all")).alias("f_score"),
            quintile(col("spent_all").round(2, RoundMode::HalfAwayFromZero)).alias("m_score"),
        ])
}

/// user_features at `T`.
pub fn build(inputs: &Inputs) -> PolarsResult<LazyFrame> {
    Ok(table().project(base(inputs, &Reads::all())?, &inputs.shop_id, inputs.as_of))
}

/// The key and `outputs` of user_features at `T`, building only what they read.
pub fn build_only(inputs: &Inputs, outputs: &[&str]) -> PolarsResult<LazyFrame> {
    let table = table();
    Ok(table.project_only(base(inputs, &table.reads(outputs))?, inputs.as_of, outputs))
}
