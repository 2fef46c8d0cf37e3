//! Bulk-operation JSONL → raw rows: root lines (products, collections, customers,
//! orders; refunds saved by the fetcher) and the child lines that name their
//! parent with `__parentId`.
//!
//! Since API 2026-01 Shopify writes bulk output ungrouped: a child line can stand
//! before its parent or anywhere in the file. A child therefore belongs to its
//! parent *in this file* — by id, not by position — and normalization attaches it
//! to whichever version of the parent it chooses from this file; a parent listed
//! twice has its children unioned by child id. A child whose parent never appears
//! in the file is landed (nothing is lost) and reported as unattached.

use super::fields::{self, gid_type, missing, FieldError, Fields};
use super::raw::{self, Origin, RawBuffers};
use super::shopify::{self, Shape};
use super::webhooks::refunds_of;
use super::{tag, Landed};
use crate::vocabulary::RawEntity;
use serde_json::Value;
use std::collections::HashSet;

/// Per-file state of a bulk JSONL file.
#[derive(Default)]
pub(super) struct BulkFile {
    /// The root GIDs seen so far.
    roots: HashSet<String>,
    /// Child lines seen before their parent: (line, entity, parent GID).
    early: Vec<(u64, RawEntity, String)>,
}

/// A child line whose parent is not in its file.
pub(super) struct Unattached {
    pub line: u64,
    pub entity: RawEntity,
    pub parent: String,
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
        let parent_id = fields::parse_id(parent).ok_or((Some(entity), FieldError { field: "__parentId".into(), problem: format!("{parent} is not a GID with a numeric id") }))?;
        if !self.roots.contains(parent) {
            self.early.push((origin.line as u64, entity, parent.to_string()));
        }
        match (parent_kind, kind) {
            ("Product", "ProductVariant") => buf.variants.push(origin, record, shopify::variant(f, Shape::Graphql, parent_id, None).map_err(tag(entity))?),
            ("Product", "MediaImage" | "Video" | "ExternalVideo" | "Model3d") => {
                buf.media.push(origin, record, shopify::media(f, Some(kind), parent_id, None).map_err(tag(entity))?)
            }
            ("Product", "Collection") => {
                let row = raw::MembershipRow { collection_id: Some(f.required_id("id").map_err(tag(entity))?), product_id: Some(parent_id) };
                buf.memberships.push(origin, record, row)
            }
            ("Collection", "Product") => {
                let row = raw::MembershipRow { collection_id: Some(parent_id), product_id: Some(f.required_id("id").map_err(tag(entity))?) };
                buf.memberships.push(origin, record, row)
            }
            ("Order", "LineItem") => buf.line_items.push(origin, record, shopify::line_item(f, Shape::Graphql, parent_id, None).map_err(tag(entity))?),
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
            // A refund with its lines, as the fetcher saves them (refunds.jsonl).
            "Refund" => {
                let entity = RawEntity::RefundLineItems;
                let order_id = f.required_id("order.id").map_err(tag(entity))?;
                let rows = shopify::refund_lines(f, Shape::Graphql, order_id).map_err(tag(entity))?;
                rows.into_iter().for_each(|r| buf.refund_lines.push(origin, record.clone(), r));
            }
            other => return Err((None, FieldError { field: "id".into(), problem: format!("unsupported record type {other:?}") })),
        }
        self.roots.insert(gid.to_string());
        Ok(())
    }

    /// At the end of the file: the child lines whose parent never appeared in it.
    pub(super) fn unattached(self) -> Vec<Unattached> {
        let roots = self.roots;
        self.early.into_iter().filter(|(_, _, parent)| !roots.contains(parent)).map(|(line, entity, parent)| Unattached { line, entity, parent }).collect()
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
