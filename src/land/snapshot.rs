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
    /// A compacted snapshot: the snapshots whose rows it holds. Readers ignore
    /// those from the moment this manifest exists; compaction then deletes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<String>,
    /// A compacted snapshot: what its rows span (their rows keep their own
    /// snapshot, file, line and time of receipt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
}

/// What a compacted snapshot's rows span.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Span {
    /// The first and last snapshot it replaced (ids, which sort by time taken).
    pub first: String,
    pub last: String,
    /// The earliest and latest time of receipt among them.
    pub received_from: String,
    pub received_to: String,
    /// The latest full snapshot among them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full: Option<FullMark>,
    /// The input fingerprints of the snapshots replaced (the latest
    /// [`KEPT_FINGERPRINTS`] distinct ones), so `run` still lands nothing twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fingerprints: Vec<String>,
    /// Versions superseded before this time were dropped (`[retention]
    /// history_days`): no `--as-of` earlier than it is exact any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_from: Option<String>,
}

/// Distinct input fingerprints a compacted snapshot keeps: enough for any job
/// rerun on the same export, bounded however many cycles a year brings.
pub const KEPT_FINGERPRINTS: usize = 1000;

/// A full snapshot: its id and when its fetch started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FullMark {
    pub snapshot: String,
    pub started_at: Option<String>,
}

impl FullMark {
    fn started_us(&self) -> Option<i64> {
        self.started_at.as_deref().and_then(time_us)
    }
}

/// Which of a snapshot's rows of the Admin API entities still count after the
/// shop's latest full snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum Counts {
    All,
    None,
    /// Some: those of a snapshot at or after the full one, or received after
    /// its fetch started (a compacted snapshot that spans the full one's start).
    Rows(FullMark),
}

impl FullMark {
    /// The rows that count after this full snapshot, as a filter over raw rows
    /// (each keeps its own `snapshot` and `received_at`).
    pub fn counting_rows(&self) -> polars::prelude::Expr {
        use polars::prelude::*;
        let later = col("snapshot").gt_eq(lit(self.snapshot.clone()));
        match self.started_us() {
            Some(t) => later.or(col("received_at").cast(DataType::Int64).gt_eq(lit(t))),
            None => later,
        }
    }
}

pub(super) fn time_us(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| t.timestamp_micros())
}

impl SnapshotManifest {
    /// This snapshot's full mark: its own when it is full, the latest it
    /// replaced when it is compacted.
    pub fn full_mark(&self) -> Option<FullMark> {
        match (&self.span, self.full) {
            (_, true) => Some(FullMark { snapshot: self.snapshot.clone(), started_at: self.started_at.clone() }),
            (Some(span), false) => span.last_full.clone(),
            (None, false) => None,
        }
    }

    /// Which of its rows count after the shop's latest `full` snapshot: all of a
    /// snapshot taken at or after it or received after its fetch started (a
    /// webhook landed while the fetch ran is newer news), else none.
    pub fn counts_after(&self, full: &FullMark) -> Counts {
        let started = full.started_us();
        let after_start = |received: &str| matches!((time_us(received), started), (Some(r), Some(s)) if r >= s);
        match &self.span {
            None if self.snapshot >= full.snapshot || after_start(&self.received_at) => Counts::All,
            None => Counts::None,
            Some(span) if span.first >= full.snapshot || after_start(&span.received_from) => Counts::All,
            Some(span) if span.last < full.snapshot && !after_start(&span.received_to) => Counts::None,
            Some(_) => Counts::Rows(full.clone()),
        }
    }

    /// From when this snapshot's history is whole (versions superseded before
    /// were dropped by a compaction), µs.
    pub fn history_from(&self) -> Option<i64> {
        self.span.as_ref().and_then(|s| s.history_from.as_deref()).and_then(time_us)
    }

    /// Whether these exact inputs were landed by this snapshot (or one it replaced).
    pub fn landed_inputs(&self, fingerprint: &str) -> bool {
        self.fingerprint.as_deref() == Some(fingerprint) || self.span.as_ref().is_some_and(|s| s.fingerprints.iter().any(|f| f == fingerprint))
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

/// The committed snapshots of a shop that count, oldest first: those a
/// rewritten snapshot replaced are left out (the rewrite deletes them once it
/// is committed), and so are the new snapshots of a rewrite not committed yet.
pub fn snapshots(root: &DataRoot, shop: &str) -> Result<Vec<SnapshotManifest>> {
    // The manifests first, then the intent: an intent still uncommitted now
    // was so when they were read, so the snapshots it replaces were all there.
    let manifests = all_snapshots(root, shop)?;
    let uncommitted: Vec<String> = match super::compact::intent(root, shop)? {
        Some(intent) if !intent.committed => intent.snapshots.into_iter().map(|s| s.snapshot).collect(),
        _ => vec![],
    };
    let manifests: Vec<SnapshotManifest> = manifests.into_iter().filter(|m| !uncommitted.contains(&m.snapshot)).collect();
    let replaced: std::collections::HashSet<&str> = manifests.iter().flat_map(|m| m.replaces.iter().map(String::as_str)).collect();
    let live = manifests.iter().filter(|m| !replaced.contains(m.snapshot.as_str())).cloned().collect();
    Ok(live)
}

/// Every snapshot manifest of a shop, replaced ones too, by id (the order they
/// were taken in; a compacted snapshot sorts where its last replaced one did).
pub(super) fn all_snapshots(root: &DataRoot, shop: &str) -> Result<Vec<SnapshotManifest>> {
    let dir = format!("{}/_snapshots", raw_dir(shop));
    // A manifest that vanishes between the listing and its reading was replaced
    // by a compaction that just published: list again (the compacted one is there).
    for _ in 0..5 {
        match read_manifests(root, &dir)? {
            Some(mut manifests) => {
                manifests.sort_by(|a, b| a.snapshot.cmp(&b.snapshot));
                return Ok(manifests);
            }
            None => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
    bail!("{}/{dir}: snapshot manifests keep vanishing while read", root.describe())
}

/// The manifests under `dir`; `None` when one vanished while they were read.
fn read_manifests(root: &DataRoot, dir: &str) -> Result<Option<Vec<SnapshotManifest>>> {
    let mut manifests = Vec::new();
    for name in root.list(dir)? {
        if !name.ends_with(".json") {
            continue;
        }
        let rel = format!("{dir}/{name}");
        let Some(bytes) = root.get(&rel)? else { return Ok(None) };
        let manifest: SnapshotManifest = serde_json::from_slice(&bytes).with_context(|| format!("{rel}: not a snapshot manifest"))?;
        manifests.push(manifest);
    }
    Ok(Some(manifests))
}

