//! product_features — one row per product in the catalog at `T` (also products
//! never sold or viewed); rates are never NaN.

use super::aggregates::{product_sales, variant_stats};
use super::expr::{capped, count_if, days_since, is_active, is_event, money_sum, price_tier, rate, zero};
use super::registry::{feature, feature_at, FeatureTable, Kind::*, Reads};
use super::{with_read, Inputs};
use crate::vocabulary::EventName::*;
use polars::prelude::*;

/// The registry entries of product_features, in catalog order.
pub fn table() -> FeatureTable {
    let text_len = |c: &str| col(c).str().len_chars().fill_null(lit(0u32)).cast(DataType::Int64);
    let present = |c: &str| col(c).str().len_chars().fill_null(lit(0u32)).gt(lit(0u32));
    let between = |x: Expr, lo: i64, hi: i64| x.clone().gt_eq(lit(lo)).and(x.lt_eq(lit(hi)));
    let flag = |cond: Expr, points: i64| when(cond).then(lit(points)).otherwise(lit(0i64));
    let momentum = |views: &str, carts: &str, purchases: &str, days: f64| {
        (col(views).fill_null(lit(0)) + lit(3) * col(carts).fill_null(lit(0)) + lit(5) * col(purchases).fill_null(lit(0))).cast(DataType::Float64) / lit(days)
    };
    FeatureTable {
        name: "product_features",
        key: &[("product_id", I64)],
        own: &["title", "handle", "vendor", "product_type", "status", "price", "max_price", "compare_at_price", "total_inventory", "variant_count", "image_count", "media_count", "option_count", "tag_count", "collection_count", "has_video_content", "has_3d_content", "media_richness", "description_length", "seo_title_length", "seo_description_length", "seo_optimization", "content_richness_score", "product_age_days", "days_since_update", "is_active", "published_at", "collection_handles"],
        shop_wide: &[],
        features: vec![
            feature("title", Str, "copied from the product", || col("title")),
            feature("handle", Str, "copied from the product", || col("handle")),
            feature("vendor", Str, "copied from the product", || col("vendor")),
            feature("product_type", Str, "copied from the product", || col("product_type")),
            feature("status", Str, "copied from the product (ACTIVE, DRAFT, ARCHIVED)", || col("status")),
            feature("view_count_30d", I64, "`product_viewed` events of the product in 30d", move || zero("views_30d")),
            feature("unique_viewers_30d", I64, "distinct visitors among those", move || zero("viewers_30d")),
            feature("cart_add_count_30d", I64, "`product_added_to_cart` events of the product in 30d", move || zero("cart_adds_30d")),
            feature("cart_remove_count_30d", I64, "`product_removed_from_cart` events in 30d", move || zero("cart_removes_30d")),
            feature("cart_view_count_30d", I64, "`cart_viewed` events in 30d whose cart contains the product (once per event)", move || zero("cart_views_30d")),
            feature("purchase_count_30d", I64, "valid orders created in 30d that contain the product", move || zero("purchases_30d")),
            feature("unique_purchasers_30d", I64, "distinct customers among those orders (guest orders excluded)", move || zero("purchasers_30d")),
            feature("units_sold_30d", I64, "sum of line quantity in those orders", move || zero("units_30d")),
            feature("revenue_30d", F64, "sum of line revenue in those orders", move || col("revenue_30d_sum").fill_null(lit(0.0))),
            feature("view_to_cart_rate", F64, "cart_add_count_30d / view_count_30d", || rate(col("cart_add_count_30d"), col("view_count_30d"))),
            feature("cart_to_purchase_rate", F64, "purchase_count_30d / cart_add_count_30d", || rate(col("purchase_count_30d"), col("cart_add_count_30d"))),
            feature("conversion_rate", F64, "purchase_count_30d / view_count_30d", || rate(col("purchase_count_30d"), col("view_count_30d"))),
            feature("cart_abandonment_rate", F64, "max(0, cart_add_count_30d - purchase_count_30d) / cart_add_count_30d", || {
                rate((col("cart_add_count_30d") - col("purchase_count_30d")).clip_min(lit(0i64)), col("cart_add_count_30d"))
            }),
            feature("cart_modification_rate", F64, "cart_remove_count_30d / cart_add_count_30d", || rate(col("cart_remove_count_30d"), col("cart_add_count_30d"))),
            feature("cart_view_to_purchase_rate", F64, "purchase_count_30d / cart_view_count_30d", || rate(col("purchase_count_30d"), col("cart_view_count_30d"))),
            feature("total_purchases", I64, "valid orders containing the product, all time", move || zero("purchases_all")),
            feature("total_units_sold", I64, "units in those", move || zero("units_all")),
            feature("total_revenue", F64, "line revenue in those", move || col("revenue_all").fill_null(lit(0.0))),
            feature("last_viewed_at", Ts, "latest `product_viewed` of the product", || col("last_viewed")),
            feature("first_purchased_at", Ts, "first valid order containing it", || col("first_purchase")),
            feature("last_purchased_at", Ts, "latest valid order containing it", || col("last_purchase")),
            feature_at("days_since_first_purchase", I64, "whole days since first_purchased_at", |t| days_since(t, "first_purchased_at")),
            feature_at("days_since_last_purchase", I64, "whole days since last_purchased_at", |t| days_since(t, "last_purchased_at")),
            feature("price", F64, "lowest variant price", || col("min_price")),
            feature("max_price", F64, "highest variant price", || col("max_variant_price")),
            feature("compare_at_price", F64, "highest variant compare-at price (null if none)", || col("max_compare_at")),
            feature("discount_pct", F64, "1 - price / compare_at_price when compare_at_price > price, else 0", || {
                when(col("compare_at_price").gt(col("price"))).then(lit(1.0) - col("price") / col("compare_at_price")).otherwise(lit(0.0))
            }),
            feature("avg_selling_price", F64, "quantity-weighted mean of line revenue / quantity over all valid lines; price when never sold", || {
                when(col("priced_units").fill_null(lit(0)).gt(lit(0))).then(col("priced_revenue") / col("priced_units").cast(DataType::Float64)).otherwise(col("price"))
            }),
            feature("price_variance", F64, "quantity-weighted population variance of the per-unit selling price over valid lines; 0 when fewer than 2 units", || {
                let units = col("priced_units").cast(DataType::Float64);
                let mean = col("priced_revenue") / units.clone();
                let variance = (col("priced_q_p2") / units - mean.clone() * mean).clip_min(lit(0.0));
                when(col("priced_units").fill_null(lit(0)).gt_eq(lit(2))).then(variance).otherwise(lit(0.0))
            }),
            feature("price_tier", Str, "by price: < 25 budget, < 75 mid, < 200 premium, else luxury (null without variants)", || price_tier(col("price"))),
            feature("total_inventory", I64, "sum of variant inventory quantities", move || zero("inventory")),
            feature("inventory_turnover", F64, "units_sold_30d / total_inventory (0 when inventory <= 0)", || {
                when(col("total_inventory").gt(lit(0))).then(rate(col("units_sold_30d"), col("total_inventory"))).otherwise(lit(0.0))
            }),
            feature("stock_velocity", F64, "units_sold_30d / 30 (units per day)", || col("units_sold_30d").cast(DataType::Float64) / lit(30.0)),
            feature("days_of_stock", F64, "max(total_inventory, 0) / stock_velocity; null when velocity is 0", || {
                when(col("stock_velocity").gt(lit(0.0)))
                    .then(col("total_inventory").clip_min(lit(0i64)).cast(DataType::Float64) / col("stock_velocity"))
                    .otherwise(lit(NULL).cast(DataType::Float64))
            }),
            feature("variant_count", I64, "variants of the product", move || zero("variants")),
            feature("image_count", I64, "media of type IMAGE", move || zero("images")),
            feature("media_count", I64, "media of any type", move || zero("media")),
            feature("option_count", I64, "option entries (Shopify's default `Title` too)", move || zero("option_count")),
            feature("tag_count", I64, "tags on the product", || col("tags").list().len().fill_null(lit(0u32)).cast(DataType::Int64)),
            feature("collection_count", I64, "collections listing the product", move || zero("collections")),
            feature("has_video_content", Bool, "any media of type VIDEO or EXTERNAL_VIDEO", || col("videos").fill_null(lit(0)).gt(lit(0))),
            feature("has_3d_content", Bool, "any media of type MODEL_3D", || col("models").fill_null(lit(0)).gt(lit(0))),
            feature("variant_complexity", F64, "min(variant_count / 10, 1)", || capped(col("variant_count").cast(DataType::Float64) / lit(10.0), 1.0)),
            feature("image_richness", F64, "min(image_count / 5, 1)", || capped(col("image_count").cast(DataType::Float64) / lit(5.0), 1.0)),
            feature("tag_diversity", F64, "min(tag_count / 10, 1)", || capped(col("tag_count").cast(DataType::Float64) / lit(10.0), 1.0)),
            feature("media_richness", F64, "min(100, 30·videos + 40·models + 10·images)", move || {
                capped(lit(30) * zero("videos") + lit(40) * zero("models") + lit(10) * col("image_count"), 100.0)
            }),
            feature("description_length", I64, "characters (code points) of the plain-text description", move || text_len("description")),
            feature("seo_title_length", I64, "characters of the SEO title (0 when absent)", move || text_len("seo_title")),
            feature("seo_description_length", I64, "characters of the SEO description (0 when absent)", move || text_len("seo_description")),
            feature("seo_optimization", I64, "30 if the SEO title is present + 30 if the SEO description is + 20 if the meta title (SEO title, else title) has 30..=60 chars + 20 if the meta description (SEO description, else plain description) has 120..=160 chars", move || {
                let meta_title = when(present("seo_title")).then(col("seo_title")).otherwise(col("title")).str().len_chars().fill_null(lit(0u32)).cast(DataType::Int64);
                let meta_description = when(present("seo_description")).then(col("seo_description")).otherwise(col("description")).str().len_chars().fill_null(lit(0u32)).cast(DataType::Int64);
                flag(present("seo_title"), 30) + flag(present("seo_description"), 30) + flag(between(meta_title, 30, 60), 20) + flag(between(meta_description, 120, 160), 20)
            }),
            feature("content_richness_score", F64, "min(description_length/10, 50) + min(html_length/20, 30) + 20 if description_length >= 100 and html_length >= 200; max 100", move || {
                let d = col("description_length");
                let html = text_len("description_html");
                let bonus = when(d.clone().gt_eq(lit(100)).and(html.clone().gt_eq(lit(200)))).then(lit(20.0)).otherwise(lit(0.0));
                capped(capped(d.cast(DataType::Float64) / lit(10.0), 50.0) + capped(html.cast(DataType::Float64) / lit(20.0), 30.0) + bonus, 100.0)
            }),
            feature("popularity_score", F64, "0.3·min(view_count_30d/100, 1) + 0.7·min(purchase_count_30d/10, 1)", || {
                lit(0.3) * capped(col("view_count_30d").cast(DataType::Float64) / lit(100.0), 1.0)
                    + lit(0.7) * capped(col("purchase_count_30d").cast(DataType::Float64) / lit(10.0), 1.0)
            }),
            feature("trending_score", F64, "momentum in [0, 1]: a7 = (views + 3·carts + 5·purchases in the last 7d) / 7, a23 = (same, days 8..30) / 23; min(a7 / max(a23, 1/23), 2) / 2; 0 when a7 = 0", move || {
                let a7 = momentum("views_7d", "cart_adds_7d", "purchases_7d", 7.0);
                let a23 = momentum("views_8_30d", "cart_adds_8_30d", "purchases_8_30d", 23.0);
                when(a7.clone().eq(lit(0.0))).then(lit(0.0)).otherwise(capped(a7 / a23.clip_min(lit(1.0 / 23.0)), 2.0) / lit(2.0))
            }),
            feature("refunded_units", I64, "units refunded (by T) on valid orders", move || zero("refund_units")),
            feature("refund_rate", F64, "refunded_units / total_units_sold", || rate(col("refunded_units"), col("total_units_sold"))),
            feature("total_refunded_amount", F64, "refund line subtotals for the product", || col("refund_amount").fill_null(lit(0.0))),
            feature("net_revenue", F64, "total_revenue - total_refunded_amount", || col("total_revenue") - col("total_refunded_amount")),
            feature("refund_risk_score", I64, "by refund_rate: > 0.5 90, > 0.25 70, > 0.1 50, > 0.05 30, > 0 10, else 0", || {
                let r = col("refund_rate");
                when(r.clone().gt(lit(0.5))).then(lit(90i64))
                    .when(r.clone().gt(lit(0.25))).then(lit(70i64))
                    .when(r.clone().gt(lit(0.1))).then(lit(50i64))
                    .when(r.clone().gt(lit(0.05))).then(lit(30i64))
                    .when(r.gt(lit(0.0))).then(lit(10i64))
                    .otherwise(lit(0i64))
            }),
            feature_at("product_age_days", I64, "whole days since created_at", |t| days_since(t, "created_at")),
            feature_at("days_since_update", I64, "whole days since updated_at, clamped at 0", |t| days_since(t, "updated_at").clip_min(lit(0i64))),
            feature_at("is_active", Bool, "status = ACTIVE and published_at <= T", is_active),
            // Beyond the catalog: what the Gorse export needs for an item.
            feature("published_at", Ts, "copied from the product (null when unpublished); the Gorse item timestamp", || col("published_at")),
            feature("collection_handles", ListStr, "handles of the collections listing the product, sorted; the Gorse item categories", || {
                col("handles").fill_null(lit(Series::new_empty(PlSmallStr::EMPTY, &DataType::String)).implode(false))
            }),
        ],
    }
}

/// The base frame: every product at `T` with the aggregates its features read
/// (those `reads` reads).
pub fn base(inputs: &Inputs, reads: &Reads) -> PolarsResult<LazyFrame> {
    let m = &inputs.main;
    let mut frame = m.products.clone();
    for aggregates in [event_counts(inputs), cart_views(inputs), product_sales(inputs), variant_stats(m.variants.clone()), media(m.product_media.clone()), memberships(m.collection_products.clone(), m.collections.clone()), refunds(inputs)] {
        frame = with_read(frame, aggregates, &["product_id"], reads)?;
    }
    Ok(frame)
}

fn event_counts(inputs: &Inputs) -> LazyFrame {
    let is = is_event;
    let d30 = inputs.within("timestamp", 30);
    let d7 = inputs.within("timestamp", 7);
    let d8_30 = inputs.between_days("timestamp", 7, 30);
    inputs.events().filter(col("product_id").is_not_null()).group_by([col("product_id")]).agg([
        count_if(is(ProductViewed).and(d30.clone())).alias("views_30d"),
        col("visitor").filter(is(ProductViewed).and(d30.clone())).n_unique().cast(DataType::Int64).alias("viewers_30d"),
        count_if(is(ProductAddedToCart).and(d30.clone())).alias("cart_adds_30d"),
        count_if(is(ProductRemovedFromCart).and(d30)).alias("cart_removes_30d"),
        col("timestamp").filter(is(ProductViewed)).max().alias("last_viewed"),
        count_if(is(ProductViewed).and(d7.clone())).alias("views_7d"),
        count_if(is(ProductAddedToCart).and(d7)).alias("cart_adds_7d"),
        count_if(is(ProductViewed).and(d8_30.clone())).alias("views_8_30d"),
        count_if(is(ProductAddedToCart).and(d8_30)).alias("cart_adds_8_30d"),
    ])
}

/// Cart views in 30d per product in the cart, once per event whatever its lines.
fn cart_views(inputs: &Inputs) -> LazyFrame {
    inputs
        .events()
        .filter(is_event(CartViewed).and(inputs.within("timestamp", 30)))
        .select([col("_row"), col("product_ids").alias("product_id")])
        .explode(cols(["product_id"]), ExplodeOptions { empty_as_null: false, keep_nulls: false })
        .filter(col("product_id").is_not_null())
        .unique(None, UniqueKeepStrategy::Any)
        .group_by([col("product_id")])
        .agg([len().cast(DataType::Int64).alias("cart_views_30d")])
}

fn media(media: LazyFrame) -> LazyFrame {
    let is = |t: &str| col("media_type").eq(lit(t.to_string()));
    media.group_by([col("product_id")]).agg([
        count_if(is("IMAGE")).alias("images"),
        len().cast(DataType::Int64).alias("media"),
        count_if(is("VIDEO").or(is("EXTERNAL_VIDEO"))).alias("videos"),
        count_if(is("MODEL_3D")).alias("models"),
    ])
}

fn memberships(memberships: LazyFrame, collections: LazyFrame) -> LazyFrame {
    let handles = collections.select([col("collection_id"), col("handle").alias("collection_handle")]);
    memberships
        .join(handles, [col("collection_id")], [col("collection_id")], JoinArgs::new(JoinType::Left))
        .group_by([col("product_id")])
        .agg([len().cast(DataType::Int64).alias("collections"), col("collection_handle").drop_nulls().sort(SortOptions::default()).alias("handles")])
}

fn refunds(inputs: &Inputs) -> LazyFrame {
    inputs.valid_refunds().filter(col("product_id").is_not_null()).group_by([col("product_id")]).agg([
        col("quantity").sum().alias("refund_units"),
        money_sum(col("subtotal")).alias("refund_amount"),
    ])
}

/// product_features at `T`.
pub fn build(inputs: &Inputs) -> PolarsResult<LazyFrame> {
    Ok(table().project(base(inputs, &Reads::all())?, &inputs.shop_id, inputs.as_of))
}

/// The key and `outputs` of product_features at `T`, building only what they read.
pub fn build_only(inputs: &Inputs, outputs: &[&str]) -> PolarsResult<LazyFrame> {
    let table = table();
    Ok(table.project_only(base(inputs, &table.reads(outputs))?, inputs.as_of, outputs))
}
