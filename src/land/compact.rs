//! Compaction: a shop's runs of small snapshots → one snapshot each, as table
//! formats do it (Delta's OPTIMIZE, Iceberg's rewrite_data_files), with
//! normalization seeing exactly the same rows at every `--as-of`.
//!
//! Why it is exact: every raw row carries its origin (`snapshot`, `source_rank`,
//! `file`, `line`, `received_at`), which is all normalization orders versions
//! by, so a merged file needs nothing of the files it came from. Only runs of
//! consecutive snapshots are merged, and events keep their concatenated order,
//! so the landing order that the events' first-landed-wins dedupe reads is
//! unchanged. A full fetch's reach (which earlier rows it replaces) is a
//! property of rows, not files: the compacted manifest carries the latest full
//! mark it holds, and a reader filters rows where a compacted snapshot spans a
//! later full fetch's start. Other entities are sorted by their own id (then
//! landing order, stably) in row groups of [`ROW_GROUP`] rows whose min/max
//! statistics let a reader skip them; events stay in landing order, which is
//! the order they arrived in.
//!
//! Crash-safe publishing, under the shop's lock:
//! 1. an intent `raw/_compaction.json` names the new snapshot and those it replaces;
//! 2. the new snapshot's files are written and committed;
//! 3. its manifest is written, naming what it replaces — readers saw the old
//!    set until now and see the new one from now on;
//! 4. the replaced snapshots' files, then their manifests, are deleted;
//! 5. the intent is removed.
//!
//! A compaction that finds an intent first finishes it: step 4 when step 3
//! happened, else it removes step 2's files. Nothing else needs a walk of the
//! shop's tree.

use super::snapshot::{all_snapshots, raw_dir, FullMark, Span, SnapshotManifest, KEPT_FINGERPRINTS};
use crate::storage::DataRoot;
use crate::vocabulary::RawEntity;
use anyhow::{Context, Result};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A snapshot with fewer rows than this is small: compaction merges it.
pub const SMALL_ROWS: u64 = 100_000;
/// A merged snapshot stops growing at about this many rows (what one entity's
/// rows cost in memory while they are sorted is bounded by it).
pub const MERGED_ROWS: u64 = 1_000_000;
/// Rows per row group of a compacted file: small enough that a reader looking
/// for a few ids skips most of a file by its statistics.
pub const ROW_GROUP: usize = 16 * 1024;
/// Small snapshots a shop may hold before a run compacts them.
pub const DEFAULT_AFTER: usize = 64;

/// One merge of consecutive snapshots.
#[derive(Debug, Clone, Serialize)]
pub struct Merged {
    pub snapshot: String,
    pub replaced: usize,
    pub rows: u64,
}

/// What [`compact`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CompactReport {
    /// An interrupted compaction found and finished (or undone).
    pub recovered: Option<String>,
    pub merged: Vec<Merged>,
    /// Snapshots before and after.
    pub snapshots_before: usize,
    pub snapshots_after: usize,
}

/// The intent of a compaction in progress (step 1).
#[derive(Debug, Serialize, Deserialize)]
struct Intent {
    snapshot: String,
    replaces: Vec<String>,
}

fn intent_path(shop: &str) -> String {
    format!("{}/_compaction.json", raw_dir(shop))
}

fn manifest_path(shop: &str, snapshot: &str) -> String {
    format!("{}/_snapshots/{snapshot}.json", raw_dir(shop))
}

/// Whether a snapshot is small (compaction merges it).
pub fn is_small(manifest: &SnapshotManifest) -> bool {
    manifest.rows.values().sum::<u64>() < SMALL_ROWS
}

/// Small snapshots among `manifests`.
pub fn small_snapshots(manifests: &[SnapshotManifest]) -> usize {
    manifests.iter().filter(|m| is_small(m)).count()
}

/// Compacts `shop` when it holds more than `after` small snapshots (`after` 0:
/// never). The caller holds the shop's lock.
pub fn compact_if_due(root: &DataRoot, shop: &str, after: usize) -> Result<Option<CompactReport>> {
    if after == 0 || small_snapshots(&super::snapshots(root, shop)?) <= after {
        return Ok(None);
    }
    compact(root, shop).map(Some)
}

/// Merges every run of consecutive small snapshots of `shop` into one snapshot
/// (a run is cut at [`MERGED_ROWS`]). The caller holds the shop's lock.
pub fn compact(root: &DataRoot, shop: &str) -> Result<CompactReport> {
    let mut report = CompactReport { recovered: finish_interrupted(root, shop)?, ..Default::default() };
    let live = super::snapshots(root, shop)?;
    report.snapshots_before = live.len();
    for run in runs_to_merge(&live) {
        let merged = merge(root, shop, run)?;
        tracing::info!("shop {shop}: {} snapshots merged into {} ({} rows)", merged.replaced, merged.snapshot, merged.rows);
        report.merged.push(merged);
    }
    report.snapshots_after = report.snapshots_before - report.merged.iter().map(|m| m.replaced - 1).sum::<usize>();
    Ok(report)
}

/// Runs of two or more consecutive small snapshots, each of at most about
/// [`MERGED_ROWS`] rows.
fn runs_to_merge(live: &[SnapshotManifest]) -> Vec<&[SnapshotManifest]> {
    let mut runs = vec![];
    let (mut start, mut rows) = (0, 0u64);
    for (i, manifest) in live.iter().enumerate() {
        let n: u64 = manifest.rows.values().sum();
        if !is_small(manifest) || rows + n > MERGED_ROWS {
            if i - start >= 2 {
                runs.push(&live[start..i]);
            }
            (start, rows) = if is_small(manifest) { (i, n) } else { (i + 1, 0) };
        } else {
            rows += n;
        }
    }
    if live.len() - start >= 2 {
        runs.push(&live[start..]);
    }
    runs
}

/// The id of a compacted snapshot: the last replaced one's landing id and the
/// time of this compaction, so it sorts right after the snapshots it replaces
/// (and after an earlier compaction of them), before any later landing.
fn compacted_id(last: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let landing = last.split_once(".c").map_or(last, |(id, _)| id);
    format!("{landing}.c{}{:09}", now.format("%Y%m%dT%H%M%S"), now.timestamp_subsec_nanos())
}

fn merge(root: &DataRoot, shop: &str, run: &[SnapshotManifest]) -> Result<Merged> {
    let last = run.last().expect("a run has snapshots");
    let snapshot = compacted_id(&last.snapshot, chrono::Utc::now());
    let replaces: Vec<String> = run.iter().map(|m| m.snapshot.clone()).collect();
    let intent = Intent { snapshot: snapshot.clone(), replaces: replaces.clone() };
    root.put(&intent_path(shop), &serde_json::to_vec_pretty(&intent)?)?;

    let mut files = BTreeMap::new();
    let mut rows = BTreeMap::new();
    for entity in RawEntity::ALL {
        let parts: Vec<String> = run.iter().filter_map(|m| m.files.get(entity.name()).cloned()).collect();
        if parts.is_empty() {
            continue;
        }
        let rel = format!("{}/{entity}/{snapshot}.parquet", raw_dir(shop));
        let height = rewrite(root, &parts, &rel, sort_keys(entity))?;
        files.insert(entity.to_string(), rel);
        rows.insert(entity.to_string(), height);
    }
    let rejected_parts: Vec<String> = run.iter().filter_map(|m| m.rejected.clone()).collect();
    let rejected = match rejected_parts.is_empty() {
        true => None,
        false => {
            let rel = super::rejected::rejected_path(shop, &snapshot);
            rewrite(root, &rejected_parts, &rel, None)?;
            Some(rel)
        }
    };
    let span = span_of(run);
    let manifest = SnapshotManifest {
        snapshot: snapshot.clone(),
        received_at: span.received_to.clone(),
        files,
        rows: rows.clone(),
        inputs: vec![],
        fingerprint: None,
        full: false,
        started_at: None,
        rejected,
        replaces,
        span: Some(span),
    };
    // A run that lost its lock must not publish over whoever holds it now.
    crate::lock::ensure_held(root, shop)?;
    crate::failpoint::hit("compact-publish")?;
    root.put(&manifest_path(shop, &snapshot), &serde_json::to_vec_pretty(&manifest)?)?;
    remove_snapshots(root, shop, run)?;
    root.delete(&intent_path(shop))?;
    Ok(Merged { snapshot, replaced: run.len(), rows: rows.values().sum() })
}

/// How a compacted file of `entity` is sorted: by the entity's own id, then
/// landing order (a stable sort keeps rows equal in all of these in place);
/// events not at all, so their landing order stays.
fn sort_keys(entity: RawEntity) -> Option<Vec<Expr>> {
    let id = match entity {
        RawEntity::Events => return None,
        RawEntity::Products => "product_id",
        RawEntity::Variants => "variant_id",
        RawEntity::ProductMedia => "media_id",
        RawEntity::CollectionProducts | RawEntity::Collections => "collection_id",
        RawEntity::Customers => "customer_id",
        RawEntity::Orders => "order_id",
        RawEntity::LineItems => "line_item_id",
        RawEntity::RefundLineItems => "refund_id",
    };
    Some([id, "snapshot", "source_rank", "file", "line"].into_iter().map(col).collect())
}

/// Writes the rows of `parts` (in order, sorted by `keys` when given) as one
/// Parquet file at `rel`, committed whole; its row count.
fn rewrite(root: &DataRoot, parts: &[String], rel: &str, keys: Option<Vec<Expr>>) -> Result<u64> {
    let paths = parts.iter().map(|p| root.local_copy(p)).collect::<Result<Vec<_>>>()?;
    let mut scan = crate::normalize::scan_parquet(paths.iter().map(|p| p.as_path()))?;
    if let Some(keys) = keys {
        let n = keys.len();
        scan = scan.sort_by_exprs(keys, SortMultipleOptions::default().with_order_descending_multi(vec![false; n]).with_maintain_order(true));
    }
    let mut frame = scan.collect().map_err(|e| anyhow::anyhow!("cannot read {}: {e}", parts.join(", ")))?;
    let mut staged = root.stage(rel)?;
    ParquetWriter::new(staged.writer())
        .with_compression(ParquetCompression::Zstd(None))
        .with_row_group_size(Some(ROW_GROUP))
        .finish(&mut frame)
        .map_err(|e| anyhow::anyhow!("cannot write {rel}: {e}"))?;
    root.commit(staged)?;
    Ok(frame.height() as u64)
}

/// What a run of snapshots spans, compacted ones by their own spans.
fn span_of(run: &[SnapshotManifest]) -> Span {
    let ids = |m: &SnapshotManifest| match &m.span {
        Some(s) => (s.first.clone(), s.last.clone(), s.received_from.clone(), s.received_to.clone()),
        None => (m.snapshot.clone(), m.snapshot.clone(), m.received_at.clone(), m.received_at.clone()),
    };
    let spans: Vec<_> = run.iter().map(ids).collect();
    let time = |t: &String| chrono::DateTime::parse_from_rfc3339(t).map(|t| t.timestamp_micros()).unwrap_or(i64::MIN);
    let received_from = spans.iter().map(|s| &s.2).min_by_key(|t| time(t)).cloned().unwrap_or_default();
    let received_to = spans.iter().map(|s| &s.3).max_by_key(|t| time(t)).cloned().unwrap_or_default();
    let last_full: Option<FullMark> = run.iter().filter_map(|m| m.full_mark()).max_by(|a, b| a.snapshot.cmp(&b.snapshot));
    // The latest distinct fingerprints, newest kept when there are too many.
    let mut fingerprints: Vec<String> = vec![];
    for m in run.iter().rev() {
        let own = m.fingerprint.iter();
        let inherited = m.span.iter().flat_map(|s| s.fingerprints.iter().rev());
        for f in own.chain(inherited) {
            if fingerprints.len() < KEPT_FINGERPRINTS && !fingerprints.contains(f) {
                fingerprints.push(f.clone());
            }
        }
    }
    fingerprints.reverse();
    Span { first: spans[0].0.clone(), last: spans[spans.len() - 1].1.clone(), received_from, received_to, last_full, fingerprints }
}

/// Deletes snapshots: each one's files first, then its manifest (a manifest
/// never names a file that is gone while it is visible).
fn remove_snapshots(root: &DataRoot, shop: &str, snapshots: &[SnapshotManifest]) -> Result<()> {
    for manifest in snapshots {
        crate::failpoint::hit("compact-remove")?;
        for (_, rel) in manifest.raw_files(shop)? {
            root.delete(&rel)?;
        }
        if let Some(rejected) = &manifest.rejected {
            root.delete(rejected)?;
        }
        root.delete(&manifest_path(shop, &manifest.snapshot))?;
    }
    Ok(())
}

/// Whether a compaction was interrupted (the next one finishes or undoes it).
pub fn interrupted(root: &DataRoot, shop: &str) -> Result<bool> {
    Ok(root.get(&intent_path(shop))?.is_some())
}

/// Finishes a compaction a crash interrupted: its replaced snapshots deleted
/// when it published, else its files removed. What it did, when there was one.
fn finish_interrupted(root: &DataRoot, shop: &str) -> Result<Option<String>> {
    let Some(bytes) = root.get(&intent_path(shop))? else { return Ok(None) };
    let intent: Intent = serde_json::from_slice(&bytes).with_context(|| format!("{}: not a compaction intent", intent_path(shop)))?;
    let all = all_snapshots(root, shop)?;
    let published = all.iter().any(|m| m.snapshot == intent.snapshot);
    let outcome = if published {
        let replaced: Vec<SnapshotManifest> = all.into_iter().filter(|m| intent.replaces.contains(&m.snapshot)).collect();
        remove_snapshots(root, shop, &replaced)?;
        format!("finished compaction {}: removed the {} snapshots it replaced", intent.snapshot, replaced.len())
    } else {
        for entity in RawEntity::ALL {
            root.delete(&format!("{}/{entity}/{}.parquet", raw_dir(shop), intent.snapshot))?;
        }
        root.delete(&super::rejected::rejected_path(shop, &intent.snapshot))?;
        format!("undid compaction {}, interrupted before it published", intent.snapshot)
    };
    root.delete(&intent_path(shop))?;
    tracing::info!("shop {shop}: {outcome}");
    Ok(Some(outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(id: &str, rows: u64) -> SnapshotManifest {
        SnapshotManifest {
            snapshot: id.into(),
            received_at: "2026-01-01T00:00:00Z".into(),
            files: BTreeMap::new(),
            rows: BTreeMap::from([("products".to_string(), rows)]),
            inputs: vec![],
            fingerprint: None,
            full: false,
            started_at: None,
            rejected: None,
            replaces: vec![],
            span: None,
        }
    }

    #[test]
    fn runs_are_consecutive_small_snapshots_cut_by_big_ones_and_by_size() {
        let live = vec![
            manifest("a", 1), manifest("b", 1), manifest("c", SMALL_ROWS), manifest("d", 1),
            manifest("e", 2), manifest("f", 3), manifest("g", SMALL_ROWS), manifest("h", 1),
        ];
        let ids = |runs: Vec<&[SnapshotManifest]>| runs.iter().map(|r| r.iter().map(|m| m.snapshot.as_str()).collect::<String>()).collect::<Vec<_>>();
        assert_eq!(ids(runs_to_merge(&live)), ["ab", "def"]);
        let big = SMALL_ROWS - 1;
        let many: Vec<_> = (0..25).map(|i| manifest(&format!("{i:02}"), big)).collect();
        let runs = runs_to_merge(&many);
        assert!(runs.iter().all(|r| r.iter().map(|m| m.rows["products"]).sum::<u64>() <= MERGED_ROWS), "runs are cut at the size");
        assert_eq!(runs.iter().map(|r| r.len()).sum::<usize>(), 25, "every small snapshot is in a run: {:?}", runs.iter().map(|r| r.len()).collect::<Vec<_>>());
    }

    #[test]
    fn a_compacted_id_sorts_after_what_it_replaces_and_before_the_next_landing() {
        let now = chrono::Utc::now();
        let a = "20261206T120000000000001-0000abcd";
        let next = "20261206T120000000000002-00000001";
        let first = compacted_id(a, now);
        let again = compacted_id(&first, now + chrono::Duration::seconds(1));
        assert!(a < first.as_str() && first < again && again.as_str() < next, "{a} {first} {again} {next}");
        assert!(crate::storage::shop_id(&again).is_ok());
    }
}
