use super::Outcome;
use crate::cli::Global;
use crate::config::Config;
use crate::storage::DataRoot;
use anyhow::Result;
use std::path::PathBuf;

/// One self-contained HTML page on the shop (opens offline: no scripts, fonts or
/// images to fetch): the checks of `status`, the run history (time per stage,
/// peak memory), rows per table, histograms of the main features, nulls and
/// zeros per column, top products by revenue, top pairs by lift, RFM segments,
/// sessions by traffic source and device, and drift against the generation
/// before. `shopfeat run` writes it too, beside the features.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Where to write the page; default: <root>/<shop>/features/report.html.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(global: &Global, args: ReportArgs) -> Result<Outcome> {
    let config = Config::load(global.config.as_deref())?;
    let root = DataRoot::open(&global.root)?;
    let html = crate::report::render(&root, &global.shop, &config.status, chrono::Utc::now())?;
    let written = match &args.out {
        Some(path) => {
            super::write_atomically(path, html.as_bytes())?;
            path.display().to_string()
        }
        None => publish_html(&root, &global.shop, &html)?,
    };
    eprintln!("report {written} ({} KiB)", html.len().div_ceil(1024));
    Ok(Outcome::Success)
}

/// Writes the page beside the features; returns where.
pub fn publish_html(root: &DataRoot, shop: &str, html: &str) -> Result<String> {
    let rel = crate::report::default_path(shop);
    root.put(&rel, html.as_bytes())?;
    Ok(format!("{}/{rel}", root.describe()))
}


