//! Shopify's mandatory privacy webhooks, carried out: `customers/redact` erases a
//! customer everywhere the shop's root holds them, `customers/data_request`
//! exports what it holds of them, `shop/redact` forgets the shop.
//!
//! A request is a durable job: `serve` writes it to the inbox's `privacy/`
//! folder (never landed as data) and the shop's next cycle carries it out;
//! `shopfeat privacy …` does the same by hand. Each request leaves an audit
//! record without personal data (`<shop>/privacy/audit/<id>.json`); the
//! request's own file, which holds the customer's email, is removed once done,
//! and only its webhook id is remembered (so a redelivery does nothing more).

pub mod export;
pub mod redact;
pub mod shop;

use crate::storage::DataRoot;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The three compliance topics.
pub const TOPICS: [&str; 3] = ["customers/redact", "customers/data_request", "shop/redact"];

/// Whether `topic` is a compliance topic.
pub fn is_compliance_topic(topic: &str) -> bool {
    TOPICS.contains(&topic)
}

/// The person a request is about, as Shopify names them (any of the three may
/// be missing: "sometimes the customer record holds only an email").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub id: Option<i64>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// One compliance request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    RedactCustomer { customer: Customer, orders: Vec<i64> },
    ExportCustomer { customer: Customer, orders: Vec<i64>, data_request_id: String },
    RedactShop,
}

impl Request {
    /// A delivery's payload of `topic`.
    pub fn parse(topic: &str, payload: &Value) -> Result<Request> {
        let customer = || -> Result<Customer> {
            let c = payload.get("customer").context("no \"customer\"")?;
            let customer = Customer {
                id: c.get("id").and_then(id_of),
                email: c.get("email").and_then(Value::as_str).filter(|s| !s.trim().is_empty()).map(|s| s.trim().to_string()),
                phone: c.get("phone").and_then(Value::as_str).filter(|s| !s.trim().is_empty()).map(|s| s.trim().to_string()),
            };
            if customer == Customer::default() {
                bail!("the customer has no id, email or phone");
            }
            Ok(customer)
        };
        let orders = |key: &str| -> Vec<i64> { payload.get(key).and_then(Value::as_array).map(|a| a.iter().filter_map(id_of).collect()).unwrap_or_default() };
        Ok(match topic {
            "customers/redact" => Request::RedactCustomer { customer: customer()?, orders: orders("orders_to_redact") },
            "customers/data_request" => {
                let id = payload.pointer("/data_request/id").and_then(|v| v.as_i64().map(|n| n.to_string()).or_else(|| v.as_str().map(str::to_string))).context("no data_request.id")?;
                Request::ExportCustomer { customer: customer()?, orders: orders("orders_requested"), data_request_id: id }
            }
            "shop/redact" => Request::RedactShop,
            other => bail!("{other:?} is not a compliance topic"),
        })
    }

    pub fn topic(&self) -> &'static str {
        match self {
            Request::RedactCustomer { .. } => "customers/redact",
            Request::ExportCustomer { .. } => "customers/data_request",
            Request::RedactShop => "shop/redact",
        }
    }
}

/// An id as Shopify sends it: a number, a numeric string or a GID.
fn id_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.rsplit('/').next().and_then(|tail| tail.parse().ok()),
        _ => None,
    }
}

/// What a request did, kept after it: no personal data, only what, when and
/// how much.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Audit {
    pub request_id: String,
    pub topic: String,
    pub shop: String,
    pub received_at: String,
    pub done_at: String,
    /// Raw snapshots rewritten, rows changed or removed in them, other files
    /// removed (inbox copies, older generations, exports).
    pub snapshots_rewritten: usize,
    pub rows_redacted: u64,
    pub files_deleted: usize,
    /// `customers/data_request`: the export written, relative to the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
}

pub fn audit_path(shop: &str, request_id: &str) -> String {
    format!("{shop}/privacy/audit/{request_id}.json")
}

/// Every audit record of `shop`.
pub fn audits(root: &DataRoot, shop: &str) -> Result<Vec<Audit>> {
    let dir = format!("{shop}/privacy/audit");
    let mut records = vec![];
    for name in root.list(&dir)?.into_iter().filter(|n| n.ends_with(".json")) {
        if let Some(bytes) = root.get(&format!("{dir}/{name}"))? {
            records.push(serde_json::from_slice(&bytes).with_context(|| format!("{dir}/{name}: not an audit record"))?);
        }
    }
    Ok(records)
}

/// After an erasure: the features computed again (at the current generation's
/// `T`) and published as the only generation — older ones, and the DuckDB
/// files built from them, hold the erased rows — then exported to Gorse, whose
/// export deletes the users and feedback that are gone. Without a Gorse
/// configured, a shop that was exported to one is refused: the person would
/// stay there. Files removed.
pub fn refresh(root: &DataRoot, shop: &str, gorse: Option<&crate::sinks::gorse::Options>, pairs: crate::features::pairs::PairOptions) -> Result<usize> {
    let features = crate::sinks::parquet::features_dir(shop);
    let Some(pointer) = crate::sinks::generation::current(root, &features)? else { return Ok(0) };
    let delivered = root.get(&crate::sinks::gorse::checkpoint::rows_file(shop))?.is_some();
    if delivered && gorse.is_none() {
        bail!("shop {shop} was exported to Gorse, and no Gorse is configured here (GORSE_URL or [gorse] url): the customer's user and feedback would stay there; configure it and run this again (the erasure itself is done and is not repeated)");
    }
    let as_of = match pointer.as_of.as_deref() {
        Some(t) => crate::time::parse_time(t).map_err(|e| anyhow::anyhow!("{features}/CURRENT: {e}"))?,
        None => crate::time::now_us(),
    };
    let options = crate::pipeline::ComputeOptions { as_of, pairs, keep_generations: 1 };
    crate::pipeline::compute_and_publish(root, shop, &options)?;
    let mut removed = crate::sinks::generation::drop_previous(root, &features)?;
    // The HTML report drew the old tables; the next run draws it again.
    let report = crate::report::default_path(shop);
    if root.get(&report)?.is_some() {
        root.delete(&report)?;
        removed += 1;
    }
    if let Some(gorse) = gorse {
        crate::pipeline::export_gorse(root, shop, gorse)?;
    }
    Ok(removed)
}

/// Carries out the compliance requests waiting in `inbox` (the shop's lock
/// held): each recorded, then — when any erased a customer — the features
/// recomputed and exported ([`refresh`]), then each request's file removed and
/// its webhook id remembered. A crash anywhere repeats only what is not
/// recorded as done. How many were carried out.
///
/// A `shop/redact` among them goes first and ends it all: the shop, its inbox
/// and the other requests are forgotten with it. `shares_gorse`: another shop
/// exports to the same Gorse.
pub fn carry_out_pending(root: &DataRoot, shop: &str, inbox: &crate::land::inbox::Inbox, gorse: Option<&crate::sinks::gorse::Options>, pairs: crate::features::pairs::PairOptions, shares_gorse: bool) -> Result<usize> {
    let pending = inbox.privacy_pending()?;
    if let Some((_, _, webhook_id, received_us)) = pending.iter().find(|(_, topic, _, _)| topic == "shop/redact") {
        let received_at = chrono::DateTime::from_timestamp_micros(*received_us).unwrap_or_default().to_rfc3339();
        shop::redact_shop(root, shop, webhook_id, &received_at, Some(inbox.dir()), gorse, shares_gorse)?;
        return Ok(pending.len());
    }
    let mut erased = false;
    let mut done = vec![];
    for (file, topic, webhook_id, received_us) in pending {
        let received_at = chrono::DateTime::from_timestamp_micros(received_us).unwrap_or_default().to_rfc3339();
        let payload: Value = serde_json::from_slice(&std::fs::read(&file)?).with_context(|| format!("{}: not JSON", file.display()))?;
        let request = Request::parse(&topic, &payload).with_context(|| format!("{}: not a {topic} request", file.display()))?;
        carry_out(root, shop, &webhook_id, &received_at, &request, Some(inbox.dir()))?;
        erased |= matches!(request, Request::RedactCustomer { .. });
        done.push((file, webhook_id));
    }
    if erased {
        refresh(root, shop, gorse, pairs)?;
    }
    for (file, webhook_id) in &done {
        inbox.privacy_done(file, webhook_id)?;
    }
    Ok(done.len())
}

/// Carries out `request` for `shop` (holding its lock), records it under
/// `request_id`, and returns the record. `inbox`: the shop's inbox, whose
/// copies of landed and rejected files are erased too.
pub fn carry_out(root: &DataRoot, shop: &str, request_id: &str, received_at: &str, request: &Request, inbox: Option<&std::path::Path>) -> Result<Audit> {
    if let Some(bytes) = root.get(&audit_path(shop, request_id))? {
        tracing::info!("shop {shop}: privacy request {request_id} was carried out before");
        return Ok(serde_json::from_slice(&bytes)?);
    }
    let mut audit = Audit { request_id: request_id.to_string(), topic: request.topic().to_string(), shop: shop.to_string(), received_at: received_at.to_string(), ..Default::default() };
    match request {
        Request::RedactCustomer { customer, orders } => {
            let done = redact::redact_customer(root, shop, customer, orders, inbox)?;
            audit.snapshots_rewritten = done.snapshots_rewritten;
            audit.rows_redacted = done.rows_redacted;
            audit.files_deleted = done.files_deleted;
        }
        Request::ExportCustomer { customer, orders, data_request_id } => {
            let (rel, records) = export::export_customer(root, shop, customer, orders, data_request_id)?;
            tracing::info!("shop {shop}: data request {data_request_id}: {records} raw records exported to {}/{rel}", root.describe());
            audit.export = Some(rel);
        }
        Request::RedactShop => bail!("shop/redact is carried out by privacy::shop::redact_shop, which leaves a tombstone instead of an audit record"),
    }
    audit.done_at = crate::time::now_rfc3339();
    root.put(&audit_path(shop, request_id), &serde_json::to_vec_pretty(&audit)?)?;
    tracing::info!("shop {shop}: {} {request_id} done: {} snapshots rewritten, {} rows redacted, {} files deleted", audit.topic, audit.snapshots_rewritten, audit.rows_redacted, audit.files_deleted);
    Ok(audit)
}
