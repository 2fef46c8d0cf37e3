//! `shopfeat trainset`: training rows for a ranking model over many cut-offs.
//!
//! For each cut-off `T`: rows (customer, product) — each customer active before
//! `T` (a view, cart add or purchase in the `active_days` up to `T`) and each
//! product a candidate source proposes for them, or the rows of a spine — with the user,
//! product, interaction and pair features exactly as `compute --as-of T` gives
//! them (the same normalization at `T`, the same table builds), and a label:
//! whether the customer bought (or added to cart) the product in
//! `(T, T + horizon]`, with the time of the first such event. Nothing after `T`
//! reaches a feature; an event exactly at `T` is a feature, one exactly at
//! `T + horizon` a label.
//!
//! Written as Parquet partitioned by cut-off: by default (the star layout) each
//! row's keys, source flags, label and best pair partner in
//! `cutoff=<T>/rows-<n>.parquet`, and the features once per entity they
//! belong to: `users.parquet`, `products.parquet`, `interactions.parquet` (the
//! rows' (customer, product) that have an interaction) and `pairs.parquet`
//! (each (product, partner) the rows name); flat, every column on every row
//! in `part-<n>.parquet` (at most 200,000 rows a part either way, so memory
//! holds two parts' features); with a
//! `manifest.json` (rows, positives, the share of label events the candidates
//! cover, a hash of the content) and a DuckDB file with the view `trainset`
//! (the flat rows in both layouts).
//! The directory appears whole or not at all.

use crate::evaluate::sources::{Knowledge, Source};
use crate::evaluate::{self, TablesAt};
use crate::features::pairs::PairOptions;
use crate::features::sessions::BrowseTimes;
use crate::hash::Fnv1a;
use crate::normalize::{self, RawTables, Shared};
use crate::storage::DataRoot;
use crate::vocabulary::EventName;
use anyhow::{bail, Context, Result};
use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a row's label records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// A valid order containing the product (valid at `T + horizon`: not a
    /// test order, not cancelled by then).
    Purchase,
    /// A `product_added_to_cart` event of the product by the customer's browsers.
    #[value(name = "add_to_cart", alias = "add-to-cart")]
    AddToCart,
}

/// A source of candidate products for a customer at `T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidates {
    /// Partners of their purchases in product_pair_features, by confidence.
    Pairs,
    /// The shop's most popular products (purchases in 30 days).
    Popular,
    /// What they bought before, most bought first (then the latest).
    Repurchase,
    /// The nearest products by product_embeddings to what they bought or viewed.
    Embedding,
    /// Partners of what they bought or viewed, by co-view count.
    CoView,
    /// What they viewed and did not buy, the more popular first.
    Viewed,
}

impl Candidates {
    const ALL: [Candidates; 6] = [Candidates::Pairs, Candidates::Popular, Candidates::Repurchase, Candidates::Embedding, Candidates::CoView, Candidates::Viewed];

    /// The rows' flag of this source: `source__pairs`, ….
    pub fn column(self) -> String {
        format!("source__{}", self.name())
    }

    pub fn name(self) -> &'static str {
        match self {
            Candidates::Pairs => "pairs",
            Candidates::Popular => "popular",
            Candidates::Repurchase => "repurchase",
            Candidates::Embedding => "embedding",
            Candidates::CoView => "co_view",
            Candidates::Viewed => "viewed",
        }
    }

    /// `pairs:50,popular:50,…` → the sources and how many each proposes.
    pub fn parse_list(text: &str) -> Result<Vec<(Candidates, usize)>, String> {
        let mut list = vec![];
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, n) = part.split_once(':').ok_or_else(|| format!("{part:?}: expected SOURCE:N, e.g. pairs:50"))?;
            let source = Candidates::ALL.into_iter().find(|c| c.name() == name).ok_or_else(|| {
                format!("{name:?} is not a candidate source (one of {})", Candidates::ALL.map(Candidates::name).join(", "))
            })?;
            let n: usize = n.parse().map_err(|_| format!("{part:?}: N must be a whole number"))?;
            if n == 0 || list.iter().any(|(c, _)| *c == source) {
                return Err(format!("{part:?}: N must be at least 1, and each source named once"));
            }
            list.push((source, n));
        }
        if list.is_empty() {
            return Err("name at least one candidate source".into());
        }
        Ok(list)
    }
}

/// How a cut-off's features are laid out in its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `rows-<n>.parquet` with each row's own columns (keys, `source__*` flags, label,
    /// `label_at`, `pair__partner_id`), and the features once per entity:
    /// `users.parquet`, `products.parquet`, `interactions.parquet` (only the
    /// rows' (customer, product) with an interaction: a few in a hundred) and
    /// `pairs.parquet` (each (product, partner) the rows name: a pair is the
    /// best of many customers' rows); the DuckDB view joins them into the flat
    /// rows. A customer's 46 user columns and a product's 68 are written once,
    /// not on each of their rows.
    #[default]
    Star,
    /// `part-<n>.parquet` with every column on every row: files that stand
    /// alone, on `medium` 12 times the bytes and 3 times the time.
    Flat,
}

/// Where the rows come from.
#[derive(Debug, Clone)]
pub enum Rows {
    Candidates(Vec<(Candidates, usize)>),
    /// `(customer_id, product_id, cutoff)` rows given by the user (Feast's
    /// entity dataframe): the cut-offs are theirs.
    Spine(DataFrame),
}

#[derive(Debug, Clone)]
pub struct TrainsetOptions {
    /// Cut-offs, µs since the epoch (ignored with a spine, which names its own).
    pub cutoffs: Vec<i64>,
    /// µs.
    pub horizon: i64,
    pub label: Label,
    pub rows: Rows,
    /// With candidates: the customers are those with a view, cart add or
    /// purchase in this many days up to `T`.
    pub active_days: u32,
    pub pairs: PairOptions,
    pub layout: Layout,
}

/// What a training set holds (its `manifest.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub shop: String,
    pub label: Label,
    pub layout: Layout,
    pub horizon_seconds: i64,
    /// `pairs:50,popular:50,…`, or `spine`.
    pub rows_from: String,
    pub cutoffs: Vec<CutoffSummary>,
    pub rows: usize,
    pub positives: usize,
    /// Label events ((customer, product) pairs) of the customers with rows,
    /// and the share of them that some row holds.
    pub label_events: usize,
    pub covered_share: f64,
    /// FNV-1a of the partitions' Parquet bytes in cut-off order.
    pub content_hash: String,
    pub columns: Vec<String>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CutoffSummary {
    pub cutoff: String,
    /// The rows' files (`cutoff=…/rows-*.parquet`, or `part-*` when flat).
    pub file: String,
    /// With the star layout: the cut-off's files of features the rows join to.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub star: Option<StarFiles>,
    pub customers: usize,
    pub rows: usize,
    pub positives: usize,
    pub label_events: usize,
    /// Computing its tables and rows (beside the previous cut-off's writing)
    /// and writing them: the cut-offs' seconds add up to more than the set's.
    pub seconds: f64,
}

/// The files beside a cut-off's rows in the star layout.
#[derive(Debug, Clone, Serialize)]
pub struct StarFiles {
    /// `cutoff`, `customer_id`, `user__*`: each customer with rows.
    pub users_file: String,
    /// `cutoff`, `product_id`, `product__*`: each product with rows.
    pub products_file: String,
    /// `cutoff`, `customer_id`, `product_id`, `interaction__*`: each row with
    /// an interaction (the others' `interaction__*` are null).
    pub interactions_file: String,
    /// `cutoff`, `product_id`, `pair__partner_id`, `pair__confidence`, the
    /// pair's columns: each best pair a row names.
    pub pairs_file: String,
}

impl StarFiles {
    const NAMES: [&'static str; 4] = ["users.parquet", "products.parquet", "interactions.parquet", "pairs.parquet"];

    fn of(partition: &str) -> StarFiles {
        let [users_file, products_file, interactions_file, pairs_file] = Self::NAMES.map(|name| format!("{partition}/{name}"));
        StarFiles { users_file, products_file, interactions_file, pairs_file }
    }
}

/// The partition directory of a cut-off: `cutoff=20250601T000000Z`.
pub fn partition(cutoff: i64) -> String {
    let t = chrono::DateTime::from_timestamp_micros(cutoff).expect("a time in range");
    format!("cutoff={}", t.format("%Y%m%dT%H%M%S%.fZ"))
}

/// Builds the training set of `shop` into `out` (which must not exist yet).
pub fn build(root: &DataRoot, shop: &str, options: &TrainsetOptions, out: &Path) -> Result<Manifest> {
    let started = Instant::now();
    if out.exists() {
        bail!("{} exists: give a new directory (a training set is written whole, never over another)", out.display());
    }
    let cutoffs = cutoffs_of(options)?;
    let staging = staging_dir(out)?;
    let result = write_partitions(root, shop, options, &cutoffs, &staging);
    let (summaries, hash, columns) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let rows = summaries.iter().map(|s| s.rows).sum();
    let label_events: usize = summaries.iter().map(|s| s.label_events).sum();
    // A positive is a label event some row holds.
    let positives: usize = summaries.iter().map(|s| s.positives).sum();
    let manifest = Manifest {
        shop: shop.to_string(),
        label: options.label,
        layout: options.layout,
        horizon_seconds: options.horizon / 1_000_000,
        rows_from: match &options.rows {
            Rows::Candidates(list) => list.iter().map(|(c, n)| format!("{}:{n}", c.name())).collect::<Vec<_>>().join(","),
            Rows::Spine(_) => "spine".into(),
        },
        rows,
        positives,
        label_events,
        covered_share: if label_events == 0 { 0.0 } else { positives as f64 / label_events as f64 },
        content_hash: hash,
        columns,
        cutoffs: summaries,
        seconds: started.elapsed().as_secs_f64(),
    };
    std::fs::write(staging.join("manifest.json"), serde_json::to_vec_pretty(&manifest)?)?;
    std::fs::rename(&staging, out).with_context(|| format!("cannot move the training set to {}", out.display()))?;
    // The view names the files by their final path, so it is made last (the
    // set is complete without it).
    write_view(out, options.layout).context("the DuckDB view")?;
    Ok(manifest)
}

/// The cut-offs, sorted: the options', or the spine's.
fn cutoffs_of(options: &TrainsetOptions) -> Result<Vec<i64>> {
    let mut cutoffs = match &options.rows {
        Rows::Candidates(_) => options.cutoffs.clone(),
        Rows::Spine(spine) => spine.column("cutoff")?.cast(&DataType::Int64)?.i64()?.iter().flatten().collect(),
    };
    cutoffs.sort_unstable();
    cutoffs.dedup();
    if cutoffs.is_empty() {
        bail!("no cut-off to build rows at");
    }
    Ok(cutoffs)
}

/// A fresh directory beside `out` to write into.
fn staging_dir(out: &Path) -> Result<PathBuf> {
    let name = out.file_name().context("the output directory needs a name")?.to_string_lossy().into_owned();
    let staging = out.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).with_context(|| format!("cannot create {}", staging.display()))?;
    Ok(staging)
}

/// Every cut-off's partition, in order; the content hash and the columns.
fn write_partitions(root: &DataRoot, shop: &str, options: &TrainsetOptions, cutoffs: &[i64], staging: &Path) -> Result<(Vec<CutoffSummary>, String, Vec<String>)> {
    let store = Store::open(root, shop)?;
    let labels = label_events(&store, options.label, *cutoffs.last().expect("a cut-off") + options.horizon)?;
    let progress = crate::progress::Progress::new(cutoffs.len() as u64, "cut-offs", false);
    let mut hash = Fnv1a::default();
    let (mut summaries, mut columns) = (vec![], vec![]);
    // Each cut-off's tables and rows are computed while the previous one's
    // files are written: each stage leaves a core idle part of the time (a
    // sort, a hash map built on one thread), which the other fills.
    std::thread::scope(|scope| -> Result<()> {
        let store = &store;
        let choose_at = |t: i64| scope.spawn(move || choose(store, shop, options, t));
        let mut next = Some(choose_at(cutoffs[0]));
        for (i, &t) in cutoffs.iter().enumerate() {
            let chosen = next.take().expect("a cut-off being chosen").join().map_err(|_| anyhow::anyhow!("choosing the rows at {} panicked", crate::time::rfc3339(t)))??;
            next = cutoffs.get(i + 1).map(|&t| choose_at(t));
            let started = Instant::now();
            let (mut summary, names) = write_cutoff(options, &labels, &chosen, &staging.join(partition(t)), &mut hash)?;
            columns = names;
            summary.seconds = chosen.seconds + started.elapsed().as_secs_f64();
            tracing::info!(cutoff = %summary.cutoff, rows = summary.rows, positives = summary.positives, seconds = summary.seconds, "cut-off written");
            summaries.push(summary);
            progress.inc(1);
        }
        Ok(())
    })?;
    progress.finish();
    Ok((summaries, format!("{:016x}", hash.finish()), columns))
}

/// The shop's raw store read once for every cut-off: the entities in memory,
/// the events unique and numbered and the order tables normalized
/// ([`Shared`]), and when its sessions browsed each product and pair
/// ([`BrowseTimes`]). Each cut-off's main tables are those `compute --as-of`
/// normalizes, and its tables those it computes (tested against it).
struct Store {
    raw: RawTables,
    shared: Shared,
    browse_times: BrowseTimes,
}

impl Store {
    fn open(root: &DataRoot, shop: &str) -> Result<Store> {
        let raw = crate::pipeline::raw_tables(root, shop)?.in_memory()?;
        let shared = Shared::of(&raw)?;
        let browse_times = BrowseTimes::of_every_event(&shared)?;
        tracing::debug!(resident_mb = crate::pipeline::resident_bytes().unwrap_or(0) >> 20, "raw store read");
        Ok(Store { raw, shared, browse_times })
    }
}

/// `(customer_id, product_id, at, valid_until)` of every label event in the
/// shop as it stands at `end` (the last window's end): `valid_until` is when
/// an order was cancelled (a purchase counts in a window ending before it).
fn label_events(store: &Store, label: Label, end: i64) -> Result<DataFrame> {
    let main = normalize::normalize_shared(&store.raw, end, &store.shared)?;
    let frame = match label {
        Label::Purchase => {
            let orders = main.orders.filter(col("test").eq(lit(false))).select([col("order_id"), col("customer_id"), col("created_at").cast(DataType::Int64).alias("at"), col("cancelled_at").cast(DataType::Int64).alias("valid_until")]);
            main.line_items.select([col("order_id"), col("product_id")]).join(orders, [col("order_id")], [col("order_id")], JoinArgs::new(JoinType::Inner)).select([col("customer_id"), col("product_id"), col("at"), col("valid_until")])
        }
        Label::AddToCart => main.events.filter(col("name").eq(lit(EventName::ProductAddedToCart.as_str()))).select([
            col("customer_id"),
            col("product_id"),
            col("timestamp").cast(DataType::Int64).alias("at"),
            lit(NULL).cast(DataType::Int64).alias("valid_until"),
        ]),
    };
    Ok(frame.filter(col("customer_id").is_not_null().and(col("product_id").is_not_null())).collect()?)
}

/// The first label event of each (customer, product) in `(t, t + horizon]`.
fn labels_in(labels: &DataFrame, t: i64, horizon: i64) -> LazyFrame {
    let end = t + horizon;
    let valid = col("valid_until").is_null().or(col("valid_until").gt(lit(end)));
    labels
        .clone()
        .lazy()
        .filter(col("at").gt(lit(t)).and(col("at").lt_eq(lit(end))).and(valid))
        .group_by([col("customer_id"), col("product_id")])
        .agg([col("at").min().alias("label_at")])
}

/// `label_at` by (customer, product), of [`labels_in`]'s rows.
fn label_times(window: &DataFrame) -> Result<PlHashMap<(i64, i64), i64>> {
    let column = |c: &str| -> Result<Int64Chunked> { Ok(window.column(c)?.cast(&DataType::Int64)?.i64()?.clone()) };
    let (customers, products, times) = (column("customer_id")?, column("product_id")?, column("label_at")?);
    Ok(customers.iter().zip(products.iter()).zip(times.iter()).filter_map(|((c, p), at)| Some(((c?, p?), at?))).collect())
}

/// Rows per Parquet file: a cut-off of a large shop is written a part at a
/// time, so memory holds a few parts' features, not the cut-off's.
const ROWS_PER_PART: usize = 200_000;

/// Parts encoded side by side: two use both cores of the machines this was
/// measured on (a fifth less time than one at a time) and hold twice a part's
/// memory; more would hold more whatever the cores.
const PARTS_AT_ONCE: usize = 2;

/// A cut-off's feature tables and its rows (customer_id, product_id,
/// a flag per candidate source; sorted): what is computed before its files are written.
struct Chosen {
    t: i64,
    tables: TablesAt,
    keys: DataFrame,
    seconds: f64,
}

/// The feature tables at `t` and the rows the candidates (or the spine) give.
fn choose(store: &Store, shop: &str, options: &TrainsetOptions, t: i64) -> Result<Chosen> {
    let clock = Instant::now();
    let embeddings = matches!(&options.rows, Rows::Candidates(list) if list.iter().any(|(c, _)| *c == Candidates::Embedding));
    let tables = evaluate::tables_of(normalize::normalize_shared(&store.raw, t, &store.shared)?, shop, t, options.pairs, embeddings, Some(&store.browse_times))?;
    tracing::debug!(seconds = clock.elapsed().as_secs_f64(), "feature tables at the cut-off");
    let keys = match &options.rows {
        Rows::Candidates(list) => candidates(&tables, list, t - i64::from(options.active_days) * 86_400_000_000)?,
        Rows::Spine(spine) => spine
            .clone()
            .lazy()
            .filter(col("cutoff").cast(DataType::Int64).eq(lit(t)))
            .select([col("customer_id").cast(DataType::Int64), col("product_id").cast(DataType::Int64)])
            .unique_stable(Some(cols(["customer_id", "product_id"])), UniqueKeepStrategy::First)
            .sort(["customer_id", "product_id"], SortMultipleOptions::default())
            .collect()?,
    };
    tracing::debug!(seconds = clock.elapsed().as_secs_f64(), rows = keys.height(), "rows chosen");
    Ok(Chosen { t, tables, keys, seconds: clock.elapsed().as_secs_f64() })
}

/// Writes the rows of a [`Chosen`] cut-off (with their features and labels)
/// into `dir`, part by part, feeding each file's bytes to `hash`.
fn write_cutoff(options: &TrainsetOptions, labels: &DataFrame, chosen: &Chosen, dir: &Path, hash: &mut Fnv1a) -> Result<(CutoffSummary, Vec<String>)> {
    let clock = Instant::now();
    let Chosen { t, tables, keys, .. } = chosen;
    let t = *t;
    let customers: DataFrame = keys.clone().lazy().select([col("customer_id")]).unique(None, UniqueKeepStrategy::Any).collect()?;
    let window = labels_in(labels, t, options.horizon).join(customers.clone().lazy(), [col("customer_id")], [col("customer_id")], JoinArgs::new(JoinType::Semi)).collect()?;
    let window = label_times(&window)?;
    std::fs::create_dir_all(dir)?;
    let features = Features::new(tables)?;
    let layout = options.layout;
    let stem = if layout == Layout::Flat { "part" } else { "rows" };
    let mut positives = 0;
    // With the star layout: the interactions and the best pairs the rows reach.
    let (mut interactions, mut pairs) = (vec![], vec![]);
    let parts = parts(keys.column("customer_id")?.i64()?)?;
    // [`PARTS_AT_ONCE`] parts side by side (encoding a part is mostly
    // single-threaded); files written and hashed in part order.
    for (batch, at_once) in parts.chunks(PARTS_AT_ONCE).enumerate() {
        let encoded: Vec<Result<Part>> = at_once.par_iter().with_max_len(1).map(|&(offset, len)| encode_part(features.of(keys.slice(offset as i64, len), &window, t, layout)?, t)).collect();
        for (i, part) in encoded.into_iter().enumerate() {
            let part = part?;
            std::fs::write(dir.join(format!("{stem}-{}.parquet", batch * PARTS_AT_ONCE + i)), &part.bytes)?;
            hash.update(&part.bytes);
            positives += part.positives;
            interactions.extend(part.interactions);
            pairs.extend(part.pairs);
        }
    }
    if layout == Layout::Star {
        let (users, products) = features.entities_of(&keys, t)?;
        let tables = [users, products, features.interactions_at(&interactions, t)?, features.pairs.table(pairs, t)?];
        for (name, mut frame) in StarFiles::NAMES.into_iter().zip(tables) {
            let bytes = parquet_bytes(&mut frame, name, t)?;
            std::fs::write(dir.join(name), &bytes)?;
            hash.update(&bytes);
        }
    }
    tracing::debug!(seconds = clock.elapsed().as_secs_f64(), "parts written");
    let partition = partition(t);
    let summary = CutoffSummary {
        cutoff: crate::time::rfc3339(t),
        file: format!("{partition}/{stem}-*.parquet"),
        star: (layout == Layout::Star).then(|| StarFiles::of(&partition)),
        customers: customers.height(),
        rows: keys.height(),
        positives,
        label_events: window.len(),
        seconds: 0.0,
    };
    Ok((summary, features.flat_columns(keys)))
}

/// A part's Parquet file, in memory, with what its rows reach in the star
/// layout's other files.
struct Part {
    bytes: Vec<u8>,
    positives: usize,
    interactions: Vec<IdxSize>,
    pairs: Vec<Best>,
}

fn encode_part(mut rows: RowsPart, t: i64) -> Result<Part> {
    let positives = rows.frame.column("label")?.bool()?.sum().unwrap_or(0) as usize;
    let bytes = parquet_bytes(&mut rows.frame, "the rows", t)?;
    Ok(Part { bytes, positives, interactions: rows.interactions, pairs: rows.pairs })
}

/// `frame` as Parquet; `what` (the rows, users.parquet, …) names it in an error.
fn parquet_bytes(frame: &mut DataFrame, what: &str, t: i64) -> Result<Vec<u8>> {
    let mut bytes = vec![];
    ParquetWriter::new(&mut bytes).finish(frame).map_err(|e| anyhow::anyhow!("cannot write {what} at {}: {e}", crate::time::rfc3339(t)))?;
    Ok(bytes)
}

/// (offset, length) of parts of at most [`ROWS_PER_PART`] rows (more only
/// when one customer has more), split where the customer changes; at least one.
fn parts(customers: &Int64Chunked) -> Result<Vec<(usize, usize)>> {
    let mut parts = vec![];
    let (mut start, mut previous) = (0, None);
    for (i, c) in customers.iter().enumerate() {
        if i - start >= ROWS_PER_PART && c != previous {
            parts.push((start, i - start));
            start = i;
        }
        previous = c;
    }
    parts.push((start, customers.len() - start));
    Ok(parts)
}

/// The feature tables at a cut-off, as the rows take them: each table's
/// columns prefixed (`user__…`), and where each customer, product and
/// (customer, product) stands in them.
struct Features {
    users: DataFrame,
    products: DataFrame,
    interactions: DataFrame,
    /// `customer_id`, `product_id` of `interactions`' rows.
    interaction_keys: DataFrame,
    user_row: PlHashMap<i64, IdxSize>,
    product_row: PlHashMap<i64, IdxSize>,
    /// `interactions`' (customer, product) keys, sorted, and the row of each:
    /// a cut-off's rows come in that order, so each is found near the
    /// previous one's (a hash lookup per row cost a cache miss).
    interaction_keys_sorted: Vec<(i64, i64)>,
    interaction_rows_sorted: Vec<IdxSize>,
    pairs: BestPairs,
}

/// A part of a cut-off's rows: the file's columns and, with the star layout,
/// the rows of the interaction table they reach (in row order) and their best
/// pairs.
struct RowsPart {
    frame: DataFrame,
    interactions: Vec<IdxSize>,
    pairs: Vec<Best>,
}

impl Features {
    fn new(tables: &TablesAt) -> Result<Features> {
        let ids = |frame: &DataFrame, c: &str| -> Result<Vec<Option<i64>>> { Ok(frame.column(c)?.i64()?.iter().collect()) };
        let rows_of = |keys: Vec<Option<i64>>| keys.into_iter().enumerate().filter_map(|(row, k)| Some((k?, row as IdxSize))).collect();
        let (customers, products) = (ids(&tables.interactions, "customer_id")?, ids(&tables.interactions, "product_id")?);
        let mut by_key: Vec<((i64, i64), IdxSize)> = customers.into_iter().zip(products).enumerate().filter_map(|(row, (c, p))| Some(((c?, p?), row as IdxSize))).collect();
        by_key.sort_unstable();
        let (interaction_keys_sorted, interaction_rows_sorted) = by_key.into_iter().unzip();
        Ok(Features {
            user_row: rows_of(ids(&tables.users, "customer_id")?),
            product_row: rows_of(ids(&tables.products, "product_id")?),
            interaction_keys_sorted,
            interaction_rows_sorted,
            users: prefixed(&tables.users, "user", &["customer_id"])?,
            products: prefixed(&tables.products, "product", &["product_id"])?,
            interactions: prefixed(&tables.interactions, "interaction", &["customer_id", "product_id"])?,
            interaction_keys: tables.interactions.select(["customer_id", "product_id"])?,
            pairs: BestPairs::new(tables)?,
        })
    }

    /// The interaction table's row of each (customer, product) of `keys`.
    fn interaction_rows(&self, keys: &[(Option<i64>, Option<i64>)]) -> Vec<Option<IdxSize>> {
        let places = places_in(&self.interaction_keys_sorted, keys.iter().map(|&(c, p)| Some((c?, p?))));
        places.into_iter().map(|place| place.map(|i| self.interaction_rows_sorted[i])).collect()
    }

    /// The flat rows' columns, in order (the view's in both layouts), of rows
    /// with `keys`' columns.
    fn flat_columns(&self, keys: &DataFrame) -> Vec<String> {
        let row = ["cutoff"].into_iter().chain(keys.get_column_names().into_iter().map(|c| c.as_str())).chain(["label", "label_at"]).map(String::from);
        let tables = [&self.users, &self.products, &self.interactions].map(|f| f.get_column_names().into_iter().map(|c| c.to_string()));
        let pairs = ["partner_id", "confidence"].into_iter().chain(BestPairs::SHARED).map(|c| format!("pair__{c}"));
        row.chain(tables.into_iter().flatten()).chain(pairs).collect()
    }

    /// `keys` (customer_id, product_id, source flags; sorted) with the label at
    /// `t` and, flat, every feature; star, the best pair's partner (the rest
    /// is written once per entity, see [`RowsPart`]). In the keys' order: each
    /// table's row gathered by a hash lookup, the interactions' by a search
    /// near the previous row's (a join per table sorted 145 columns again for
    /// rows already in order).
    fn of(&self, keys: DataFrame, window: &PlHashMap<(i64, i64), i64>, t: i64, layout: Layout) -> Result<RowsPart> {
        let (customers, products) = (keys.column("customer_id")?.i64()?.clone(), keys.column("product_id")?.i64()?.clone());
        let pairs: Vec<(Option<i64>, Option<i64>)> = customers.iter().zip(products.iter()).collect();
        let gather = |lookup: &dyn Fn(i64, i64) -> Option<IdxSize>| IdxCa::from_iter_options("rows".into(), pairs.iter().map(|&(c, p)| lookup(c?, p?)));
        let label_at: Vec<Option<i64>> = pairs.iter().map(|&(c, p)| window.get(&(c?, p?)).copied()).collect();
        let mut columns: Vec<Column> = vec![cutoff_column(t, keys.height())?];
        columns.extend(keys.columns().iter().cloned());
        columns.push(Column::new("label".into(), label_at.iter().map(Option::is_some).collect::<Vec<_>>()));
        columns.push(Column::new("label_at".into(), label_at).cast(&UTC_MICROS)?);
        let best = self.pairs.best_of(&customers, &products);
        if layout == Layout::Star {
            let interactions = self.interaction_rows(&pairs).into_iter().flatten().collect();
            columns.push(Column::new("pair__partner_id".into(), best.iter().map(|b| b.map(|b| b.partner)).collect::<Vec<_>>()));
            // Each pair once already (a popular pair is the best of many rows).
            let pairs = self.pairs.each_once(best.into_iter().flatten());
            return Ok(RowsPart { frame: DataFrame::new_infer_height(columns)?, interactions, pairs });
        }
        columns.extend(self.users.take(&gather(&|c, _| self.user_row.get(&c).copied()))?.into_columns());
        columns.extend(self.products.take(&gather(&|_, p| self.product_row.get(&p).copied()))?.into_columns());
        columns.extend(self.interactions.take(&IdxCa::from_iter_options("rows".into(), self.interaction_rows(&pairs).into_iter()))?.into_columns());
        columns.extend(self.pairs.columns(&best)?);
        Ok(RowsPart { frame: DataFrame::new_infer_height(columns)?, interactions: vec![], pairs: vec![] })
    }

    /// The star layout's `interactions.parquet`: `cutoff`, the keys and the
    /// interaction columns of `rows` (rows of the interaction table), in that
    /// order.
    fn interactions_at(&self, rows: &[IdxSize], t: i64) -> Result<DataFrame> {
        let rows = IdxCa::from_vec("rows".into(), rows.to_vec());
        let mut columns = vec![cutoff_column(t, rows.len())?];
        columns.extend(self.interaction_keys.take(&rows)?.into_columns());
        columns.extend(self.interactions.take(&rows)?.into_columns());
        Ok(DataFrame::new_infer_height(columns)?)
    }

    /// The star layout's `users.parquet` and `products.parquet` of `keys`:
    /// `cutoff`, the id, and the table's columns (all null where the table has
    /// no row, as on a flat row), by id.
    fn entities_of(&self, keys: &DataFrame, t: i64) -> Result<(DataFrame, DataFrame)> {
        let ids = |c: &str| -> Result<Vec<i64>> {
            let mut ids: Vec<i64> = keys.column(c)?.i64()?.iter().flatten().collect();
            ids.sort_unstable();
            ids.dedup();
            Ok(ids)
        };
        let table = |key: &str, ids: Vec<i64>, features: &DataFrame, row: &PlHashMap<i64, IdxSize>| -> Result<DataFrame> {
            let rows = IdxCa::from_iter_options("rows".into(), ids.iter().map(|id| row.get(id).copied()));
            let mut columns = vec![cutoff_column(t, ids.len())?, Column::new(key.into(), ids)];
            columns.extend(features.take(&rows)?.into_columns());
            Ok(DataFrame::new_infer_height(columns)?)
        };
        Ok((table("customer_id", ids("customer_id")?, &self.users, &self.user_row)?, table("product_id", ids("product_id")?, &self.products, &self.product_row)?))
    }
}

const UTC_MICROS: DataType = DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC));

/// `cutoff`: `t` on each of `len` rows.
fn cutoff_column(t: i64, len: usize) -> Result<Column> {
    Ok(Column::new("cutoff".into(), vec![t; len]).cast(&UTC_MICROS)?)
}

/// `table`'s columns but its key, as `<prefix>__<column>` (shop_id and
/// computed_at left out: the cut-off is the row's).
fn prefixed(table: &DataFrame, prefix: &str, key: &[&str]) -> Result<DataFrame> {
    let columns: Vec<Column> = table
        .columns()
        .iter()
        .filter(|c| !["shop_id", "computed_at"].contains(&c.name().as_str()) && !key.contains(&c.name().as_str()))
        .map(|c| c.clone().with_name(format!("{prefix}__{}", c.name()).into()))
        .collect();
    Ok(DataFrame::new_infer_height(columns)?)
}

/// The candidates of every customer active since `since` (a view, cart add or
/// purchase after it, up to `T`): `customer_id`, `product_id` and a flag per
/// source named (`source__pairs`…, in the order named: whether it proposed
/// the product), sorted by customer and product.
fn candidates(tables: &TablesAt, list: &[(Candidates, usize)], since: i64) -> Result<DataFrame> {
    let clock = Instant::now();
    let knowledge = Knowledge::of(tables)?;
    tracing::debug!(seconds = clock.elapsed().as_secs_f64(), "what the sources know");
    let interactions = &tables.interactions;
    let after = |c: &str| col(c).cast(DataType::Int64).gt(lit(since)).fill_null(lit(false));
    let recent = after("last_view_at").or(after("last_cart_add_at")).or(after("last_purchase_at"));
    let active = interactions.clone().lazy().filter(recent).select([col("customer_id")]).unique(None, UniqueKeepStrategy::Any).collect()?;
    let mut customers: Vec<i64> = active.column("customer_id")?.i64()?.iter().flatten().collect();
    customers.sort_unstable();
    let repurchases = repurchases(interactions)?;
    // Per customer (on every core): each product once, by product id, with
    // its sources as bits (bit i: the i-th source named).
    let proposed: Vec<Vec<(i64, u8)>> = customers
        .par_iter()
        .map(|&customer| {
            let mut products: Vec<(i64, u8)> = vec![];
            for (bit, &(source, n)) in list.iter().enumerate() {
                let found: Vec<i64> = match source {
                    Candidates::Pairs => knowledge.scored(Source::PairsConfidence, customer, n),
                    Candidates::Popular => knowledge.scored(Source::Popularity, customer, n),
                    Candidates::Embedding => knowledge.scored(Source::Embedding, customer, n),
                    Candidates::CoView => knowledge.scored(Source::CoView, customer, n),
                    Candidates::Viewed => knowledge.scored(Source::Viewed, customer, n),
                    Candidates::Repurchase => repurchases.get(&customer).map(|l| l.iter().take(n).copied().collect()).unwrap_or_default(),
                };
                products.extend(found.into_iter().map(|product| (product, 1u8 << bit)));
            }
            products.sort_unstable();
            products.dedup_by(|next, kept| {
                let same = next.0 == kept.0;
                if same {
                    kept.1 |= next.1;
                }
                same
            });
            products
        })
        .collect();
    tracing::debug!(seconds = clock.elapsed().as_secs_f64(), "proposed");
    let rows: usize = proposed.iter().map(Vec::len).sum();
    let (mut c, mut p, mut bits) = (Vec::with_capacity(rows), Vec::with_capacity(rows), Vec::with_capacity(rows));
    for (customer, products) in customers.iter().zip(&proposed) {
        for (product, sources) in products {
            c.push(*customer);
            p.push(*product);
            bits.push(*sources);
        }
    }
    // A flag per source, not a list of names: a ranker takes flags as
    // features as they are, and a list column's nested encoding took a tenth
    // of `medium`'s 26 cut-offs (34.8/33.5 s with lists, 31.2/30.1 s with flags).
    let mut columns = vec![Column::new("customer_id".into(), c), Column::new("product_id".into(), p)];
    columns.extend(list.iter().enumerate().map(|(i, (source, _))| Column::new(source.column().into(), bits.iter().map(|b| b & (1 << i) != 0).collect::<BooleanChunked>().into_series())));
    Ok(DataFrame::new_infer_height(columns)?)
}

/// Per customer, what they bought before `T`: most purchases first, then the
/// latest, then the product id.
fn repurchases(interactions: &DataFrame) -> Result<std::collections::HashMap<i64, Vec<i64>>> {
    let bought = interactions
        .clone()
        .lazy()
        .filter(col("purchase_count").gt(lit(0)))
        .sort_by_exprs(
            [col("customer_id"), col("purchase_count"), col("last_purchase_at"), col("product_id")],
            SortMultipleOptions::default().with_order_descending_multi([false, true, true, false]),
        )
        .select([col("customer_id"), col("product_id")])
        .collect()?;
    let mut lists: std::collections::HashMap<i64, Vec<i64>> = Default::default();
    for (c, p) in bought.column("customer_id")?.i64()?.iter().zip(bought.column("product_id")?.i64()?.iter()) {
        if let (Some(c), Some(p)) = (c, p) {
            lists.entry(c).or_default().push(p);
        }
    }
    Ok(lists)
}

/// Per (customer, product): the row of product_pair_features pairing the
/// product with the customer's purchase of highest confidence (purchase →
/// product; ties: more co-purchases, then the lower partner id), as
/// `pair__partner_id`, `pair__confidence` and the pair's columns. Looked up
/// in each purchase's partners (a customer bought a few products; a popular
/// one has thousands of partners): a bit test when it has many (at `medium`'s
/// last cut-offs the step's CPU share 7.5% → 4.6%), else galloping through
/// them as a customer's rows come by product.
struct BestPairs {
    pairs: DataFrame,
    /// Every product in a pair, by id: its place is its bit in [`Partners::bits`].
    products: Vec<i64>,
    /// Per product, its partners (by id) and what ranks them.
    partners: PlHashMap<i64, Partners>,
    a_to_b: Vec<f64>,
    b_to_a: Vec<f64>,
    /// Per customer, the products bought before `T`.
    bought: PlHashMap<i64, Vec<i64>>,
}

/// A purchased product's partners, by id: the ids apart (searched), and beside each
/// what ranks and names the pair (read once found, from the same place
/// rather than from the pair table's columns).
struct Partners {
    ids: Vec<i64>,
    pairs: Vec<Partner>,
    /// With partners among a 64th of all products or more: which products
    /// are partners, tested in one load instead of a search.
    bits: Option<Bits>,
}

/// Bit i set when the i-th product of [`BestPairs::products`] is a partner;
/// per word, the partners before it (with the bits below, a partner's place
/// in [`Partners::ids`]).
struct Bits {
    words: Vec<u64>,
    before: Vec<u32>,
}

impl Bits {
    /// `ids` (sorted, each once) as bits of `products` (sorted, holding them).
    fn of(ids: &[i64], products: &[i64]) -> Bits {
        let mut words = vec![0u64; products.len().div_ceil(64)];
        for at in places_in(products, ids.iter().copied().map(Some)).into_iter().flatten() {
            words[at / 64] |= 1 << (at % 64);
        }
        let before = words.iter().scan(0u32, |count, w| Some(std::mem::replace(count, *count + w.count_ones()))).collect();
        Bits { words, before }
    }

    /// The place in the partners' ids of the product at `place`, if a partner.
    fn find(&self, place: usize) -> Option<usize> {
        let (word, bit) = (self.words[place / 64], place % 64);
        (word >> bit & 1 == 1).then(|| self.before[place / 64] as usize + (word & ((1 << bit) - 1)).count_ones() as usize)
    }
}

#[derive(Clone, Copy)]
struct Partner {
    /// purchase → candidate product.
    confidence: f64,
    co_purchases: i64,
    row: IdxSize,
    partner_is_a: bool,
}

impl BestPairs {
    const SHARED: [&'static str; 7] = ["co_purchase_count", "co_view_count", "co_cart_count", "support", "lift", "first_co_purchase_at", "last_co_purchase_at"];

    fn new(tables: &TablesAt) -> Result<BestPairs> {
        let pairs = tables.pairs.select(Self::SHARED.iter().copied().chain(["product_id_a", "product_id_b", "confidence_a_to_b", "confidence_b_to_a"]))?;
        let ids = |c: &str| -> Result<Vec<i64>> { Ok(pairs.column(c)?.i64()?.iter().map(|v| v.unwrap_or(i64::MIN)).collect()) };
        let floats = |c: &str| -> Result<Vec<f64>> { Ok(pairs.column(c)?.f64()?.iter().map(|v| v.unwrap_or(f64::NEG_INFINITY)).collect()) };
        let (a, b, co) = (ids("product_id_a")?, ids("product_id_b")?, ids("co_purchase_count")?);
        let (a_to_b, b_to_a) = (floats("confidence_a_to_b")?, floats("confidence_b_to_a")?);
        let mut lists: PlHashMap<i64, Vec<(i64, Partner)>> = PlHashMap::new();
        for row in 0..a.len() {
            let partner = |confidence: f64, partner_is_a: bool| Partner { confidence, co_purchases: co[row], row: row as IdxSize, partner_is_a };
            // Keyed by the purchase, the candidate product beside: a → b, b → a.
            lists.entry(a[row]).or_default().push((b[row], partner(a_to_b[row], true)));
            lists.entry(b[row]).or_default().push((a[row], partner(b_to_a[row], false)));
        }
        let mut products: Vec<i64> = lists.keys().copied().collect();
        products.sort_unstable();
        let partners = lists
            .into_iter()
            .map(|(product, mut list)| {
                list.sort_unstable_by_key(|(id, p)| (*id, p.row));
                let ids: Vec<i64> = list.iter().map(|(id, _)| *id).collect();
                let each_once = ids.windows(2).all(|w| w[0] < w[1]);
                let bits = (each_once && ids.len() * 64 >= products.len()).then(|| Bits::of(&ids, &products));
                (product, Partners { ids, pairs: list.into_iter().map(|(_, p)| p).collect(), bits })
            })
            .collect();
        let interactions = &tables.interactions;
        let bought_rows = interactions.clone().lazy().filter(col("purchase_count").gt(lit(0))).select([col("customer_id"), col("product_id")]).collect()?;
        let mut bought: PlHashMap<i64, Vec<i64>> = PlHashMap::new();
        for (c, p) in bought_rows.column("customer_id")?.i64()?.iter().zip(bought_rows.column("product_id")?.i64()?.iter()) {
            if let (Some(c), Some(p)) = (c, p) {
                bought.entry(c).or_default().push(p);
            }
        }
        Ok(BestPairs { a_to_b, b_to_a, pairs, products, partners, bought })
    }

    /// `frame` (with customer_id, product_id) with the pair columns.
    #[cfg(test)]
    fn attach(&self, mut frame: DataFrame) -> Result<DataFrame> {
        let best = self.best_of(frame.column("customer_id")?.i64()?, frame.column("product_id")?.i64()?);
        for column in self.columns(&best)? {
            frame.with_column(column)?;
        }
        Ok(frame)
    }

    /// The best pair of each (customer, product): each run of a customer's
    /// rows against each of their purchases' partners in turn.
    fn best_of(&self, customers: &Int64Chunked, products: &Int64Chunked) -> Vec<Option<Best>> {
        let customers: Vec<Option<i64>> = customers.iter().collect();
        let products: Vec<Option<i64>> = products.iter().collect();
        // Each row's product's place in `products` (none when no pair names it).
        let places = places_in(&self.products, products.iter().copied());
        // (confidence, co-purchases, −partner): the largest wins.
        let mut found: Vec<Option<((f64, i64, i64), Best)>> = vec![None; customers.len()];
        let mut start = 0;
        while start < customers.len() {
            let end = start + customers[start..].iter().take_while(|c| **c == customers[start]).count();
            for q in customers[start].and_then(|c| self.bought.get(&c)).into_iter().flatten() {
                let Some(partners) = self.partners.get(q) else { continue };
                let mut from = 0;
                for i in start..end {
                    let Some(p) = products[i] else { continue };
                    let place = match &partners.bits {
                        Some(bits) => places[i].and_then(|place| bits.find(place)),
                        None => find_near(&partners.ids, &mut from, p),
                    };
                    let Some(place) = place else { continue };
                    let pair = partners.pairs[place];
                    let rank = (pair.confidence, pair.co_purchases, -q);
                    if found[i].is_none_or(|(b, _)| rank.0 > b.0 || (rank.0 == b.0 && (rank.1, rank.2) > (b.1, b.2))) {
                        found[i] = Some((rank, Best { product: p, partner: *q, row: pair.row, partner_is_a: pair.partner_is_a }));
                    }
                }
            }
            start = end;
        }
        found.into_iter().map(|f| f.map(|(_, b)| b)).collect()
    }

    /// The confidence of partner → product in pair `row`.
    fn confidence(&self, row: IdxSize, partner_is_a: bool) -> f64 {
        if partner_is_a { self.a_to_b[row as usize] } else { self.b_to_a[row as usize] }
    }

    /// `pair__partner_id`, `pair__confidence` and the pair's columns of `best`.
    fn columns(&self, best: &[Option<Best>]) -> Result<Vec<Column>> {
        let taken = self.pairs.select(Self::SHARED)?.take(&IdxCa::from_iter_options("rows".into(), best.iter().map(|b| b.map(|b| b.row))))?;
        let mut columns = vec![
            Column::new("pair__partner_id".into(), best.iter().map(|b| b.map(|b| b.partner)).collect::<Vec<_>>()),
            Column::new("pair__confidence".into(), best.iter().map(|b| b.map(|b| self.confidence(b.row, b.partner_is_a))).collect::<Vec<_>>()),
        ];
        columns.extend(taken.into_columns().into_iter().map(|c| {
            let name = format!("pair__{}", c.name());
            c.with_name(name.into())
        }));
        Ok(columns)
    }

    /// Each (product, partner) of `best` once, in the order first met: a
    /// pair's row and which of its products is the partner name one (the
    /// table holds a row per pair), so a flag per row and direction finds
    /// them, where sorting each part's 200,000 to drop the repeats took a
    /// sixtieth of the training set's CPU.
    fn each_once(&self, best: impl IntoIterator<Item = Best>) -> Vec<Best> {
        let mut seen = vec![false; 2 * self.a_to_b.len()];
        best.into_iter().filter(|b| !std::mem::replace(&mut seen[2 * b.row as usize + usize::from(b.partner_is_a)], true)).collect()
    }

    /// The star layout's `pairs.parquet`: `cutoff`, `product_id` and the pair
    /// columns of each distinct best pair, by product and partner.
    fn table(&self, best: Vec<Best>, t: i64) -> Result<DataFrame> {
        let mut best = self.each_once(best);
        best.sort_unstable_by_key(|b| (b.product, b.partner));
        let mut columns = vec![cutoff_column(t, best.len())?, Column::new("product_id".into(), best.iter().map(|b| b.product).collect::<Vec<_>>())];
        columns.extend(self.columns(&best.into_iter().map(Some).collect::<Vec<_>>())?);
        Ok(DataFrame::new_infer_height(columns)?)
    }
}

/// The place of each of `wanted` in `sorted` (none when absent), each
/// searched from where the previous one was found: `wanted` come in order
/// (a cut-off's rows by customer and product), and one out of order is
/// searched from the start.
fn places_in<T: Ord + Copy>(sorted: &[T], wanted: impl Iterator<Item = Option<T>>) -> Vec<Option<usize>> {
    let mut from = 0;
    wanted.map(|id| find_near(sorted, &mut from, id?)).collect()
}

/// The place of `id` in `sorted` (none when absent), searched from `from`,
/// where the previous search ended (from the start when `id` comes before
/// that); `from` is left where this one ended.
fn find_near<T: Ord + Copy>(sorted: &[T], from: &mut usize, id: T) -> Option<usize> {
    if *from > 0 && sorted[*from - 1] >= id {
        *from = 0;
    }
    *from = gallop(sorted, *from, id);
    (sorted.get(*from) == Some(&id)).then_some(*from)
}

/// The first place at or after `from` in `ids` (sorted) whose id is not
/// below `id`: probing 1, 2, 4… places ahead, then a binary search within
/// the last step (the ids a customer's next rows look for are near).
fn gallop<T: Ord + Copy>(ids: &[T], from: usize, id: T) -> usize {
    let mut step = 1;
    while from + step < ids.len() && ids[from + step] < id {
        step *= 2;
    }
    // ids[from + step / 2] is below `id` (when step > 1), ids[from + step] not.
    let (low, high) = (if step == 1 { from } else { from + step / 2 }, (from + step).min(ids.len()));
    low + ids[low..high].partition_point(|&x| x < id)
}

/// The best pair of a row's product: with `partner`, the customer's purchase
/// it pairs with, in row `row` of product_pair_features.
#[derive(Debug, Clone, Copy)]
struct Best {
    product: i64,
    partner: i64,
    row: IdxSize,
    partner_is_a: bool,
}

/// `trainset.duckdb` beside the partitions, with the view `trainset` over them:
/// the flat rows in both layouts (the star layout's joined to the user and
/// product columns of their cut-off, in the flat layout's column order).
fn write_view(out: &Path, layout: Layout) -> Result<()> {
    let path = out.join("trainset.duckdb");
    let staged = out.join(".trainset.duckdb.partial");
    let _ = std::fs::remove_file(&staged);
    let files = |name: &str| -> Result<String> {
        let glob = out.canonicalize()?.join("cutoff=*").join(name);
        Ok(format!("read_parquet('{}', hive_partitioning = false)", glob.display().to_string().replace('\'', "''")))
    };
    let view = match layout {
        Layout::Flat => format!("SELECT * FROM {}", files("part-*.parquet")?),
        Layout::Star => {
            let [users, products, interactions, pairs] = StarFiles::NAMES.map(|name| files(name));
            format!(
                "SELECT r.* EXCLUDE (pair__partner_id), u.* EXCLUDE (cutoff, customer_id), p.* EXCLUDE (cutoff, product_id), \
                 i.* EXCLUDE (cutoff, customer_id, product_id), r.pair__partner_id, q.* EXCLUDE (cutoff, product_id, pair__partner_id) \
                 FROM {rows} r LEFT JOIN {users} u ON u.cutoff = r.cutoff AND u.customer_id = r.customer_id \
                 LEFT JOIN {products} p ON p.cutoff = r.cutoff AND p.product_id = r.product_id \
                 LEFT JOIN {interactions} i ON i.cutoff = r.cutoff AND i.customer_id = r.customer_id AND i.product_id = r.product_id \
                 LEFT JOIN {pairs} q ON q.cutoff = r.cutoff AND q.product_id = r.product_id AND q.pair__partner_id = r.pair__partner_id",
                rows = files("rows-*.parquet")?,
                users = users?,
                products = products?,
                interactions = interactions?,
                pairs = pairs?,
            )
        }
    };
    // In the storage format analysts' DuckDB (the 1.4 line) opens, as
    // features.duckdb.
    let connection = duckdb::Connection::open_in_memory()?;
    connection.execute_batch(&format!(
        "ATTACH '{}' AS trainset (STORAGE_VERSION '{}'); CREATE VIEW trainset.trainset AS {view}; DETACH trainset;",
        staged.display().to_string().replace('\'', "''"),
        crate::sinks::duckdb::STORAGE_VERSION
    ))?;
    drop(connection);
    std::fs::rename(&staged, &path)?;
    Ok(())
}

/// Cut-offs from `START..END/STEP` (END included when a step lands on it) or a
/// comma-separated list; times RFC 3339 or YYYY-MM-DD (UTC), steps `7d`, `12h`.
pub fn parse_cutoffs(text: &str) -> Result<Vec<i64>, String> {
    if let Some((range, step)) = text.split_once('/') {
        let (start, end) = range.split_once("..").ok_or_else(|| format!("{text:?}: expected START..END/STEP or a list"))?;
        let (start, end, step) = (crate::time::parse_time(start)?, crate::time::parse_time(end)?, parse_duration(step)?);
        if end < start {
            return Err(format!("{text:?}: the end is before the start"));
        }
        let count = (end - start) / step + 1;
        if count > 10_000 {
            return Err(format!("{text:?}: {count} cut-offs; at most 10,000"));
        }
        return Ok((0..count).map(|i| start + i * step).collect());
    }
    text.split(',').map(|t| crate::time::parse_time(t.trim())).collect()
}

/// `7d`, `12h`, `30m` → µs (positive).
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| format!("{text:?}: expected a duration such as 7d, 12h or 30m"))?;
    let unit_us = match unit {
        "d" => 86_400_000_000,
        "h" => 3_600_000_000,
        "m" => 60_000_000,
        _ => return Err(format!("{text:?}: the unit is d, h or m")),
    };
    if n <= 0 {
        return Err(format!("{text:?}: must be positive"));
    }
    Ok(n * unit_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Galloping finds what a binary search of the rest finds: every start,
    /// every id from below the first to above the last, repeated ids.
    #[test]
    fn galloping_finds_the_first_id_not_below() {
        for ids in [vec![], vec![5], vec![1, 3, 3, 3, 4, 9, 10, 10, 15, 20, 21, 22, 23, 40, 41, 50, 60, 61, 62, 70]] {
            for from in 0..=ids.len() {
                for id in -1..=72 {
                    let expected = from + ids[from..].partition_point(|&x| x < id);
                    assert_eq!(gallop(&ids, from, id), expected, "{ids:?} from {from}, id {id}");
                }
            }
        }
    }

    /// The best pair of each row equals a search of every pair — rows in
    /// order, rows out of order (a product lower than the last, a customer
    /// coming back), and a product twice in a customer's rows.
    #[test]
    fn best_pairs_equal_a_search_of_every_pair() {
        use rand_chacha::rand_core::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x51_7cc1);
        let mut next = move |n: u64| rng.next_u64() % n;
        let mut pairs: std::collections::BTreeMap<(i64, i64), (f64, f64, i64)> = Default::default();
        for _ in 0..400 {
            let (a, b) = (next(40) as i64, next(40) as i64);
            if a < b {
                pairs.insert((a, b), (next(4) as f64 / 4.0, next(4) as f64 / 4.0, next(3) as i64));
            }
        }
        // Products 100…399 with one partner each (searched), 0…39 with many
        // (their partners as bits): both ways of finding a partner.
        for k in 0..300 {
            pairs.insert((k % 40, 100 + k), (next(4) as f64 / 4.0, next(4) as f64 / 4.0, next(3) as i64));
        }
        let mut frame = vec![
            Column::new("product_id_a".into(), pairs.keys().map(|k| k.0).collect::<Vec<_>>()),
            Column::new("product_id_b".into(), pairs.keys().map(|k| k.1).collect::<Vec<_>>()),
            Column::new("confidence_a_to_b".into(), pairs.values().map(|v| v.0).collect::<Vec<_>>()),
            Column::new("confidence_b_to_a".into(), pairs.values().map(|v| v.1).collect::<Vec<_>>()),
            Column::new("co_purchase_count".into(), pairs.values().map(|v| v.2).collect::<Vec<_>>()),
        ];
        for c in ["co_view_count", "co_cart_count", "first_co_purchase_at", "last_co_purchase_at"] {
            frame.push(Column::new(c.into(), vec![0i64; pairs.len()]));
        }
        for c in ["support", "lift"] {
            frame.push(Column::new(c.into(), vec![0.0f64; pairs.len()]));
        }
        let mut bought: Vec<(i64, i64)> = (0..30).flat_map(|c| (0..next(5)).map(move |i| (c, (c * 7 + i as i64 * 11) % 40))).collect();
        bought.extend((0..30).map(|c| (c, 100 + c * 9)));
        let empty = DataFrame::empty();
        let tables = TablesAt {
            products: empty.clone(),
            pairs: DataFrame::new_infer_height(frame).unwrap(),
            embeddings: empty.clone(),
            interactions: df!("customer_id" => bought.iter().map(|b| b.0).collect::<Vec<_>>(), "product_id" => bought.iter().map(|b| b.1).collect::<Vec<_>>(), "purchase_count" => vec![1i64; bought.len()]).unwrap(),
            users: empty,
        };
        let best = BestPairs::new(&tables).unwrap();
        assert!(best.partners[&5].bits.is_some() && best.partners[&105].bits.is_none());
        // The reference: every pair of a purchase and the product, the largest
        // (confidence, co-purchases, −partner).
        let reference = |c: i64, p: i64| -> Option<(i64, f64)> {
            let mut found: Option<(f64, i64, i64)> = None;
            for &(_, q) in bought.iter().filter(|b| b.0 == c) {
                let value = match (pairs.get(&(q, p)), pairs.get(&(p, q))) {
                    (Some(v), _) => (v.0, v.2, -q),
                    (_, Some(v)) => (v.1, v.2, -q),
                    _ => continue,
                };
                if found.is_none_or(|f| value.0 > f.0 || (value.0 == f.0 && (value.1, value.2) > (f.1, f.2))) {
                    found = Some(value);
                }
            }
            found.map(|f| (-f.2, f.0))
        };
        let sorted: Vec<(i64, i64)> = (0..30).flat_map(|c| (0..40).chain(90..410).map(move |p| (c, p))).collect();
        let mut shuffled = sorted.clone();
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, next(i as u64 + 1) as usize);
        }
        // A product twice in a customer's rows (each row gets the pair).
        let twice: Vec<(i64, i64)> = sorted.iter().flat_map(|&r| if r.1 % 7 == 0 { vec![r, r] } else { vec![r] }).collect();
        let mut found = 0;
        for rows in [sorted, shuffled, twice] {
            let frame = df!("customer_id" => rows.iter().map(|r| r.0).collect::<Vec<_>>(), "product_id" => rows.iter().map(|r| r.1).collect::<Vec<_>>()).unwrap();
            let attached = best.attach(frame).unwrap();
            let (partner, confidence) = (attached.column("pair__partner_id").unwrap().i64().unwrap(), attached.column("pair__confidence").unwrap().f64().unwrap());
            for (i, &(c, p)) in rows.iter().enumerate() {
                let expected = reference(c, p);
                assert_eq!(partner.get(i).zip(confidence.get(i)), expected, "customer {c}, product {p}");
                found += expected.is_some() as usize;
            }
        }
        assert!(found > 1000, "{found} rows with a pair");
    }
}
