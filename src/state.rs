//! The shop's state file, `<root>/<shop>/state.json`: fetch watermarks, the last
//! run, the last Gorse export. Written whole and atomically; a writer changes it
//! only after the data it describes is durable.

use crate::storage::DataRoot;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShopState {
    /// Per raw entity: the `updated_at` (RFC 3339) up to which Shopify was fetched.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub watermarks: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gorse: Option<GorseExportState>,
    /// The fleet cycle (`run --cycle KEY`) this shop last completed: a worker
    /// that finds its cycle here leaves the shop alone (a retried pod, an
    /// overlapping shard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_cycle: Option<String>,
}

/// Where the last Gorse export went and how far it got. The rows it delivered are
/// in `<shop>/state/gorse-rows.parquet` (one hash per row), which is the
/// checkpoint: an interrupted export resumes by skipping rows whose hash is there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GorseExportState {
    /// Gorse URL and id prefix: hashes only mean something for the same target.
    pub target: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub rows_delivered: u64,
    /// The id prefix of the target (to plan what would be sent without its URL).
    #[serde(default)]
    pub prefix: String,
}

pub fn path(shop: &str) -> String {
    format!("{shop}/state.json")
}

impl ShopState {
    pub fn load(root: &DataRoot, shop: &str) -> Result<ShopState> {
        match root.get(&path(shop))? {
            None => Ok(ShopState::default()),
            Some(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("{}/{}: not a shopfeat state file", root.describe(), path(shop))),
        }
    }

    /// Writes the state, unless this run may have lost the shop's lock (then a
    /// newer run's watermarks must not be overwritten).
    pub fn save(&self, root: &DataRoot, shop: &str) -> Result<()> {
        crate::lock::ensure_held(root, shop)?;
        root.put(&path(shop), &serde_json::to_vec_pretty(self)?)
    }
}
