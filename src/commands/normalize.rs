use super::Outcome;
use crate::cli::Global;
use crate::pipeline;
use crate::lock::ShopLock;
use crate::storage::DataRoot;
use anyhow::Result;

/// Normalize the shop's raw snapshots into its main tables and write them as
/// Parquet under `<root>/<shop>/main/<table>.parquet`, for inspection. (The feature
/// step builds on the same lazy frames without writing them first.)
#[derive(Debug, clap::Args)]
pub struct NormalizeArgs {
    /// Take entities as they stood at this time (RFC 3339 or YYYY-MM-DD, UTC);
    /// default: their latest versions.
    #[arg(long, value_parser = crate::time::parse_time)]
    pub as_of: Option<i64>,
}

pub fn run(global: &Global, args: NormalizeArgs) -> Result<Outcome> {
    let root = DataRoot::open(&global.root)?;
    let _lock = ShopLock::acquire(&root, &global.shop)?;
    let report = pipeline::write_main_tables(&root, &global.shop, args.as_of)?;
    println!("{:<22} {:>10}", "table", "rows");
    for t in &report.tables {
        println!("{:<22} {:>10}", t.table, t.rows);
    }
    Ok(Outcome::Success)
}
