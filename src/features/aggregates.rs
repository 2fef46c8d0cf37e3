//! Aggregates over the main tables that several feature tables read (products and
//! collections both summarize sales and variants per product).

use super::expr::money_sum;
use super::Inputs;
use polars::prelude::*;

/// Per product: sales in valid orders (30d, 7d, days 8..30, all time) and the
/// quantity-weighted unit-price sums.
pub fn product_sales(inputs: &Inputs) -> LazyFrame {
    let d30 = inputs.within("ordered_at", 30);
    let d7 = inputs.within("ordered_at", 7);
    let d8_30 = inputs.between_days("ordered_at", 7, 30);
    let priced = col("quantity").gt(lit(0));
    inputs.valid_lines().filter(col("product_id").is_not_null()).group_by([col("product_id")]).agg([
        col("order_id").filter(d30.clone()).n_unique().cast(DataType::Int64).alias("purchases_30d"),
        col("customer_id").filter(d30.clone()).drop_nulls().n_unique().cast(DataType::Int64).alias("purchasers_30d"),
        col("quantity").filter(d30.clone()).sum().alias("units_30d"),
        money_sum(col("revenue").filter(d30)).alias("revenue_30d_sum"),
        col("order_id").n_unique().cast(DataType::Int64).alias("purchases_all"),
        col("quantity").sum().alias("units_all"),
        money_sum(col("revenue")).alias("revenue_all"),
        col("ordered_at").min().alias("first_purchase"),
        col("ordered_at").max().alias("last_purchase"),
        col("order_id").filter(d7).n_unique().cast(DataType::Int64).alias("purchases_7d"),
        col("order_id").filter(d8_30).n_unique().cast(DataType::Int64).alias("purchases_8_30d"),
        // Per-unit selling price p = revenue / quantity, weighted by quantity:
        // Σq, Σq·p = Σrevenue, Σq·p² = Σrevenue²/q (in thousandths of the
        // currency squared, as money is summed: the same in any row order).
        col("quantity").filter(priced.clone()).sum().alias("priced_units"),
        money_sum(col("revenue").filter(priced.clone())).alias("priced_revenue"),
        money_sum((col("revenue") * col("revenue") / col("quantity").cast(DataType::Float64)).filter(priced)).alias("priced_q_p2"),
    ])
}

/// Per product: variant prices, inventory and count.
pub fn variant_stats(variants: LazyFrame) -> LazyFrame {
    variants.group_by([col("product_id")]).agg([
        col("price").min().alias("min_price"),
        col("price").max().alias("max_variant_price"),
        col("compare_at_price").max().alias("max_compare_at"),
        col("inventory_quantity").sum().alias("inventory"),
        len().cast(DataType::Int64).alias("variants"),
    ])
}

