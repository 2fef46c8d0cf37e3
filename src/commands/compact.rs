use super::Outcome;
use crate::cli::Global;
use crate::land::compact;
use crate::lock::ShopLock;
use crate::storage::DataRoot;
use anyhow::Result;

/// Merge the shop's small raw snapshots into one per run of consecutive ones,
/// exactly: every `--as-of` sees the same rows before and after. Under the
/// shop's lock; a crash at any point leaves either the old snapshots or the new
/// one, and the next compaction finishes or undoes the interrupted one.
///
/// `run` and `serve` cycles compact on their own once a shop holds more than
/// `[retention] compact_after` small snapshots (default 64; 0: never). With
/// `[retention] history_days = N`, versions superseded more than N days ago are
/// dropped from what it merges, and `--as-of` earlier than that fails.
#[derive(Debug, clap::Args)]
pub struct CompactArgs {
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &Global, args: CompactArgs) -> Result<Outcome> {
    let root = DataRoot::open(&global.root)?;
    let _lock = ShopLock::acquire(&root, &global.shop)?;
    let policy = crate::config::Config::load(global.config.as_deref())?.compaction();
    let report = compact::compact(&root, &global.shop, &policy)?;
    let pruned = crate::history::prune(&root, &global.shop)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(Outcome::Success);
    }
    if let Some(recovered) = &report.recovered {
        println!("{recovered}");
    }
    for m in &report.merged {
        println!("{} snapshots merged into {} ({} rows)", m.replaced, m.snapshot, m.rows);
    }
    println!("snapshots: {} before, {} after", report.snapshots_before, report.snapshots_after);
    if pruned > 0 {
        println!("run records: the {pruned} oldest removed (the newest {} are kept)", crate::history::KEPT);
    }
    Ok(Outcome::Success)
}
