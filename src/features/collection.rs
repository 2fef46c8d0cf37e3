//! collection_features — one row per collection (collections have no creation
//! time and are never left out); price statistics are null without members.

use super::aggregates::{product_sales, variant_stats};
use super::expr::{capped, count_if, days_since, is_active, is_event, money_sum, rate, zero, zero_f};
use super::registry::{feature, feature_at, FeatureTable, Kind::*, Reads};
use super::sessions::segment;
use super::{with, with_read, Inputs};
use crate::vocabulary::EventName::*;
use polars::prelude::*;

/// The registry entries of collection_features, in catalog order.
pub fn table() -> FeatureTable {
    let chars = |c: &str| col(c).str().len_chars().fill_null(lit(0u32)).cast(DataType::Int64);
    let points = |cond: Expr, p: i64| when(cond).then(lit(p)).otherwise(lit(0i64));
    let in_range = |x: Expr, lo: i64, hi: i64| x.clone().gt_eq(lit(lo)).and(x.lt_eq(lit(hi)));
    FeatureTable {
        name: "collection_features",
        key: &[("collection_id", I64)],
        own: &["title", "handle", "is_automated", "seo_score", "image_score", "days_since_update"],
        shop_wide: &["shop_revenue_30d"],
        features: vec![
            feature("title", Str, "copied from the collection", || col("title")),
            feature("handle", Str, "copied from the collection", || col("handle")),
            feature("is_automated", Bool, "smart collection", || col("is_automated").fill_null(lit(false))),
            feature("product_count", I64, "member products (in the catalog at T)", move || zero("members")),
            feature("active_product_count", I64, "members with is_active", move || zero("active_members")),
            feature("view_count_30d", I64, "`collection_viewed` events in 30d", move || zero("views_30d")),
            feature("unique_viewers_30d", I64, "distinct visitors among those", move || zero("viewers_30d")),
            feature("product_click_count_30d", I64, "views in 30d after which, in the same session and before the next `collection_viewed` or `search_submitted`, a member product was viewed", move || zero("clicks_30d")),
            feature("click_through_rate", F64, "product_click_count_30d / view_count_30d", || rate(col("product_click_count_30d"), col("view_count_30d"))),
            feature("bounce_rate", F64, "share of the views in 30d that are the last event of their session", || rate(col("bounces_30d").fill_null(lit(0)), col("view_count_30d"))),
            feature("avg_product_price", F64, "mean member price (null without members)", || col("avg_price")),
            feature("min_product_price", F64, "lowest member price", || col("min_member_price")),
            feature("max_product_price", F64, "highest member price", || col("max_member_price")),
            feature("price_range", F64, "max_product_price - min_product_price", || col("max_product_price") - col("min_product_price")),
            feature("price_variance", F64, "population variance of member prices", || col("var_price")),
            feature("vendor_count", I64, "distinct non-empty vendors among members", move || zero("vendors")),
            feature("product_type_count", I64, "distinct non-empty product types among members", move || zero("types")),
            feature("units_sold_30d", I64, "units of member products in valid orders in 30d", move || zero("units_30d")),
            feature("revenue_30d", F64, "line revenue of member products in valid orders in 30d", move || zero_f("revenue_30d_sum")),
            feature("total_revenue", F64, "line revenue of member products, all time", move || zero_f("revenue_all")),
            feature("revenue_share", F64, "100 · revenue_30d / shop revenue_30d (all line revenue, custom lines too)", || lit(100.0) * rate(col("revenue_30d"), col("shop_revenue_30d"))),
            feature("conversion_rate", F64, "distinct sessions that viewed the collection in 30d and completed (anywhere in the session) a checkout containing a member product / sessions that viewed it in 30d", || rate(col("converted_sessions").fill_null(lit(0)), col("viewing_sessions").fill_null(lit(0)))),
            feature("top_products", ListI64, "up to 5 member product ids by total_revenue (unsold last), ties by id", || {
                col("top_product_ids").fill_null(lit(Series::new_empty(PlSmallStr::EMPTY, &DataType::Int64)).implode(false))
            }),
            feature("top_vendors", ListStr, "up to 5 non-empty member vendors by all-time member revenue, ties alphabetical", || {
                col("top_vendor_names").fill_null(lit(Series::new_empty(PlSmallStr::EMPTY, &DataType::String)).implode(false))
            }),
            feature("seo_score", I64, "0..8: title 10..=60 chars +2 (else > 5 chars +1), plain description 50..=160 +2 (else > 20 +1), handle > 3 chars +1, SEO title +1, SEO description +1", move || {
                let title = chars("title");
                let description = chars("description");
                when(in_range(title.clone(), 10, 60)).then(lit(2i64)).when(title.gt(lit(5))).then(lit(1i64)).otherwise(lit(0i64))
                    + when(in_range(description.clone(), 50, 160)).then(lit(2i64)).when(description.gt(lit(20))).then(lit(1i64)).otherwise(lit(0i64))
                    + points(chars("handle").gt(lit(3)), 1)
                    + points(chars("seo_title").gt(lit(0)), 1)
                    + points(chars("seo_description").gt(lit(0)), 1)
            }),
            feature("image_score", I64, "3 for an image, +2 if it has alt text", move || points(chars("image_url").gt(lit(0)), 3) + points(chars("image_url").gt(lit(0)).and(chars("image_alt").gt(lit(0))), 2)),
            feature("performance_score", F64, "0.3·min(log10(views+1)/4, 1) + 0.25·min(ctr/0.05, 1) + 0.25·min(conversion/0.03, 1) + 0.1·min(revenue_share/10, 1) + 0.05·seo/8 + 0.05·image/5", || {
                let views = (col("view_count_30d").cast(DataType::Float64) + lit(1.0)).log(lit(10.0));
                lit(0.3) * capped(views / lit(4.0), 1.0)
                    + lit(0.25) * capped(col("click_through_rate") / lit(0.05), 1.0)
                    + lit(0.25) * capped(col("conversion_rate") / lit(0.03), 1.0)
                    + lit(0.1) * capped(col("revenue_share") / lit(10.0), 1.0)
                    + lit(0.05) * col("seo_score").cast(DataType::Float64) / lit(8.0)
                    + lit(0.05) * col("image_score").cast(DataType::Float64) / lit(5.0)
            }),
            feature_at("days_since_update", I64, "whole days since the collection's updated_at, clamped at 0", |t| {
                days_since(t, "updated_at").clip_min(lit(0i64))
            }),
        ],
    }
}

/// Member products with what collection features read of them.
fn members(inputs: &Inputs) -> LazyFrame {
    let m = &inputs.main;
    // The product table's own aggregates: a member's price and sales are the product's.
    let products = with(with(m.products.clone(), variant_stats(m.variants.clone()), "product_id"), product_sales(inputs), "product_id").select([
        col("product_id"),
        col("min_price").alias("price"),
        col("vendor"),
        col("product_type"),
        is_active(inputs.as_of).alias("active"),
        col("units_30d").fill_null(lit(0)),
        col("revenue_30d_sum").fill_null(lit(0.0)).alias("revenue_30d"),
        col("revenue_all").fill_null(lit(0.0)).alias("revenue"),
    ]);
    m.collection_products.clone().join(products, [col("product_id")], [col("product_id")], JoinArgs::new(JoinType::Inner))
}

/// (collection, product) of the member products in the catalog at `T`: the
/// members without their facts, for counting clicks and checkouts.
fn membership(inputs: &Inputs) -> LazyFrame {
    let products = inputs.main.products.clone().select([col("product_id")]);
    inputs.main.collection_products.clone().select([col("collection_id"), col("product_id")]).join(products, [col("product_id")], [col("product_id")], JoinArgs::new(JoinType::Semi))
}

fn non_empty(c: &str) -> Expr {
    col(c).filter(col(c).is_not_null().and(col(c).neq(lit(""))))
}

fn member_stats(members: LazyFrame) -> LazyFrame {
    members.group_by([col("collection_id")]).agg([
        len().cast(DataType::Int64).alias("members"),
        count_if(col("active")).alias("active_members"),
        // Exact sums: the same in every run.
        when(col("price").count().gt(lit(0))).then(money_sum(col("price")) / col("price").count().cast(DataType::Float64)).otherwise(lit(NULL)).alias("avg_price"),
        col("price").min().alias("min_member_price"),
        col("price").max().alias("max_member_price"),
        col("price").alias("prices"),
        non_empty("vendor").n_unique().cast(DataType::Int64).alias("vendors"),
        non_empty("product_type").n_unique().cast(DataType::Int64).alias("types"),
        col("units_30d").sum().alias("units_30d"),
        money_sum(col("revenue_30d")).alias("revenue_30d_sum"),
        money_sum(col("revenue")).alias("revenue_all"),
        col("product_id")
            .sort_by([col("revenue"), col("product_id")], SortMultipleOptions::default().with_order_descending_multi([true, false]))
            .head(Some(5))
            .alias("top_product_ids"),
    ])
    .map(price_variance, OptFlags::empty(), Some(Arc::new(price_variance_schema)), Some("price variance"))
}

fn price_variance_schema(input: &Schema) -> PolarsResult<SchemaRef> {
    let mut schema = input.clone();
    schema.shift_remove("prices");
    schema.insert("var_price".into(), DataType::Float64);
    Ok(Arc::new(schema))
}

/// `var_price` from each collection's `prices`: their population variance,
/// read in sorted order. A group-by's variance reads a group's rows in an
/// order that varies from run to run, and so did its last digits (a sort
/// before it is optimized away: the variance does not observe order).
fn price_variance(mut stats: DataFrame) -> PolarsResult<DataFrame> {
    let lists = stats.column("prices")?.list()?.clone();
    let variances: Vec<Option<f64>> = lists
        .amortized_iter()
        .map(|list| {
            let mut prices: Vec<f64> = list?.as_ref().f64().ok()?.iter().flatten().collect();
            if prices.is_empty() {
                return None;
            }
            prices.sort_unstable_by(f64::total_cmp);
            let n = prices.len() as f64;
            let mean = prices.iter().sum::<f64>() / n;
            Some(prices.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / n)
        })
        .collect();
    stats.drop_in_place("prices")?;
    stats.with_column(Column::new("var_price".into(), variances))?;
    Ok(stats)
}

fn top_vendors(members: LazyFrame) -> LazyFrame {
    members
        .filter(col("vendor").is_not_null().and(col("vendor").neq(lit(""))))
        .group_by([col("collection_id"), col("vendor")])
        .agg([money_sum(col("revenue")).alias("revenue")])
        .group_by([col("collection_id")])
        .agg([col("vendor")
            .sort_by([col("revenue"), col("vendor")], SortMultipleOptions::default().with_order_descending_multi([true, false]))
            .head(Some(5))
            .alias("top_vendor_names")])
}

/// Views, visitors, clicks, bounces and converting sessions in 30d per collection.
fn engagement(inputs: &Inputs) -> PolarsResult<LazyFrame> {
    let events = inputs.sessions.clone();
    let is = is_event;
    // Each collection view or search opens a segment of its session; a product
    // view belongs to the segment it falls in.
    let segmented = events.clone().with_column(segment(is(CollectionViewed).or(is(SearchSubmitted))).alias("segment"));
    let views = segmented.clone().filter(is(CollectionViewed).and(col("collection_id").is_not_null()).and(inputs.within("timestamp", 30)));
    let membership = membership(inputs);
    let clicked_views = segmented
        .filter(is(ProductViewed))
        .select([col("segment"), col("product_id")])
        .join(views.clone().select([col("segment"), col("_row"), col("collection_id")]), [col("segment")], [col("segment")], JoinArgs::new(JoinType::Inner))
        .join(membership.clone(), [col("collection_id"), col("product_id")], [col("collection_id"), col("product_id")], JoinArgs::new(JoinType::Semi))
        .select([col("_row")])
        .unique(None, UniqueKeepStrategy::Any)
        .with_column(lit(true).alias("clicked"));
    let checkout_products = events
        .filter(is(CheckoutCompleted))
        .select([col("session"), col("product_ids").alias("product_id")])
        .explode(cols(["product_id"]), ExplodeOptions { empty_as_null: false, keep_nulls: false })
        .join(membership, [col("product_id")], [col("product_id")], JoinArgs::new(JoinType::Inner))
        .select([col("session"), col("collection_id"), lit(true).alias("converted")])
        .unique(None, UniqueKeepStrategy::Any);
    Ok(views
        .join(clicked_views, [col("_row")], [col("_row")], JoinArgs::new(JoinType::Left))
        .join(checkout_products, [col("session"), col("collection_id")], [col("session"), col("collection_id")], JoinArgs::new(JoinType::Left))
        .group_by([col("collection_id")])
        .agg([
            len().cast(DataType::Int64).alias("views_30d"),
            col("visitor").n_unique().cast(DataType::Int64).alias("viewers_30d"),
            count_if(col("clicked").fill_null(lit(false))).alias("clicks_30d"),
            count_if(col("is_last_in_session")).alias("bounces_30d"),
            col("session").n_unique().cast(DataType::Int64).alias("viewing_sessions"),
            col("session").filter(col("converted").fill_null(lit(false))).n_unique().cast(DataType::Int64).alias("converted_sessions"),
        ]))
}

/// The base frame: every collection with the aggregates its features read (those
/// `reads` reads).
pub fn base(inputs: &Inputs, reads: &Reads) -> PolarsResult<LazyFrame> {
    let members = members(inputs);
    let shop_revenue = inputs
        .valid_lines()
        .filter(inputs.within("ordered_at", 30))
        .select([money_sum(col("revenue")).alias("shop_revenue_30d"), lit(1i32).alias("_one")]);
    let mut frame = inputs.main.collections.clone();
    for aggregates in [member_stats(members.clone()), top_vendors(members.clone()), engagement(inputs)?] {
        frame = with_read(frame, aggregates, &["collection_id"], reads)?;
    }
    with_read(frame.with_column(lit(1i32).alias("_one")), shop_revenue, &["_one"], reads)
}

/// collection_features at `T`.
pub fn build(inputs: &Inputs) -> PolarsResult<LazyFrame> {
    Ok(table().project(base(inputs, &Reads::all())?, &inputs.shop_id, inputs.as_of))
}

/// The key and `outputs` of collection_features at `T`, building only what they read.
pub fn build_only(inputs: &Inputs, outputs: &[&str]) -> PolarsResult<LazyFrame> {
    let table = table();
    Ok(table.project_only(base(inputs, &table.reads(outputs))?, inputs.as_of, outputs))
}
