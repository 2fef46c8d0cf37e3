//! Landing: local files ([`ingest`]) or the Shopify Admin API ([`fetch`]) → one
//! raw snapshot.

use super::report::{Stage, StageReport};
use crate::land::inbox::Inbox;
use crate::land::{self, LandReport};
use crate::shopify::{self, FetchOptions, FetchReport, Mode};
use crate::storage::DataRoot;
use anyhow::{bail, Result};
use serde::Serialize;
use std::path::PathBuf;

/// What [`ingest`] did.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub shop: String,
    /// The snapshot written (empty when nothing was landed), rows landed and
    /// skipped per entity, the first problems word for word.
    #[serde(flatten)]
    pub landed: LandReport,
    /// The same files (names and bytes) were landed before, so nothing was.
    pub already_landed: bool,
    pub stages: Vec<StageReport>,
}

impl IngestReport {
    /// Raw JSON landed per second.
    pub fn mb_per_s(&self) -> f64 {
        let seconds: f64 = self.stages.iter().map(|s| s.seconds).sum();
        self.landed.bytes as f64 / 1e6 / seconds.max(1e-9)
    }
}

/// Lands `inputs` — shop directories (their `*.jsonl[.gz]` and `webhooks/*.json`)
/// or single files — as one new snapshot of `shop`.
///
/// Guarantees: every record lands whole or is counted as skipped with its file,
/// line and reason (a bad record never stops the step); the snapshot is visible
/// to later steps only once all of it is written. Fails when `inputs` name no
/// input file or a file cannot be read at all.
pub fn ingest(root: &DataRoot, shop: &str, inputs: &[PathBuf]) -> Result<IngestReport> {
    land_files(root, shop, inputs, false)
}

/// [`ingest`], unless these exact files (names and bytes) were landed before:
/// rerunning a job on the same export lands nothing twice.
pub fn ingest_once(root: &DataRoot, shop: &str, inputs: &[PathBuf]) -> Result<IngestReport> {
    land_files(root, shop, inputs, true)
}

fn land_files(root: &DataRoot, shop: &str, inputs: &[PathBuf], once: bool) -> Result<IngestReport> {
    let stage = Stage::start("land");
    let files = land::collect_inputs(inputs)?;
    if files.is_empty() {
        bail!("no input files found in {}", inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    let mut report = IngestReport { shop: shop.to_string(), landed: LandReport::default(), already_landed: false, stages: vec![] };
    let total = files.iter().filter_map(|f| std::fs::metadata(&f.path).ok()).map(|m| m.len()).sum();
    let progress = crate::progress::Progress::new(total, "ingest", true);
    if once {
        match land::land_once(root, shop, &files, &progress)? {
            Some(landed) => report.landed = landed,
            None => report.already_landed = true,
        }
    } else {
        report.landed = land::land(root, shop, &files, &progress)?;
    }
    progress.finish();
    if report.already_landed {
        tracing::info!("these inputs were landed before; not landing them again");
    }
    report.stages.push(stage.finish());
    Ok(report)
}

/// Lands every file waiting in `inbox` (webhook deliveries and pixel batches
/// that `serve` wrote, whole by construction) as one new snapshot of `shop`, then
/// files them away under `<inbox>/landed/<snapshot>/`. An empty inbox lands
/// nothing.
///
/// Guarantees: a file leaves the inbox only after the snapshot holding it is
/// committed, so a crash in between lands it again next time (harmless:
/// normalization deduplicates versions).
pub fn land_inbox(root: &DataRoot, shop: &str, inbox: &Inbox) -> Result<IngestReport> {
    // No inbox yet (nothing was ever delivered): nothing to land.
    let files = if inbox.dir().is_dir() { inbox.pending(std::time::Duration::ZERO)? } else { vec![] };
    land_inbox_files(root, shop, inbox, files)
}

/// [`land_inbox`] for some of the inbox's files only (a fast cycle's deliveries).
pub fn land_inbox_files(root: &DataRoot, shop: &str, inbox: &Inbox, files: Vec<land::InputFile>) -> Result<IngestReport> {
    let stage = Stage::start("land");
    let mut report = IngestReport { shop: shop.to_string(), landed: LandReport::default(), already_landed: false, stages: vec![] };
    if !files.is_empty() {
        let total = files.iter().filter_map(|f| std::fs::metadata(&f.path).ok()).map(|m| m.len()).sum();
        let progress = crate::progress::Progress::new(total, "inbox", false);
        report.landed = land::land(root, shop, &files, &progress)?;
        progress.finish();
        inbox.file_away(&files, &report.landed)?;
    }
    report.stages.push(stage.finish());
    Ok(report)
}

/// What [`fetch`] did.
#[derive(Debug, Serialize)]
pub struct FetchedReport {
    pub shop: String,
    pub mode: Mode,
    /// Objects per entity as Shopify counted them, inbox files, the snapshot
    /// landed, the watermarks after the fetch.
    #[serde(flatten)]
    pub fetched: FetchReport,
    pub stages: Vec<StageReport>,
}

/// Pulls `shop` from the Admin API into one new snapshot (with the inbox's
/// webhook and event files), then advances the watermarks.
///
/// Guarantees: the watermarks move only after the snapshot is committed, and
/// never backwards in incremental mode; a failed fetch changes nothing. Fails when
/// incremental mode finds no watermark (fetch historically first).
pub fn fetch(root: &DataRoot, shop: &str, options: &FetchOptions) -> Result<FetchedReport> {
    let stage = Stage::start("fetch");
    let fetched = shopify::fetch(root, shop, options)?;
    Ok(FetchedReport { shop: shop.to_string(), mode: options.mode, fetched, stages: vec![stage.finish()] })
}
