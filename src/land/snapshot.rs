//! Snapshots: one landing's Parquet files under `<shop>/raw/<entity>/<id>.parquet`,
//! made visible by their manifest `<shop>/raw/_snapshots/<id>.json`, written last.

use crate::storage::DataRoot;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A committed snapshot: which file holds each raw entity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotManifest {
    pub snapshot: String,
    pub received_at: String,
    pub files: BTreeMap<String, String>,
    pub rows: BTreeMap<String, u64>,
    pub inputs: Vec<String>,
    /// A hash of the inputs' names and bytes: `run` skips inputs already landed.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// The whole shop as Shopify had it (a historical fetch): earlier snapshots
    /// no longer count for the Admin API entities, so a record absent here is gone.
    /// Events, which Shopify's Admin API does not serve, are kept from every snapshot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full: bool,
}

/// The raw directory of a shop.
pub fn raw_dir(shop: &str) -> String {
    format!("{shop}/raw")
}

/// New snapshot ids sort by the time they were taken.
pub fn new_snapshot_id(now: chrono::DateTime<chrono::Utc>) -> String {
    let nanos = now.timestamp_subsec_nanos();
    format!("{}{:09}-{:08x}", now.format("%Y%m%dT%H%M%S"), nanos, std::process::id())
}

/// The committed snapshots of a shop, oldest first.
pub fn snapshots(root: &DataRoot, shop: &str) -> Result<Vec<SnapshotManifest>> {
    let dir = format!("{}/_snapshots", raw_dir(shop));
    let mut manifests = Vec::new();
    for name in root.list(&dir)? {
        if !name.ends_with(".json") {
            continue;
        }
        let rel = format!("{dir}/{name}");
        let bytes = root.get(&rel)?.with_context(|| format!("{rel} vanished"))?;
        let manifest: SnapshotManifest = serde_json::from_slice(&bytes).with_context(|| format!("{rel}: not a snapshot manifest"))?;
        manifests.push(manifest);
    }
    Ok(manifests)
}

