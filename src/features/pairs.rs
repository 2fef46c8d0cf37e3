//! product_pair_features — one row per pair of distinct products bought in the same
//! valid order (a < b), counted once per order, bounded by [`PairOptions`].

use super::expr::rate;
use super::registry::{feature, FeatureTable, Kind::*, Reads};
use super::{with_read, Inputs};
use polars::prelude::*;

/// Bounds on the co-occurrence tables: the pair table, so a large catalog does
/// not explode, and the shape of the product embeddings made from the same data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairOptions {
    /// Pairs bought together in fewer orders are dropped.
    pub min_co_purchases: u32,
    /// Each product keeps at most this many partners: the pairs with the highest
    /// lift (ties: higher count, then lower partner id). A pair stays only when it is
    /// within the bound for both of its products, so no product exceeds it.
    pub max_pairs_per_product: Option<u32>,
    /// product_embeddings' dimension and minimum support.
    pub embeddings: super::embeddings::EmbeddingOptions,
}

impl Default for PairOptions {
    fn default() -> Self {
        PairOptions { min_co_purchases: 1, max_pairs_per_product: None, embeddings: Default::default() }
    }
}

/// The registry entries of product_pair_features, in catalog order.
pub fn table() -> FeatureTable {
    let orders_f = |c: &str| col(c).cast(DataType::Float64);
    FeatureTable {
        name: "product_pair_features",
        key: &[("product_id_a", I64), ("product_id_b", I64)],
        own: &[],
        shop_wide: &["shop_orders"],
        features: vec![
            feature("co_purchase_count", I64, "valid orders containing both", || col("co")),
            feature("co_view_count", I64, "sessions (up to T) that viewed both", || col("co_views").fill_null(lit(0))),
            feature("co_cart_count", I64, "sessions (up to T) that added both to cart", || col("co_carts").fill_null(lit(0))),
            feature("support", F64, "co_purchase_count / valid orders in the shop (custom-line-only orders too)", || rate(col("co_purchase_count"), col("shop_orders"))),
            feature("confidence_a_to_b", F64, "co_purchase_count / orders containing a", || rate(col("co_purchase_count"), col("orders_a"))),
            feature("confidence_b_to_a", F64, "co_purchase_count / orders containing b", || rate(col("co_purchase_count"), col("orders_b"))),
            feature("lift", F64, "support / (support(a) · support(b))", move || {
                rate(orders_f("co_purchase_count") * orders_f("shop_orders"), orders_f("orders_a") * orders_f("orders_b"))
            }),
            feature("first_co_purchase_at", Ts, "first valid order containing both", || col("first_co")),
            feature("last_co_purchase_at", Ts, "latest valid order containing both", || col("last_co")),
        ],
    }
}

/// (a, b) with a < b for every two distinct products of one group (order or session).
fn pairs_within(items: LazyFrame, group: &str) -> LazyFrame {
    let a = items.clone().select([col(group), col("product_id").alias("product_id_a")]);
    let b = items.select([col(group), col("product_id").alias("product_id_b")]);
    a.join(b, [col(group)], [col(group)], JoinArgs::new(JoinType::Inner)).filter(col("product_id_a").lt(col("product_id_b")))
}

/// Sessions up to `T` that did what `times` records with both products of a
/// pair ([`super::sessions::BrowseTimes`]; pairs with none are left out).
fn co_sessions(inputs: &Inputs, times: LazyFrame, alias: &str) -> LazyFrame {
    times
        .filter(col("at").lt_eq(lit(inputs.as_of)))
        .group_by([col("_pair")])
        .agg([col("product_id_a").first(), col("product_id_b").first(), len().cast(DataType::Int64).alias(alias)])
        .drop(cols(["_pair"]))
}

/// The base frame: candidate pairs with their counts (those `reads` reads).
pub fn base(inputs: &Inputs, options: PairOptions, reads: &Reads) -> PolarsResult<LazyFrame> {
    let key = ["product_id_a", "product_id_b"];
    let candidates = co_purchases(inputs, options)?.cache();
    let times = inputs.browse_times();
    let views = co_sessions(inputs, times.viewed_together, "co_views");
    let carts = co_sessions(inputs, times.carted_together, "co_carts");
    with_read(with_read(candidates, views, &key, reads)?, carts, &key, reads)
}

/// The candidate pairs: products bought together (`co` orders, first and last),
/// with each product's orders and the shop's, within the bounds.
pub fn co_purchases(inputs: &Inputs, options: PairOptions) -> PolarsResult<LazyFrame> {
    // Products deleted from the catalog pair with nothing; the other pairs of
    // their orders keep their counts.
    let lines = inputs.valid_lines().filter(col("product_id").is_not_null()).select([col("order_id"), col("product_id"), col("ordered_at")]);
    let baskets = inputs.without_deleted_products(lines, "product_id").unique(Some(cols(["order_id", "product_id"])), UniqueKeepStrategy::Any);
    let shop_orders = inputs.valid_orders().select([len().cast(DataType::Int64).alias("shop_orders"), lit(1i32).alias("_one")]);
    let per_product = baskets.clone().group_by([col("product_id")]).agg([len().cast(DataType::Int64).alias("orders")]);
    let times = baskets.clone().select([col("order_id"), col("ordered_at")]).unique(None, UniqueKeepStrategy::Any);
    let key = || [col("product_id_a"), col("product_id_b")];
    let mut candidates = pairs_within(baskets, "order_id")
        .join(times, [col("order_id")], [col("order_id")], JoinArgs::new(JoinType::Inner))
        .group_by(key())
        .agg([len().cast(DataType::Int64).alias("co"), col("ordered_at").min().alias("first_co"), col("ordered_at").max().alias("last_co")])
        .filter(col("co").gt_eq(lit(i64::from(options.min_co_purchases))))
        .join(per_product.clone().select([col("product_id").alias("product_id_a"), col("orders").alias("orders_a")]), [col("product_id_a")], [col("product_id_a")], JoinArgs::new(JoinType::Inner))
        .join(per_product.select([col("product_id").alias("product_id_b"), col("orders").alias("orders_b")]), [col("product_id_b")], [col("product_id_b")], JoinArgs::new(JoinType::Inner))
        .with_column(lit(1i32).alias("_one"))
        .join(shop_orders, [col("_one")], [col("_one")], JoinArgs::new(JoinType::Inner));
    if let Some(k) = options.max_pairs_per_product {
        candidates = bounded(candidates, k)?;
    }
    Ok(candidates)
}

/// Keeps, for every product, its `k` best partners by lift (ties: count, then the
/// partner's id); a pair stays when both of its products keep it.
fn bounded(candidates: LazyFrame, k: u32) -> PolarsResult<LazyFrame> {
    let lift = (col("co").cast(DataType::Float64) * col("shop_orders").cast(DataType::Float64))
        / (col("orders_a").cast(DataType::Float64) * col("orders_b").cast(DataType::Float64));
    let ranked = candidates.clone().with_column(lift.alias("_lift"));
    let side = |product: &str, partner: &str| {
        ranked.clone().select([col(product).alias("_product"), col(partner).alias("_partner"), col("product_id_a"), col("product_id_b"), col("_lift"), col("co")])
    };
    // Each pair once from each of its products: the place among that product's partners.
    let place = col("_partner").cum_count(false).over([col("_product")])?;
    let key = || [col("product_id_a"), col("product_id_b")];
    let kept = concat([side("product_id_a", "product_id_b"), side("product_id_b", "product_id_a")], UnionArgs::default())?
        .sort_by_exprs(
            [col("_product"), col("_lift"), col("co"), col("_partner")],
            SortMultipleOptions::default().with_order_descending_multi([false, true, true, false]).with_maintain_order(true),
        )
        .filter(place.lt_eq(lit(i64::from(k))))
        .group_by(key())
        .agg([len().alias("_sides")])
        .filter(col("_sides").eq(lit(2)));
    Ok(candidates.join(kept, key(), key(), JoinArgs::new(JoinType::Semi)))
}

/// product_pair_features at `T`, within the bounds of `inputs.pairs`.
pub fn build(inputs: &Inputs) -> PolarsResult<LazyFrame> {
    Ok(table().project(base(inputs, inputs.pairs, &Reads::all())?, &inputs.shop_id, inputs.as_of))
}

/// The key and `outputs` of product_pair_features at `T`, building only what they read.
pub fn build_only(inputs: &Inputs, outputs: &[&str]) -> PolarsResult<LazyFrame> {
    let table = table();
    Ok(table.project_only(base(inputs, inputs.pairs, &table.reads(outputs))?, inputs.as_of, outputs))
}
