//! One bulk operation: start it, follow it by its id (polling with backoff), and
//! download its JSONL. From API 2026-01 an app may run five bulk queries per shop
//! at once, so the entities of a fetch run side by side; when Shopify says the
//! limit is reached (another run's operations), the start waits and tries again.

use super::client::{Admin, Sent};
use crate::vocabulary::RawEntity;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const RUN: &str = "mutation run($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status createdAt }
    userErrors { field message code }
  }
}";

/// The app's recent query operations, to find one a start whose answer was lost
/// may have started (2026-01 and later).
const RECENT: &str = "query recent {
  bulkOperations(first: 10, query: \"operation_type:query\") {
    nodes { id status query createdAt }
  }
}";

const POLL: &str = "query poll($id: ID!) {
  bulkOperation(id: $id) { id status errorCode objectCount rootObjectCount url createdAt completedAt }
}";

/// How often to ask about a running operation: from `first`, doubling, at most `max`.
#[derive(Debug, Clone)]
pub struct Polling {
    pub first: Duration,
    pub max: Duration,
    /// Give up on an operation (or on waiting for a free slot) after this.
    pub deadline: Duration,
}

impl Default for Polling {
    fn default() -> Self {
        Polling { first: Duration::from_millis(500), max: Duration::from_secs(10), deadline: Duration::from_secs(6 * 3600) }
    }
}

/// A bulk operation that did not complete, as the caller may want to react to it.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    /// The app may not read some field the query selects (protected customer
    /// data, a missing scope).
    #[error("Shopify denied access to a field of the {entity} query (bulk operation {id} ended FAILED, errorCode ACCESS_DENIED)")]
    AccessDenied { entity: RawEntity, id: String },
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
    let operation = start(admin, entity, query, polling).await?;
    let id = operation["id"].as_str().context("bulkOperationRunQuery returned no operation id")?.to_string();
    tracing::info!(operation = %id, "bulk query for {entity} started");
    let done = follow(admin, entity, &id, polling).await?;

    let file = dir.join(format!("{entity}.jsonl"));
    let objects = count(&done["objectCount"]);
    let bytes = match done["url"].as_str() {
        Some(url) => admin.download(url, &file).await?,
        // No objects: Shopify gives no file.
        None if objects == 0 => {
            std::fs::write(&file, b"")?;
            0
        }
        None => bail!("bulk operation {id} for {entity} completed with {objects} objects but no result URL: refusing to take it as empty"),
    };
    // A short file would land as if records were gone.
    let lines = count_lines(&file)?;
    if lines < objects {
        bail!("bulk operation {id} for {entity}: downloaded {lines} lines of the {objects} objects Shopify counted (a truncated download?)");
    }
    let created_at = done["createdAt"].as_str().or(operation["createdAt"].as_str()).context("the bulk operation has no createdAt")?;
    let created_at = chrono::DateTime::parse_from_rfc3339(created_at).with_context(|| format!("bad createdAt {created_at}"))?.with_timezone(&chrono::Utc);
    tracing::info!(operation = %id, objects, bytes, "bulk query for {entity} downloaded");
    Ok(Finished { entity, id, file, objects, bytes, created_at })
}

/// Starts the operation; while the app's operations on this shop are at their
/// limit (earlier runs, a killed fetch), waits for a free slot.
///
/// Starting is not idempotent: when an attempt got no answer (a timeout, a 5xx)
/// it may have started an operation, which would hold one of the shop's slots
/// while a retry started another. So before trying again, the app's recent
/// operations are looked up, and one running or done with this very query is
/// followed instead.
async fn start(admin: &Admin, entity: RawEntity, query: &str, polling: &Polling) -> Result<Value> {
    let started = tokio::time::Instant::now();
    let mut wait = polling.first;
    let mut uncertain = 0u32;
    loop {
        let sent = admin.mutate(RUN, json!({ "query": query })).await.with_context(|| format!("starting the bulk query for {entity}"))?;
        let data = match sent {
            Sent::Answered(data) => data,
            Sent::Uncertain(why) => {
                uncertain += 1;
                tracing::warn!("starting the bulk query for {entity} got no answer ({why}); looking up whether it started");
                match started_with(admin, query).await {
                    Ok(Some(operation)) => {
                        tracing::info!(operation = operation["id"].as_str().unwrap_or("?"), "the bulk query for {entity} had started: following it");
                        return Ok(operation);
                    }
                    Ok(None) => {}
                    // (An API version before 2026-01 has no `bulkOperations`: starting
                    // again is all that is left; Shopify refuses it while one runs.)
                    Err(e) => tracing::warn!("cannot look up the app's bulk operations: {e:#}; starting the one for {entity} again"),
                }
                if uncertain > 6 {
                    bail!("starting the bulk query for {entity}: no answer after {uncertain} attempts; last: {why}");
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(polling.max);
                continue;
            }
        };
        let result = &data["bulkOperationRunQuery"];
        let errors = result["userErrors"].as_array().cloned().unwrap_or_default();
        if errors.is_empty() {
            return Ok(result["bulkOperation"].clone());
        }
        let busy = errors.iter().any(|e| {
            let message = e["message"].as_str().unwrap_or("").to_lowercase();
            e["code"] == "OPERATION_IN_PROGRESS" || message.contains("in progress") || message.contains("limit")
        });
        if busy && started.elapsed() < polling.deadline {
            tracing::info!("the app's bulk operations on this shop are at their limit; waiting to start the one for {entity}");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(polling.max);
            continue;
        }
        let messages: Vec<&str> = errors.iter().filter_map(|e| e["message"].as_str()).collect();
        bail!("Shopify refused the bulk query for {entity}: {}", messages.join("; "));
    }
}

/// The newest of the app's operations that ran `query` and did not fail, when
/// one exists.
async fn started_with(admin: &Admin, query: &str) -> Result<Option<Value>> {
    let data = admin.graphql(RECENT, json!({})).await?;
    let nodes = data["bulkOperations"]["nodes"].as_array().cloned().unwrap_or_default();
    let alive = |o: &&Value| matches!(o["status"].as_str(), Some("CREATED" | "RUNNING" | "COMPLETED"));
    Ok(nodes.iter().filter(|o| o["query"].as_str() == Some(query)).filter(alive).max_by_key(|o| o["createdAt"].as_str().unwrap_or("").to_string()).cloned())
}

/// Wakes the operations being followed in this process when Shopify says one
/// finished (the `bulk_operations/finish` webhook `serve` receives).
static FINISHED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// A `bulk_operations/finish` delivery arrived: every followed operation is
/// polled now rather than at its next interval.
pub fn operation_finished() {
    FINISHED.notify_waiters();
}

/// Polls the operation by its id until it completes (its final state), or fails;
/// between polls it waits its interval or until [`operation_finished`].
async fn follow(admin: &Admin, entity: RawEntity, id: &str, polling: &Polling) -> Result<Value> {
    let started = tokio::time::Instant::now();
    let mut wait = polling.first;
    let mut last_count = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = FINISHED.notified() => tracing::debug!("Shopify says a bulk operation finished: polling {id} now"),
        }
        wait = (wait * 2).min(polling.max);
        let data = admin.graphql(POLL, json!({ "id": id })).await.with_context(|| format!("polling bulk operation {id} ({entity})"))?;
        let operation = data["bulkOperation"].clone();
        match operation["status"].as_str().unwrap_or("") {
            "COMPLETED" => return Ok(operation),
            "FAILED" if operation["errorCode"] == "ACCESS_DENIED" => return Err(BulkError::AccessDenied { entity, id: id.to_string() }.into()),
            "FAILED" | "CANCELED" | "CANCELLED" | "EXPIRED" => {
                let code = operation["errorCode"].as_str().unwrap_or("none");
                bail!("bulk operation {id} for {entity} ended {} (errorCode {code})", operation["status"].as_str().unwrap_or("?"));
            }
            "" => bail!("Shopify knows no bulk operation {id} ({entity})"),
            status => {
                // Progress on a long operation: a line whenever Shopify's count moves.
                let objects = count(&operation["objectCount"]);
                if objects != last_count {
                    tracing::info!(operation = %id, status, objects, "bulk query for {entity} running");
                    last_count = objects;
                }
                if started.elapsed() > polling.deadline {
                    bail!("bulk operation {id} for {entity} still {status} after {:?}", polling.deadline);
                }
            }
        }
    }
}

/// `objectCount` is an unsigned 64-bit integer, which GraphQL sends as a string.
fn count(v: &Value) -> u64 {
    v.as_str().and_then(|s| s.parse().ok()).or(v.as_u64()).unwrap_or(0)
}

/// Non-empty lines of a downloaded result.
fn count_lines(file: &Path) -> Result<u64> {
    use std::io::BufRead;
    let reader = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?);
    let mut n = 0;
    for line in reader.split(b'\n') {
        n += u64::from(!line?.iter().all(u8::is_ascii_whitespace));
    }
    Ok(n)
}
