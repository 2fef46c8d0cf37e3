//! `shopfeat report`: one self-contained HTML page per shop — what an operator
//! reads in the morning. It opens offline: the CSS is inline, the charts are
//! inline SVG (plotters), there is no script, font or image to fetch.
//!
//! Sections: the checks of `shopfeat status`; the run history (time per stage
//! and peak memory per run); rows per table against the entities; histograms of
//! the main numeric features; nulls and zeros per column; top products by
//! revenue; top pairs by lift; customers by RFM segment; sessions by traffic
//! source and device; drift against the generation before.

mod charts;

use crate::features::registry::Kind;
use crate::history::RunRecord;
use crate::sinks::{generation, parquet::features_dir, parquet::file_name};
use crate::status::{self, Check, Thresholds};
use crate::storage::DataRoot;
use anyhow::Result;
use polars::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;

/// Runs shown in the history.
const RUNS: usize = 30;
/// Rows in the top-N tables.
const TOP: usize = 10;
/// The numeric features drawn as histograms: (table, column).
const HISTOGRAMS: &[(&str, &str)] = &[
    ("product_features", "total_revenue"),
    ("product_features", "conversion_rate"),
    ("user_features", "total_spent"),
    ("user_features", "total_purchases"),
    ("session_features", "duration_seconds"),
    ("session_features", "event_count"),
    ("interaction_features", "affinity_score"),
    ("product_pair_features", "lift"),
];

/// Where `run` and `report` put the page by default: beside the features.
pub fn default_path(shop: &str) -> String {
    format!("{}/report.html", features_dir(shop))
}

/// The report of `shop` as it stands at `now`.
pub fn render(root: &DataRoot, shop: &str, thresholds: &Thresholds, now: chrono::DateTime<chrono::Utc>) -> Result<String> {
    let page = Page::gather(root, shop, thresholds, now)?;
    let mut env = minijinja::Environment::new();
    // A `.html` name turns on HTML escaping of every value; the SVGs are marked safe.
    env.add_template("report.html", include_str!("report.html"))?;
    Ok(env.get_template("report.html")?.render(&page)?)
}

/// Everything the template shows.
#[derive(Serialize)]
struct Page {
    shop: String,
    generated_at: String,
    level: &'static str,
    generation: Option<String>,
    as_of: Option<String>,
    checks: Vec<Check>,
    runs: Vec<RunRow>,
    time_chart: Option<String>,
    memory_chart: Option<String>,
    tables: Vec<TableRow>,
    histograms: Vec<Chart>,
    quality: Vec<TableQuality>,
    top_products: Vec<BTreeMap<&'static str, String>>,
    top_pairs: Vec<BTreeMap<&'static str, String>>,
    segments: Vec<Share>,
    segment_chart: Option<String>,
    sources: Vec<Share>,
    source_chart: Option<String>,
    devices: Vec<Share>,
    device_chart: Option<String>,
    drift: Vec<Drift>,
    drift_against: Option<String>,
    /// The last `shopfeat evaluate`, when there was one.
    evaluation: Option<EvaluationView>,
}

/// The last evaluation, as the page shows it.
#[derive(Serialize)]
struct EvaluationView {
    evaluated_at: String,
    as_of: String,
    horizon_days: u32,
    k: usize,
    customers: usize,
    rows: Vec<BTreeMap<&'static str, String>>,
}

impl EvaluationView {
    fn of(e: crate::evaluate::Evaluation) -> EvaluationView {
        let estimate = |x: &crate::evaluate::metrics::Estimate| format!("{:.3} [{:.3}, {:.3}]", x.mean, x.low, x.high);
        let rows = e
            .sources
            .iter()
            .map(|s| BTreeMap::from([("source", s.source.clone()), ("hit_rate", estimate(&s.hit_rate)), ("recall", estimate(&s.recall)), ("ndcg", estimate(&s.ndcg)), ("coverage", format!("{:.1}%", 100.0 * s.coverage))]))
            .collect();
        EvaluationView { evaluated_at: e.evaluated_at, as_of: e.as_of, horizon_days: e.horizon_days, k: e.k, customers: e.customers, rows }
    }
}

#[derive(Serialize)]
struct RunRow {
    started_at: String,
    command: String,
    outcome: String,
    seconds: String,
    peak_mib: String,
    stages: String,
    error: Option<String>,
}

#[derive(Serialize)]
struct TableRow {
    table: &'static str,
    rows: Option<usize>,
    expected: Option<usize>,
    ok: bool,
}

#[derive(Serialize)]
struct Chart {
    title: String,
    svg: String,
}

#[derive(Serialize)]
struct TableQuality {
    table: &'static str,
    rows: usize,
    columns: Vec<ColumnQuality>,
}

#[derive(Serialize)]
struct ColumnQuality {
    column: String,
    null_pct: String,
    zero_pct: String,
}

#[derive(Serialize)]
struct Share {
    name: String,
    count: usize,
    /// A sum that goes with the count (customers: their spend), when there is one.
    total: Option<String>,
}

#[derive(Serialize)]
struct Drift {
    column: String,
    score: String,
    level: &'static str,
}

impl Page {
    /// The page's data, read again once when a new generation replaced the one
    /// being read.
    fn gather(root: &DataRoot, shop: &str, thresholds: &Thresholds, now: chrono::DateTime<chrono::Utc>) -> Result<Page> {
        generation::retry_if_moved(root, &features_dir(shop), || Page::gather_once(root, shop, thresholds, now))
    }

    fn gather_once(root: &DataRoot, shop: &str, thresholds: &Thresholds, now: chrono::DateTime<chrono::Utc>) -> Result<Page> {
        let status = status::status(root, shop, thresholds, now, None)?;
        let pointer = generation::current(root, &features_dir(shop))?;
        let frames = match &pointer {
            Some(p) => read_generation(root, shop, &p.generation)?,
            None => BTreeMap::new(),
        };
        let records = crate::history::load_last(root, shop, RUNS)?;
        let (time_chart, memory_chart) = run_charts(&records)?;
        let (segments, segment_chart) = shares(frames.get("user_features"), "rfm_segment", Some("total_spent"), "customers by RFM segment")?;
        let (sources, source_chart) = shares(frames.get("session_features"), "traffic_source", None, "sessions by traffic source")?;
        let (devices, device_chart) = shares(frames.get("session_features"), "device_type", None, "sessions by device")?;
        let previous = pointer.as_ref().and_then(|p| p.previous.first().cloned());
        let drift = status.drifted.iter().map(|d| Drift { column: d.column.clone(), score: format!("{:.3}", d.score), level: d.level.name() }).collect();
        Ok(Page {
            shop: shop.to_string(),
            generated_at: crate::time::now_rfc3339(),
            level: status.level().name(),
            generation: pointer.as_ref().map(|p| p.generation.clone()),
            as_of: pointer.as_ref().and_then(|p| p.as_of.clone()),
            checks: status.checks,
            runs: records.iter().rev().map(run_row).collect(),
            time_chart,
            memory_chart,
            tables: table_rows(&frames, &records),
            histograms: histograms(&frames)?,
            quality: frames.iter().map(|(table, frame)| quality(table, frame)).collect::<Result<_>>()?,
            top_products: top(frames.get("product_features"), "total_revenue", &["product_id", "title", "total_revenue", "total_purchases", "total_units_sold", "refund_rate"])?,
            top_pairs: top(pairs_seen_twice(frames.get("product_pair_features"))?.as_ref(), "lift", &["product_id_a", "product_id_b", "lift", "co_purchase_count", "support"])?,
            segments,
            segment_chart,
            sources,
            source_chart,
            devices,
            device_chart,
            drift,
            drift_against: previous,
            evaluation: crate::evaluate::last(root, shop)?.map(EvaluationView::of),
        })
    }
}

/// The feature tables of one generation, by name (the ones that were written).
fn read_generation(root: &DataRoot, shop: &str, generation: &str) -> Result<BTreeMap<&'static str, DataFrame>> {
    let mut frames = BTreeMap::new();
    for table in crate::features::catalog() {
        let rel = format!("{}/{generation}/{}", features_dir(shop), file_name(table.name));
        if let Some(bytes) = root.get(&rel)? {
            frames.insert(table.name, ParquetReader::new(std::io::Cursor::new(bytes)).finish().map_err(|e| anyhow::anyhow!("reading {rel}: {e}"))?);
        }
    }
    Ok(frames)
}

/// The stages of a run's report (every `{stage, seconds, peak_rss_bytes}` in it).
fn stages(record: &RunRecord) -> Vec<(String, f64, Option<u64>)> {
    fn walk(v: &serde_json::Value, out: &mut Vec<(String, f64, Option<u64>)>) {
        match v {
            serde_json::Value::Object(m) => {
                if let (Some(stage), Some(seconds)) = (m.get("stage").and_then(|s| s.as_str()), m.get("seconds").and_then(|s| s.as_f64())) {
                    out.push((stage.to_string(), seconds, m.get("peak_rss_bytes").and_then(serde_json::Value::as_u64)));
                } else {
                    m.values().for_each(|v| walk(v, out));
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = vec![];
    if let Some(report) = record.report.as_deref().and_then(|r| serde_json::from_str(r).ok()) {
        walk(&report, &mut out);
    }
    out
}

fn run_row(record: &RunRecord) -> RunRow {
    let stages = stages(record);
    let peak = stages.iter().filter_map(|s| s.2).max();
    RunRow {
        started_at: record.started_at.clone(),
        command: record.command.clone(),
        outcome: record.outcome_now().to_string(),
        seconds: record.seconds.map(|s| format!("{s:.2}")).unwrap_or_default(),
        peak_mib: peak.map(|p| format!("{:.0}", p as f64 / 1048576.0)).unwrap_or_default(),
        stages: stages.iter().map(|(s, secs, _)| format!("{s} {secs:.2}s")).collect::<Vec<_>>().join(", "),
        error: record.error.clone(),
    }
}

/// Time per stage (stacked) and peak memory, one bar per run, oldest left.
fn run_charts(records: &[RunRecord]) -> Result<(Option<String>, Option<String>)> {
    if records.is_empty() {
        return Ok((None, None));
    }
    let labels: Vec<String> = records.iter().map(|r| r.started_at.get(5..16).unwrap_or(&r.started_at).replace('T', " ")).collect();
    let per_run: Vec<Vec<(String, f64, Option<u64>)>> = records.iter().map(stages).collect();
    let mut names: Vec<String> = vec![];
    for (stage, _, _) in per_run.iter().flatten() {
        if !names.contains(stage) {
            names.push(stage.clone());
        }
    }
    let series: Vec<(String, Vec<f64>)> = names.iter().map(|name| (name.clone(), per_run.iter().map(|run| run.iter().filter(|s| &s.0 == name).map(|s| s.1).sum()).collect())).collect();
    let peaks: Vec<f64> = per_run.iter().map(|run| run.iter().filter_map(|s| s.2).max().unwrap_or(0) as f64 / 1048576.0).collect();
    Ok((Some(charts::stacked_bars("time per stage", &labels, &series, "seconds")?), Some(charts::bars("peak memory", &labels, &peaks, "MiB")?)))
}

/// Rows of each table of the current generation, against the entities the last
/// run that computed it counted.
fn table_rows(frames: &BTreeMap<&'static str, DataFrame>, records: &[RunRecord]) -> Vec<TableRow> {
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    let last_compute = records.iter().rev().filter(|r| r.outcome == "ok").filter_map(|r| r.report.as_deref()).filter_map(|r| serde_json::from_str::<serde_json::Value>(r).ok()).find_map(|r| r.pointer("/compute/tables").or(r.get("tables")).cloned());
    for t in last_compute.as_ref().and_then(|t| t.as_array()).into_iter().flatten() {
        if let (Some(name), Some(e)) = (t["table"].as_str(), t["expected"].as_u64()) {
            expected.insert(name.to_string(), e as usize);
        }
    }
    crate::features::catalog()
        .into_iter()
        .map(|t| {
            let rows = frames.get(t.name).map(DataFrame::height);
            let expected = expected.get(t.name).copied();
            TableRow { table: t.name, rows, expected, ok: rows.is_some() && (expected.is_none() || expected == rows) }
        })
        .collect()
}

fn numbers(frame: &DataFrame, column: &str) -> Result<Vec<f64>> {
    Ok(frame.column(column)?.cast(&DataType::Float64)?.f64()?.iter().flatten().collect())
}

fn histograms(frames: &BTreeMap<&'static str, DataFrame>) -> Result<Vec<Chart>> {
    let mut out = vec![];
    for (table, column) in HISTOGRAMS {
        let Some(frame) = frames.get(table) else { continue };
        let title = format!("{table}.{column}");
        out.push(Chart { svg: charts::histogram(&title, &numbers(frame, column)?, 20)?, title });
    }
    Ok(out)
}

/// The share of nulls, and of zeros for numeric columns, per feature column.
fn quality(table: &'static str, frame: &DataFrame) -> Result<TableQuality> {
    let kinds: BTreeMap<&str, Kind> = crate::features::catalog().into_iter().filter(|t| t.name == table).flat_map(|t| t.features.into_iter().map(|f| (f.name, f.kind))).collect();
    let rows = frame.height();
    let pct = |n: usize| if rows == 0 { "–".to_string() } else { format!("{:.1}", 100.0 * n as f64 / rows as f64) };
    let mut columns = vec![];
    for (name, kind) in &kinds {
        let Ok(c) = frame.column(name) else { continue };
        let zeros = match kind {
            Kind::F64 | Kind::I64 => Some(c.cast(&DataType::Float64)?.f64()?.iter().filter(|v| *v == Some(0.0)).count()),
            _ => None,
        };
        columns.push(ColumnQuality { column: name.to_string(), null_pct: pct(c.null_count()), zero_pct: zeros.map(pct).unwrap_or_default() });
    }
    Ok(TableQuality { table, rows, columns })
}

/// The `TOP` rows of `frame` with the largest `by`, as text per column.
fn top(frame: Option<&DataFrame>, by: &str, columns: &[&'static str]) -> Result<Vec<BTreeMap<&'static str, String>>> {
    let Some(frame) = frame else { return Ok(vec![]) };
    let sorted = frame.sort([by], SortMultipleOptions::default().with_order_descending(true).with_nulls_last(true))?.head(Some(TOP));
    let mut rows = vec![BTreeMap::new(); sorted.height()];
    for name in columns {
        let c = sorted.column(name)?.as_materialized_series().clone();
        for (i, row) in rows.iter_mut().enumerate() {
            let text = match c.get(i)? {
                AnyValue::Null => String::new(),
                AnyValue::Float64(x) => format!("{x:.2}"),
                AnyValue::String(s) => s.to_string(),
                v => v.to_string(),
            };
            row.insert(*name, text);
        }
    }
    Ok(rows)
}

/// The pairs bought together in at least two orders, when there are any: a
/// single shared order gives two rarely bought products a huge, meaningless lift.
fn pairs_seen_twice(pairs: Option<&DataFrame>) -> Result<Option<DataFrame>> {
    let Some(pairs) = pairs else { return Ok(None) };
    let twice = pairs.clone().lazy().filter(col("co_purchase_count").gt_eq(lit(2))).collect()?;
    Ok(Some(if twice.height() > 0 { twice } else { pairs.clone() }))
}

/// Rows per value of a text column (largest first), with the sum of `total`, and
/// their bar chart.
fn shares(frame: Option<&DataFrame>, column: &str, total: Option<&str>, title: &str) -> Result<(Vec<Share>, Option<String>)> {
    let Some(frame) = frame else { return Ok((vec![], None)) };
    let values = frame.column(column)?.str()?.clone();
    let sums = total.map(|t| numbers_aligned(frame, t)).transpose()?;
    let mut by: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for (i, v) in values.iter().enumerate() {
        let entry = by.entry(v.unwrap_or("(none)").to_string()).or_default();
        entry.0 += 1;
        entry.1 += sums.as_ref().and_then(|s| s[i]).unwrap_or(0.0);
    }
    let mut list: Vec<(String, (usize, f64))> = by.into_iter().collect();
    list.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
    let labels: Vec<String> = list.iter().map(|(n, _)| n.clone()).collect();
    let counts: Vec<f64> = list.iter().map(|(_, (c, _))| *c as f64).collect();
    let chart = if list.is_empty() { None } else { Some(charts::bars(title, &labels, &counts, "rows")?) };
    let shares = list.into_iter().map(|(name, (count, sum))| Share { name, count, total: total.map(|_| format!("{sum:.2}")) }).collect();
    Ok((shares, chart))
}

/// A numeric column's values row by row (nulls kept as `None`).
fn numbers_aligned(frame: &DataFrame, column: &str) -> Result<Vec<Option<f64>>> {
    Ok(frame.column(column)?.cast(&DataType::Float64)?.f64()?.iter().collect())
}
