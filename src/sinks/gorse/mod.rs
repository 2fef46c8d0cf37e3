//! Export to the Gorse recommender: items from product_features, users from
//! user_features, feedback from interaction_features (see [`mapping`]).
//!
//! Rows go from the Parquet files to the wire in batches, a few requests in
//! flight. Only rows whose hash differs from what Gorse acknowledged before are
//! sent, rows that disappeared are deleted, and the acknowledged hashes are saved
//! every few seconds, so an interrupted export resumes where it stopped.

pub mod checkpoint;
pub mod client;
pub mod mapping;

use crate::config::Secret;
use crate::sinks::parquet::table_path;
use crate::state::{self, GorseExportState, ShopState};
use crate::storage::DataRoot;
use anyhow::{Context, Result};
use checkpoint::Delivered;
use futures::StreamExt;
use mapping::{Kind, Source};
use polars::prelude::*;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use client::Retry;

#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub key: Option<Secret>,
    /// Prepended to every item and user id (one Gorse for several shops).
    pub prefix: String,
    pub batch_size: usize,
    pub in_flight: usize,
    /// Send every row, changed or not.
    pub full: bool,
    /// Write the requests here as JSONL instead of sending them.
    pub dry_run: Option<PathBuf>,
    pub timeout: Duration,
    pub retry: Retry,
    /// How often the acknowledged rows are saved while sending.
    pub checkpoint_every: Duration,
}

impl Options {
    pub fn new(url: &str) -> Options {
        Options {
            url: url.to_string(),
            key: None,
            prefix: String::new(),
            batch_size: 1000,
            in_flight: 4,
            full: false,
            dry_run: None,
            timeout: Duration::from_secs(30),
            retry: Retry::default(),
            checkpoint_every: Duration::from_secs(5),
        }
    }
}

/// What an export did, per kind in [`Kind::ALL`] order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    pub upserted: [u64; 3],
    pub deleted: [u64; 3],
    pub unchanged: u64,
    pub requests: u64,
    pub retries: u64,
    pub seconds: f64,
}

impl Report {
    pub fn rows_sent(&self) -> u64 {
        self.upserted.iter().sum::<u64>() + self.deleted.iter().sum::<u64>()
    }
}

/// Exports the shop's current feature tables to Gorse (or to a dry-run file).
pub fn export(root: &DataRoot, shop: &str, options: &Options) -> Result<Report> {
    let started = Instant::now();
    mapping::check_prefix(&options.prefix)?;
    let read = |table: &str| read_table(root, &table_path(shop, table));
    let sources = mapping::sources(read("product_features")?, read("user_features")?, read("interaction_features")?, &options.prefix)?;

    let mut state = ShopState::load(root, shop)?;
    let target = format!("{} prefix={:?}", without_credentials(&options.url), options.prefix);
    let rows_file = checkpoint::rows_file(shop);
    let same_target = state.gorse.as_ref().is_some_and(|g| g.target == target);
    let mut delivered = if same_target { Delivered::load(root, &rows_file)? } else { Delivered::default() };
    if !same_target && options.dry_run.is_none() {
        tracing::info!("first export to {}: every row is sent", without_credentials(&options.url));
    }
    let plans = sources.iter().map(|s| plan(s, &delivered, options.full)).collect::<Result<Vec<_>>>()?;
    let mut report = Report { unchanged: plans.iter().map(|p| p.unchanged).sum(), ..Report::default() };

    if let Some(path) = &options.dry_run {
        write_dry_run(path, &sources, &plans, options, &mut report)?;
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }

    // The rows file must describe this target before the state names it.
    if !same_target {
        delivered.save(root, &rows_file)?;
    }
    state.gorse = Some(GorseExportState { target, started_at: state::now_rfc3339(), finished_at: None, rows_delivered: delivered.len() as u64 });
    state.save(root, shop)?;

    let mut sender = Sender::new(root, &rows_file, options, &plans)?;
    let outcome = sender.send_all(&sources, &plans, &mut delivered, &mut report);
    // Whatever happened, what Gorse acknowledged is kept.
    delivered.save(root, &rows_file)?;
    sender.progress.finish();
    outcome?;
    let mut state = ShopState::load(root, shop)?;
    if let Some(g) = state.gorse.as_mut() {
        g.finished_at = Some(state::now_rfc3339());
        g.rows_delivered = delivered.len() as u64;
    }
    state.save(root, shop)?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The URL as it may be written down: without a user or password in it.
pub(crate) fn without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.as_str().trim_end_matches('/').to_string()
        }
        Err(_) => url.trim_end_matches('/').to_string(),
    }
}

fn read_table(root: &DataRoot, rel: &str) -> Result<DataFrame> {
    let bytes = root.get(rel)?.with_context(|| format!("{}/{rel} not found: run `shopfeat compute` first", root.describe()))?;
    ParquetReader::new(std::io::Cursor::new(bytes)).finish().map_err(|e| anyhow::anyhow!("{rel}: {e}"))
}

/// The rows of one source that Gorse does not have yet, and the ids it has that
/// are gone.
struct Plan {
    kind: Kind,
    /// (candidate index, row hash)
    changed: Vec<(usize, u64)>,
    removed: Vec<String>,
    unchanged: u64,
}

fn plan(source: &Source, delivered: &Delivered, full: bool) -> Result<Plan> {
    let mut plan = Plan { kind: source.kind, changed: vec![], removed: vec![], unchanged: 0 };
    let mut present = std::collections::HashSet::new();
    for i in 0..source.len() {
        let Some((id, object)) = source.object(i)? else { continue };
        let hash = checkpoint::fnv1a(&serde_json::to_vec(&object)?);
        if !full && delivered.is_current(source.kind, &id, hash) {
            plan.unchanged += 1;
        } else {
            plan.changed.push((i, hash));
        }
        present.insert(id);
    }
    plan.removed = delivered.ids(source.kind).into_iter().filter(|id| !present.contains(id)).collect();
    Ok(plan)
}

/// One request's worth of rows: the JSON array and the (id, hash) it delivers.
struct Batch {
    body: bytes::Bytes,
    rows: Vec<(String, u64)>,
}

fn batches<'a>(source: &'a Source, plan: &'a Plan, size: usize) -> impl Iterator<Item = Result<Batch>> + 'a {
    plan.changed.chunks(size.max(1)).map(move |chunk| {
        let mut body = Vec::with_capacity(chunk.len() * 256);
        let mut rows = Vec::with_capacity(chunk.len());
        body.push(b'[');
        for (n, (i, hash)) in chunk.iter().enumerate() {
            let (id, object) = source.object(*i)?.context("a planned row has no object")?;
            if n > 0 {
                body.push(b',');
            }
            serde_json::to_writer(&mut body, &object)?;
            rows.push((id, *hash));
        }
        body.push(b']');
        Ok(Batch { body: body.into(), rows })
    })
}

fn kind_index(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

fn write_dry_run(path: &std::path::Path, sources: &[Source], plans: &[Plan], options: &Options, report: &mut Report) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let mut out = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
    {
        let mut w = std::io::BufWriter::new(out.as_file_mut());
        for (source, plan) in sources.iter().zip(plans) {
            let (method, endpoint) = source.kind.upsert();
            for batch in batches(source, plan, options.batch_size) {
                let batch = batch?;
                // The body is already JSON: written as it would go on the wire.
                write!(w, "{{\"method\":\"{method}\",\"path\":\"{endpoint}\",\"body\":")?;
                w.write_all(&batch.body)?;
                w.write_all(b"}\n")?;
                report.requests += 1;
                report.upserted[kind_index(source.kind)] += batch.rows.len() as u64;
            }
        }
        for plan in plans.iter().rev() {
            for id in &plan.removed {
                serde_json::to_writer(&mut w, &serde_json::json!({ "method": "DELETE", "path": plan.kind.delete_path(id) }))?;
                w.write_all(b"\n")?;
                report.requests += 1;
                report.deleted[kind_index(plan.kind)] += 1;
            }
        }
        w.flush()?;
    }
    out.persist(path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Sends planned batches and deletions, records what Gorse acknowledged, and saves
/// it every `checkpoint_every`.
struct Sender<'a> {
    options: &'a Options,
    client: client::Client,
    runtime: tokio::runtime::Runtime,
    progress: Progress,
    checkpoints: Checkpoints<'a>,
}

/// Saves the acknowledged rows at most every `every`.
struct Checkpoints<'a> {
    root: &'a DataRoot,
    rows_file: &'a str,
    every: Duration,
    last_save: Instant,
}

impl Checkpoints<'_> {
    fn maybe_save(&mut self, delivered: &Delivered) -> Result<()> {
        if self.last_save.elapsed() >= self.every {
            delivered.save(self.root, self.rows_file)?;
            self.last_save = Instant::now();
        }
        Ok(())
    }
}

impl<'a> Sender<'a> {
    fn new(root: &'a DataRoot, rows_file: &'a str, options: &'a Options, plans: &[Plan]) -> Result<Sender<'a>> {
        let total = plans.iter().map(|p| (p.changed.len() + p.removed.len()) as u64).sum();
        Ok(Sender {
            options,
            client: client::Client::new(&options.url, options.key.clone(), options.timeout, options.retry.clone())?,
            runtime: tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?,
            progress: Progress::new(total),
            checkpoints: Checkpoints { root, rows_file, every: options.checkpoint_every, last_save: Instant::now() },
        })
    }

    /// Upserts first (items, users, then feedback, so feedback never creates a bare
    /// item or user), then deletions in the reverse order.
    fn send_all(&mut self, sources: &[Source], plans: &[Plan], delivered: &mut Delivered, report: &mut Report) -> Result<()> {
        for (source, plan) in sources.iter().zip(plans) {
            self.upsert(source, plan, delivered, report)?;
        }
        for plan in plans.iter().rev() {
            self.delete(plan, delivered, report)?;
        }
        Ok(())
    }

    fn upsert(&mut self, source: &Source, plan: &Plan, delivered: &mut Delivered, report: &mut Report) -> Result<()> {
        let (method, endpoint) = source.kind.upsert();
        let client = &self.client;
        let mut in_flight = futures::stream::iter(batches(source, plan, self.options.batch_size))
            .map(|batch| async move {
                let batch = batch?;
                let sent = client.send(method, endpoint, Some(batch.body)).await?;
                anyhow::Ok((batch.rows, sent.retries))
            })
            .buffer_unordered(self.options.in_flight.max(1));
        while let Some(done) = self.runtime.block_on(in_flight.next()) {
            let (rows, retries) = done?;
            report.requests += 1;
            report.retries += u64::from(retries);
            report.upserted[kind_index(source.kind)] += rows.len() as u64;
            self.progress.inc(rows.len() as u64);
            for (id, hash) in &rows {
                delivered.record(source.kind, id, *hash);
            }
            self.checkpoints.maybe_save(delivered)?;
        }
        Ok(())
    }

    fn delete(&mut self, plan: &Plan, delivered: &mut Delivered, report: &mut Report) -> Result<()> {
        let client = &self.client;
        let mut in_flight = futures::stream::iter(plan.removed.iter())
            .map(|id| async move { client.send("DELETE", &plan.kind.delete_path(id), None).await.map(|sent| (id, sent.retries)) })
            .buffer_unordered(self.options.in_flight.max(1));
        while let Some(done) = self.runtime.block_on(in_flight.next()) {
            let (id, retries) = done?;
            report.requests += 1;
            report.retries += u64::from(retries);
            report.deleted[kind_index(plan.kind)] += 1;
            self.progress.inc(1);
            delivered.forget(plan.kind, id);
            self.checkpoints.maybe_save(delivered)?;
        }
        Ok(())
    }
}

/// A bar on a terminal; a log line every 10 s otherwise.
struct Progress {
    bar: indicatif::ProgressBar,
    terminal: bool,
    done: u64,
    total: u64,
    last_log: Instant,
}

impl Progress {
    fn new(total: u64) -> Progress {
        use std::io::IsTerminal;
        Progress { bar: crate::progress::bar(total, "gorse", false), terminal: std::io::stderr().is_terminal(), done: 0, total, last_log: Instant::now() }
    }

    fn inc(&mut self, n: u64) {
        self.done += n;
        self.bar.inc(n);
        if !self.terminal && self.last_log.elapsed() >= Duration::from_secs(10) {
            tracing::info!("gorse export: {}/{} rows", self.done, self.total);
            self.last_log = Instant::now();
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
