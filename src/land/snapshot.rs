//! Snapshots: one landing's Parquet files under `<shop>/raw/<entity>/<id>.parquet`,
//! made visible by their manifest `<shop>/raw/_snapshots/<id>.json`, written last.

use crate::storage::DataRoot;
use crate::vocabulary::RawEntity;
use anyhow::{bail, Context, Result};
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
    /// A full snapshot: when its fetch started. What it holds is the shop as it
    /// was then, so snapshots received after that (webhooks landed while the
    /// fetch ran) still count: a product deleted meanwhile is not resurrected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// The records that did not land, kept whole with file, line and reason
    /// (`<shop>/raw/_rejected/<snapshot>.parquet`), when there were any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
}

impl SnapshotManifest {
    /// Whether this snapshot was received after `full`'s fetch started (so a
    /// full snapshot does not replace it).
    pub fn received_after_start_of(&self, full: &SnapshotManifest) -> bool {
        let time = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
        match (time(&self.received_at), full.started_at.as_deref().and_then(time)) {
            (Some(received), Some(started)) => received >= started,
            _ => false,
        }
    }
}

impl SnapshotManifest {
    /// The raw files of this snapshot, each checked to be where landing writes
    /// it: a manifest that names another path (edited, or damaged) is refused
    /// rather than followed outside the shop.
    pub fn raw_files(&self, shop: &str) -> Result<Vec<(RawEntity, String)>> {
        if crate::storage::shop_id(&self.snapshot).is_err() {
            bail!("snapshot manifest {:?} of shop {shop}: not a snapshot id", self.snapshot);
        }
        self.files
            .iter()
            .map(|(entity, rel)| {
                let Some(raw) = RawEntity::from_name(entity) else { bail!("snapshot {} of shop {shop}: unknown raw entity {entity:?}", self.snapshot) };
                if *rel != format!("{}/{entity}/{}.parquet", raw_dir(shop), self.snapshot) {
                    bail!("snapshot {} of shop {shop}: {entity} file {rel:?} is not where landing writes it", self.snapshot);
                }
                Ok((raw, rel.clone()))
            })
            .collect()
    }
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

