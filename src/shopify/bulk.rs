//! One bulk operation: start it, wait for it (polling with backoff), download
//! its JSONL. API 2025-01 runs one bulk query per shop and app at a time, so the
//! entities of a fetch run one after another.

use super::client::Admin;
use crate::vocabulary::RawEntity;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const RUN: &str = "mutation run($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status createdAt }
    userErrors { field message }
  }
}";

const POLL: &str = "query poll($id: ID!) {
  node(id: $id) { ... on BulkOperation { id status errorCode objectCount url createdAt completedAt } }
}";

/// How often to ask about a running operation: from `first`, doubling, at most `max`.
#[derive(Debug, Clone)]
pub struct Polling {
    pub first: Duration,
    pub max: Duration,
    /// Give up on an operation (or on waiting for another one to end) after this.
    pub deadline: Duration,
}

impl Default for Polling {
    fn default() -> Self {
        Polling { first: Duration::from_millis(500), max: Duration::from_secs(10), deadline: Duration::from_secs(6 * 3600) }
    }
}

/// A finished bulk operation and its downloaded result.
pub struct Finished {
    pub entity: RawEntity,
    pub id: String,
    pub file: PathBuf,
    pub objects: u64,
    pub bytes: u64,
    /// When Shopify started it (its clock): every record updated before is in it.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Runs `query` for `entity` and downloads the result to `dir/<entity>.jsonl`.
pub async fn run(admin: &Admin, entity: RawEntity, query: &str, dir: &Path, polling: &Polling) -> Result<Finished> {
    let started = tokio::time::Instant::now();
    let mut wait = polling.first;
    let operation = loop {
        let data = admin.graphql(RUN, json!({ "query": query })).await.with_context(|| format!("starting the bulk query for {entity}"))?;
        let result = &data["bulkOperationRunQuery"];
        let errors: Vec<&str> = result["userErrors"].as_array().map(|e| e.iter().filter_map(|e| e["message"].as_str()).collect()).unwrap_or_default();
        if errors.is_empty() {
            break result["bulkOperation"].clone();
        }
        // Another bulk query of this app is still running (an earlier, killed fetch): wait for it.
        if errors.iter().any(|e| e.contains("already in progress")) && started.elapsed() < polling.deadline {
            tracing::info!("another bulk operation is running; waiting to start the one for {entity}");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(polling.max);
            continue;
        }
        bail!("Shopify refused the bulk query for {entity}: {}", errors.join("; "));
    };
    let id = operation["id"].as_str().context("bulkOperationRunQuery returned no operation id")?.to_string();
    tracing::info!(operation = %id, "bulk query for {entity} started");

    let mut wait = polling.first;
    let mut last_count = 0;
    let done = loop {
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(polling.max);
        let data = admin.graphql(POLL, json!({ "id": id })).await.with_context(|| format!("polling bulk operation {id} ({entity})"))?;
        let node = data["node"].clone();
        match node["status"].as_str().unwrap_or("") {
            "COMPLETED" => break node,
            "FAILED" | "CANCELED" | "CANCELLED" | "EXPIRED" => {
                let code = node["errorCode"].as_str().unwrap_or("none");
                bail!("bulk operation {id} for {entity} ended {} (errorCode {code})", node["status"].as_str().unwrap_or("?"));
            }
            status => {
                // Progress on a long operation: a line whenever Shopify's count moves.
                let objects = count(&node["objectCount"]);
                if objects != last_count {
                    tracing::info!(operation = %id, status, objects, "bulk query for {entity} running");
                    last_count = objects;
                }
                if started.elapsed() > polling.deadline {
                    bail!("bulk operation {id} for {entity} still {status} after {:?}", polling.deadline);
                }
            }
        }
    };

    let file = dir.join(format!("{entity}.jsonl"));
    let bytes = match done["url"].as_str() {
        Some(url) => admin.download(url, &file).await?,
        // No objects: Shopify gives no file.
        None => {
            std::fs::write(&file, b"")?;
            0
        }
    };
    let created_at = done["createdAt"].as_str().or(operation["createdAt"].as_str()).context("the bulk operation has no createdAt")?;
    let created_at = chrono::DateTime::parse_from_rfc3339(created_at).with_context(|| format!("bad createdAt {created_at}"))?.with_timezone(&chrono::Utc);
    let objects = count(&done["objectCount"]);
    tracing::info!(operation = %id, objects, bytes, "bulk query for {entity} downloaded");
    Ok(Finished { entity, id, file, objects, bytes, created_at })
}

/// `objectCount` is an unsigned 64-bit integer, which GraphQL sends as a string.
fn count(v: &Value) -> u64 {
    v.as_str().and_then(|s| s.parse().ok()).or(v.as_u64()).unwrap_or(0)
}
