//! `shopfeat status`: whether a shop's last night worked, as checks a cron job
//! can act on — one line each, `ok` / `warn` / `fail`, the number that decided it
//! and the threshold (as Kubernetes conditions read).
//!
//! Checks, from the run history, the current generation, the watermarks and the
//! main tables:
//! - runs: a successful run exists (else fail); the newest run did not fail or die;
//! - freshness: the current generation's age, the watermarks' age, the newest
//!   order's and event's age against now;
//! - completeness: every entity-keyed table has one row per entity (from the last
//!   compute); the share of raw records skipped when landing; line items naming
//!   products the catalog does not know; events in the future (clock skew);
//!   negative prices or quantities; duplicate ids across snapshots that disagree
//!   (landed twice under one `updated_at` with different contents);
//! - change: a table that lost more than a share of its rows since the run before.

use crate::history::{self, RunRecord};
use crate::sinks::generation;
use crate::state::ShopState;
use crate::storage::DataRoot;
use anyhow::Result;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

/// Thresholds (the config file's `[status]`; every field optional).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// The current generation (the features Gorse serves) older than this: warn;
    /// twice this: fail.
    pub generation_age_hours: f64,
    /// A watermark older than this: warn.
    pub watermark_age_hours: f64,
    /// The newest order or event older than this: warn.
    pub data_age_hours: f64,
    /// Share of raw records skipped at the last landing: warn above, fail above 5×.
    pub skipped_share: f64,
    /// Share of rows a table may lose from one run to the next: warn above, fail
    /// above 3×.
    pub shrink_share: f64,
    /// Share of line items naming an unknown product: warn above.
    pub unknown_product_share: f64,
    /// Population stability index of a numeric feature against the generation
    /// before (share change for a categorical one): warn above, fail above 2.5×.
    pub drift: f64,
    /// Inbox files waiting longer than this: warn.
    pub inbox_age_hours: f64,
    /// Small raw snapshots (compaction merges them; runs do once there are more
    /// than `[retention] compact_after`, 64 by default): warn above, fail above
    /// 8× (compaction is off or failing, and every compute reads them all).
    pub small_snapshots: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { generation_age_hours: 36.0, watermark_age_hours: 36.0, data_age_hours: 72.0, skipped_share: 0.01, shrink_share: 0.10, unknown_product_share: 0.01, drift: 0.1, inbox_age_hours: 2.0, small_snapshots: 128.0 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// One check's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub level: Level,
    /// The number (or fact) that decided it.
    pub value: String,
    pub threshold: String,
}

/// A run, as status shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub command: String,
    pub started_at: String,
    pub outcome: String,
    pub error: Option<String>,
}

impl From<&RunRecord> for RunSummary {
    fn from(r: &RunRecord) -> Self {
        RunSummary { run_id: r.run_id.clone(), command: r.command.clone(), started_at: r.started_at.clone(), outcome: r.outcome_now().to_string(), error: r.error.clone() }
    }
}

/// One shop's status.
#[derive(Debug, Clone, Serialize)]
pub struct ShopStatus {
    pub shop: String,
    pub last_success: Option<RunSummary>,
    pub last_failure: Option<RunSummary>,
    pub generation: Option<String>,
    pub generation_published_at: Option<String>,
    pub watermarks: std::collections::BTreeMap<String, String>,
    /// The last export to Gorse: target, when it finished.
    pub last_export: Option<crate::state::GorseExportState>,
    /// What the next export would do now: (rows to send, rows to delete).
    pub export_pending: Option<(u64, u64)>,
    /// Files waiting in the inbox.
    pub inbox_files: Option<usize>,
    /// Compliance requests: waiting (with an inbox), overdue, carried out.
    pub privacy: Privacy,
    /// The raw store per entity: the snapshots holding it, their rows and bytes
    /// (every later compute reads them all).
    pub raw: std::collections::BTreeMap<String, RawStore>,
    /// The feature columns that moved most against the generation before,
    /// largest first (at most [`DRIFTED`]).
    pub drifted: Vec<Drifted>,
    /// The last compute's lifetime-value fit.
    pub lifetime_model: Option<crate::clv::ModelFit>,
    pub checks: Vec<Check>,
}

/// The shop's compliance requests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Privacy {
    pub pending: usize,
    pub overdue: usize,
    pub done: usize,
}

/// Shopify gives an app 30 days to carry out a compliance request; one waiting
/// longer than this fails `status`, leaving days to act.
pub const PRIVACY_OVERDUE_DAYS: f64 = 25.0;

/// Waiting compliance requests warn (the next cycle carries them out); one
/// older than [`PRIVACY_OVERDUE_DAYS`] fails.
fn privacy_check(privacy: &Privacy, oldest_days: f64) -> Check {
    let level = match (privacy.pending, privacy.overdue) {
        (0, _) => Level::Ok,
        (_, 0) => Level::Warn,
        _ => Level::Fail,
    };
    let value = format!("{} waiting (the oldest {oldest_days:.1} days), {} overdue, {} carried out", privacy.pending, privacy.overdue, privacy.done);
    check("privacy_requests", level, value, format!("warn when any waits, fail after {PRIVACY_OVERDUE_DAYS} days (Shopify allows 30)"))
}

/// What the raw store holds of one entity.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RawStore {
    pub snapshots: usize,
    pub rows: u64,
    pub bytes: u64,
}

/// Per raw entity: the committed snapshots that hold it and their rows (from
/// the manifests) and bytes (one listing of the entity's folder).
fn raw_store(root: &DataRoot, shop: &str, manifests: &[crate::land::SnapshotManifest]) -> Result<std::collections::BTreeMap<String, RawStore>> {
    let mut raw: std::collections::BTreeMap<String, RawStore> = Default::default();
    for manifest in manifests {
        for entity in manifest.files.keys() {
            let store = raw.entry(entity.clone()).or_default();
            store.snapshots += 1;
            store.rows += manifest.rows.get(entity).copied().unwrap_or(0);
        }
    }
    for (entity, store) in raw.iter_mut() {
        let committed: std::collections::BTreeSet<&str> = manifests.iter().filter_map(|m| m.files.get(entity)).filter_map(|rel| rel.rsplit('/').next()).collect();
        store.bytes = root.sizes(&format!("{}/{entity}", crate::land::raw_dir(shop)))?.iter().filter(|(name, _)| committed.contains(name.as_str())).map(|(_, bytes)| bytes).sum();
    }
    Ok(raw)
}

impl ShopStatus {
    /// The worst level of the checks.
    pub fn level(&self) -> Level {
        self.checks.iter().map(|c| c.level).max().unwrap_or(Level::Ok)
    }
}

/// Columns kept in [`ShopStatus::drifted`].
pub const DRIFTED: usize = 15;

/// One feature column's drift score (`table.column`) and its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Drifted {
    pub column: String,
    pub score: f64,
    pub level: Level,
}

/// Hours from the RFC 3339 time `t` to `now`.
fn hours_since(t: &str, now: chrono::DateTime<chrono::Utc>) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(t).ok()?;
    Some((now - t.with_timezone(&chrono::Utc)).num_seconds() as f64 / 3600.0)
}

fn check(check: &'static str, level: Level, value: impl Into<String>, threshold: impl Into<String>) -> Check {
    Check { check, level, value: value.into(), threshold: threshold.into() }
}

/// Warn above `warn`, fail above `fail`.
fn graded(name: &'static str, value: f64, warn: f64, fail: f64, shown: String, unit: &str) -> Check {
    let level = if value > fail { Level::Fail } else if value > warn { Level::Warn } else { Level::Ok };
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    check(name, level, shown, format!("warn > {}{unit}, fail > {}{unit}", round(warn), round(fail)))
}

/// The run records a status looks at: the newest (a shop under `serve` has one
/// per cycle, so "the last failure" means the last among these).
pub const RUNS_READ: usize = 1000;

/// The status of `shop` at `now` (with its inbox, when it has one); read again
/// once when a new generation replaced the one being read (`serve` publishes
/// every few seconds).
pub fn status(root: &DataRoot, shop: &str, thresholds: &Thresholds, now: chrono::DateTime<chrono::Utc>, inbox: Option<&std::path::Path>) -> Result<ShopStatus> {
    generation::retry_if_moved(root, &crate::sinks::parquet::features_dir(shop), || status_once(root, shop, thresholds, now, inbox))
}

fn status_once(root: &DataRoot, shop: &str, thresholds: &Thresholds, now: chrono::DateTime<chrono::Utc>, inbox: Option<&std::path::Path>) -> Result<ShopStatus> {
    let runs = history::load_last(root, shop, RUNS_READ)?;
    let ok_runs: Vec<&RunRecord> = runs.iter().filter(|r| r.outcome_now() == "ok").collect();
    let last_success = ok_runs.last().map(|r| RunSummary::from(*r));
    let last_failure = runs.iter().rev().find(|r| matches!(r.outcome_now(), "failed" | "killed")).map(RunSummary::from);
    let pointer = generation::current(root, &crate::sinks::parquet::features_dir(shop))?;
    let state = ShopState::load(root, shop)?;
    let mut checks = vec![];

    // Runs.
    checks.push(match &last_success {
        Some(r) => check("successful_run", Level::Ok, format!("{} {} at {}", r.command, r.run_id, r.started_at), "one exists"),
        None => check("successful_run", Level::Fail, "none", "one exists"),
    });
    if let Some(newest) = runs.last() {
        let outcome = newest.outcome_now();
        let level = match outcome {
            "failed" | "killed" => Level::Warn,
            _ => Level::Ok,
        };
        checks.push(check("newest_run", level, format!("{} {outcome}", newest.command), "not failed or killed"));
    }

    // Freshness.
    let t = thresholds;
    if let Some(p) = &pointer {
        if let Some(age) = hours_since(&p.published_at, now) {
            checks.push(graded("generation_age", age, t.generation_age_hours, 2.0 * t.generation_age_hours, format!("{age:.1} h"), " h"));
        }
    } else {
        checks.push(check("generation_age", Level::Fail, "no generation published", "one exists"));
    }
    if let Some((entity, oldest)) = state.watermarks.iter().filter_map(|(e, w)| Some((e, hours_since(w, now)?))).max_by(|a, b| a.1.total_cmp(&b.1)) {
        let mut c = graded("watermark_age", oldest, t.watermark_age_hours, f64::INFINITY, format!("{oldest:.1} h ({entity})"), " h");
        c.threshold = format!("warn > {} h", t.watermark_age_hours);
        checks.push(c);
    }

    // Completeness and change, from the last compute's report.
    let reports: Vec<serde_json::Value> = ok_runs.iter().filter_map(|r| r.report.as_deref()).filter_map(|r| serde_json::from_str(r).ok()).collect();
    let tables_of = |report: &serde_json::Value| -> Option<Vec<serde_json::Value>> {
        report.get("tables").or_else(|| report.get("compute").and_then(|c| c.get("tables"))).and_then(|t| t.as_array().cloned())
    };
    let computed: Vec<Vec<serde_json::Value>> = reports.iter().filter_map(tables_of).collect();
    let lifetime_model = reports.iter().find_map(lifetime_model_of);
    if let Some(fit) = &lifetime_model {
        checks.push(lifetime_check(fit));
    }
    if let Some(last) = computed.last() {
        let mismatched: Vec<String> = last
            .iter()
            .filter(|t| t["expected"].is_number() && t["expected"] != t["rows"])
            .map(|t| format!("{} {}/{}", t["table"].as_str().unwrap_or("?"), t["rows"], t["expected"]))
            .collect();
        let level = if mismatched.is_empty() { Level::Ok } else { Level::Fail };
        checks.push(check("rows_per_entity", level, if mismatched.is_empty() { "every table".to_string() } else { mismatched.join(", ") }, "one row per entity"));
        if computed.len() >= 2 {
            let before = &computed[computed.len() - 2];
            let (mut worst, mut worst_table) = (0.0f64, String::new());
            for table in last {
                let name = table["table"].as_str().unwrap_or("");
                let now_rows = table["rows"].as_f64().unwrap_or(0.0);
                if let Some(then) = before.iter().find(|b| b["table"] == name).and_then(|b| b["rows"].as_f64()).filter(|r| *r > 0.0) {
                    let lost = (then - now_rows) / then;
                    if lost > worst {
                        (worst, worst_table) = (lost, format!("{name} {then} → {now_rows}"));
                    }
                }
            }
            let shown = if worst_table.is_empty() { "no table shrank".to_string() } else { format!("{:.0}% lost: {worst_table}", 100.0 * worst) };
            checks.push(graded("table_shrink", worst, t.shrink_share, 3.0 * t.shrink_share, shown, ""));
        }
    }
    let landings: Vec<&serde_json::Value> = reports.iter().filter_map(landing_of).collect();
    if let Some(landed) = landings.last() {
        let sum = |k: &str| landed.get(k).and_then(|m| m.as_object()).map(|m| m.values().filter_map(|v| v.as_f64()).fold(0.0, |a, b| a + b)).unwrap_or(0.0);
        let (ok_rows, skipped) = (sum("landed"), sum("skipped"));
        if ok_rows + skipped > 0.0 {
            let share = skipped / (ok_rows + skipped);
            checks.push(graded("skipped_share", share, t.skipped_share, 5.0 * t.skipped_share, format!("{:.2}% ({skipped} of {})", 100.0 * share, ok_rows + skipped), ""));
        }
    }

    // The inbox: files waiting, the oldest's age.
    let mut inbox_files = None;
    // Default: the inbox `serve` keeps for the shop on a local root.
    let serve_inbox = root.local_dir().map(|d| d.join(shop).join("inbox")).filter(|d| d.is_dir());
    let mut privacy = Privacy { done: crate::privacy::audits(root, shop)?.len(), ..Default::default() };
    if let Some(dir) = inbox.map(std::path::Path::to_path_buf).or(serve_inbox) {
        let requests = crate::land::inbox::Inbox::new(&dir).privacy_pending().unwrap_or_default();
        let ages: Vec<f64> = requests.iter().map(|(_, _, _, received)| (now.timestamp_micros() - received) as f64 / 86_400e6).collect();
        privacy.pending = requests.len();
        privacy.overdue = ages.iter().filter(|&&days| days > PRIVACY_OVERDUE_DAYS).count();
        checks.push(privacy_check(&privacy, ages.iter().copied().fold(0.0, f64::max)));
        let waiting: Vec<std::time::SystemTime> = crate::land::inbox::Inbox::new(dir)
            .pending(std::time::Duration::ZERO)
            .unwrap_or_default()
            .iter()
            .filter_map(|f| std::fs::metadata(&f.path).and_then(|m| m.modified()).ok())
            .collect();
        inbox_files = Some(waiting.len());
        let oldest = waiting.iter().filter_map(|t| t.elapsed().ok()).max().map(|d| d.as_secs_f64() / 3600.0).unwrap_or(0.0);
        let mut c = graded("inbox_backlog", oldest, t.inbox_age_hours, f64::INFINITY, format!("{} files, the oldest {oldest:.1} h", waiting.len()), " h");
        c.threshold = format!("warn > {} h", t.inbox_age_hours);
        checks.push(c);
    }

    // Drift against the generation before.
    let mut drifted = vec![];
    if let Some(p) = &pointer {
        if let Some(previous) = p.previous.first() {
            let (check, columns) = drift_check(root, shop, &p.generation, previous, thresholds)?;
            checks.push(check);
            drifted = columns;
        }
    }

    // The data itself.
    let manifests = crate::land::snapshots(root, shop)?;
    let raw = raw_store(root, shop, &manifests)?;
    if !manifests.is_empty() {
        checks.push(compaction_check(root, shop, &manifests, thresholds)?);
        // Unreadable data is a finding, not a reason to say nothing.
        let as_of = pointer.as_ref().and_then(|p| p.as_of.clone());
        let found = crate::normalize::RawTables::open(root, shop).and_then(|raw| {
            let mut found = data_checks(&raw, thresholds, now, as_of.as_deref())?;
            found.push(conflicting_versions(&raw)?);
            Ok(found)
        });
        match found {
            Ok(found) => checks.extend(found),
            Err(e) => checks.push(check("raw_data_readable", Level::Fail, format!("{e:#}"), "every snapshot reads")),
        }
    }
    Ok(ShopStatus {
        shop: shop.to_string(),
        last_success,
        last_failure,
        generation: pointer.as_ref().map(|p| p.generation.clone()),
        generation_published_at: pointer.map(|p| p.published_at),
        export_pending: crate::sinks::gorse::pending(root, shop).unwrap_or(None),
        last_export: state.gorse,
        watermarks: state.watermarks,
        inbox_files,
        privacy,
        raw,
        drifted,
        lifetime_model,
        checks,
    })
}

/// Whether compaction keeps up: the small snapshots every compute reads, and
/// an interrupted compaction (the next one finishes it).
fn compaction_check(root: &DataRoot, shop: &str, manifests: &[crate::land::SnapshotManifest], t: &Thresholds) -> Result<Check> {
    let small = crate::land::compact::small_snapshots(manifests);
    let mut c = graded("raw_compaction", small as f64, t.small_snapshots, t.small_snapshots * 8.0, format!("{small} small snapshots"), "");
    if c.level != Level::Ok {
        c.value.push_str(" (compaction overdue: run `shopfeat compact`, or check [retention] compact_after)");
    }
    if crate::land::compact::interrupted(root, shop)? {
        c.level = c.level.max(Level::Warn);
        c.value.push_str("; a compaction was interrupted (the next one finishes it)");
    }
    Ok(c)
}

/// The lifetime-value fit a compute's report holds (`compute --json` or `run --json`).
fn lifetime_model_of(report: &serde_json::Value) -> Option<crate::clv::ModelFit> {
    let fit = report.get("lifetime_model").or_else(|| report.get("compute").and_then(|c| c.get("lifetime_model")))?;
    serde_json::from_value(fit.clone()).ok()
}

/// A fit that did not converge is worth a look; a shop too small to fit is not.
fn lifetime_check(fit: &crate::clv::ModelFit) -> Check {
    use crate::clv::FitStatus;
    let level = if fit.status == FitStatus::DidNotConverge { Level::Warn } else { Level::Ok };
    let value = format!("{} ({} customers, {} repeat)", fit.status.as_str(), fit.customers, fit.repeat_customers);
    check("lifetime_model", level, value, "warn when the fit does not converge")
}

/// How far the feature columns moved from the generation before: the population
/// stability index over the previous generation's deciles for numeric columns,
/// the largest change of a category's share for text columns; the columns that
/// moved most are named.
fn drift_check(root: &DataRoot, shop: &str, current: &str, previous: &str, t: &Thresholds) -> Result<(Check, Vec<Drifted>)> {
    let moved = drift_scores(root, shop, current, previous)?;
    let grade = |score: f64, shown: String| graded("drift", score, t.drift, 2.5 * t.drift, shown, "");
    let worst = moved.first().map(|m| m.0).unwrap_or(0.0);
    let top: Vec<String> = moved.iter().take(3).map(|(s, c)| format!("{c} {s:.3}")).collect();
    let check = grade(worst, if top.is_empty() { "nothing to compare".into() } else { top.join(", ") });
    let drifted = moved.into_iter().take(DRIFTED).map(|(score, column)| Drifted { level: grade(score, String::new()).level, column, score }).collect();
    Ok((check, drifted))
}

/// Every feature column's drift score from generation `previous` to `current`
/// (`table.column`), largest first.
fn drift_scores(root: &DataRoot, shop: &str, current: &str, previous: &str) -> Result<Vec<(f64, String)>> {
    let base = crate::sinks::parquet::features_dir(shop);
    let read = |generation: &str, table: &str| -> Result<Option<DataFrame>> {
        let rel = format!("{base}/{generation}/{}", crate::sinks::parquet::file_name(table));
        Ok(match root.get(&rel)? {
            Some(bytes) => Some(ParquetReader::new(std::io::Cursor::new(bytes)).finish()?),
            None => None,
        })
    };
    let mut moved: Vec<(f64, String)> = vec![];
    for table in crate::features::catalog() {
        let (Some(now), Some(before)) = (read(current, table.name)?, read(previous, table.name)?) else { continue };
        for f in &table.features {
            let (Ok(a), Ok(b)) = (now.column(f.name), before.column(f.name)) else { continue };
            let score = match f.kind {
                crate::features::registry::Kind::F64 | crate::features::registry::Kind::I64 => psi(&numbers(a)?, &numbers(b)?),
                crate::features::registry::Kind::Str => share_change(a, b)?,
                _ => continue,
            };
            moved.push((score, format!("{}.{}", table.name, f.name)));
        }
    }
    moved.sort_by(|x, y| y.0.total_cmp(&x.0));
    Ok(moved)
}

/// A column's finite values, rounded to 1e-9 (sums and variances differ in their
/// last bits from run to run; that is not drift).
fn numbers(c: &Column) -> Result<Vec<f64>> {
    Ok(c.cast(&DataType::Float64)?.f64()?.iter().flatten().filter(|x| x.is_finite()).map(|x| (x * 1e9).round() / 1e9).collect())
}

/// Fewer values than this say nothing about a distribution.
const MIN_VALUES: usize = 100;

/// PSI of `now` against `before`, over `before`'s deciles (ε for empty buckets);
/// 0 for samples too small to tell.
pub fn psi(now: &[f64], before: &[f64]) -> f64 {
    if now.len() < MIN_VALUES || before.len() < MIN_VALUES {
        return 0.0;
    }
    let mut sorted = before.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = (1..10).map(|i| sorted[(i * sorted.len() / 10).min(sorted.len() - 1)]).collect();
    edges.dedup();
    let shares = |values: &[f64]| -> Vec<f64> {
        let mut counts = vec![0usize; edges.len() + 1];
        for v in values {
            counts[edges.partition_point(|e| e <= v)] += 1;
        }
        counts.iter().map(|c| (*c as f64 / values.len() as f64).max(1e-4)).collect()
    };
    let (a, e) = (shares(now), shares(before));
    a.iter().zip(&e).map(|(a, e)| (a - e) * (a / e).ln()).sum()
}

/// The largest change of one value's share between two text columns.
fn share_change(now: &Column, before: &Column) -> Result<f64> {
    if now.len() < MIN_VALUES || before.len() < MIN_VALUES {
        return Ok(0.0);
    }
    let shares = |c: &Column| -> Result<std::collections::HashMap<String, f64>> {
        let values = c.str()?;
        let n = values.len().max(1) as f64;
        let mut m = std::collections::HashMap::new();
        for v in values.iter() {
            *m.entry(v.unwrap_or("").to_string()).or_insert(0.0) += 1.0 / n;
        }
        Ok(m)
    };
    let (a, b) = (shares(now)?, shares(before)?);
    Ok(a.keys().chain(b.keys()).map(|k| (a.get(k).unwrap_or(&0.0) - b.get(k).unwrap_or(&0.0)).abs()).fold(0.0, f64::max))
}

/// What a run's report says it landed (a `LandReport`): a fetch's `landed`, a
/// run's `land` (itself for files, its `landed` for a fetch).
fn landing_of(report: &serde_json::Value) -> Option<&serde_json::Value> {
    match report.get("land") {
        Some(land) if land["kind"] == "fetch" => land.get("landed"),
        Some(land) => Some(land),
        None => report.get("landed").filter(|l| l.get("skipped").is_some()),
    }
}

/// Freshness and sanity of the main tables (latest versions); `as_of` is the
/// current features' point in time.
fn data_checks(raw: &crate::normalize::RawTables, t: &Thresholds, now: chrono::DateTime<chrono::Utc>, as_of: Option<&str>) -> Result<Vec<Check>> {
    let main = crate::normalize::normalize(raw, None)?;
    let now_us = now.timestamp_micros();
    let products = main.products.clone().select([col("product_id")]);
    let frames = crate::normalize::collect_all(vec![
        main.orders.clone().select([col("created_at").cast(DataType::Int64).max().alias("newest")]),
        main.events.clone().select([
            col("timestamp").cast(DataType::Int64).max().alias("newest"),
            col("timestamp").cast(DataType::Int64).gt(lit(now_us + 5 * 60 * 1_000_000)).sum().cast(DataType::Int64).alias("future"),
        ]),
        main.line_items.clone().filter(col("product_id").is_not_null()).select([
            len().cast(DataType::Int64).alias("lines"),
            col("quantity").lt(lit(0)).or(col("unit_price").lt(lit(0.0))).sum().cast(DataType::Int64).alias("negative"),
        ]),
        main.line_items.clone().filter(col("product_id").is_not_null()).join(products, [col("product_id")], [col("product_id")], JoinArgs::new(JoinType::Anti)).select([len().cast(DataType::Int64).alias("unknown")]),
        main.variants.clone().select([col("price").lt(lit(0.0)).sum().cast(DataType::Int64).alias("negative")]),
        main.orders.clone().filter(col("customer_id").is_not_null()).select([len().cast(DataType::Int64).alias("orders")]),
        main.orders.clone().filter(col("customer_id").is_not_null()).join(main.customers.clone().select([col("customer_id")]), [col("customer_id")], [col("customer_id")], JoinArgs::new(JoinType::Anti)).select([len().cast(DataType::Int64).alias("unknown")]),
        main.events.clone().filter(col("product_id").is_not_null()).select([len().cast(DataType::Int64).alias("events")]),
        main.events.clone().filter(col("product_id").is_not_null()).join(main.products.clone().select([col("product_id")]), [col("product_id")], [col("product_id")], JoinArgs::new(JoinType::Anti)).select([len().cast(DataType::Int64).alias("unknown")]),
    ])?;
    let int = |f: &DataFrame, c: &str| f.column(c).ok().and_then(|c| c.i64().ok().and_then(|c| c.get(0)));
    let mut checks = vec![];
    for (name, frame) in [("newest_order_age", &frames[0]), ("newest_event_age", &frames[1])] {
        match int(frame, "newest") {
            Some(newest) => {
                let age = (now_us - newest) as f64 / 3_600_000_000.0;
                let mut c = graded(name, age, t.data_age_hours, f64::INFINITY, format!("{age:.1} h"), " h");
                c.threshold = format!("warn > {} h", t.data_age_hours);
                checks.push(c);
            }
            None => checks.push(check(name, Level::Warn, "none landed", "some landed")),
        }
    }
    let future = int(&frames[1], "future").unwrap_or(0);
    checks.push(check("events_in_future", if future > 0 { Level::Warn } else { Level::Ok }, future.to_string(), "0 (more than 5 min ahead of now)"));
    let negative = int(&frames[2], "negative").unwrap_or(0) + int(&frames[4], "negative").unwrap_or(0);
    checks.push(check("negative_prices_or_quantities", if negative > 0 { Level::Warn } else { Level::Ok }, negative.to_string(), "0"));
    let mut unknown_share = |name: &'static str, total: Option<i64>, unknown: Option<i64>| {
        let (total, unknown) = (total.unwrap_or(0), unknown.unwrap_or(0));
        if total > 0 {
            let share = unknown as f64 / total as f64;
            let mut c = graded(name, share, t.unknown_product_share, f64::INFINITY, format!("{:.2}% ({unknown} of {total})", 100.0 * share), "");
            c.threshold = format!("warn > {}", t.unknown_product_share);
            checks.push(c);
        }
    };
    unknown_share("lines_of_unknown_products", int(&frames[2], "lines"), int(&frames[3], "unknown"));
    unknown_share("orders_of_unknown_customers", int(&frames[5], "orders"), int(&frames[6], "unknown"));
    unknown_share("events_of_unknown_products", int(&frames[7], "events"), int(&frames[8], "unknown"));
    // The features' T against the newest data: a run computing at a stale T.
    let newest = [int(&frames[0], "newest"), int(&frames[1], "newest")].into_iter().flatten().max();
    if let (Some(newest), Some(t_us)) = (newest, as_of.and_then(|a| crate::time::parse_time(a).ok())) {
        let behind = (newest - t_us) as f64 / 3_600_000_000.0;
        let mut c = graded("features_behind_data", behind, t.generation_age_hours, f64::INFINITY, format!("{behind:.1} h"), " h");
        c.threshold = format!("warn > {} h (newest order or event after the features' as_of)", t.generation_age_hours);
        checks.push(c);
    }
    Ok(checks)
}

/// Duplicate ids across snapshots that disagree: the same order, customer or
/// collection landed in two snapshots in the same shape (bulk or webhook) with
/// the same `updated_at` but different content. Re-landing an unchanged version
/// is normal (incremental fetches overlap); two contents under one `updated_at`
/// mean the source is inconsistent, and normalization can only keep the later.
/// (Products are left out: their inventory changes without `updatedAt`.)
fn conflicting_versions(raw: &crate::normalize::RawTables) -> Result<Check> {
    use crate::vocabulary::RawEntity;
    let mut found = vec![];
    for (entity, id) in [(RawEntity::Orders, "order_id"), (RawEntity::Customers, "customer_id"), (RawEntity::Collections, "collection_id")] {
        let conflicts = raw
            .scan(entity)?
            .filter(col("deleted").fill_null(lit(false)).not().and(col("updated_at").is_not_null()))
            .group_by([col(id), col("updated_at"), col("format")])
            .agg([col("record").n_unique().alias("contents"), col("snapshot").n_unique().alias("snapshots")])
            .filter(col("contents").gt(lit(1)).and(col("snapshots").gt(lit(1))))
            .select([col(id).n_unique().cast(DataType::Int64).alias("ids")])
            .collect()?;
        let n = conflicts.column("ids")?.i64()?.get(0).unwrap_or(0);
        if n > 0 {
            found.push(format!("{} {n}", entity.name()));
        }
    }
    Ok(if found.is_empty() {
        check("conflicting_versions", Level::Ok, "0", "0 ids with two contents under one updated_at")
    } else {
        check("conflicting_versions", Level::Warn, found.join(", "), "0 ids with two contents under one updated_at")
    })
}

/// The shops under a root: folders holding snapshots or run records.
pub fn shops(root: &DataRoot) -> Result<Vec<String>> {
    let mut shops = vec![];
    for name in root.subdirs("")? {
        if crate::storage::shop_id(&name).is_ok() && (!root.subdirs(&format!("{name}/raw"))?.is_empty() || !root.list(&history::runs_dir(&name))?.is_empty()) {
            shops.push(name);
        }
    }
    Ok(shops)
}
