//! orders (latest version; whether one counts at `as_of` comes from its
//! `created_at`, `cancelled_at` and `test`), line_items (of that version) and
//! refund_line_items (every refund by id, from its latest occurrence).

use super::*;

pub fn orders(raw: &RawTables) -> Result<(LazyFrame, LazyFrame, LazyFrame)> {
    let versions = live_versions(raw.scan(RawEntity::Orders)?, "order_id");
    let chosen = version_as_of(versions.clone(), "order_id", None).cache();
    let line_items = children_of(raw.scan(RawEntity::LineItems)?, versions, chosen.clone(), "order_id", "line_item_id").select([
        col("line_item_id"), col("order_id"), col("product_id"), col("variant_id"), col("title"),
        col("sku"), col("vendor"), col("quantity"), col("unit_price"), col("discount"),
    ]).cache();
    let orders = chosen.select([
        col("order_id"), col("name"), col("customer_id"), col("created_at"), col("processed_at"),
        col("updated_at"), col("cancelled_at"), col("cancel_reason"), col("test"),
        col("financial_status"), col("fulfillment_status"), col("currency"), col("source_name"),
        col("tags"), col("discount_codes"), col("total_price"), col("subtotal_price"),
        col("total_discounts"), col("total_tax"), col("total_shipping"), col("total_refunded"),
        col("country_code"), col("province_code"),
    ]).cache();
    let refund_lines = refunds(raw.scan(RawEntity::RefundLineItems)?)
        .join(orders.clone().select([col("order_id")]), [col("order_id")], [col("order_id")], JoinArgs::new(JoinType::Semi))
        .join(
            line_items.clone().select([col("line_item_id"), col("product_id")]),
            [col("line_item_id")],
            [col("line_item_id")],
            JoinArgs::new(JoinType::Left),
        )
        .select([
            col("refund_id"), col("order_id"), col("refund_created_at").alias("created_at"),
            col("line_item_id"), col("product_id"), col("quantity"), col("subtotal"),
        ]);
    Ok((orders, line_items, refund_lines))
}

/// Each refund's lines from its latest occurrence (an order version or a
/// `refunds/create` payload carries the whole refund).
fn refunds(occurrences: LazyFrame) -> LazyFrame {
    let occurrences = occurrences.cache();
    let mut keys = vec![col("refund_id")];
    keys.extend(source_order());
    let n = keys.len();
    let latest = occurrences
        .clone()
        .select([col("refund_id"), col("snapshot"), col("source_rank"), col("file"), col("line")])
        .sort_by_exprs(keys, ascending(n))
        .unique_stable_generic(Some(vec![col("refund_id")]), UniqueKeepStrategy::Last);
    let on = || [col("refund_id"), col("snapshot"), col("file"), col("line")];
    occurrences
        .join(latest, on(), on(), JoinArgs::new(JoinType::Semi))
        .unique_stable_generic(Some(vec![col("refund_id"), col("line_item_id")]), UniqueKeepStrategy::First)
}
