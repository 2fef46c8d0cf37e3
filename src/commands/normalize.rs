use super::Outcome;
use crate::cli::Global;
use crate::normalize::{self, RawTables};
use crate::sinks;
use crate::storage::DataRoot;
use anyhow::{bail, Result};
use polars::prelude::*;

/// Normalize the shop's raw snapshots into its main tables and write them as
/// Parquet under `<root>/<shop>/main/<table>.parquet`, for inspection. (The feature
/// step builds on the same lazy frames without writing them first.)
#[derive(Debug, clap::Args)]
pub struct NormalizeArgs {
    /// Take entities as they stood at this time (RFC 3339 or YYYY-MM-DD, UTC);
    /// default: their latest versions.
    #[arg(long, value_parser = super::parse_time)]
    pub as_of: Option<i64>,
}

pub fn run(global: &Global, args: NormalizeArgs) -> Result<Outcome> {
    let root = DataRoot::open(&global.root)?;
    let raw = RawTables::open(&root, &global.shop)?;
    if raw.is_empty() {
        bail!("no raw snapshots for shop {:?} under {}: run `shopfeat ingest` first", global.shop, root.describe());
    }
    let tables = normalize::normalize(&raw, args.as_of)?;
    let named = tables.named();
    let frames = normalize::collect_all(named.iter().map(|(_, lf)| lf.clone()).collect())?;
    let tables: Vec<(&'static str, DataFrame)> = named.into_iter().map(|(name, _)| name).zip(frames).collect();
    let staged = sinks::parquet::stage(&root, &tables, |name| format!("{}/main/{name}.parquet", global.shop))?;
    sinks::parquet::publish(&root, staged)?;
    println!("{:<22} {:>10}", "table", "rows");
    for (name, frame) in &tables {
        println!("{:<22} {:>10}", name, frame.height());
    }
    Ok(Outcome::Success)
}
