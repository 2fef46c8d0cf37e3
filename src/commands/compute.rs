use super::Outcome;
use crate::cli::Global;
use crate::features::pairs::PairOptions;
use crate::features::{self, Inputs};
use crate::normalize::{self, RawTables};
use crate::sinks;
use crate::storage::DataRoot;
use anyhow::{bail, Result};
use polars::prelude::*;

/// Compute the feature tables from the shop's raw snapshots as of a point in time
/// and write them to `<root>/<shop>/features/<table>.parquet`. Nothing after
/// `--as-of` counts: orders, refunds, events, cancellations, entity versions.
#[derive(Debug, clap::Args)]
pub struct ComputeArgs {
    /// The point in time T (RFC 3339 or YYYY-MM-DD, UTC); default: now.
    #[arg(long, value_parser = super::parse_time)]
    pub as_of: Option<i64>,
    #[command(flatten)]
    pub pairs: PairArgs,
    /// Print the optimized plan of the main tables instead of computing (one
    /// Parquet SCAN per raw entity; every feature table is computed from them).
    #[arg(long)]
    pub explain: bool,
    /// Compute each feature table on its own and print its time and rows, instead
    /// of writing (slower in total: shared work is done once per table).
    #[arg(long, conflicts_with = "explain")]
    pub profile: bool,
}

pub fn run(global: &Global, args: ComputeArgs) -> Result<Outcome> {
    let root = DataRoot::open(&global.root)?;
    let as_of = args.as_of.unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
    if args.explain {
        println!("{}", explain(&root, &global.shop, as_of)?);
        return Ok(Outcome::Success);
    }
    if args.profile {
        println!("{:<28} {:>10} {:>9}", "table", "rows", "seconds");
        for (name, rows, seconds) in profile(&root, &global.shop, as_of, args.pairs.options())? {
            println!("{name:<28} {rows:>10} {seconds:>9.2}");
        }
        return Ok(Outcome::Success);
    }
    let started = std::time::Instant::now();
    let computed = compute(&root, &global.shop, as_of, args.pairs.options())?;
    println!("{:<28} {:>10}", "table", "rows");
    for (name, frame) in &computed.tables {
        println!("{:<28} {:>10}", name, frame.height());
    }
    tracing::info!(seconds = format!("{:.2}", started.elapsed().as_secs_f64()), "computed {} tables", computed.tables.len());
    Ok(Outcome::Success)
}

/// Computes every feature table of `shop` at `as_of` in one plan and writes them
/// (Parquet and DuckDB). A run that fails leaves the previous outputs intact: every
/// file is complete before the first one is made visible.
pub fn compute(root: &DataRoot, shop: &str, as_of: i64, pairs: PairOptions) -> Result<Computed> {
    let raw = RawTables::open(root, shop)?;
    if raw.is_empty() {
        bail!("no raw snapshots for shop {shop:?} under {}: run `shopfeat ingest` first", root.describe());
    }
    let started = std::time::Instant::now();
    let main = normalize::normalize(&raw, Some(as_of))?.for_features().materialize()?;
    tracing::info!(seconds = format!("{:.2}", started.elapsed().as_secs_f64()), "main tables normalized");
    let started = std::time::Instant::now();
    let inputs = Inputs::new(main, shop, as_of, pairs)?;
    let plans = features::plans(&inputs)?;
    let m = &inputs.main;
    // The entities each table must have one row for, counted in the same plan.
    let entities = [("product_features", &m.products), ("user_features", &m.customers), ("collection_features", &m.collections)];
    // One table at a time: they share only the in-memory inputs, and on two cores
    // running them side by side costs memory without saving time.
    let frames = plans.iter().map(|(_, lf)| lf.clone().collect()).collect::<PolarsResult<Vec<_>>>()?;
    let counts = normalize::collect_all(entities.iter().map(|(_, lf)| (*lf).clone().select([len()])).collect())?;
    let expected = entities
        .iter()
        .zip(counts)
        .map(|((name, _), c)| Ok((*name, c.column("len")?.cast(&DataType::Int64)?.i64()?.get(0).unwrap_or(0) as usize)))
        .collect::<Result<Vec<_>>>()?;
    let tables: Vec<(&'static str, DataFrame)> = plans.into_iter().map(|(name, _)| name).zip(frames).collect();
    tracing::info!(seconds = format!("{:.2}", started.elapsed().as_secs_f64()), "feature tables computed");
    let started = std::time::Instant::now();
    let empty: Vec<&str> = tables.iter().filter(|(_, f)| f.height() == 0).map(|(n, _)| *n).collect();
    if !empty.is_empty() {
        // Expected for a shop without storefront events: one warning, not an error.
        tracing::warn!("written with no rows (their inputs are empty at T): {}", empty.join(", "));
    }
    let staged = sinks::parquet::stage(root, &tables, |name| sinks::parquet::table_path(shop, name))?;
    let paths: Vec<(&'static str, &std::path::Path)> = tables.iter().map(|(n, _)| *n).zip(staged.iter().map(|s| s.path())).collect();
    let database = sinks::duckdb::stage(root, shop, &paths)?;
    sinks::parquet::publish(root, staged)?;
    root.commit(database)?;
    tracing::info!(seconds = format!("{:.2}", started.elapsed().as_secs_f64()), "tables written");
    Ok(Computed { tables, expected })
}

/// Bounds on product_pair_features, for `compute` and `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct PairArgs {
    /// Drop product pairs bought together in fewer valid orders than this.
    #[arg(long, default_value_t = 1, env = "SHOPFEAT_MIN_CO_PURCHASES", value_parser = clap::value_parser!(u32).range(1..))]
    pub min_co_purchases: u32,
    /// Keep at most this many partners per product (highest lift first; ties: count,
    /// then id); default: unlimited.
    #[arg(long, env = "SHOPFEAT_MAX_PAIRS_PER_PRODUCT", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pairs_per_product: Option<u32>,
}

impl PairArgs {
    pub fn options(&self) -> PairOptions {
        PairOptions { min_co_purchases: self.min_co_purchases, max_pairs_per_product: self.max_pairs_per_product }
    }
}

/// The tables of one run and the entity counts they must match.
pub struct Computed {
    pub tables: Vec<(&'static str, DataFrame)>,
    /// (table, rows it must have: one per entity at T)
    pub expected: Vec<(&'static str, usize)>,
}

/// Each stage on its own: (what, rows, seconds) for the main tables, the
/// sessionized events, then every feature table.
pub fn profile(root: &DataRoot, shop: &str, as_of: i64, pairs: PairOptions) -> Result<Vec<(&'static str, usize, f64)>> {
    let raw = RawTables::open(root, shop)?;
    let started = std::time::Instant::now();
    let main = normalize::normalize(&raw, Some(as_of))?.for_features().materialize()?;
    let mut timings = vec![("main tables", main.events.clone().collect()?.height(), started.elapsed().as_secs_f64())];
    let started = std::time::Instant::now();
    let inputs = Inputs::new(main, shop, as_of, pairs)?;
    timings.push(("sessions", inputs.sessions.clone().collect()?.height(), started.elapsed().as_secs_f64()));
    for (name, plan) in features::plans(&inputs)? {
        let started = std::time::Instant::now();
        let rows = plan.collect()?.height();
        timings.push((name, rows, started.elapsed().as_secs_f64()));
    }
    Ok(timings)
}

/// The optimized plan of the main tables at `as_of` — the only plan that reads
/// raw data — as Polars prints it. The feature tables are computed from its result.
pub fn explain(root: &DataRoot, shop: &str, as_of: i64) -> Result<String> {
    let raw = RawTables::open(root, shop)?;
    let main = normalize::normalize(&raw, Some(as_of))?;
    let plans: Vec<DslPlan> = main.named().into_iter().map(|(_, lf)| lf.logical_plan).collect();
    let opt = main.products.get_current_optimizations();
    Ok(LazyFrame::explain_all(plans, opt)?)
}
