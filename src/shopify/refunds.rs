//! Refund lines, which a bulk query cannot hold (`refundLineItems` is a
//! connection inside the `refunds` list): fetched with ordinary paged queries,
//! only for the orders of a bulk result that have refunds, and saved as
//! `refunds.jsonl`, one refund per line:
//!
//! ```json
//! {"id":"gid://shopify/Refund/1","createdAt":"…","order":{"id":"gid://shopify/Order/2"},
//!  "refundLineItems":{"nodes":[{"quantity":1,"lineItem":{"id":"gid://shopify/LineItem/3"},"subtotalSet":{"shopMoney":{"amount":"9.50"}}}]}}
//! ```
//!
//! Each query stays under Shopify's 1,000-point single-query cost (see
//! [`queries`](super::queries)) and goes through the client's cost throttle.

use super::client::Admin;
use super::queries::{more_refund_lines_query, refund_lines_query, ORDERS_PER_REFUND_QUERY};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

/// What fetching refund lines cost and gave.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct RefundFetch {
    pub orders: u64,
    pub refunds: u64,
    pub lines: u64,
    pub queries: u64,
}

/// The orders of a bulk orders file whose `refunds` list is not empty, by GID.
pub fn refunded_orders(orders_file: &Path) -> Result<Vec<String>> {
    let file = std::fs::File::open(orders_file).with_context(|| format!("cannot read {}", orders_file.display()))?;
    let mut ids = vec![];
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        // Child lines (line items) and orders without refunds need no parse.
        if line.contains("\"__parentId\"") || !line.contains("\"refunds\"") {
            continue;
        }
        let order: Value = serde_json::from_str(&line).with_context(|| format!("{}:{}: not JSON", orders_file.display(), n + 1))?;
        if order["refunds"].as_array().is_some_and(|r| !r.is_empty()) {
            if let Some(id) = order["id"].as_str() {
                ids.push(id.to_string());
            }
        }
    }
    Ok(ids)
}

/// Fetches every refund of `orders` with all its lines into `dest` (JSONL).
pub async fn fetch_refund_lines(admin: &Admin, orders: &[String], dest: &Path) -> Result<RefundFetch> {
    let mut out = BufWriter::new(std::fs::File::create(dest).with_context(|| format!("cannot write {}", dest.display()))?);
    let mut stats = RefundFetch { orders: orders.len() as u64, ..RefundFetch::default() };
    for batch in orders.chunks(ORDERS_PER_REFUND_QUERY) {
        let data = admin.graphql(&refund_lines_query(), json!({ "ids": batch })).await.context("fetching refund lines")?;
        stats.queries += 1;
        // An order deleted since the bulk query answers null: it has nothing to add.
        for order in data["nodes"].as_array().into_iter().flatten().filter(|o| !o.is_null()) {
            for refund in order["refunds"].as_array().into_iter().flatten() {
                let mut lines = page_nodes(&refund["refundLineItems"]);
                let mut page = refund["refundLineItems"]["pageInfo"].clone();
                while page["hasNextPage"] == true {
                    let vars = json!({ "id": refund["id"], "after": page["endCursor"] });
                    let more = admin.graphql(&more_refund_lines_query(), vars).await.context("fetching more refund lines")?;
                    stats.queries += 1;
                    lines.extend(page_nodes(&more["node"]["refundLineItems"]));
                    page = more["node"]["refundLineItems"]["pageInfo"].clone();
                }
                stats.refunds += 1;
                stats.lines += lines.len() as u64;
                let saved = json!({
                    "id": refund["id"], "createdAt": refund["createdAt"], "order": { "id": order["id"] },
                    "refundLineItems": { "nodes": lines },
                });
                serde_json::to_writer(&mut out, &saved)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    Ok(stats)
}

fn page_nodes(connection: &Value) -> Vec<Value> {
    connection["nodes"].as_array().cloned().unwrap_or_default()
}
