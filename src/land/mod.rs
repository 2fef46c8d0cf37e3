//! Landing: raw files (bulk JSONL, webhook JSON, web-pixel JSONL; plain or gzip) →
//! immutable Parquet snapshots under `<shop>/raw/<entity>/<snapshot>.parquet`.
//!
//! Guarantees: every input record either lands whole (its JSON text kept beside the
//! decoded fields) or is reported with its file, line and reason; memory stays
//! bounded whatever the input size (rows are flushed to Parquet in batches); and a
//! snapshot becomes visible only when its manifest `raw/_snapshots/<id>.json` is
//! written, after all of its files, so a crash mid-ingest leaves nothing a reader
//! would pick up.

mod bulk;
pub mod compact;
pub mod events;
pub mod fields;
mod files;
pub mod inbox;
mod inputs;
pub mod raw;
mod rejected;
pub mod shopify;
mod snapshot;
pub mod webhooks;

pub use inputs::{collect_inputs, fingerprint, InputFile, InputKind};
pub use snapshot::{new_snapshot_id, raw_dir, snapshots, Counts, FullMark, SnapshotManifest};

use crate::progress::Progress;
use crate::storage::DataRoot;
use crate::vocabulary::RawEntity;
use anyhow::Result;
use bulk::BulkFile;
use fields::{FieldError, Fields};
use files::SnapshotFiles;
use raw::{Origin, RawBuffers, Source};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::ScopedJoinHandle;

/// Rows buffered per raw table before they are written as a Parquet row group.
const FLUSH_ROWS: usize = 64 * 1024;
/// … or once their records' text reaches this many bytes, whichever comes
/// first: a few huge records (a flood of 5 MB pixel events) must not pile up
/// 64k rows deep in memory.
const FLUSH_BYTES: usize = 32 << 20;
/// Lines of a file parsed at once (on every core), up to so many bytes (a
/// parsed JSON document takes several times its text; smaller batches measured
/// slower on `medium`: 15–16 s at 8 MB against 12–13 s).
const BATCH_LINES: usize = 16 * 1024;
const BATCH_BYTES: usize = 32 << 20;
/// Problems kept in the report word for word; beyond that they are only counted.
const MAX_LISTED_PROBLEMS: usize = 1000;

/// A record that did not land, or landed but cannot be used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub file: String,
    pub line: u64,
    pub entity: String,
    pub problem: String,
    /// The record landed all the same (an unattached child line).
    #[serde(default)]
    pub landed: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fate = if self.landed { "landed unused" } else { "skipped" };
        write!(f, "{}:{}: {} {fate}: {}", self.file, self.line, self.entity, self.problem)
    }
}

/// What one ingest did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LandReport {
    pub snapshot: String,
    pub files: usize,
    pub bytes: u64,
    /// Rows landed per raw entity.
    pub landed: BTreeMap<String, u64>,
    /// Records skipped per entity (`unknown` when the record could not be classified).
    pub skipped: BTreeMap<String, u64>,
    /// Bulk child lines whose parent is not in their file, per entity: landed
    /// (nothing is lost) but attached to nothing, each also listed in `problems`.
    #[serde(default)]
    pub unattached: BTreeMap<String, u64>,
    /// Files whose reading stopped early (truncated, corrupt, a gzip bomb).
    #[serde(default)]
    pub broken_files: Vec<String>,
    /// The first problems, word for word.
    pub problems: Vec<Problem>,
}

impl LandReport {
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
    pub fn landed_total(&self) -> u64 {
        self.landed.values().sum()
    }
    pub fn unattached_total(&self) -> u64 {
        self.unattached.values().sum()
    }
}

/// Lands `inputs` for `shop` as one new snapshot and returns what happened.
pub fn land(root: &DataRoot, shop: &str, inputs: &[InputFile], progress: &Progress) -> Result<LandReport> {
    land_snapshot(root, shop, inputs, progress, None)
}

/// [`land`]; with `full_since`, the snapshot is `full`: the whole shop, as a fetch
/// started at that time saw it.
pub fn land_snapshot(root: &DataRoot, shop: &str, inputs: &[InputFile], progress: &Progress, full_since: Option<chrono::DateTime<chrono::Utc>>) -> Result<LandReport> {
    Ok(land_with(root, shop, inputs, progress, full_since, false)?.expect("landed: not asked to stop at a repeat"))
}

/// [`land`], unless these exact inputs were landed before (a snapshot's
/// manifest holds their [`fingerprint`]): then `None`, and nothing is written.
/// The fingerprint is hashed while the inputs land (hashing first took `run`
/// a second per GB before landing began), and landing stops once it shows a
/// repeat.
pub fn land_once(root: &DataRoot, shop: &str, inputs: &[InputFile], progress: &Progress) -> Result<Option<LandReport>> {
    land_with(root, shop, inputs, progress, None, true)
}

fn land_with(root: &DataRoot, shop: &str, inputs: &[InputFile], progress: &Progress, full_since: Option<chrono::DateTime<chrono::Utc>>, once: bool) -> Result<Option<LandReport>> {
    let now = chrono::Utc::now();
    let snapshot = new_snapshot_id(now);
    let landed_before = AtomicBool::new(false);
    // The inputs' fingerprint (for the manifest, and to tell a repeat) and the
    // Parquet files are made on threads of their own while the lines are parsed.
    std::thread::scope(|scope| {
        let fingerprint = scope.spawn(|| -> Result<String> {
            let fingerprint = fingerprint(inputs)?;
            if once && snapshots(root, shop)?.iter().any(|m| m.landed_inputs(&fingerprint)) {
                landed_before.store(true, Ordering::Relaxed);
            }
            Ok(fingerprint)
        });
        let files = SnapshotFiles::start(scope, root, raw_dir(shop), snapshot.clone());
        let mut lander = Lander::new(root, shop, snapshot, now.timestamp_micros(), files, &landed_before);
        lander.full_since = full_since;
        let landed = inputs.iter().try_for_each(|input| lander.land_file(input, progress));
        lander.finish(landed, inputs, fingerprint)
    })
}

/// The state of one ingest: buffers, the snapshot's files, the report.
struct Lander<'a, 'scope> {
    root: &'a DataRoot,
    shop: String,
    received_at: i64,
    buffers: RawBuffers,
    files: SnapshotFiles<'scope>,
    report: LandReport,
    full_since: Option<chrono::DateTime<chrono::Utc>>,
    rejected: rejected::Rejected,
    /// Set once the inputs turn out to have been landed before: landing stops.
    landed_before: &'a AtomicBool,
}

impl<'a, 'scope> Lander<'a, 'scope> {
    fn new(root: &'a DataRoot, shop: &str, snapshot: String, received_at: i64, files: SnapshotFiles<'scope>, landed_before: &'a AtomicBool) -> Self {
        let report = LandReport { snapshot, ..Default::default() };
        Lander { root, shop: shop.to_string(), received_at, buffers: RawBuffers::default(), files, report, full_since: None, rejected: Default::default(), landed_before }
    }

    fn landed_before(&self) -> bool {
        self.landed_before.load(Ordering::Relaxed)
    }

    fn origin(&self, source: Source, topic: Option<String>, file: &str, line: u64) -> Origin {
        Origin {
            snapshot: self.report.snapshot.clone(),
            source,
            topic,
            file: file.to_string(),
            line: line as i64,
            received_at: self.received_at,
        }
    }

    /// A record that did not land, kept whole in the snapshot's rejected file (so a
    /// later version can land it without fetching again), counted and noted.
    fn reject(&mut self, file: &str, line: u64, entity: Option<RawEntity>, problem: String, record: String) -> Result<()> {
        self.rejected.push(file, line, entity.map_or("unknown", RawEntity::name), &problem, record);
        self.problem(file, line, entity, problem);
        if self.rejected.len() >= FLUSH_ROWS || self.rejected.bytes() >= FLUSH_BYTES {
            self.rejected.flush(self.root, &self.shop, &self.report.snapshot)?;
        }
        Ok(())
    }

    /// A record that did not land: counted as skipped and noted.
    fn problem(&mut self, file: &str, line: u64, entity: Option<RawEntity>, problem: String) {
        let entity = entity.map_or("unknown", RawEntity::name);
        *self.report.skipped.entry(entity.to_string()).or_default() += 1;
        self.note(Problem { file: file.to_string(), line, entity: entity.to_string(), problem, landed: false });
    }

    /// Lists a problem in the report (the first ones) and the log.
    fn note(&mut self, p: Problem) {
        if self.report.problems.len() < MAX_LISTED_PROBLEMS {
            tracing::warn!("{p}");
            self.report.problems.push(p);
        }
    }

    fn land_file(&mut self, input: &InputFile, progress: &Progress) -> Result<()> {
        if self.landed_before() {
            return Ok(());
        }
        let name = input.path.display().to_string();
        tracing::debug!(file = %name, "landing");
        self.report.files += 1;
        self.report.bytes += std::fs::metadata(&input.path).map(|m| m.len()).unwrap_or(0);
        let reader = inputs::open_input(&input.path, progress)?;
        match input.kind {
            InputKind::Lines => {
                // In an events file every line is an event, so a broken one is reported as such.
                let events_file = input.path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("events"));
                if events_file {
                    self.land_event_lines(&name, reader)?
                } else {
                    self.land_lines(&name, reader)?
                }
            }
            InputKind::Payload => self.land_payload_file(&input.path, &name, reader)?,
        }
        self.flush(false)
    }

    /// A bulk file (or a file of mixed records): lines in order, children
    /// attached to the parents before them. The JSON of a batch of lines is
    /// parsed on every core; the records land one by one.
    fn land_lines(&mut self, file: &str, mut reader: Box<dyn BufRead>) -> Result<()> {
        let mut bulk = BulkFile::default();
        let mut lines = Lines::default();
        while let Some(batch) = lines.next_batch(reader.as_mut()).filter(|_| !self.landed_before()) {
            for (line_no, parsed) in parsed(batch, parse_json) {
                let (value, text) = match parsed {
                    Parsed::Line(value) => *value,
                    other => {
                        self.land_unparsed(file, line_no, other)?;
                        continue;
                    }
                };
                if value.get("clientId").is_some() && value.get("name").is_some() {
                    let origin = self.origin(Source::Events, None, file, line_no);
                    match Fields::of(&value, "event").and_then(events::web_pixel_event) {
                        Ok(row) => self.buffers.events.push(&origin, text, row),
                        Err(e) => self.reject(file, line_no, Some(RawEntity::Events), e.to_string(), text)?,
                    }
                } else {
                    let origin = self.origin(Source::Bulk, None, file, line_no);
                    if let Err((entity, e)) = bulk.land(&value, &origin, text, &mut self.buffers) {
                        // (The text went into the attempt: the record is kept re-encoded.)
                        self.reject(file, line_no, entity, e.to_string(), value.to_string())?;
                    }
                }
                if self.buffers.bytes() >= FLUSH_BYTES {
                    self.flush(false)?;
                }
            }
            self.flush(false)?;
        }
        self.land_unreadable(file, lines);
        for orphan in bulk.unattached() {
            *self.report.unattached.entry(orphan.entity.name().to_string()).or_default() += 1;
            let problem = format!("its parent {} is not in this file, so it is attached to nothing", orphan.parent);
            self.note(Problem { file: file.to_string(), line: orphan.line, entity: orphan.entity.name().to_string(), problem, landed: true });
        }
        Ok(())
    }

    /// An events file: every line is an event on its own (no state between
    /// lines, unlike a bulk file's parents and children), so a batch of lines is
    /// parsed into rows on every core and landed in line order.
    fn land_event_lines(&mut self, file: &str, mut reader: Box<dyn BufRead>) -> Result<()> {
        let mut lines = Lines::default();
        while let Some(batch) = lines.next_batch(reader.as_mut()).filter(|_| !self.landed_before()) {
            for (line_no, parsed) in parsed(batch, parse_event) {
                match parsed {
                    Parsed::Line(row_and_text) => {
                        let (row, text) = *row_and_text;
                        let origin = self.origin(Source::Events, None, file, line_no);
                        self.buffers.events.push(&origin, text, row);
                    }
                    other => self.land_unparsed(file, line_no, other)?,
                }
            }
            self.flush(false)?;
        }
        self.land_unreadable(file, lines);
        Ok(())
    }

    /// A line that did not parse: reported (and kept in the rejected file when it
    /// was read).
    fn land_unparsed<T>(&mut self, file: &str, line_no: u64, parsed: Parsed<T>) -> Result<()> {
        match parsed {
            Parsed::Line(_) | Parsed::Blank => Ok(()),
            Parsed::TooLong => {
                self.problem(file, line_no, None, format!("a line longer than {} MB", inputs::MAX_LINE_BYTES >> 20));
                Ok(())
            }
            Parsed::Rejected(entity, problem, record) => self.reject(file, line_no, entity, problem, record),
        }
    }

    /// A truncated or corrupt file (a cut gzip stream, a bomb): what was read
    /// landed, the rest is reported, landing goes on.
    fn land_unreadable(&mut self, file: &str, lines: Lines) {
        if let Some(e) = lines.error {
            let read = lines.line_no;
            self.problem(file, read + 1, None, format!("unreadable after line {read} ({e}): the rest of the file is skipped"));
            self.report.broken_files.push(file.to_string());
        }
    }

    fn land_payload_file(&mut self, path: &Path, file: &str, reader: Box<dyn BufRead>) -> Result<()> {
        let mut text = String::new();
        let limit = inputs::MAX_LINE_BYTES as u64;
        match reader.take(limit + 1).read_to_string(&mut text) {
            Err(e) => {
                self.problem(file, 1, None, format!("unreadable: {e}"));
                self.report.broken_files.push(file.to_string());
                return Ok(());
            }
            Ok(n) if n as u64 > limit => {
                self.problem(file, 1, None, format!("a payload larger than {} MB", limit >> 20));
                return Ok(());
            }
            Ok(_) => {}
        }
        let value: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                self.reject(file, e.line() as u64, None, format!("malformed JSON: {e}"), text)?;
                return Ok(());
            }
        };
        let topic = webhooks::topic_of(path);
        // A REST list (`{"orders": [...]}`) holds one payload per item.
        if let Some((key, Value::Array(items))) = value.as_object().filter(|m| m.len() == 1).and_then(|m| m.iter().next()) {
            // The list's key names the resource (`custom_collections`); a file name
            // that names the same resource may add the action (`…_delete`).
            let list_topic = match &topic {
                Some(t) if t.split('/').next() == Some(key.as_str()) => t.clone(),
                _ => format!("{key}/update"),
            };
            for (i, item) in items.iter().enumerate() {
                let origin = self.origin(Source::Webhook, Some(list_topic.clone()), file, i as u64 + 1);
                let record = item.to_string();
                if let Err((entity, e)) = webhooks::land_payload(&list_topic, item, &origin, record, &mut self.buffers) {
                    self.reject(file, i as u64 + 1, entity, e.to_string(), item.to_string())?;
                }
            }
            return Ok(());
        }
        let Some(topic) = topic else {
            self.reject(file, 1, None, "webhook file name must start with its topic, e.g. orders_create-1.json".into(), text)?;
            return Ok(());
        };
        let origin = self.origin(Source::Webhook, Some(topic.clone()), file, 1);
        if let Err((entity, e)) = webhooks::land_payload(&topic, &value, &origin, text, &mut self.buffers) {
            self.reject(file, 1, entity, e.to_string(), value.to_string())?;
        }
        Ok(())
    }

    /// Hands buffered rows to the snapshot's writer, a row group each (all of
    /// them when `all`, else full buffers).
    fn flush(&mut self, all: bool) -> Result<()> {
        for buffer in self.buffers.all() {
            if buffer.len() == 0 || (!all && buffer.len() < FLUSH_ROWS && buffer.bytes() < FLUSH_BYTES) {
                continue;
            }
            *self.report.landed.entry(buffer.entity().to_string()).or_default() += buffer.len() as u64;
            self.files.write(buffer.take())?;
        }
        Ok(())
    }

    /// Finishes every file, then commits the snapshot by writing its manifest
    /// last. `landed` is how landing the inputs went: on an error nothing is
    /// committed (the writer's own error, when it stopped, is the one told),
    /// nor when the inputs were landed before (`None`).
    fn finish(mut self, landed: Result<()>, inputs: &[InputFile], fingerprint: ScopedJoinHandle<Result<String>>) -> Result<Option<LandReport>> {
        let flushed = landed.and_then(|()| self.flush(true));
        let staged = self.files.finish()?;
        flushed?;
        let fingerprint = fingerprint.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        if self.landed_before.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let mut files = BTreeMap::new();
        for (entity, staged) in staged {
            files.insert(entity.to_string(), format!("{}/{entity}/{}.parquet", raw_dir(&self.shop), self.report.snapshot));
            self.root.commit(staged)?;
        }
        let rejected = self.rejected.finish(self.root, &self.shop, &self.report.snapshot)?;
        if !files.is_empty() || rejected.is_some() {
            let manifest = SnapshotManifest {
                snapshot: self.report.snapshot.clone(),
                received_at: chrono::DateTime::from_timestamp_micros(self.received_at).unwrap_or_default().to_rfc3339(),
                files,
                rows: self.report.landed.clone(),
                inputs: inputs.iter().map(|i| i.path.display().to_string()).collect(),
                fingerprint: Some(fingerprint),
                full: self.full_since.is_some(),
                started_at: self.full_since.map(|t| t.to_rfc3339()),
                rejected,
                replaces: vec![],
                span: None,
            };
            let rel = format!("{}/_snapshots/{}.json", raw_dir(&self.shop), self.report.snapshot);
            self.root.put(&rel, &serde_json::to_vec_pretty(&manifest)?)?;
        }
        Ok(Some(self.report))
    }
}

/// Why a record did not land: the raw entity it was for (`None` when that could
/// not be told) and the field at fault.
type Skip = (Option<RawEntity>, FieldError);
type Landed = Result<(), Skip>;

/// Tags a field error with the entity it happened in.
/// Reads the lines of a file a batch at a time, numbered from 1.
#[derive(Default)]
struct Lines {
    line_no: u64,
    at_end: bool,
    /// Why reading stopped before the end of the file.
    error: Option<std::io::Error>,
}

impl Lines {
    /// The next lines (`None` for one longer than the limit, skipped), or `None`
    /// after the last.
    fn next_batch(&mut self, reader: &mut dyn BufRead) -> Option<Vec<(u64, Option<Vec<u8>>)>> {
        if self.at_end {
            return None;
        }
        let (mut batch, mut bytes) = (Vec::with_capacity(BATCH_LINES), 0);
        while batch.len() < BATCH_LINES && bytes < BATCH_BYTES {
            let mut buf = Vec::new();
            match inputs::read_line(reader, &mut buf, inputs::MAX_LINE_BYTES) {
                Ok(inputs::Line::End) => {
                    self.at_end = true;
                    break;
                }
                Ok(inputs::Line::Read) => {
                    bytes += buf.len();
                    self.line_no += 1;
                    batch.push((self.line_no, Some(buf)));
                }
                Ok(inputs::Line::TooLong) => {
                    self.line_no += 1;
                    batch.push((self.line_no, None));
                }
                Err(e) => {
                    self.error = Some(e);
                    self.at_end = true;
                    break;
                }
            }
        }
        Some(batch)
    }
}

/// One line, parsed.
enum Parsed<T> {
    Line(Box<T>),
    Blank,
    TooLong,
    /// Not landed: the entity it is counted under, why, the record as read.
    Rejected(Option<RawEntity>, String, String),
}

/// A batch of lines parsed by `parse` on every core, in line order.
fn parsed<T: Send>(batch: Vec<(u64, Option<Vec<u8>>)>, parse: fn(String) -> Parsed<T>) -> Vec<(u64, Parsed<T>)> {
    use rayon::prelude::*;
    batch
        .into_par_iter()
        .map(|(line_no, buf)| {
            let parsed = match buf.map(String::from_utf8) {
                None => Parsed::TooLong,
                Some(Err(e)) => Parsed::Rejected(None, "not UTF-8 text".into(), String::from_utf8_lossy(e.as_bytes()).into_owned()),
                Some(Ok(text)) if text.trim().is_empty() => Parsed::Blank,
                Some(Ok(text)) => parse(text),
            };
            (line_no, parsed)
        })
        .collect()
}

/// A line's JSON and its text (trimmed).
fn parse_json(text: String) -> Parsed<(Value, String)> {
    let text = trimmed(text);
    match serde_json::from_str(&text) {
        Ok(value) => Parsed::Line(Box::new((value, text))),
        Err(e) => Parsed::Rejected(None, format!("malformed JSON: {e}"), text),
    }
}

/// A line of an events file as its event row and its text (trimmed): every line
/// is an event, so a broken one is counted as one. Read typed first (the usual
/// line), else as a JSON tree, which tells what is wrong.
fn parse_event(text: String) -> Parsed<(raw::EventRow, String)> {
    let text = trimmed(text);
    if let Some(row) = events::typed_web_pixel_event(&text) {
        return Parsed::Line(Box::new((row, text)));
    }
    let value: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return Parsed::Rejected(Some(RawEntity::Events), format!("malformed JSON: {e}"), text),
    };
    match Fields::of(&value, "event").and_then(events::web_pixel_event) {
        Ok(row) => Parsed::Line(Box::new((row, text))),
        Err(e) => Parsed::Rejected(Some(RawEntity::Events), e.to_string(), text),
    }
}

/// `text` without surrounding white space (a copy only when there is some).
fn trimmed(text: String) -> String {
    if text.trim().len() == text.len() {
        text
    } else {
        text.trim().to_string()
    }
}

fn tag(entity: RawEntity) -> impl Fn(FieldError) -> Skip {
    move |e| (Some(entity), e)
}

