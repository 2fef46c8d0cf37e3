//! Run history: one record per `run`, `compute`, `fetch` and `export` of a shop,
//! in `<root>/<shop>/runs/<run id>.parquet`.
//!
//! A record is written when the run starts (`outcome = "running"`) and replaced,
//! whole, when it ends (`ok` or `failed`, with the error): a run that was killed
//! keeps its `running` record, which says so once its process is gone
//! ([`RunRecord::outcome_now`]). Each record carries the run's report (the JSON
//! of `--json`): time and peak memory per stage, rows against entity counts,
//! records landed and skipped, rows sent to Gorse, the generation written.
//!
//! A shop under `serve` has a record per cycle, thousands a day; reading the last
//! thousand one file at a time at every publish would be a thousand reads (GETs
//! on an object store). `runs/_cache.parquet` holds the records read last: a
//! reader takes ended records from it and reads only the files it lacks, or whose
//! cached record still says `running`. Any copy of the cache is therefore valid
//! (an ended record never changes), so it is written without the shop's lock.

use crate::storage::DataRoot;
use anyhow::{Context, Result};
use polars::prelude::*;
use serde::Serialize;

/// One run of a command on a shop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub command: String,
    /// `host/pid` of the process.
    pub process: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// `running`, `ok` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
    pub seconds: Option<f64>,
    /// The command's report, as `--json` prints it.
    pub report: Option<String>,
}

impl RunRecord {
    /// The outcome as it stands: a `running` record whose process is gone from
    /// this machine was killed.
    pub fn outcome_now(&self) -> &str {
        let gone = self.process.rsplit_once('/').is_some_and(|(host, pid)| {
            host == hostname() && pid.parse::<u32>().is_ok_and(|pid| pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists())
        });
        if self.outcome == "running" && gone {
            "killed"
        } else {
            &self.outcome
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "localhost".into())
}

pub fn runs_dir(shop: &str) -> String {
    format!("{shop}/runs")
}

/// A run being recorded.
pub struct Recorder<'a> {
    root: &'a DataRoot,
    shop: String,
    record: RunRecord,
    started: std::time::Instant,
}

impl<'a> Recorder<'a> {
    /// Writes the `running` record of a new run of `command`.
    pub fn start(root: &'a DataRoot, shop: &str, command: &str) -> Result<Recorder<'a>> {
        let record = RunRecord {
            run_id: crate::land::new_snapshot_id(chrono::Utc::now()),
            command: command.to_string(),
            process: format!("{}/{}", hostname(), std::process::id()),
            started_at: crate::time::now_rfc3339(),
            ended_at: None,
            outcome: "running".into(),
            error: None,
            seconds: None,
            report: None,
        };
        let recorder = Recorder { root, shop: shop.to_string(), record, started: std::time::Instant::now() };
        recorder.save()?;
        Ok(recorder)
    }

    /// Replaces the record with the run's end: its report, or its error.
    pub fn finish<R: Serialize>(self, result: Result<&R, &anyhow::Error>) -> Result<()> {
        match result {
            Ok(report) => self.end(None, Some(report)),
            Err(e) => self.end::<R>(Some(format!("{e:#}")), None),
        }
    }

    /// Ends the record: failed with `error` when there is one, else ok; with the
    /// report when there is one (a run can fail after producing it).
    pub fn end<R: Serialize>(mut self, error: Option<String>, report: Option<&R>) -> Result<()> {
        self.record.ended_at = Some(crate::time::now_rfc3339());
        self.record.seconds = Some(self.started.elapsed().as_secs_f64());
        self.record.outcome = if error.is_some() { "failed" } else { "ok" }.into();
        self.record.error = error;
        self.record.report = report.map(serde_json::to_string).transpose()?;
        self.save()
    }

    fn save(&self) -> Result<()> {
        let r = &self.record;
        let mut frame = to_frame(r)?;
        let rel = format!("{}/{}.parquet", runs_dir(&self.shop), r.run_id);
        let mut staged = self.root.stage(&rel)?;
        ParquetWriter::new(staged.writer()).finish(&mut frame).map_err(|e| anyhow::anyhow!("cannot write {rel}: {e}"))?;
        self.root.commit(staged)
    }
}

fn to_frame(r: &RunRecord) -> PolarsResult<DataFrame> {
    DataFrame::new_infer_height(vec![
        Column::new("run_id".into(), [r.run_id.as_str()]),
        Column::new("command".into(), [r.command.as_str()]),
        Column::new("process".into(), [r.process.as_str()]),
        Column::new("started_at".into(), [r.started_at.as_str()]),
        Column::new("ended_at".into(), [r.ended_at.as_deref()]),
        Column::new("outcome".into(), [r.outcome_now()]),
        Column::new("error".into(), [r.error.as_deref()]),
        Column::new("seconds".into(), [r.seconds]),
        Column::new("report".into(), [r.report.as_deref()]),
    ])
}

/// Run records kept in `features.duckdb`: the most recent ones (each is a file
/// to read at every publish).
pub const IN_DATABASE: usize = 1000;

/// The last `last` run records of `shop` as one table (oldest first), killed runs
/// marked so: what `features.duckdb` holds as `run_history`.
pub fn table(root: &DataRoot, shop: &str, last: usize) -> Result<DataFrame> {
    let records = load_last(root, shop, last)?;
    let mut frames = records.iter().map(to_frame);
    let Some(first) = frames.next() else {
        return Ok(to_frame(&RunRecord { run_id: String::new(), command: String::new(), process: String::new(), started_at: String::new(), ended_at: None, outcome: String::new(), error: None, seconds: None, report: None })?.head(Some(0)));
    };
    let mut table = first?;
    for frame in frames {
        table.vstack_mut(&frame?)?;
    }
    Ok(table)
}

/// Every run record of `shop`, oldest first.
pub fn load(root: &DataRoot, shop: &str) -> Result<Vec<RunRecord>> {
    load_last(root, shop, usize::MAX)
}

/// The records the cache holds at most (the newest).
const CACHED: usize = 1000;

/// Run records a shop keeps (the newest): days of `serve` cycles, while the
/// database shows the last [`IN_DATABASE`].
pub const KEPT: usize = 10_000;

/// Removes the run records beyond the newest [`KEPT`] (one listing): what keeps
/// a long-lived shop's `runs/` from growing by a file per cycle forever. Runs
/// with the raw store's compaction. How many it removed.
pub fn prune(root: &DataRoot, shop: &str) -> Result<usize> {
    prune_to(root, shop, KEPT)
}

/// [`prune`], keeping the newest `kept`.
pub fn prune_to(root: &DataRoot, shop: &str, kept: usize) -> Result<usize> {
    let names = record_names(root, shop)?;
    let old = &names[..names.len().saturating_sub(kept)];
    for name in old {
        root.delete(&format!("{}/{name}", runs_dir(shop)))?;
    }
    Ok(old.len())
}

/// The names of a shop's run records, oldest first.
fn record_names(root: &DataRoot, shop: &str) -> Result<Vec<String>> {
    Ok(root.list(&runs_dir(shop))?.into_iter().filter(|n| n.ends_with(".parquet") && !n.starts_with('_')).collect())
}

fn cache_path(shop: &str) -> String {
    format!("{}/_cache.parquet", runs_dir(shop))
}

/// The last `last` run records of `shop`, oldest first (ids sort by start time).
pub fn load_last(root: &DataRoot, shop: &str, last: usize) -> Result<Vec<RunRecord>> {
    let names = record_names(root, shop)?;
    // The cache is only a shortcut: one that cannot be read is read around.
    let mut known: std::collections::HashMap<String, RunRecord> = read_records(root, &cache_path(shop)).unwrap_or_default().into_iter().map(|r| (r.run_id.clone(), r)).collect();
    let mut records = vec![];
    let mut read_any = false;
    for name in &names[names.len().saturating_sub(last)..] {
        let id = name.trim_end_matches(".parquet");
        let record = match known.get(id) {
            Some(r) if r.outcome != "running" => r.clone(),
            _ => {
                read_any = true;
                let rel = format!("{}/{name}", runs_dir(shop));
                // Pruned since the listing: it was among the oldest, and is gone.
                if root.get(&rel)?.is_none() {
                    continue;
                }
                let record = read_records(root, &rel)?.into_iter().next().with_context(|| format!("{rel} holds no record"))?;
                known.insert(id.to_string(), record.clone());
                record
            }
        };
        records.push(record);
    }
    if read_any {
        let newest = names[names.len().saturating_sub(CACHED)..].iter().filter_map(|n| known.get(n.trim_end_matches(".parquet")));
        if let Err(e) = write_cache(root, shop, newest) {
            tracing::debug!("the run history cache of shop {shop} was not written: {e:#}");
        }
    }
    Ok(records)
}

fn write_cache<'a>(root: &DataRoot, shop: &str, records: impl Iterator<Item = &'a RunRecord>) -> Result<()> {
    let mut table: Option<DataFrame> = None;
    for record in records {
        let frame = to_frame(record)?;
        match &mut table {
            Some(t) => {
                t.vstack_mut(&frame)?;
            }
            None => table = Some(frame),
        }
    }
    let Some(mut table) = table else { return Ok(()) };
    let rel = cache_path(shop);
    let mut staged = root.stage(&rel)?;
    ParquetWriter::new(staged.writer()).finish(&mut table).map_err(|e| anyhow::anyhow!("cannot write {rel}: {e}"))?;
    root.commit(staged)
}

/// Every record of one Parquet file (a run's own file holds one; the cache many).
fn read_records(root: &DataRoot, rel: &str) -> Result<Vec<RunRecord>> {
    let bytes = root.get(rel)?.with_context(|| format!("{rel} vanished"))?;
    let frame = ParquetReader::new(std::io::Cursor::new(bytes)).finish().map_err(|e| anyhow::anyhow!("{rel}: {e}"))?;
    let text = |c: &str| -> Result<Vec<Option<String>>> { let column = frame.column(c)?.str()?; Ok((0..column.len()).map(|i| column.get(i).map(str::to_string)).collect()) };
    let (run_id, command, process, started_at, ended_at) = (text("run_id")?, text("command")?, text("process")?, text("started_at")?, text("ended_at")?);
    let (outcome, error, report) = (text("outcome")?, text("error")?, text("report")?);
    let seconds = frame.column("seconds")?.cast(&DataType::Float64)?;
    let seconds = seconds.f64()?;
    Ok((0..frame.height())
        .map(|i| RunRecord {
            run_id: run_id[i].clone().unwrap_or_default(),
            command: command[i].clone().unwrap_or_default(),
            process: process[i].clone().unwrap_or_default(),
            started_at: started_at[i].clone().unwrap_or_default(),
            ended_at: ended_at[i].clone(),
            outcome: outcome[i].clone().unwrap_or_default(),
            error: error[i].clone(),
            seconds: seconds.get(i),
            report: report[i].clone(),
        })
        .collect())
}
