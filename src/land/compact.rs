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
//! Crash-safe publishing, under the shop's lock ([`rewrite`], which redaction
//! shares):
//! 1. an intent `raw/_rewrite.json` names the new snapshots and those each
//!    replaces, uncommitted: readers ignore the snapshots it names;
//! 2. the new snapshots' files are written and committed, then their manifests;
//! 3. the intent is committed (one write) — readers saw the old set until now
//!    and see the new one from now on (a new manifest's `replaces` hides the old);
//! 4. the replaced snapshots' files, then their manifests, are deleted;
//! 5. the intent is removed.
//!
//! A compaction that finds an intent first finishes it: step 4 when it was
//! committed, else it removes step 2's files and manifests. Nothing else needs
//! a walk of the shop's tree.

use super::snapshot::{all_snapshots, raw_dir, FullMark, Span, SnapshotManifest, KEPT_FINGERPRINTS};
use crate::storage::DataRoot;
use crate::vocabulary::RawEntity;
use anyhow::{Context, Result};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A snapshot with fewer rows than this is small: compaction merges it.
pub const SMALL_ROWS: u64 = 100_000;
/// A merged snapshot stops growing at about this many rows: one entity's rows
/// are held in memory while they are sorted, and a raw row keeps its record's
/// whole JSON text (a product's can be kilobytes).
pub const MERGED_ROWS: u64 = 250_000;
/// Rows per row group of a compacted file: small enough that a reader looking
/// for a few ids skips most of a file by its statistics.
pub const ROW_GROUP: usize = 16 * 1024;
/// When compaction runs and what it keeps (the config file's `[retention]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Small snapshots a shop may hold before a run compacts them (0: never).
    pub after: usize,
    /// Drop versions superseded more than this many days ago (default: none).
    pub history_days: Option<u32>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { after: 64, history_days: None }
    }
}

impl Policy {
    /// No automatic compaction.
    pub fn never() -> Policy {
        Policy { after: 0, history_days: None }
    }
}

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

/// A rewrite of snapshots in progress (a compaction, a redaction): the new
/// snapshots and those each replaces, and whether the switch happened.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Intent {
    pub what: String,
    pub snapshots: Vec<Rewritten>,
    pub committed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Rewritten {
    pub snapshot: String,
    pub replaces: Vec<String>,
}

fn intent_path(shop: &str) -> String {
    format!("{}/_rewrite.json", raw_dir(shop))
}

/// The rewrite in progress, when there is one.
pub(crate) fn intent(root: &DataRoot, shop: &str) -> Result<Option<Intent>> {
    match root.get(&intent_path(shop))? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("{}: not a rewrite intent", intent_path(shop)))?)),
        None => Ok(None),
    }
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

/// Compacts `shop` when it holds more than `policy.after` small snapshots
/// (`after` 0: never). The caller holds the shop's lock.
pub fn compact_if_due(root: &DataRoot, shop: &str, policy: &Policy) -> Result<Option<CompactReport>> {
    if policy.after == 0 || small_snapshots(&super::snapshots(root, shop)?) <= policy.after {
        return Ok(None);
    }
    compact(root, shop, policy).map(Some)
}

/// Merges every run of consecutive small snapshots of `shop` into one snapshot
/// (a run is cut at [`MERGED_ROWS`]). The caller holds the shop's lock.
pub fn compact(root: &DataRoot, shop: &str, policy: &Policy) -> Result<CompactReport> {
    let mut report = CompactReport { recovered: finish_interrupted(root, shop)?, ..Default::default() };
    let live = super::snapshots(root, shop)?;
    report.snapshots_before = live.len();
    let now = chrono::Utc::now();
    let horizon = policy.history_days.map(|days| (now - chrono::Duration::days(i64::from(days))).timestamp_micros());
    for run in runs_to_merge(&live) {
        let merged = merge(root, shop, run, horizon)?;
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

/// Merges `run` into one snapshot, sorted for pruning; with a `horizon` (µs),
/// versions superseded at or before it are left out (see [`superseded`]).
fn merge(root: &DataRoot, shop: &str, run: &[SnapshotManifest], horizon: Option<i64>) -> Result<Merged> {
    // The (snapshot, file, id) of parent versions left out, whose children go with them.
    let mut dropped_parents: BTreeMap<RawEntity, LazyFrame> = BTreeMap::new();
    let mut rows = |entity: RawEntity, merged: LazyFrame| -> Result<LazyFrame> {
        let mut merged = match sort_keys(entity) {
            Some(keys) => {
                let n = keys.len();
                merged.sort_by_exprs(keys, SortMultipleOptions::default().with_order_descending_multi(vec![false; n]).with_maintain_order(true))
            }
            None => merged,
        };
        if let Some(horizon) = horizon {
            if let Some((id, lists)) = versioned(entity) {
                let (kept, dropped) = superseded(merged, id, lists, horizon)?;
                dropped_parents.insert(entity, dropped);
                merged = kept;
            } else if let Some((parent, id)) = parent_of(entity) {
                if let Some(dropped) = dropped_parents.get(&parent) {
                    let on = [col("snapshot"), col("file"), col(id)];
                    let mut anti = JoinArgs::new(JoinType::Anti);
                    anti.maintain_order = MaintainOrderJoin::Left;
                    merged = merged.join(dropped.clone(), on.clone(), on, anti);
                }
            }
        }
        Ok(merged)
    };
    let mut written = rewrite(root, shop, "compaction", &[run], &mut rows, &mut Ok, horizon)?;
    Ok(written.pop().expect("one run, one snapshot"))
}

/// What a rewrite keeps of a raw entity's rows, entity by entity in
/// [`RawEntity::ALL`]'s order (parents before their children)…
pub(crate) type RowsFn<'a> = dyn FnMut(RawEntity, LazyFrame) -> Result<LazyFrame> + 'a;
/// … and of the rejected records.
pub(crate) type RejectedFn<'a> = dyn FnMut(LazyFrame) -> Result<LazyFrame> + 'a;

/// Rewrites snapshots, all at once or not at all: each of `runs` becomes one
/// new snapshot holding its rows (concatenated in order, then through `rows`
/// per entity and `rejected` for the rejected records), and replaces it. With a
/// `history_from` (µs), the new snapshots record that versions superseded
/// before it were dropped.
///
/// Readers see the old snapshots until the intent is committed (one write),
/// the new ones from then on: an uncommitted intent hides the snapshots it
/// names. The caller holds the shop's lock.
pub(crate) fn rewrite(root: &DataRoot, shop: &str, what: &str, runs: &[&[SnapshotManifest]], rows: &mut RowsFn, rejected: &mut RejectedFn, history_from: Option<i64>) -> Result<Vec<Merged>> {
    let now = chrono::Utc::now();
    let mut intent = Intent { what: what.to_string(), snapshots: vec![], committed: false };
    for (i, run) in runs.iter().enumerate() {
        let last = run.last().expect("a run has snapshots");
        let snapshot = compacted_id(&last.snapshot, now + chrono::Duration::microseconds(i as i64));
        intent.snapshots.push(Rewritten { snapshot, replaces: run.iter().map(|m| m.snapshot.clone()).collect() });
    }
    root.put(&intent_path(shop), &serde_json::to_vec_pretty(&intent)?)?;

    let mut merged = vec![];
    for (run, new) in runs.iter().zip(&intent.snapshots) {
        let manifest = write_snapshot(root, shop, run, &new.snapshot, rows, rejected, history_from)?;
        merged.push(Merged { snapshot: new.snapshot.clone(), replaced: run.len(), rows: manifest.rows.values().sum() });
    }
    // A run that lost its lock must not switch what whoever holds it now reads.
    crate::lock::ensure_held(root, shop)?;
    crate::failpoint::hit("compact-publish")?;
    intent.committed = true;
    root.put(&intent_path(shop), &serde_json::to_vec_pretty(&intent)?)?;
    let replaced: Vec<SnapshotManifest> = runs.iter().flat_map(|run| run.iter().cloned()).collect();
    remove_snapshots(root, shop, &replaced)?;
    root.delete(&intent_path(shop))?;
    Ok(merged)
}

/// Writes one new snapshot of `run`'s rows: its files, then its manifest
/// (hidden by the uncommitted intent that names it).
fn write_snapshot(root: &DataRoot, shop: &str, run: &[SnapshotManifest], snapshot: &str, rows: &mut RowsFn, rejected: &mut RejectedFn, history_from: Option<i64>) -> Result<SnapshotManifest> {
    let mut files = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for entity in RawEntity::ALL {
        let parts: Vec<String> = run.iter().filter_map(|m| m.files.get(entity.name()).cloned()).collect();
        if parts.is_empty() {
            continue;
        }
        let kept = rows(entity, concatenated(root, &parts)?)?;
        let rel = format!("{}/{entity}/{snapshot}.parquet", raw_dir(shop));
        counts.insert(entity.to_string(), write(root, kept, &rel)?);
        files.insert(entity.to_string(), rel);
    }
    let rejected_parts: Vec<String> = run.iter().filter_map(|m| m.rejected.clone()).collect();
    let rejected = match rejected_parts.is_empty() {
        true => None,
        false => {
            let rel = super::rejected::rejected_path(shop, snapshot);
            write(root, rejected(concatenated(root, &rejected_parts)?)?, &rel)?;
            Some(rel)
        }
    };
    let mut span = span_of(run);
    let time = |t: Option<i64>| t.and_then(chrono::DateTime::from_timestamp_micros).map(|t| t.to_rfc3339());
    span.history_from = time(span.history_from.as_deref().and_then(super::snapshot::time_us).max(history_from));
    let manifest = SnapshotManifest {
        snapshot: snapshot.to_string(),
        received_at: span.received_to.clone(),
        files,
        rows: counts,
        inputs: vec![],
        fingerprint: None,
        full: false,
        started_at: None,
        rejected,
        replaces: run.iter().map(|m| m.snapshot.clone()).collect(),
        span: Some(span),
    };
    root.put(&manifest_path(shop, snapshot), &serde_json::to_vec_pretty(&manifest)?)?;
    Ok(manifest)
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

/// The raw entities that have versions, with their id and whether a version's
/// bulk line also carries the entity's list of collection memberships.
fn versioned(entity: RawEntity) -> Option<(&'static str, bool)> {
    match entity {
        RawEntity::Products => Some(("product_id", true)),
        RawEntity::Collections => Some(("collection_id", true)),
        RawEntity::Customers => Some(("customer_id", false)),
        RawEntity::Orders => Some(("order_id", false)),
        _ => None,
    }
}

/// The raw entities that travel with a version of their parent: the parent and
/// the column naming it.
fn parent_of(entity: RawEntity) -> Option<(RawEntity, &'static str)> {
    match entity {
        RawEntity::Variants | RawEntity::ProductMedia => Some((RawEntity::Products, "product_id")),
        RawEntity::LineItems => Some((RawEntity::Orders, "order_id")),
        _ => None,
    }
}

/// Splits versions (sorted by id, then landing order) into those kept and the
/// `(snapshot, file, id)` of those left out: a version is left out when a later
/// one of the same id (a strictly later `updated_at`) is at or before `horizon`,
/// so no `--as-of` at or after the horizon can choose it (normalization takes
/// the latest version at or before `as_of`). Kept whatever their time:
/// deletions (they apply at any time), versions tied with the one that
/// supersedes them (their children are unioned with its), and, where `lists`,
/// each id's latest bulk line (its list of collection memberships is the one
/// normalization reads).
fn superseded(versions: LazyFrame, id: &str, lists: bool, horizon: i64) -> Result<(LazyFrame, LazyFrame)> {
    let time = col("updated_at").cast(DataType::Int64).fill_null(lit(i64::MIN));
    let live = col("deleted").eq(lit(true)).not().fill_null(lit(true));
    let base = when(live.clone().and(time.clone().lt_eq(lit(horizon)))).then(time.clone()).otherwise(lit(NULL).cast(DataType::Int64)).max().over([col(id)])?;
    let mut keep = live.not().or(base.clone().is_null()).or(time.gt_eq(base));
    if lists {
        let bulk = col("source").eq(lit("bulk"));
        let last_bulk = when(bulk.clone()).then(col("_row")).otherwise(lit(NULL).cast(DataType::UInt32)).max().over([col(id)])?;
        keep = keep.or(bulk.and(col("_row").eq(last_bulk)));
    }
    let marked = versions.with_row_index("_row", None).with_column(keep.alias("_keep")).collect()?.lazy();
    let kept = marked.clone().filter(col("_keep")).drop(cols(["_row", "_keep"]));
    let dropped = marked.filter(col("_keep").not()).select([col("snapshot"), col("file"), col(id)]).unique(None, UniqueKeepStrategy::Any);
    // A file whose parent versions are all left out loses its children; one that
    // keeps any version of that parent keeps them.
    let on = [col("snapshot"), col("file"), col(id)];
    let kept_keys = kept.clone().select(on.clone());
    let dropped = dropped.join(kept_keys, on.clone(), on, JoinArgs::new(JoinType::Anti));
    Ok((kept, dropped.collect()?.lazy()))
}

/// The rows of `parts`, in order.
fn concatenated(root: &DataRoot, parts: &[String]) -> Result<LazyFrame> {
    let paths = parts.iter().map(|p| root.local_copy(p)).collect::<Result<Vec<_>>>()?;
    crate::normalize::scan_parquet(paths.iter().map(|p| p.as_path()))
}

/// Writes `rows` as one Parquet file at `rel`, committed whole; its row count.
fn write(root: &DataRoot, rows: LazyFrame, rel: &str) -> Result<u64> {
    let mut frame = rows.collect().map_err(|e| anyhow::anyhow!("cannot read the snapshots rewritten into {rel}: {e}"))?;
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
    // History dropped from any of them is dropped from the whole.
    let history_from = run.iter().filter_map(|m| m.history_from()).max().and_then(chrono::DateTime::from_timestamp_micros).map(|t| t.to_rfc3339());
    Span { first: spans[0].0.clone(), last: spans[spans.len() - 1].1.clone(), received_from, received_to, last_full, fingerprints, history_from }
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

/// Whether a rewrite (compaction or redaction) was interrupted (the next
/// compaction finishes or undoes it).
pub fn interrupted(root: &DataRoot, shop: &str) -> Result<bool> {
    Ok(root.get(&intent_path(shop))?.is_some())
}

/// Finishes a rewrite a crash interrupted: the snapshots it replaced deleted
/// when it was committed, else its new snapshots removed. What it did, when
/// there was one.
pub(crate) fn finish_interrupted(root: &DataRoot, shop: &str) -> Result<Option<String>> {
    let Some(intent) = intent(root, shop)? else { return Ok(None) };
    let all = all_snapshots(root, shop)?;
    let named = |ids: Vec<&String>| -> Vec<SnapshotManifest> { all.iter().filter(|m| ids.contains(&&m.snapshot)).cloned().collect() };
    let outcome = if intent.committed {
        let replaced = named(intent.snapshots.iter().flat_map(|s| &s.replaces).collect());
        remove_snapshots(root, shop, &replaced)?;
        format!("finished the {} of {} snapshots: removed the {} it replaced", intent.what, intent.snapshots.len(), replaced.len())
    } else {
        // Files first (a manifest may not have been written), then manifests.
        for new in &intent.snapshots {
            for entity in RawEntity::ALL {
                root.delete(&format!("{}/{entity}/{}.parquet", raw_dir(shop), new.snapshot))?;
            }
            root.delete(&super::rejected::rejected_path(shop, &new.snapshot))?;
            root.delete(&manifest_path(shop, &new.snapshot))?;
        }
        format!("undid the {} of {} snapshots, interrupted before it was committed", intent.what, intent.snapshots.len())
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
        let big = MERGED_ROWS / 5;
        assert!(big < SMALL_ROWS);
        let many: Vec<_> = (0..26).map(|i| manifest(&format!("{i:02}"), big)).collect();
        let runs = runs_to_merge(&many);
        assert!(runs.iter().all(|r| r.iter().map(|m| m.rows["products"]).sum::<u64>() <= MERGED_ROWS), "runs are cut at the size");
        assert_eq!(runs.iter().map(|r| r.len()).collect::<Vec<_>>(), [5, 5, 5, 5, 5], "the 26th waits for company");
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
