//! The nightly job: land (ingest or fetch) → compute → publish → export.

use super::compute::{compute_and_publish, compute_and_publish_keeping, ComputeOptions, ComputeReport};
use crate::normalize::Kept;
use std::sync::{Arc, Mutex};
use super::export::{export_gorse, ExportReport};
use super::land::{fetch, ingest_once, land_inbox, FetchedReport, IngestReport};
use crate::land::compact::CompactReport;
use crate::land::inbox::Inbox;
use super::report::StageReport;
use crate::features::pairs::PairOptions;
use crate::shopify::{FetchOptions, Mode};
use crate::sinks::gorse;
use crate::state::ShopState;
use crate::storage::DataRoot;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Where a run's raw data comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Local exports: shop directories or files, landed unless landed before.
    Files(Vec<PathBuf>),
    /// The Shopify Admin API. An incremental fetch of a shop never fetched
    /// before fetches it whole.
    Shopify(FetchOptions),
    /// What waits in the shop's inbox (`serve`'s incremental cycles).
    Inbox(Inbox),
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub source: Source,
    /// `T`; default: the `as_of` of the first input directory's `manifest.json`
    /// (a generated shop's clock) for files, else now.
    pub as_of: Option<i64>,
    pub pairs: PairOptions,
    /// Generations of outputs kept, the current one included.
    pub keep_generations: usize,
    /// Export to this Gorse after computing.
    pub gorse: Option<gorse::Options>,
    /// When to compact the raw store at the end, and what it keeps.
    pub compaction: crate::land::compact::Policy,
    /// What the last run of the shop kept of its normalization, to start
    /// from ([`crate::normalize::Kept`]; `serve` keeps one per shop).
    pub kept: Option<Arc<Mutex<Kept>>>,
}

/// How the run landed its data.
#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Landing {
    Ingest(IngestReport),
    Fetch(FetchedReport),
}

/// What [`run`] did, step by step.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub shop: String,
    pub land: Landing,
    pub compute: ComputeReport,
    pub export: Option<ExportReport>,
    /// The raw store's compaction, when it was due.
    pub compaction: Option<CompactReport>,
    /// Why the run failed after publishing (tables whose rows differ from their
    /// entity counts); the export was then skipped. [`RunReport::check`] turns it
    /// into an error.
    pub failed: Option<String>,
}

impl RunReport {
    /// Every stage of the run in order: land or fetch, normalize, features, write,
    /// export.
    pub fn stages(&self) -> Vec<&StageReport> {
        let land = match &self.land {
            Landing::Ingest(r) => &r.stages,
            Landing::Fetch(r) => &r.stages,
        };
        let export = self.export.iter().flat_map(|e| &e.stages);
        land.iter().chain(&self.compute.stages).chain(export).collect()
    }

    /// Ok when the run succeeded whole, else why not.
    pub fn check(&self) -> Result<()> {
        match &self.failed {
            Some(why) => bail!("{why}"),
            None => Ok(()),
        }
    }
}

/// Lands the shop's new data, computes every feature table at `T`, publishes
/// them, and exports what changed to Gorse when one is configured.
///
/// Guarantees: each step's guarantees (a snapshot whole or not at all, outputs all
/// or nothing, watermarks after the data); when a table does not have one row per
/// entity, the run stops after publishing and before exporting (the report says
/// so in `failed`), so Gorse never receives such tables.
pub fn run(root: &DataRoot, shop: &str, options: &RunOptions) -> Result<RunReport> {
    let (land, as_of) = match &options.source {
        Source::Files(inputs) => {
            let inputs = if inputs.is_empty() { vec![PathBuf::from("data/sample")] } else { inputs.clone() };
            if let Some(missing) = inputs.iter().find(|p| !p.exists()) {
                bail!("{} not found (run from the repository root, or name the shop's files)", missing.display());
            }
            let as_of = match options.as_of {
                Some(t) => t,
                None => manifest_clock(&inputs[0])?.unwrap_or_else(crate::time::now_us),
            };
            (Landing::Ingest(ingest_once(root, shop, &inputs)?), as_of)
        }
        Source::Shopify(fetch_options) => {
            let mut fetch_options = fetch_options.clone();
            let never_fetched = ShopState::load(root, shop)?.watermarks.is_empty();
            if never_fetched && fetch_options.mode == Mode::Incremental {
                tracing::info!("shop {shop} was never fetched: fetching it whole");
                fetch_options.mode = Mode::Historical;
            }
            (Landing::Fetch(fetch(root, shop, &fetch_options)?), options.as_of.unwrap_or_else(crate::time::now_us))
        }
        Source::Inbox(inbox) => (Landing::Ingest(land_inbox(root, shop, inbox)?), options.as_of.unwrap_or_else(crate::time::now_us)),
    };
    // What was just landed may name an erased customer again: erased before anything reads it.
    let landed = match &land {
        Landing::Ingest(r) => &r.landed.snapshot,
        Landing::Fetch(r) => &r.fetched.landed.snapshot,
    };
    let inbox = match &options.source {
        Source::Inbox(inbox) => Some(inbox.dir()),
        Source::Shopify(fetch) => fetch.inbox.as_deref(),
        Source::Files(_) => None,
    };
    crate::privacy::redact::erase_late_arrivals(root, shop, landed, inbox)?;
    let compute_options = ComputeOptions { as_of, pairs: options.pairs, keep_generations: options.keep_generations };
    let computed = match &options.kept {
        Some(kept) => compute_and_publish_keeping(root, shop, &compute_options, kept)?,
        None => compute_and_publish(root, shop, &compute_options)?,
    };
    let mismatched = computed.mismatched();
    let failed = (!mismatched.is_empty()).then(|| format!("row counts differ from the entity counts for {}", mismatched.join(", ")));
    let export = match (&options.gorse, &failed) {
        (Some(g), None) => Some(export_gorse(root, shop, g)?),
        _ => None,
    };
    let compaction = compact_if_due(root, shop, &options.compaction);
    Ok(RunReport { shop: shop.to_string(), land, compute: computed, export, compaction, failed })
}

/// Compacts the raw store when it is due, and then trims the run history: the
/// upkeep that keeps a long-lived shop's cycles at a constant cost. A failed
/// compaction changes nothing a reader sees (the next one finishes or undoes
/// it) and does not fail the run that published: it is logged, and `status`
/// warns while compaction is overdue.
fn compact_if_due(root: &DataRoot, shop: &str, policy: &crate::land::compact::Policy) -> Option<CompactReport> {
    let report = match crate::land::compact::compact_if_due(root, shop, policy) {
        Ok(report) => report,
        Err(e) => {
            tracing::warn!("shop {shop}: compaction failed (nothing changed for readers; the next run tries again): {e:#}");
            None
        }
    };
    if report.is_some() {
        if let Err(e) = crate::history::prune(root, shop) {
            tracing::warn!("shop {shop}: the run history was not trimmed: {e:#}");
        }
    }
    report
}

/// The `as_of` of a generated shop's `manifest.json`, when there is one.
fn manifest_clock(input: &Path) -> Result<Option<i64>> {
    let path = input.join("manifest.json");
    if !path.is_file() {
        return Ok(None);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?).with_context(|| format!("{}: not JSON", path.display()))?;
    match manifest.get("as_of").and_then(|v| v.as_str()) {
        Some(s) => crate::time::parse_time(s).map(Some).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
        None => Ok(None),
    }
}
