use super::Outcome;
use crate::cli::{Global, PairArgs};
use crate::pipeline::{self, ComputeOptions, ComputeReport};
use crate::history::Recorder;
use crate::lock::ShopLock;
use crate::storage::DataRoot;
use anyhow::Result;
use std::io::Write;

/// Compute the feature tables from the shop's raw snapshots as of a point in time
/// and write them to `<root>/<shop>/features/<table>.parquet` and
/// `<root>/<shop>/features.duckdb`. Nothing after `--as-of` counts: orders,
/// refunds, events, cancellations, entity versions.
#[derive(Debug, clap::Args)]
pub struct ComputeArgs {
    /// The point in time T (RFC 3339 or YYYY-MM-DD, UTC); default: now.
    #[arg(long, value_parser = crate::time::parse_time)]
    pub as_of: Option<i64>,
    #[command(flatten)]
    pub pairs: PairArgs,
    /// Generations of outputs to keep, the new one included (older ones are removed).
    #[arg(long, default_value_t = crate::sinks::generation::KEEP, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub keep_generations: usize,
    /// Print the optimized plan of the main tables instead of computing (one
    /// Parquet SCAN per raw entity; every feature table is computed from them).
    #[arg(long)]
    pub explain: bool,
    /// Compute each feature table on its own and print its time, peak memory and
    /// rows, instead of writing (slower in total: shared work is done once per
    /// table).
    #[arg(long, conflicts_with = "explain")]
    pub profile: bool,
    /// Print the report as one JSON object on stdout (the summary goes to stderr).
    #[arg(long, conflicts_with = "explain")]
    pub json: bool,
}

pub fn run(global: &Global, args: ComputeArgs) -> Result<Outcome> {
    let root = DataRoot::open(&global.root)?;
    let options = ComputeOptions { as_of: args.as_of.unwrap_or_else(crate::time::now_us), pairs: args.pairs.options(), keep_generations: args.keep_generations };
    if args.explain {
        println!("{}", pipeline::explain(&root, &global.shop, options.as_of)?);
        return Ok(Outcome::Success);
    }
    if args.profile {
        let stages = pipeline::profile(&root, &global.shop, &options)?;
        super::print_report(args.json, &stages, |out| {
            writeln!(out, "{:<28} {:>10} {:>9} {:>9}", "stage", "rows", "seconds", "peak MB")?;
            for s in &stages {
                writeln!(out, "{:<28} {:>10} {:>9.2} {:>9}", s.stage.stage, s.rows, s.stage.seconds, megabytes(s.stage.peak_rss_bytes))?;
            }
            Ok(())
        })?;
        return Ok(Outcome::Success);
    }
    let _lock = ShopLock::acquire(&root, &global.shop)?;
    let recorder = Recorder::start(&root, &global.shop, "compute")?;
    let result = pipeline::compute_and_publish(&root, &global.shop, &options);
    recorder.finish(result.as_ref())?;
    let report = result?;
    super::print_report(args.json, &report, |out| print_tables(out, &report))?;
    Ok(Outcome::Success)
}

/// Rows per table against the entity counts, then the time of each stage.
pub fn print_tables(out: &mut dyn Write, report: &ComputeReport) -> std::io::Result<()> {
    writeln!(out, "{:<28} {:>8} {:>9}", "table", "rows", "expected")?;
    for t in &report.tables {
        let expected = t.expected.map(|e| e.to_string()).unwrap_or_else(|| "-".into());
        writeln!(out, "{:<28} {:>8} {:>9}", t.table, t.rows, expected)?;
    }
    print_stages(out, report.stages.iter())
}

/// `normalize 0.12 s (95 MB) · features …`
pub fn print_stages<'a>(out: &mut dyn Write, stages: impl Iterator<Item = &'a pipeline::StageReport>) -> std::io::Result<()> {
    let parts: Vec<String> = stages.map(|s| format!("{} {:.2} s ({} MB)", s.stage, s.seconds, megabytes(s.peak_rss_bytes))).collect();
    writeln!(out, "{}", parts.join(" · "))
}

fn megabytes(bytes: Option<u64>) -> String {
    bytes.map(|b| format!("{:.0}", b as f64 / 1e6)).unwrap_or_else(|| "?".into())
}
