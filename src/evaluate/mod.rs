//! `shopfeat evaluate`: do the feature tables recommend? A time split, as
//! recommender papers and libraries do it.
//!
//! - Everything the sources know is computed at `T` (the feature tables at `T`,
//!   exactly as `compute --as-of T` gives them): nothing after `T`.
//! - The test set: the purchases in `(T, T + horizon]` of customers who bought
//!   before `T` — of products on sale at `T` they had not bought before (what a
//!   recommender could have shown them); customers left without one are not
//!   tested.
//! - Each source ranks the whole catalog on sale at `T` for each tested customer
//!   (never a sample of it: Krichene & Rendle 2020) minus what they bought
//!   before; hit rate, recall and NDCG at k, with 95% bootstrap intervals over
//!   customers, and catalog coverage (the share of the catalog on sale that
//!   appears in some top k).

pub mod metrics;
pub mod sources;

use crate::features::{self, pairs::PairOptions, sessions::BrowseTimes, Inputs};
use crate::pipeline;
use crate::storage::DataRoot;
use anyhow::{Context, Result};
use metrics::Estimate;
use polars::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sources::{Knowledge, Source};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// A day in µs.
const DAY: i64 = 86_400_000_000;

#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    pub as_of: i64,
    pub horizon_days: u32,
    pub k: usize,
    /// Bootstrap resamples of the tested customers.
    pub resamples: usize,
    pub pairs: PairOptions,
    /// Ranked lists of a peer (`model`, `customer_id`, `rank`, `product_id`),
    /// scored beside the sources with the same split and metric code.
    pub peer_lists: Option<DataFrame>,
    /// Where to write the split for a peer ([`write_split`]).
    pub write_split: Option<std::path::PathBuf>,
}

impl EvaluateOptions {
    pub fn at(as_of: i64) -> EvaluateOptions {
        EvaluateOptions { as_of, horizon_days: 14, k: 10, resamples: 1000, pairs: PairOptions::default(), peer_lists: None, write_split: None }
    }
}

/// What [`evaluate`] found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    pub shop: String,
    /// When it ran.
    pub evaluated_at: String,
    pub as_of: String,
    pub horizon_days: u32,
    pub k: usize,
    /// Customers tested, products on sale at `T`, (customer, product) test purchases.
    pub customers: usize,
    pub catalog: usize,
    pub test_purchases: usize,
    pub sources: Vec<SourceResult>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceResult {
    pub source: String,
    pub personalised: bool,
    pub hit_rate: Estimate,
    pub recall: Estimate,
    pub ndcg: Estimate,
    /// Share of the catalog on sale at `T` in some customer's top k.
    pub coverage: f64,
}

/// Where the shop's last evaluation is kept (the HTML report shows it).
pub fn last_path(shop: &str) -> String {
    format!("{shop}/evaluation.json")
}

/// The shop's last evaluation, if it has one.
pub fn last(root: &DataRoot, shop: &str) -> Result<Option<Evaluation>> {
    let rel = last_path(shop);
    root.get(&rel)?.map(|bytes| serde_json::from_slice(&bytes).with_context(|| format!("{}/{rel} is not an evaluation", root.describe()))).transpose()
}

/// The seed of the bootstrap: fixed, so an evaluation is reproducible.
const BOOTSTRAP_SEED: u64 = 20_141_208;

/// Evaluates every [`Source`] on `shop` at `T` (`options.as_of`).
pub fn evaluate(root: &DataRoot, shop: &str, options: &EvaluateOptions) -> Result<Evaluation> {
    let started = Instant::now();
    let t = options.as_of;
    let knowledge = knowledge_at(root, shop, t, options.pairs)?;
    let bought_after = purchases_between(root, shop, t, t + i64::from(options.horizon_days) * DAY)?;
    let tested = tested_customers(&knowledge, bought_after);
    let test_purchases = tested.iter().map(|(_, relevant)| relevant.len()).sum();
    let draws = metrics::draws(tested.len(), options.resamples, BOOTSTRAP_SEED);
    if let Some(dir) = &options.write_split {
        write_split(dir, &knowledge, &tested)?;
    }
    let mut sources: Vec<SourceResult> = Source::ALL.iter().map(|&source| score_source(&knowledge, source, &tested, options.k, &draws)).collect();
    if let Some(lists) = &options.peer_lists {
        sources.extend(score_peer(&knowledge, lists, &tested, options.k, &draws)?);
    }
    Ok(Evaluation {
        shop: shop.to_string(),
        evaluated_at: crate::time::now_rfc3339(),
        as_of: crate::time::rfc3339(t),
        horizon_days: options.horizon_days,
        k: options.k,
        customers: tested.len(),
        catalog: knowledge.popular.len(),
        test_purchases,
        sources,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// When the shop's latest valid order was created.
pub fn last_order_at(root: &DataRoot, shop: &str) -> Result<i64> {
    let now = crate::time::now_us();
    let inputs = Inputs::lazy(pipeline::normalize(root, shop, Some(now))?, shop, now, PairOptions::default())?;
    let latest = inputs.valid_orders().select([col("created_at").max().cast(DataType::Int64)]).collect()?;
    latest.column("created_at")?.i64()?.get(0).context("the shop has no valid order to evaluate on")
}

/// The feature tables the sources read, at `T`.
pub struct TablesAt {
    pub products: DataFrame,
    pub pairs: DataFrame,
    pub embeddings: DataFrame,
    pub interactions: DataFrame,
    pub users: DataFrame,
}

/// The feature tables the sources read, at `T`, in one plan (the sessions they
/// share are built once), exactly as `compute --as-of T` gives them.
pub fn tables_at(root: &DataRoot, shop: &str, t: i64, pairs: PairOptions) -> Result<TablesAt> {
    tables_of(pipeline::normalize(root, shop, Some(t))?, shop, t, pairs, true, None)
}

/// [`tables_at`] from the main tables at `T` (as normalization gives them);
/// product_embeddings left empty unless `embeddings` (a training set whose
/// rows no embedding source proposes does not need them: 0.7 s a cut-off of
/// `medium`, 6 s of `large`); what sessions browsed from `browse_times` when
/// given ([`Inputs::browse_times`]).
pub fn tables_of(main: crate::normalize::MainTables, shop: &str, t: i64, pairs: PairOptions, embeddings: bool, browse_times: Option<&BrowseTimes>) -> Result<TablesAt> {
    let main = main.for_features().materialize()?;
    let mut inputs = Inputs::lazy(main, shop, t, pairs)?;
    inputs.browse_times = browse_times.cloned();
    let no_embeddings = || {
        let columns = features::embeddings::table().schema().into_iter().map(|(name, kind)| Column::new_empty(name.into(), &kind.dtype())).collect();
        DataFrame::new_infer_height(columns).map(DataFrame::lazy)
    };
    let plans = vec![
        features::product::build(&inputs)?,
        features::pairs::build(&inputs)?,
        if embeddings { features::embeddings::build(&inputs)? } else { no_embeddings()? },
        features::interaction::build(&inputs)?,
        features::user::build(&inputs)?,
    ];
    let [products, pairs, embeddings, interactions, users]: [DataFrame; 5] = crate::normalize::collect_all(plans)?.try_into().map_err(|_| anyhow::anyhow!("five tables"))?;
    Ok(TablesAt { products, pairs, embeddings, interactions, users })
}

/// What the sources know at `T`: the feature tables at `T`, computed in memory.
pub fn knowledge_at(root: &DataRoot, shop: &str, t: i64, pairs: PairOptions) -> Result<Knowledge> {
    let tables = tables_at(root, shop, t, pairs)?;
    Knowledge::of(&tables)
}

/// Per customer, the products in their valid orders created in `(from, to]`
/// (as the shop stands at `to`), sorted.
pub fn purchases_between(root: &DataRoot, shop: &str, from: i64, to: i64) -> Result<HashMap<i64, Vec<i64>>> {
    let inputs = Inputs::lazy(pipeline::normalize(root, shop, Some(to))?, shop, to, PairOptions::default())?;
    let after = lit(from).strict_cast(DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)));
    let lines = inputs
        .valid_lines()
        .filter(col("ordered_at").gt(after).and(col("customer_id").is_not_null()).and(col("product_id").is_not_null()))
        .select([col("customer_id"), col("product_id")])
        .unique(None, UniqueKeepStrategy::Any)
        .collect()?;
    let mut purchases: HashMap<i64, Vec<i64>> = HashMap::new();
    for (c, p) in lines.column("customer_id")?.i64()?.iter().zip(lines.column("product_id")?.i64()?.iter()) {
        if let (Some(c), Some(p)) = (c, p) {
            purchases.entry(c).or_default().push(p);
        }
    }
    for list in purchases.values_mut() {
        list.sort_unstable();
    }
    Ok(purchases)
}

/// The customers who bought before `T` and after it something they could have
/// been recommended (on sale at `T`, not bought before), with those products;
/// by customer id.
fn tested_customers(knowledge: &Knowledge, bought_after: HashMap<i64, Vec<i64>>) -> Vec<(i64, Vec<i64>)> {
    let mut tested: Vec<(i64, Vec<i64>)> = bought_after
        .into_iter()
        .filter_map(|(customer, after)| {
            let before = knowledge.bought.get(&customer)?;
            let relevant: Vec<i64> = after.into_iter().filter(|p| knowledge.on_sale(*p) && before.binary_search(p).is_err()).collect();
            (!relevant.is_empty()).then_some((customer, relevant))
        })
        .collect();
    tested.sort_unstable();
    tested
}

fn score_source(knowledge: &Knowledge, source: Source, tested: &[(i64, Vec<i64>)], k: usize, draws: &[Vec<usize>]) -> SourceResult {
    let ranked: Vec<Vec<i64>> = tested.par_iter().map(|(customer, _)| knowledge.rank(source, *customer, k)).collect();
    score_lists(knowledge, source.name().to_string(), source.personalised(), &ranked, tested, k, draws)
}

/// Scores ranked lists (one per tested customer, in `tested`'s order).
fn score_lists(knowledge: &Knowledge, name: String, personalised: bool, ranked: &[Vec<i64>], tested: &[(i64, Vec<i64>)], k: usize, draws: &[Vec<usize>]) -> SourceResult {
    let scores: Vec<metrics::Scores> = ranked.iter().zip(tested).map(|(list, (_, relevant))| metrics::scores(list, relevant, k)).collect();
    let shown: HashSet<i64> = ranked.iter().flatten().copied().collect();
    let of = |pick: fn(&metrics::Scores) -> f64| metrics::estimate(&scores.iter().map(pick).collect::<Vec<_>>(), draws);
    SourceResult {
        source: name,
        personalised,
        hit_rate: of(|s| s.hit),
        recall: of(|s| s.recall),
        ndcg: of(|s| s.ndcg),
        coverage: shown.len() as f64 / knowledge.popular.len().max(1) as f64,
    }
}

/// Writes the split a peer trains and ranks on, as Parquet in `dir`:
/// `train.parquet` (customer_id, product_id: every purchase before `T`, the
/// purchase matrix the sources read), `catalog.parquet` (product_id: on sale at
/// `T`, most popular first) and `customers.parquet` (customer_id: the tested).
pub fn write_split(dir: &std::path::Path, knowledge: &Knowledge, tested: &[(i64, Vec<i64>)]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut bought: Vec<(i64, i64)> = knowledge.bought.iter().flat_map(|(c, products)| products.iter().map(move |p| (*c, *p))).collect();
    bought.sort_unstable();
    let frames = [
        ("train", DataFrame::new_infer_height(vec![Column::new("customer_id".into(), bought.iter().map(|b| b.0).collect::<Vec<_>>()), Column::new("product_id".into(), bought.iter().map(|b| b.1).collect::<Vec<_>>())])?),
        ("catalog", DataFrame::new_infer_height(vec![Column::new("product_id".into(), knowledge.popular.clone())])?),
        ("customers", DataFrame::new_infer_height(vec![Column::new("customer_id".into(), tested.iter().map(|t| t.0).collect::<Vec<_>>())])?),
    ];
    for (name, mut frame) in frames {
        let path = dir.join(format!("{name}.parquet"));
        ParquetWriter::new(std::fs::File::create(&path)?).finish(&mut frame).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// A peer's lists (`model`, `customer_id`, `rank`, `product_id`) scored as the
/// sources are: one result per model, named `peer:<model>`. A tested customer
/// without a list scores zero.
fn score_peer(knowledge: &Knowledge, lists: &DataFrame, tested: &[(i64, Vec<i64>)], k: usize, draws: &[Vec<usize>]) -> Result<Vec<SourceResult>> {
    let sorted = lists.clone().lazy().sort(["model", "customer_id", "rank"], SortMultipleOptions::default()).collect()?;
    let (models, customers, products) = (sorted.column("model")?.str()?.clone(), sorted.column("customer_id")?.cast(&DataType::Int64)?, sorted.column("product_id")?.cast(&DataType::Int64)?);
    let mut by_model: std::collections::BTreeMap<String, HashMap<i64, Vec<i64>>> = Default::default();
    for ((m, c), p) in models.iter().zip(customers.i64()?.iter()).zip(products.i64()?.iter()) {
        if let (Some(m), Some(c), Some(p)) = (m, c, p) {
            by_model.entry(m.to_string()).or_default().entry(c).or_default().push(p);
        }
    }
    Ok(by_model
        .into_iter()
        .map(|(model, lists)| {
            let ranked: Vec<Vec<i64>> = tested.iter().map(|(c, _)| lists.get(c).map(|l| l.iter().take(k).copied().collect()).unwrap_or_default()).collect();
            score_lists(knowledge, format!("peer:{model}"), true, &ranked, tested, k, draws)
        })
        .collect())
}

/// The evaluation as a table (one row per source), for `--out`.
pub fn as_frame(evaluation: &Evaluation) -> Result<DataFrame> {
    let s = &evaluation.sources;
    let estimate = |name: &str, pick: fn(&SourceResult) -> Estimate| -> Vec<Column> {
        vec![
            Column::new(name.into(), s.iter().map(|r| pick(r).mean).collect::<Vec<_>>()),
            Column::new(format!("{name}_low").into(), s.iter().map(|r| pick(r).low).collect::<Vec<_>>()),
            Column::new(format!("{name}_high").into(), s.iter().map(|r| pick(r).high).collect::<Vec<_>>()),
        ]
    };
    let mut columns = vec![
        Column::new("as_of".into(), vec![evaluation.as_of.clone(); s.len()]),
        Column::new("horizon_days".into(), vec![i64::from(evaluation.horizon_days); s.len()]),
        Column::new("k".into(), vec![evaluation.k as i64; s.len()]),
        Column::new("source".into(), s.iter().map(|r| r.source.as_str()).collect::<Vec<_>>()),
        Column::new("personalised".into(), s.iter().map(|r| r.personalised).collect::<Vec<_>>()),
    ];
    columns.extend(estimate("hit_rate", |r| r.hit_rate));
    columns.extend(estimate("recall", |r| r.recall));
    columns.extend(estimate("ndcg", |r| r.ndcg));
    columns.push(Column::new("coverage".into(), s.iter().map(|r| r.coverage).collect::<Vec<_>>()));
    columns.push(Column::new("customers".into(), vec![evaluation.customers as i64; s.len()]));
    Ok(DataFrame::new_infer_height(columns)?)
}
