//! Landing: raw files (bulk JSONL, webhook JSON, web-pixel JSONL; plain or gzip) →
//! immutable Parquet snapshots under `<shop>/raw/<entity>/<snapshot>.parquet`.
//!
//! Guarantees: every input record either lands whole (its JSON text kept beside the
//! decoded fields) or is reported with its file, line and reason; memory stays
//! bounded whatever the input size (rows are flushed to Parquet in batches); and a
//! snapshot becomes visible only when its manifest `raw/_snapshots/<id>.json` is
//! written, after all of its files, so a crash mid-ingest leaves nothing a reader
//! would pick up.

pub mod events;
pub mod fields;
pub mod raw;
pub mod shopify;

use crate::storage::{DataRoot, StagedFile};
use anyhow::{bail, Context, Result};
use fields::{gid_type, missing, FieldError, FieldResult, Fields};
use shopify::Shape;
use polars::prelude::*;
use raw::{Origin, RawBuffers, Source};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

type ParquetBatches = polars::io::parquet::write::BatchedWriter<std::fs::File>;

/// Rows buffered per raw table before they are written as a Parquet row group.
const FLUSH_ROWS: usize = 64 * 1024;
/// Problems kept in the report word for word; beyond that they are only counted.
const MAX_LISTED_PROBLEMS: usize = 1000;

/// An input file and how to read it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct InputFile {
    /// Webhook payloads sort after line files: they are newer news.
    pub kind: InputKind,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum InputKind {
    /// One JSON record per line: bulk JSONL or web-pixel events.
    Lines,
    /// One REST payload (or a REST list such as `{"orders": [...]}`) per file.
    Payload,
}

/// A record that did not land.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub file: String,
    pub line: u64,
    pub entity: String,
    pub problem: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {} skipped: {}", self.file, self.line, self.entity, self.problem)
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
}

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
}

/// The raw directory of a shop.
pub fn raw_dir(shop: &str) -> String {
    format!("{shop}/raw")
}

/// Expands arguments into input files: a directory gives its `*.jsonl[.gz]` /
/// `*.ndjson[.gz]` files and its `webhooks/*.json[.gz]`; a file is taken as it is.
/// Other files in a directory (a manifest, notes) are ignored.
pub fn collect_inputs(args: &[PathBuf]) -> Result<Vec<InputFile>> {
    let mut inputs = Vec::new();
    for arg in args {
        let meta = std::fs::metadata(arg).with_context(|| format!("cannot read {}", arg.display()))?;
        if meta.is_dir() {
            inputs.extend(files_in(arg, InputKind::Lines)?);
            let hooks = arg.join("webhooks");
            if hooks.is_dir() {
                inputs.extend(files_in(&hooks, InputKind::Payload)?);
            }
        } else {
            match kind_of(arg) {
                Some(kind) => inputs.push(InputFile { kind, path: arg.clone() }),
                None => bail!("{}: not a .jsonl, .ndjson or .json file (optionally .gz)", arg.display()),
            }
        }
    }
    inputs.sort();
    inputs.dedup();
    Ok(inputs)
}

fn kind_of(path: &Path) -> Option<InputKind> {
    let name = path.file_name()?.to_str()?;
    let name = name.strip_suffix(".gz").unwrap_or(name);
    if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
        Some(InputKind::Lines)
    } else if name.ends_with(".json") {
        Some(InputKind::Payload)
    } else {
        None
    }
}

fn files_in(dir: &Path, want: InputKind) -> Result<Vec<InputFile>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file() && kind_of(&path) == Some(want) {
            found.push(InputFile { kind: want, path });
        }
    }
    Ok(found)
}

fn open_input(path: &Path, progress: &indicatif::ProgressBar) -> Result<Box<dyn BufRead>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let counted = progress.wrap_read(file);
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(counted))
    } else {
        Box::new(counted)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 20, reader)))
}

/// New snapshot ids sort by the time they were taken.
pub fn new_snapshot_id(now: chrono::DateTime<chrono::Utc>) -> String {
    let nanos = now.timestamp_subsec_nanos();
    format!("{}{:09}-{:08x}", now.format("%Y%m%dT%H%M%S"), nanos, std::process::id())
}

/// Lands `inputs` for `shop` as one new snapshot and returns what happened.
pub fn land(root: &DataRoot, shop: &str, inputs: &[InputFile], progress: &indicatif::ProgressBar) -> Result<LandReport> {
    land_snapshot(root, shop, inputs, progress, false)
}

/// [`land`], marking the snapshot `full` when it holds the whole shop.
pub fn land_snapshot(root: &DataRoot, shop: &str, inputs: &[InputFile], progress: &indicatif::ProgressBar, full: bool) -> Result<LandReport> {
    let now = chrono::Utc::now();
    let mut lander = Lander::new(root, shop, new_snapshot_id(now), now.timestamp_micros());
    lander.full = full;
    for input in inputs {
        lander.land_file(input, progress)?;
    }
    lander.finish(inputs)
}

/// The state of one ingest: buffers, open Parquet writers, the report.
struct Lander<'a> {
    root: &'a DataRoot,
    shop: String,
    received_at: i64,
    buffers: RawBuffers,
    writers: HashMap<&'static str, (StagedFile, ParquetBatches)>,
    report: LandReport,
    full: bool,
}

impl<'a> Lander<'a> {
    fn new(root: &'a DataRoot, shop: &str, snapshot: String, received_at: i64) -> Self {
        let report = LandReport { snapshot, ..Default::default() };
        Lander { root, shop: shop.to_string(), received_at, buffers: RawBuffers::default(), writers: HashMap::new(), report, full: false }
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

    fn problem(&mut self, file: &str, line: u64, entity: &str, problem: String) {
        *self.report.skipped.entry(entity.to_string()).or_default() += 1;
        let p = Problem { file: file.to_string(), line, entity: entity.to_string(), problem };
        if self.report.problems.len() < MAX_LISTED_PROBLEMS {
            tracing::warn!("{p}");
            self.report.problems.push(p);
        }
    }

    fn land_file(&mut self, input: &InputFile, progress: &indicatif::ProgressBar) -> Result<()> {
        let name = input.path.display().to_string();
        tracing::debug!(file = %name, "landing");
        self.report.files += 1;
        self.report.bytes += std::fs::metadata(&input.path).map(|m| m.len()).unwrap_or(0);
        let reader = open_input(&input.path, progress)?;
        match input.kind {
            InputKind::Lines => {
                // In an events file every line is an event, so a broken one is reported as such.
                let events_file = input.path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("events"));
                self.land_lines(&name, reader, events_file)?
            }
            InputKind::Payload => self.land_payload_file(&input.path, &name, reader)?,
        }
        self.flush(false)
    }

    fn land_lines(&mut self, file: &str, mut reader: Box<dyn BufRead>, events_file: bool) -> Result<()> {
        let mut bulk = BulkFile::default();
        let mut buf = Vec::with_capacity(4096);
        let mut line_no = 0u64;
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).with_context(|| format!("{file}: read failed after line {line_no}"))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let text = match std::str::from_utf8(&buf) {
                Ok(t) => t.trim(),
                Err(_) => {
                    self.problem(file, line_no, "unknown", "not UTF-8 text".into());
                    continue;
                }
            };
            if text.is_empty() {
                continue;
            }
            let value: Value = match serde_json::from_str(text) {
                Ok(v) => v,
                Err(e) => {
                    self.problem(file, line_no, if events_file { "events" } else { "unknown" }, format!("malformed JSON: {e}"));
                    continue;
                }
            };
            let text = text.to_string();
            if events_file || (value.get("clientId").is_some() && value.get("name").is_some()) {
                let origin = self.origin(Source::Events, None, file, line_no);
                match Fields::of(&value, "event").and_then(events::web_pixel_event) {
                    Ok(row) => self.buffers.events.push(&origin, text, row),
                    Err(e) => self.problem(file, line_no, "events", e.to_string()),
                }
            } else {
                let origin = self.origin(Source::Bulk, None, file, line_no);
                if let Err((entity, e)) = bulk.land(&value, &origin, text, &mut self.buffers) {
                    self.problem(file, line_no, entity, e.to_string());
                }
            }
            if line_no % 65536 == 0 {
                self.flush(false)?;
            }
        }
        Ok(())
    }

    fn land_payload_file(&mut self, path: &Path, file: &str, mut reader: Box<dyn BufRead>) -> Result<()> {
        let mut text = String::new();
        if let Err(e) = reader.read_to_string(&mut text) {
            self.problem(file, 1, "unknown", format!("unreadable: {e}"));
            return Ok(());
        }
        let value: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                self.problem(file, e.line() as u64, "unknown", format!("malformed JSON: {e}"));
                return Ok(());
            }
        };
        let topic = topic_of(path);
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
                if let Err((entity, e)) = land_payload(&list_topic, item, &origin, record, &mut self.buffers) {
                    self.problem(file, i as u64 + 1, entity, e.to_string());
                }
            }
            return Ok(());
        }
        let Some(topic) = topic else {
            self.problem(file, 1, "unknown", "webhook file name must start with its topic, e.g. orders_create-1.json".into());
            return Ok(());
        };
        let origin = self.origin(Source::Webhook, Some(topic.clone()), file, 1);
        if let Err((entity, e)) = land_payload(&topic, &value, &origin, text, &mut self.buffers) {
            self.problem(file, 1, entity, e.to_string());
        }
        Ok(())
    }

    /// Writes buffered rows as row groups (all of them when `all`, else full buffers).
    fn flush(&mut self, all: bool) -> Result<()> {
        let mut buffers = std::mem::take(&mut self.buffers);
        for buffer in buffers.all() {
            if buffer.len() == 0 || (!all && buffer.len() < FLUSH_ROWS) {
                continue;
            }
            let entity = buffer.entity();
            let frame = buffer.take_frame()?;
            *self.report.landed.entry(entity.to_string()).or_default() += frame.height() as u64;
            if !self.writers.contains_key(entity) {
                let rel = format!("{}/{entity}/{}.parquet", raw_dir(&self.shop), self.report.snapshot);
                let mut staged = self.root.stage(&rel)?;
                let file = staged.writer().try_clone()?;
                let writer = ParquetWriter::new(file).with_compression(ParquetCompression::Zstd(None)).batched(frame.schema())?;
                self.writers.insert(entity, (staged, writer));
            }
            let (_, writer) = self.writers.get_mut(entity).expect("writer just inserted");
            writer.write_batch(&frame).map_err(|e| anyhow::anyhow!("cannot write the {entity} snapshot: {e}"))?;
        }
        self.buffers = buffers;
        Ok(())
    }

    /// Finishes every file, then commits the snapshot by writing its manifest last.
    fn finish(mut self, inputs: &[InputFile]) -> Result<LandReport> {
        self.flush(true)?;
        let mut files = BTreeMap::new();
        for (entity, (staged, writer)) in std::mem::take(&mut self.writers) {
            writer.finish()?;
            files.insert(entity.to_string(), format!("{}/{entity}/{}.parquet", raw_dir(&self.shop), self.report.snapshot));
            self.root.commit(staged)?;
        }
        if !files.is_empty() {
            let manifest = SnapshotManifest {
                snapshot: self.report.snapshot.clone(),
                received_at: chrono::DateTime::from_timestamp_micros(self.received_at).unwrap_or_default().to_rfc3339(),
                files,
                rows: self.report.landed.clone(),
                inputs: inputs.iter().map(|i| i.path.display().to_string()).collect(),
                fingerprint: Some(fingerprint(inputs)?),
                full: self.full,
            };
            let rel = format!("{}/_snapshots/{}.json", raw_dir(&self.shop), self.report.snapshot);
            self.root.put(&rel, &serde_json::to_vec_pretty(&manifest)?)?;
        }
        Ok(self.report)
    }
}

/// `orders_create-1.json` → `orders/create`; `products_delete.json` → `products/delete`.
fn topic_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name.split(['-', '.']).next()?;
    let (resource, action) = stem.rsplit_once('_')?;
    Some(format!("{resource}/{action}"))
}

type Landed = Result<(), (&'static str, FieldError)>;

fn tag(entity: &'static str) -> impl Fn(FieldError) -> (&'static str, FieldError) {
    move |e| (entity, e)
}

/// Lands one REST payload of `topic` into the raw tables.
fn land_payload(topic: &str, value: &Value, origin: &Origin, record: String, buf: &mut RawBuffers) -> Landed {
    let (resource, action) = topic.split_once('/').unwrap_or((topic, "update"));
    let entity = match resource {
        "orders" => "orders",
        "products" => "products",
        "customers" => "customers",
        "refunds" => "refund_line_items",
        "collections" | "custom_collections" | "smart_collections" => "collections",
        "collects" => "collection_products",
        _ => return Err(("unknown", FieldError { field: "topic".into(), problem: format!("unsupported webhook topic {topic:?}") })),
    };
    let f = Fields::of(value, "payload").map_err(tag(entity))?;
    if action == "delete" {
        return land_deletion(entity, f, origin, record, buf).map_err(tag(entity));
    }
    let line = origin.line;
    match entity {
        "products" => {
            let product = shopify::product(f, Shape::Rest).map_err(tag(entity))?;
            let id = product.product_id.unwrap_or_default();
            let variants = f.array("variants").map_err(tag(entity))?.iter()
                .map(|v| Fields::of(v, "variants[]").and_then(|v| shopify::variant(v, Shape::Rest, id, line)))
                .collect::<FieldResult<Vec<_>>>().map_err(tag(entity))?;
            let images = f.array("images").map_err(tag(entity))?.iter()
                .map(|v| Fields::of(v, "images[]").and_then(|v| shopify::media(v, None, id, line)))
                .collect::<FieldResult<Vec<_>>>().map_err(tag(entity))?;
            for v in variants {
                buf.variants.push(origin, String::new(), v);
            }
            for m in images {
                buf.media.push(origin, String::new(), m);
            }
            buf.products.push(origin, record, product);
        }
        "orders" => {
            let order = shopify::order(f, Shape::Rest).map_err(tag(entity))?;
            let id = order.order_id.unwrap_or_default();
            let lines = f.array("line_items").map_err(tag(entity))?.iter()
                .map(|v| Fields::of(v, "line_items[]").and_then(|v| shopify::line_item(v, Shape::Rest, id, line)))
                .collect::<FieldResult<Vec<_>>>().map_err(tag(entity))?;
            let refunds = refunds_of(f, Shape::Rest, id).map_err(tag(entity))?;
            lines.into_iter().for_each(|l| buf.line_items.push(origin, String::new(), l));
            refunds.into_iter().for_each(|r| buf.refund_lines.push(origin, String::new(), r));
            buf.orders.push(origin, record, order);
        }
        "refund_line_items" => {
            let order_id = f.required_id("order_id").map_err(tag(entity))?;
            let rows = shopify::refund_lines(f, Shape::Rest, order_id).map_err(tag(entity))?;
            rows.into_iter().for_each(|r| buf.refund_lines.push(origin, record.clone(), r));
        }
        "customers" => buf.customers.push(origin, record, shopify::customer(f, Shape::Rest).map_err(tag(entity))?),
        "collections" => {
            let row = shopify::collection(f, Shape::Rest, resource == "smart_collections").map_err(tag(entity))?;
            buf.collections.push(origin, record, row);
        }
        _ => {
            let row = raw::MembershipRow {
                collection_id: Some(f.required_id("collection_id").map_err(tag(entity))?),
                product_id: Some(f.required_id("product_id").map_err(tag(entity))?),
            };
            buf.memberships.push(origin, record, row);
        }
    }
    Ok(())
}

fn refunds_of(f: Fields, shape: Shape, order_id: i64) -> FieldResult<Vec<raw::RefundLineRow>> {
    let mut rows = Vec::new();
    for refund in f.array("refunds")? {
        rows.extend(shopify::refund_lines(Fields::of(refund, "refunds[]")?, shape, order_id)?);
    }
    Ok(rows)
}

fn land_deletion(entity: &str, f: Fields, origin: &Origin, record: String, buf: &mut RawBuffers) -> FieldResult<()> {
    let id = Some(f.required_id("id")?);
    let deleted = Some(true);
    match entity {
        "products" => buf.products.push(origin, record, raw::ProductRow { product_id: id, deleted, ..Default::default() }),
        "customers" => buf.customers.push(origin, record, raw::CustomerRow { customer_id: id, deleted, ..Default::default() }),
        "orders" => buf.orders.push(origin, record, raw::OrderRow { order_id: id, deleted, ..Default::default() }),
        "collections" => buf.collections.push(origin, record, raw::CollectionRow { collection_id: id, deleted, ..Default::default() }),
        _ => return Err(FieldError { field: "topic".into(), problem: format!("{entity} cannot be deleted") }),
    }
    Ok(())
}

/// Per-file state of a bulk JSONL file: the roots seen so far, so that child lines
/// (`__parentId`) can be attached to the version of their parent they follow.
#[derive(Default)]
struct BulkFile {
    roots: HashMap<String, i64>,
}

impl BulkFile {
    fn land(&mut self, value: &Value, origin: &Origin, record: String, buf: &mut RawBuffers) -> Landed {
        let f = Fields::of(value, "record").map_err(tag("unknown"))?;
        let gid = match f.get("id") {
            Some(Value::String(s)) if s.starts_with("gid://") => s.as_str(),
            Some(_) => return Err(("unknown", FieldError { field: "id".into(), problem: "expected a GID (gid://shopify/…)".into() })),
            None => return Err(("unknown", missing("id"))),
        };
        let kind = gid_type(gid).unwrap_or("");
        let parent = match f.get("__parentId") {
            None => None,
            Some(Value::String(p)) => Some(p.as_str()),
            Some(_) => return Err(("unknown", FieldError { field: "__parentId".into(), problem: "expected a GID string".into() })),
        };
        let Some(parent) = parent else {
            return self.land_root(kind, gid, f, origin, record, buf);
        };
        let parent_kind = gid_type(parent).unwrap_or("");
        let entity = child_entity(parent_kind, kind);
        let Some(&parent_line) = self.roots.get(parent) else {
            return Err((entity, FieldError { field: "__parentId".into(), problem: format!("orphan child line: parent {parent} does not appear before it in this file") }));
        };
        let parent_id = fields::parse_id(parent).unwrap_or_default();
        match (parent_kind, kind) {
            ("Product", "ProductVariant") => buf.variants.push(origin, record, shopify::variant(f, Shape::Graphql, parent_id, parent_line).map_err(tag(entity))?),
            ("Product", "MediaImage" | "Video" | "ExternalVideo" | "Model3d") => {
                buf.media.push(origin, record, shopify::media(f, Some(kind), parent_id, parent_line).map_err(tag(entity))?)
            }
            ("Product", "Collection") => {
                let row = raw::MembershipRow { collection_id: Some(f.required_id("id").map_err(tag(entity))?), product_id: Some(parent_id) };
                buf.memberships.push(origin, record, row)
            }
            ("Collection", "Product") => {
                let row = raw::MembershipRow { collection_id: Some(parent_id), product_id: Some(f.required_id("id").map_err(tag(entity))?) };
                buf.memberships.push(origin, record, row)
            }
            ("Order", "LineItem") => buf.line_items.push(origin, record, shopify::line_item(f, Shape::Graphql, parent_id, parent_line).map_err(tag(entity))?),
            _ => return Err((entity, FieldError { field: "id".into(), problem: format!("unexpected child {kind} of {parent_kind}") })),
        }
        Ok(())
    }

    fn land_root(&mut self, kind: &str, gid: &str, f: Fields, origin: &Origin, record: String, buf: &mut RawBuffers) -> Landed {
        match kind {
            "Product" => buf.products.push(origin, record, shopify::product(f, Shape::Graphql).map_err(tag("products"))?),
            "Collection" => buf.collections.push(origin, record, shopify::collection(f, Shape::Graphql, false).map_err(tag("collections"))?),
            "Customer" => buf.customers.push(origin, record, shopify::customer(f, Shape::Graphql).map_err(tag("customers"))?),
            "Order" => {
                let order = shopify::order(f, Shape::Graphql).map_err(tag("orders"))?;
                let refunds = refunds_of(f, Shape::Graphql, order.order_id.unwrap_or_default()).map_err(tag("orders"))?;
                refunds.into_iter().for_each(|r| buf.refund_lines.push(origin, String::new(), r));
                buf.orders.push(origin, record, order);
            }
            other => return Err(("unknown", FieldError { field: "id".into(), problem: format!("unsupported record type {other:?}") })),
        }
        self.roots.insert(gid.to_string(), origin.line);
        Ok(())
    }
}

fn child_entity(parent_kind: &str, kind: &str) -> &'static str {
    match (parent_kind, kind) {
        ("Product", "ProductVariant") => "variants",
        ("Product", "Collection") | ("Collection", "Product") => "collection_products",
        ("Product", _) => "product_media",
        ("Order", _) => "line_items",
        _ => "unknown",
    }
}

/// FNV-1a over the inputs' file names and bytes: the same files give the same
/// fingerprint on any machine (no path, time or order of listing enters it).
pub fn fingerprint(inputs: &[InputFile]) -> Result<String> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for input in inputs {
        feed(input.path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
        let mut file = std::fs::File::open(&input.path).with_context(|| format!("cannot open {}", input.path.display()))?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            feed(&buf[..n]);
        }
    }
    Ok(format!("{hash:016x}"))
}

/// The committed snapshots of a shop, oldest first.
pub fn snapshots(root: &DataRoot, shop: &str) -> Result<Vec<SnapshotManifest>> {
    let dir = format!("{}/_snapshots", raw_dir(shop));
    let mut manifests = Vec::new();
    for name in root.list(&dir)? {
        if !name.ends_with(".json") {
            continue;
        }
        let rel = format!("{dir}/{name}");
        let bytes = root.get(&rel)?.with_context(|| format!("{rel} vanished"))?;
        let manifest: SnapshotManifest = serde_json::from_slice(&bytes).with_context(|| format!("{rel}: not a snapshot manifest"))?;
        manifests.push(manifest);
    }
    Ok(manifests)
}
