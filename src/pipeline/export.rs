//! The published feature tables → Gorse.

use super::report::{Stage, StageReport};
use crate::sinks::gorse::{self, Options, Report};
use crate::storage::DataRoot;
use anyhow::Result;
use serde::Serialize;

/// What [`export_gorse`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub shop: String,
    /// The Gorse URL (without credentials) and id prefix.
    pub target: String,
    /// The requests were written to this file instead of sent.
    pub dry_run: Option<String>,
    /// Rows upserted and deleted per kind, unchanged rows, requests, retries.
    #[serde(flatten)]
    pub gorse: Report,
    pub stages: Vec<StageReport>,
}

/// Sends `shop`'s published items, users and feedback to Gorse: the rows whose
/// content changed since the last export to the same target, and deletions for
/// rows that disappeared.
///
/// Guarantees: what Gorse acknowledged is recorded (every few seconds and when the
/// export ends or fails), so a rerun resumes without resending it; a failed export
/// fails with the first error that retries could not overcome.
pub fn export_gorse(root: &DataRoot, shop: &str, options: &Options) -> Result<ExportReport> {
    let stage = Stage::start("export");
    let report = gorse::export(root, shop, options)?;
    Ok(ExportReport {
        shop: shop.to_string(),
        target: gorse::target(options),
        dry_run: options.dry_run.as_ref().map(|p| p.display().to_string()),
        gorse: report,
        stages: vec![stage.finish()],
    })
}
