//! Run history: one record per `run`, `compute`, `fetch` and `export` of a shop,
//! in `<root>/<shop>/runs/<run id>.parquet`.
//!
//! A record is written when the run starts (`outcome = "running"`) and replaced,
//! whole, when it ends (`ok` or `failed`, with the error): a run that was killed
//! keeps its `running` record, which says so once its process is gone
//! ([`RunRecord::outcome_now`]). Each record carries the run's report (the JSON
//! of `--json`): time and peak memory per stage, rows against entity counts,
//! records landed and skipped, rows sent to Gorse, the generation written.

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

/// The last `last` run records of `shop`, oldest first (ids sort by start time).
pub fn load_last(root: &DataRoot, shop: &str, last: usize) -> Result<Vec<RunRecord>> {
    let mut records = vec![];
    let names: Vec<String> = root.list(&runs_dir(shop))?.into_iter().filter(|n| n.ends_with(".parquet")).collect();
    for name in names.iter().skip(names.len().saturating_sub(last)) {
        let rel = format!("{}/{name}", runs_dir(shop));
        let bytes = root.get(&rel)?.with_context(|| format!("{rel} vanished"))?;
        let frame = ParquetReader::new(std::io::Cursor::new(bytes)).finish().map_err(|e| anyhow::anyhow!("{rel}: {e}"))?;
        let text = |c: &str| -> Result<Option<String>> { Ok(frame.column(c)?.str()?.get(0).map(str::to_string)) };
        records.push(RunRecord {
            run_id: text("run_id")?.unwrap_or_default(),
            command: text("command")?.unwrap_or_default(),
            process: text("process")?.unwrap_or_default(),
            started_at: text("started_at")?.unwrap_or_default(),
            ended_at: text("ended_at")?,
            outcome: text("outcome")?.unwrap_or_default(),
            error: text("error")?,
            seconds: frame.column("seconds")?.cast(&DataType::Float64)?.f64()?.get(0),
            report: text("report")?,
        });
    }
    Ok(records)
}
