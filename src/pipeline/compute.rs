//! Raw snapshots → main tables → feature tables → Parquet and DuckDB.

use super::report::{Stage, StageReport, TableRows};
use crate::time::rfc3339;
use crate::features::pairs::PairOptions;
use crate::features::{self, Inputs};
use crate::normalize::{self, AsOf, Kept, MainTables, RawTables};
use std::sync::Mutex;
use crate::sinks::{self, generation::Generation};
use crate::storage::{DataRoot, StagedFile};
use anyhow::{bail, Result};
use polars::prelude::*;
use serde::Serialize;

/// What the feature tables are computed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComputeOptions {
    /// The point in time `T`, µs since the epoch (UTC): nothing after it counts.
    pub as_of: i64,
    pub pairs: PairOptions,
    /// Generations of outputs kept (the current one included) when publishing.
    pub keep_generations: usize,
}

impl ComputeOptions {
    /// At `as_of`, with the default pair bounds and generations kept.
    pub fn at(as_of: i64) -> ComputeOptions {
        ComputeOptions { as_of, pairs: PairOptions::default(), keep_generations: sinks::generation::KEEP }
    }
}

/// What [`compute`] (and [`compute_and_publish`]) did.
#[derive(Debug, Clone, Serialize)]
pub struct ComputeReport {
    pub shop: String,
    /// `T`, RFC 3339.
    pub as_of: String,
    /// Every feature table in catalog order, with the entity count it must match.
    pub tables: Vec<TableRows>,
    /// The generation published (by [`compute_and_publish`]).
    pub generation: Option<String>,
    pub stages: Vec<StageReport>,
    /// The shop's lifetime-value fit (customer_lifetime_features): status,
    /// customers, parameters and log-likelihoods.
    pub lifetime_model: Option<crate::clv::ModelFit>,
}

impl ComputeReport {
    /// Tables whose rows differ from their entity count.
    pub fn mismatched(&self) -> Vec<&'static str> {
        self.tables.iter().filter(|t| !t.matches()).map(|t| t.table).collect()
    }
}

/// The feature tables of one run, in memory ([`compute`]), and its report.
pub struct Computed {
    pub tables: Vec<(&'static str, DataFrame)>,
    pub report: ComputeReport,
}

/// The main tables of `shop` at `as_of` (latest versions when `None`), lazily.
///
/// Fails when the shop has no committed snapshot: there is nothing to normalize.
pub fn normalize(root: &DataRoot, shop: &str, as_of: AsOf) -> Result<MainTables> {
    normalize::normalize(&raw_tables(root, shop)?, as_of)
}

/// The raw tables of `shop`; fails when it has no committed snapshot.
pub fn raw_tables(root: &DataRoot, shop: &str) -> Result<RawTables> {
    let raw = RawTables::open(root, shop)?;
    if raw.is_empty() {
        bail!("no raw snapshots for shop {shop:?} under {}: run `shopfeat ingest` first", root.describe());
    }
    Ok(raw)
}

/// What [`write_main_tables`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct NormalizeReport {
    pub shop: String,
    pub tables: Vec<TableRows>,
    pub stages: Vec<StageReport>,
}

/// Writes the main tables at `as_of` as a new generation of `<shop>/main/`
/// (`<shop>/main/<generation>/<table>.parquet`, current once all are written), for
/// inspection.
pub fn write_main_tables(root: &DataRoot, shop: &str, as_of: AsOf) -> Result<NormalizeReport> {
    let stage = Stage::start("normalize");
    let named = normalize(root, shop, as_of)?.named();
    let frames = normalize::collect_all(named.iter().map(|(_, lf)| lf.clone()).collect())?;
    let tables: Vec<(&'static str, DataFrame)> = named.into_iter().map(|(name, _)| name).zip(frames).collect();
    let generation = Generation::new(root, &sinks::parquet::main_dir(shop))?;
    let staged = sinks::parquet::stage(root, &tables, |name| generation.path(&sinks::parquet::file_name(name)))?;
    sinks::parquet::publish(root, staged)?;
    let files: Vec<String> = tables.iter().map(|(n, _)| sinks::parquet::file_name(n)).collect();
    generation.make_current(root, &files, as_of.map(rfc3339), sinks::generation::KEEP)?;
    let rows = tables.iter().map(|(table, f)| TableRows { table, rows: f.height(), expected: None }).collect();
    Ok(NormalizeReport { shop: shop.to_string(), tables: rows, stages: vec![stage.finish()] })
}

/// Computes every feature table of `shop` at `T`, in memory: the main tables in
/// one plan, the events sessionized once, then each feature table.
///
/// Guarantees: one row per entity existing at `T` in the entity-keyed tables
/// (the report holds both counts); nothing after `T` counts; nothing is written.
pub fn compute(root: &DataRoot, shop: &str, options: &ComputeOptions) -> Result<Computed> {
    let mut tables = Vec::new();
    let report = compute_each(root, shop, options, None, |name, frame| tables.push((name, frame)))?;
    Ok(Computed { tables, report })
}

/// [`compute`], handing each feature table to `done` as soon as it is made
/// (which keeps it or lets it go).
fn compute_each(root: &DataRoot, shop: &str, options: &ComputeOptions, kept: Option<&Mutex<Kept>>, mut done: impl FnMut(&'static str, DataFrame)) -> Result<ComputeReport> {
    let stage = Stage::start("normalize");
    let main = match kept {
        // Held while normalizing only: the tables share the kept frames' memory.
        Some(kept) => {
            // A run that panicked while holding it left it half made: start over.
            let mut kept = kept.lock().unwrap_or_else(|poisoned| {
                let mut kept = poisoned.into_inner();
                *kept = Kept::default();
                kept
            });
            normalize::normalize_kept(&raw_tables(root, shop)?, options.as_of, &mut kept)?
        }
        None => normalize(root, shop, Some(options.as_of))?,
    };
    let main = main.for_features().materialize()?;
    let mut stages = vec![stage.finish()];

    let stage = Stage::start("features");
    let inputs = Inputs::new(main, shop, options.as_of, options.pairs)?;
    // One table at a time: they share only the in-memory inputs, and on two cores
    // running them side by side costs memory without saving time.
    let mut rows = Vec::new();
    for (name, plan) in features::plans(&inputs)? {
        let frame = plan.collect()?;
        rows.push((name, frame.height()));
        done(name, frame);
        crate::failpoint::hit("feature-table")?;
    }
    let expected = entity_counts(&inputs)?;
    let lifetime_model = inputs.lifetime.as_ref().map(|l| l.fit.clone());
    stages.push(stage.finish());

    let rows = rows.into_iter().map(|(table, rows)| TableRows { table, rows, expected: expected.iter().find(|(n, _)| *n == table).map(|(_, e)| *e) }).collect();
    Ok(ComputeReport { shop: shop.to_string(), as_of: rfc3339(options.as_of), tables: rows, generation: None, stages, lifetime_model })
}

/// The entities each entity-keyed table must have one row for, at `T`.
fn entity_counts(inputs: &Inputs) -> Result<Vec<(&'static str, usize)>> {
    let m = &inputs.main;
    let entities = [("product_features", &m.products), ("user_features", &m.customers), ("collection_features", &m.collections), ("customer_lifetime_features", &m.customers)];
    let counts = normalize::collect_all(entities.iter().map(|(_, lf)| (*lf).clone().select([len()])).collect())?;
    entities
        .iter()
        .zip(counts)
        .map(|((name, _), c)| Ok((*name, c.column("len")?.cast(&DataType::Int64)?.i64()?.get(0).unwrap_or(0) as usize)))
        .collect()
}

/// [`compute`], writing each table as soon as it is made, as one new generation —
/// `<shop>/features/<generation>/<table>.parquet` and `features.duckdb` (the same
/// tables plus the `sql/` views) — then makes it current, keeps
/// `keep_generations` generations, and replaces `<shop>/features.duckdb` (the
/// stable path) with its database: what `shopfeat compute` and `run` do.
///
/// The files are written on a thread of their own while the next table is
/// computed, and the database built from each file as soon as it is complete, on
/// another: the feature plans leave part of the second core idle, and the
/// database's loads are the write's longest step. Each table is freed once
/// written: what it returns is the report (read the tables from the files).
///
/// Guarantees: readers follow `<shop>/features/CURRENT`, written once every file
/// of the generation is complete, so they see this run's tables whole or the
/// previous run's; the Parquet files and the database of a generation agree; the
/// stable database is always some generation's, whole; a failed run replaces
/// nothing.
pub fn compute_and_publish(root: &DataRoot, shop: &str, options: &ComputeOptions) -> Result<ComputeReport> {
    publish(root, shop, options, None)
}

/// [`compute_and_publish`] normalizing from what `kept` holds of the last run
/// ([`normalize::normalize_kept`]), and keeping what it makes: for a
/// long-lived process (`serve`) that computes one shop again and again.
pub fn compute_and_publish_keeping(root: &DataRoot, shop: &str, options: &ComputeOptions, kept: &Mutex<Kept>) -> Result<ComputeReport> {
    publish(root, shop, options, Some(kept))
}

fn publish(root: &DataRoot, shop: &str, options: &ComputeOptions, kept: Option<&Mutex<Kept>>) -> Result<ComputeReport> {
    let generation = Generation::new(root, &sinks::parquet::features_dir(shop))?;
    let outcome = std::thread::scope(|scope| -> Result<_> {
        let (tables, received) = std::sync::mpsc::channel::<(&'static str, DataFrame)>();
        let writer = scope.spawn(|| write_tables(scope, root, shop, &generation, received));
        // Each table goes to the writer and is freed once written, not kept to
        // the end: on `large` the tables made before the last one held 0.6 GB
        // at the run's peak. A writer that stopped says why when joined.
        let report = compute_each(root, shop, options, kept, |name, frame| drop(tables.send((name, frame))));
        let stage = Stage::start("write");
        drop(tables);
        let written = writer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Ok((report?, written?, stage))
    });
    let (mut report, (staged, database), stage) = match outcome {
        Ok(done) => done,
        Err(e) => {
            generation.abandon(root);
            return Err(e);
        }
    };
    let empty: Vec<&str> = report.tables.iter().filter(|t| t.rows == 0).map(|t| t.table).collect();
    if !empty.is_empty() {
        // Expected for a shop without storefront events: one warning, not an error.
        tracing::warn!("written with no rows (their inputs are empty at T): {}", empty.join(", "));
    }
    let mut databases = sinks::duckdb::stage(root, &[generation.path(sinks::duckdb::FILE), sinks::duckdb::database_path(shop)], &database)?;
    let stable = databases.pop().expect("two staged copies");
    let mut files: Vec<String> = report.tables.iter().map(|t| sinks::parquet::file_name(t.table)).collect();
    files.push(sinks::duckdb::FILE.to_string());
    sinks::parquet::publish(root, staged)?;
    sinks::parquet::publish(root, databases)?;
    generation.make_current(root, &files, Some(report.as_of.clone()), options.keep_generations)?;
    crate::lock::ensure_held(root, shop)?;
    root.commit(stable)?;
    report.generation = Some(generation.id);
    report.stages.push(stage.finish());
    Ok(report)
}

/// Stages each table received as a Parquet file of `generation` and loads it into
/// a new database, then the run history so far (this run's record says
/// `running`), for analysts.
fn write_tables<'scope>(scope: &'scope std::thread::Scope<'scope, '_>, root: &DataRoot, shop: &str, generation: &Generation, tables: std::sync::mpsc::Receiver<(&'static str, DataFrame)>) -> Result<(Vec<StagedFile>, sinks::duckdb::Built)> {
    let database = sinks::duckdb::Builder::start(scope)?;
    let written = (|| -> Result<_> {
        let mut staged = Vec::new();
        for (name, frame) in tables {
            let file = sinks::parquet::stage_table(root, &generation.path(&sinks::parquet::file_name(name)), &frame)?;
            database.add(name, file.path());
            staged.push(file);
        }
        let history = tempfile::Builder::new().suffix(".parquet").tempfile()?;
        ParquetWriter::new(history.as_file()).finish(&mut crate::history::table(root, shop, crate::history::IN_DATABASE)?)?;
        database.add("run_history", history.path());
        Ok((staged, history))
    })();
    // Joined whatever happened above; a failed write is the error told.
    let built = database.finish();
    let (staged, _history_read_by_now) = written?;
    Ok((staged, built?))
}

/// One stage of [`profile`] with the rows it produced.
#[derive(Debug, Clone, Serialize)]
pub struct ProfiledStage {
    #[serde(flatten)]
    pub stage: StageReport,
    pub rows: usize,
}

/// Each stage of [`compute`] on its own: the main tables, the sessionized events,
/// then every feature table (by its name), each collected alone. Slower in total
/// than [`compute`] (shared work is done once per table); nothing is written.
pub fn profile(root: &DataRoot, shop: &str, options: &ComputeOptions) -> Result<Vec<ProfiledStage>> {
    let stage = Stage::start("main tables");
    let main = normalize(root, shop, Some(options.as_of))?.for_features().materialize()?;
    let rows = main.events.clone().collect()?.height();
    let mut stages = vec![ProfiledStage { stage: stage.finish(), rows }];
    let stage = Stage::start("sessions");
    let inputs = Inputs::new(main, shop, options.as_of, options.pairs)?;
    let rows = inputs.sessions.clone().collect()?.height();
    stages.push(ProfiledStage { stage: stage.finish(), rows });
    for (name, plan) in features::plans(&inputs)? {
        let stage = Stage::start(name);
        let rows = plan.collect()?.height();
        stages.push(ProfiledStage { stage: stage.finish(), rows });
    }
    Ok(stages)
}

/// The optimized plan of the main tables at `as_of`, as `compute` runs it — the
/// only plan that reads raw data but for the events' details of the sessions'
/// first and last events — as Polars prints it. The feature tables are
/// computed from its result.
pub fn explain(root: &DataRoot, shop: &str, as_of: i64) -> Result<String> {
    let main = normalize(root, shop, Some(as_of))?.for_features();
    let plans: Vec<DslPlan> = main.named().into_iter().map(|(_, lf)| lf.logical_plan).collect();
    let opt = main.products.get_current_optimizations();
    Ok(LazyFrame::explain_all(plans, opt)?)
}
