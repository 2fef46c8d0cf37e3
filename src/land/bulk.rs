//! Bulk-operation JSONL → raw rows: root lines (products, collections, customers,
//! orders) and the child lines that name their parent with `__parentId`.

use super::fields::{self, gid_type, missing, FieldError, Fields};
use super::raw::{self, Origin, RawBuffers};
use super::shopify::{self, Shape};
use super::webhooks::refunds_of;
use super::{tag, Landed};
use crate::vocabulary::RawEntity;
use serde_json::Value;
use std::collections::HashMap;

/// Per-file state of a bulk JSONL file: the roots seen so far, so that child lines
/// (`__parentId`) can be attached to the version of their parent they follow.
#[derive(Default)]
pub(super) struct BulkFile {
    roots: HashMap<String, i64>,
}

impl BulkFile {
    pub(super) fn land(&mut self, value: &Value, origin: &Origin, record: String, buf: &mut RawBuffers) -> Landed {
        let f = Fields::of(value, "record").map_err(|e| (None, e))?;
        let gid = match f.get("id") {
            Some(Value::String(s)) if s.starts_with("gid://") => s.as_str(),
            Some(_) => return Err((None, FieldError { field: "id".into(), problem: "expected a GID (gid://shopify/…)".into() })),
            None => return Err((None, missing("id"))),
        };
        let kind = gid_type(gid).unwrap_or("");
        let parent = match f.get("__parentId") {
            None => None,
            Some(Value::String(p)) => Some(p.as_str()),
            Some(_) => return Err((None, FieldError { field: "__parentId".into(), problem: "expected a GID string".into() })),
        };
        let Some(parent) = parent else {
            return self.land_root(kind, gid, f, origin, record, buf);
        };
        let parent_kind = gid_type(parent).unwrap_or("");
        let Some(entity) = child_entity(parent_kind, kind) else {
            return Err((None, FieldError { field: "id".into(), problem: format!("unexpected child {kind} of {parent_kind}") }));
        };
        let Some(&parent_line) = self.roots.get(parent) else {
            return Err((Some(entity), FieldError { field: "__parentId".into(), problem: format!("orphan child line: parent {parent} does not appear before it in this file") }));
        };
        let parent_id = fields::parse_id(parent).unwrap_or_default();
        match (parent_kind, kind) {
            ("Product", "ProductVariant") => buf.variants.push(origin, record, shopify::variant(f, Shape::Graphql, parent_id, parent_line).map_err(tag(entity))?),
            ("Product", "MediaImage" | "Video" | "ExternalVideo" | "Model3d") => {
                buf.media.push(origin, record, shopify::media(f, Some(kind), parent_id, parent_line).map_err(tag(entity))?)
            }
            ("Product", "Collection") => {
                let row = raw::MembershipRow { collection_id: Some(f.required_id("id").map_err(tag(entity))?), product_id: Some(parent_id) };
                buf.memberships.push(origin, record, row)
            }
            ("Collection", "Product") => {
                let row = raw::MembershipRow { collection_id: Some(parent_id), product_id: Some(f.required_id("id").map_err(tag(entity))?) };
                buf.memberships.push(origin, record, row)
            }
            ("Order", "LineItem") => buf.line_items.push(origin, record, shopify::line_item(f, Shape::Graphql, parent_id, parent_line).map_err(tag(entity))?),
            _ => return Err((Some(entity), FieldError { field: "id".into(), problem: format!("unexpected child {kind} of {parent_kind}") })),
        }
        Ok(())
    }

    fn land_root(&mut self, kind: &str, gid: &str, f: Fields, origin: &Origin, record: String, buf: &mut RawBuffers) -> Landed {
        match kind {
            "Product" => buf.products.push(origin, record, shopify::product(f, Shape::Graphql).map_err(tag(RawEntity::Products))?),
            "Collection" => buf.collections.push(origin, record, shopify::collection(f, Shape::Graphql, false).map_err(tag(RawEntity::Collections))?),
            "Customer" => buf.customers.push(origin, record, shopify::customer(f, Shape::Graphql).map_err(tag(RawEntity::Customers))?),
            "Order" => {
                let order = shopify::order(f, Shape::Graphql).map_err(tag(RawEntity::Orders))?;
                let refunds = refunds_of(f, Shape::Graphql, order.order_id.unwrap_or_default()).map_err(tag(RawEntity::Orders))?;
                refunds.into_iter().for_each(|r| buf.refund_lines.push(origin, String::new(), r));
                buf.orders.push(origin, record, order);
            }
            other => return Err((None, FieldError { field: "id".into(), problem: format!("unsupported record type {other:?}") })),
        }
        self.roots.insert(gid.to_string(), origin.line);
        Ok(())
    }
}

/// The raw entity a child line of `kind` under a `parent_kind` lands in.
fn child_entity(parent_kind: &str, kind: &str) -> Option<RawEntity> {
    match (parent_kind, kind) {
        ("Product", "ProductVariant") => Some(RawEntity::Variants),
        ("Product", "Collection") | ("Collection", "Product") => Some(RawEntity::CollectionProducts),
        ("Product", _) => Some(RawEntity::ProductMedia),
        ("Order", _) => Some(RawEntity::LineItems),
        _ => None,
    }
}

