//! REST payloads (webhook deliveries, REST list exports) → raw rows: one payload
//! per file named after its topic (`orders_updated-1.json`), or a REST list
//! (`{"orders": [...]}`) holding one payload per item.

use super::fields::{FieldError, FieldResult, Fields};
use super::raw::{self, Origin, RawBuffers};
use super::shopify::{self, Shape};
use super::{tag, Landed};
use crate::vocabulary::RawEntity;
use serde_json::Value;
use std::path::Path;

/// `orders_create-1.json` → `orders/create`; `products_delete.json` →
/// `products/delete`; an inbox's `<arrival>.orders+partially_fulfilled.<id>.json`
/// → `orders/partially_fulfilled` (its leading arrival stamp skipped; the `+`
/// keeps both halves whole).
pub fn topic_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let name = name.split('.').find(|part| !part.bytes().all(|b| b.is_ascii_digit()))?;
    let stem = name.split('-').next()?;
    // The inbox's exact form first; a person's `orders_create` names split at
    // the last underscore.
    let (resource, action) = stem.split_once('+').or_else(|| stem.rsplit_once('_'))?;
    Some(format!("{resource}/{action}"))
}

/// Whether deliveries of `topic` hold records the landing reads.
pub fn lands_topic(topic: &str) -> bool {
    let (resource, action) = topic.split_once('/').unwrap_or((topic, ""));
    let resource_known = matches!(resource, "orders" | "products" | "customers" | "refunds" | "collections" | "custom_collections" | "smart_collections" | "collects");
    resource_known && !action.is_empty()
}

/// Lands one REST payload of `topic` into the raw tables.
pub(super) fn land_payload(topic: &str, value: &Value, origin: &Origin, record: String, buf: &mut RawBuffers) -> Landed {
    let (resource, action) = topic.split_once('/').unwrap_or((topic, "update"));
    let entity = match resource {
        "orders" => RawEntity::Orders,
        "products" => RawEntity::Products,
        "customers" => RawEntity::Customers,
        "refunds" => RawEntity::RefundLineItems,
        "collections" | "custom_collections" | "smart_collections" => RawEntity::Collections,
        "collects" => RawEntity::CollectionProducts,
        _ => return Err((None, FieldError { field: "topic".into(), problem: format!("unsupported webhook topic {topic:?}") })),
    };
    let f = Fields::of(value, "payload").map_err(tag(entity))?;
    if action == "delete" {
        return land_deletion(entity, f, origin, record, buf).map_err(tag(entity));
    }
    let line = origin.line;
    match entity {
        RawEntity::Products => {
            let product = shopify::product(f, Shape::Rest).map_err(tag(entity))?;
            let id = product.product_id.unwrap_or_default();
            let variants = f.array("variants").map_err(tag(entity))?.iter()
                .map(|v| Fields::of(v, "variants[]").and_then(|v| shopify::variant(v, Shape::Rest, id, Some(line))))
                .collect::<FieldResult<Vec<_>>>().map_err(tag(entity))?;
            let images = f.array("images").map_err(tag(entity))?.iter()
                .map(|v| Fields::of(v, "images[]").and_then(|v| shopify::media(v, None, id, Some(line))))
                .collect::<FieldResult<Vec<_>>>().map_err(tag(entity))?;
            for v in variants {
                buf.variants.push(origin, String::new(), v);
            }
            for m in images {
                buf.media.push(origin, String::new(), m);
            }
            buf.products.push(origin, record, product);
        }
        RawEntity::Orders => {
            let order = shopify::order(f, Shape::Rest).map_err(tag(entity))?;
            let id = order.order_id.unwrap_or_default();
            let lines = f.array("line_items").map_err(tag(entity))?.iter()
                .map(|v| Fields::of(v, "line_items[]").and_then(|v| shopify::line_item(v, Shape::Rest, id, Some(line))))
                .collect::<FieldResult<Vec<_>>>().map_err(tag(entity))?;
            let refunds = refunds_of(f, Shape::Rest, id).map_err(tag(entity))?;
            lines.into_iter().for_each(|l| buf.line_items.push(origin, String::new(), l));
            refunds.into_iter().for_each(|r| buf.refund_lines.push(origin, String::new(), r));
            buf.orders.push(origin, record, order);
        }
        RawEntity::RefundLineItems => {
            let order_id = f.required_id("order_id").map_err(tag(entity))?;
            let rows = shopify::refund_lines(f, Shape::Rest, order_id).map_err(tag(entity))?;
            rows.into_iter().for_each(|r| buf.refund_lines.push(origin, record.clone(), r));
        }
        RawEntity::Customers => buf.customers.push(origin, record, shopify::customer(f, Shape::Rest).map_err(tag(entity))?),
        RawEntity::Collections => {
            let row = shopify::collection(f, Shape::Rest, resource == "smart_collections").map_err(tag(entity))?;
            buf.collections.push(origin, record, row);
        }
        _ => {
            let row = raw::MembershipRow {
                collection_id: Some(f.required_id("collection_id").map_err(tag(entity))?),
                product_id: Some(f.required_id("product_id").map_err(tag(entity))?),
            };
            buf.memberships.push(origin, record, row);
        }
    }
    Ok(())
}

pub(super) fn refunds_of(f: Fields, shape: Shape, order_id: i64) -> FieldResult<Vec<raw::RefundLineRow>> {
    let mut rows = Vec::new();
    for refund in f.array("refunds")? {
        rows.extend(shopify::refund_lines(Fields::of(refund, "refunds[]")?, shape, order_id)?);
    }
    Ok(rows)
}

fn land_deletion(entity: RawEntity, f: Fields, origin: &Origin, record: String, buf: &mut RawBuffers) -> FieldResult<()> {
    let id = Some(f.required_id("id")?);
    let deleted = Some(true);
    match entity {
        RawEntity::Products => buf.products.push(origin, record, raw::ProductRow { product_id: id, deleted, ..Default::default() }),
        RawEntity::Customers => buf.customers.push(origin, record, raw::CustomerRow { customer_id: id, deleted, ..Default::default() }),
        RawEntity::Orders => buf.orders.push(origin, record, raw::OrderRow { order_id: id, deleted, ..Default::default() }),
        RawEntity::Collections => buf.collections.push(origin, record, raw::CollectionRow { collection_id: id, deleted, ..Default::default() }),
        _ => return Err(FieldError { field: "topic".into(), problem: format!("{entity} cannot be deleted") }),
    }
    Ok(())
}

