//! Normalization: the raw snapshots of a shop → the main tables, as Polars lazy
//! frames.
//!
//! What goes in: every committed snapshot of `<shop>/raw/`. What comes out: one
//! lazy frame per main table (`products, variants, product_media, collections,
//! collection_products, customers, orders, line_items, refund_line_items, events`),
//! typed (ids i64, money f64, timestamps µs UTC). Guarantees, as the catalog's
//! "Exact readings" fix them:
//! - one row per entity id: the version as it stood at `as_of` (the latest with
//!   `updated_at <= as_of`, else the oldest known), ties to the later source
//!   (snapshot, then webhook after bulk, then file name, then line);
//! - deletions apply whatever `as_of`; products and customers created after
//!   `as_of` are left out; orders always use their latest version;
//! - child rows (variants, media, line items) travel with the chosen version of
//!   their parent: those of the same parent in the files holding that version,
//!   wherever they stand in the file, unioned by child id;
//! - refunds are the union by refund id over every version of the order and every
//!   `refunds/create` payload; events are unique by id (first kept) and stitched to
//!   customers.
//!
//! Nothing is collected here: the feature plan builds on these frames, and
//! `shopfeat normalize` writes them for inspection.

mod collections;
mod customers;
mod events;
mod orders;
mod products;

use events::{GrowingEvents, SharedEvents};
pub use events::{url_host, EventParts, ROW as EVENT_ROW};

use crate::land::{self, raw};
use crate::storage::DataRoot;
use crate::vocabulary::RawEntity;
use anyhow::Result;
use polars::prelude::*;
use std::collections::BTreeMap;

/// The point in time tables are taken at, µs since the epoch (UTC); `None` = latest.
pub type AsOf = Option<i64>;

/// The main tables of a shop, lazily.
pub struct MainTables {
    pub products: LazyFrame,
    pub variants: LazyFrame,
    pub product_media: LazyFrame,
    pub collections: LazyFrame,
    pub collection_products: LazyFrame,
    pub customers: LazyFrame,
    pub orders: LazyFrame,
    pub line_items: LazyFrame,
    pub refund_line_items: LazyFrame,
    pub events: LazyFrame,
    /// Ids deleted in Shopify (`product_id`, `customer_id`): feature tables keyed
    /// by a product or customer leave these out, while history that names them
    /// (a customer's orders) keeps them.
    pub deleted_products: LazyFrame,
    pub deleted_customers: LazyFrame,
    /// After [`MainTables::for_features`]: `events` holds only the rows part of
    /// the events ([`EventParts::rows`]) and this the details part, read by row
    /// where the features need them. `None`: `events` is the whole table.
    pub event_details: Option<LazyFrame>,
    /// The parts normalization built the events table from (`None` when the
    /// tables were made otherwise).
    event_parts: Option<EventParts>,
}

impl MainTables {
    /// Computes every main table in one plan (one scan of each raw entity, shared
    /// sub-plans once) and returns them as in-memory frames, so that the feature
    /// tables, which read each main table many times, never read or normalize again.
    pub fn materialize(self) -> PolarsResult<MainTables> {
        let (event_details, event_parts) = (self.event_details.clone(), self.event_parts.clone());
        let mut plans: Vec<LazyFrame> = self.named().into_iter().map(|(_, lf)| lf).collect();
        plans.extend([self.deleted_products, self.deleted_customers]);
        let mut frames = collect_all(plans)?.into_iter().map(|df| df.lazy());
        let mut next = || frames.next().expect("one frame per main table");
        Ok(MainTables {
            products: next(),
            variants: next(),
            product_media: next(),
            collections: next(),
            collection_products: next(),
            customers: next(),
            orders: next(),
            line_items: next(),
            refund_line_items: next(),
            events: next(),
            deleted_products: next(),
            deleted_customers: next(),
            event_details,
            event_parts,
        })
    }

    /// The same tables with the events in their two parts: the columns every
    /// feature scans, with the browser and the event name as integers, as
    /// `events`; the long strings (ids, URLs, user agent) that only a session's
    /// first and last events are read for as `event_details`, left unread. The
    /// events are the largest table, so this is most of the memory of a run.
    ///
    /// For tables from [`normalize`]; others keep their whole `events` table
    /// (the features split it themselves).
    pub fn for_features(mut self) -> MainTables {
        if let Some(parts) = self.event_parts.take() {
            self.events = parts.rows;
            self.event_details = Some(parts.details);
        }
        self
    }

    /// Tables made otherwise than by [`normalize`] (the whole events table
    /// given, no parts), in the order of [`MainTables::named`] then the deleted
    /// products' and customers' ids.
    pub fn from_tables(tables: [LazyFrame; 12]) -> MainTables {
        let [products, variants, product_media, collections, collection_products, customers, orders, line_items, refund_line_items, events, deleted_products, deleted_customers] = tables;
        MainTables { products, variants, product_media, collections, collection_products, customers, orders, line_items, refund_line_items, events, deleted_products, deleted_customers, event_details: None, event_parts: None }
    }

    /// The tables by name, in the order of the README's data layout.
    pub fn named(&self) -> Vec<(&'static str, LazyFrame)> {
        vec![
            ("products", self.products.clone()),
            ("variants", self.variants.clone()),
            ("product_media", self.product_media.clone()),
            ("collections", self.collections.clone()),
            ("collection_products", self.collection_products.clone()),
            ("customers", self.customers.clone()),
            ("orders", self.orders.clone()),
            ("line_items", self.line_items.clone()),
            ("refund_line_items", self.refund_line_items.clone()),
            ("events", self.events.clone()),
        ]
    }
}

/// The raw tables of a shop: every committed snapshot's file of each entity, in
/// snapshot order.
#[derive(Clone)]
pub struct RawTables {
    files: BTreeMap<String, Vec<RawFile>>,
    /// Versions superseded before this time were dropped by compaction
    /// (`[retention] history_days`): an earlier `as_of` is refused.
    history_from: Option<i64>,
    /// Part of the store only ([`RawTables::catalog_of`], [`RawTables::customers_view`]).
    view: Option<View>,
    /// Entities read into memory once ([`RawTables::in_memory`]), by name.
    memory: Option<Arc<BTreeMap<&'static str, DataFrame>>>,
}

/// The part of the raw store a fast cycle recomputes a few rows from: every
/// record those rows read and no other, chosen by ids that every version of a
/// record carries (so normalizing the part gives those rows exactly what a whole
/// normalization gives them).
#[derive(Clone)]
enum View {
    /// The catalog records of these products; no orders, customers or events.
    Catalog { products: Vec<i64> },
    /// What these customers' rows read: their accounts; every order any version
    /// of which names one of them, with its lines and refunds; the catalog
    /// records of the products in those orders (and every deletion, so a deleted
    /// product they viewed stays deleted); every event of the browsers ever
    /// linked to them (identity stitching is per browser, over all its events).
    Customers { customers: Vec<i64>, orders: Vec<i64>, products: Vec<i64>, browsers: Vec<String> },
}

/// `column` ∈ `values`.
fn among<T>(column: &str, values: &[T]) -> Expr
where
    Series: NamedFrom<Vec<T>, [T]>,
    T: Clone,
{
    col(column).is_in(lit(Series::new("values".into(), values.to_vec())).implode(false), false)
}

/// One snapshot's file of a raw entity, and which of its rows count: all, or
/// (a compacted snapshot that spans a full fetch's start) those the full
/// snapshot did not replace.
#[derive(Clone)]
struct RawFile {
    path: std::path::PathBuf,
    only: Option<land::FullMark>,
}

impl RawTables {
    pub fn open(root: &DataRoot, shop: &str) -> Result<Self> {
        let mut files: BTreeMap<String, Vec<RawFile>> = BTreeMap::new();
        let manifests = land::snapshots(root, shop)?;
        // A full snapshot (historical fetch) replaces everything received before its
        // fetch started, but events.
        let last_full = manifests.iter().filter_map(|m| m.full_mark()).max_by(|a, b| a.snapshot.cmp(&b.snapshot));
        for manifest in &manifests {
            let counts = last_full.as_ref().map_or(land::Counts::All, |full| manifest.counts_after(full));
            for (entity, rel) in manifest.raw_files(shop)? {
                let only = match (&counts, entity) {
                    (_, RawEntity::Events) | (land::Counts::All, _) => None,
                    (land::Counts::None, _) => continue,
                    (land::Counts::Rows(full), _) => Some(full.clone()),
                };
                let path = root.local_copy(&rel)?;
                whole_parquet(&path).map_err(|e| anyhow::anyhow!("{}/{rel} is damaged: {e} (land the shop's files again, or remove the snapshot)", root.describe()))?;
                files.entry(entity.name().to_string()).or_default().push(RawFile { path, only });
            }
        }
        // The files just fetched stay; older ones go once the cache is over its limit.
        let pinned: Vec<std::path::PathBuf> = files.values().flatten().map(|f| f.path.clone()).collect();
        root.trim_cache(shop, &pinned)?;
        let history_from = manifests.iter().filter_map(|m| m.history_from()).max();
        Ok(RawTables { files, history_from, view: None, memory: None })
    }

    /// The same store with every entity but the events read into memory, for
    /// normalizing at many times (a training set's cut-offs): the Parquet files
    /// are decoded once. The events, most of the store, are read once by
    /// [`SharedEvents`] instead. Without the records' text, which normalization
    /// reads only for collection memberships (on `large` the text made the
    /// store 7.1 GB in memory).
    pub fn in_memory(&self) -> Result<RawTables> {
        let entities: Vec<RawEntity> = RawEntity::ALL.into_iter().filter(|e| *e != RawEntity::Events).collect();
        let scans = entities.iter().map(|e| {
            let scan = self.scan_all(*e)?;
            Ok(if *e == RawEntity::CollectionProducts { scan } else { scan.drop(cols(["record"])) })
        });
        let frames = collect_all(scans.collect::<Result<Vec<_>>>()?)?;
        let memory = entities.iter().map(|e| e.name()).zip(frames).collect();
        Ok(RawTables { memory: Some(Arc::new(memory)), ..self.clone() })
    }

    /// The same store seen through the catalog records of `products` only: their
    /// versions, variants, media and collection memberships (every collection
    /// stays), and no orders, refunds, customers or events. Every version of a
    /// product and of its children carries the product's id, so normalizing these
    /// rows gives those products exactly the catalog rows a whole normalization
    /// gives them — what a fast `serve` cycle recomputes a changed product's own
    /// features from, in milliseconds whatever the shop's size.
    pub fn catalog_of(&self, products: &[i64]) -> RawTables {
        self.with_view(View::Catalog { products: products.to_vec() })
    }

    /// The same store seen through what the rows of `customers` read
    /// ([`View::Customers`]): their user and interaction rows come out of it as a
    /// whole normalization gives them, except what is computed over every
    /// customer (quintiles). Three scans of single id columns find the part.
    ///
    /// Duplicates of an event (the same id landed twice) are taken to carry the
    /// same browser, as redeliveries of one event do.
    pub fn customers_view(&self, customers: &[i64]) -> Result<RawTables> {
        let orders = self.scan_all(RawEntity::Orders)?.filter(among("customer_id", customers)).select([col("order_id")]).unique(None, UniqueKeepStrategy::Any);
        let browsers = self.scan_all(RawEntity::Events)?.filter(among("event_customer_id", customers)).select([col("client_id")]).unique(None, UniqueKeepStrategy::Any);
        let found = collect_all(vec![orders, browsers])?;
        let orders: Vec<i64> = found[0].column("order_id")?.i64()?.iter().flatten().collect();
        let browsers: Vec<String> = found[1].column("client_id")?.str()?.iter().flatten().map(str::to_string).collect();
        let products = self.scan_all(RawEntity::LineItems)?.filter(among("order_id", &orders)).select([col("product_id")]).drop_nulls(None).unique(None, UniqueKeepStrategy::Any).collect()?;
        let products = products.column("product_id")?.i64()?.iter().flatten().collect();
        Ok(self.with_view(View::Customers { customers: customers.to_vec(), orders, products, browsers }))
    }

    /// The customers that any landed version of `orders` names.
    pub fn customers_of_orders(&self, orders: &[i64]) -> Result<Vec<i64>> {
        let found = self.scan_all(RawEntity::Orders)?.filter(among("order_id", orders)).select([col("customer_id")]).drop_nulls(None).unique(None, UniqueKeepStrategy::Any).collect()?;
        let mut customers: Vec<i64> = found.column("customer_id")?.i64()?.iter().flatten().collect();
        customers.sort();
        Ok(customers)
    }

    /// The landed rows of `entity`'s files after its first `skip`, in landing
    /// order (the events of snapshots landed since [`Kept`] took the others).
    fn scan_files_after(&self, entity: RawEntity, skip: usize) -> Result<LazyFrame> {
        let files = self.files.get(entity.name()).map(|f| &f[skip.min(f.len())..]).unwrap_or_default();
        anyhow::ensure!(files.iter().all(|f| f.only.is_none()), "{entity}: files counted in part cannot be added to");
        match files.is_empty() {
            true => Ok(raw::empty_frame(entity)?.lazy()),
            false => scan_parquet(files.iter().map(|f| f.path.as_path())),
        }
    }

    /// The files of `entities` as they are now ([`Kept`]).
    fn stamps(&self, entities: &[RawEntity]) -> Result<Vec<FileStamp>> {
        let files = entities.iter().flat_map(|e| self.files.get(e.name()).into_iter().flatten());
        files
            .map(|f| {
                let len = std::fs::metadata(&f.path)?.len();
                Ok(FileStamp { path: f.path.clone(), only: f.only.clone(), len })
            })
            .collect()
    }

    fn with_view(&self, view: View) -> RawTables {
        RawTables { view: Some(view), ..self.clone() }
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// All landed rows of `entity` that count (in the view, if any), in landing
    /// order; an empty frame with the raw schema when nothing was landed.
    pub fn scan(&self, entity: RawEntity) -> Result<LazyFrame> {
        use RawEntity::*;
        let scan = self.scan_all(entity)?;
        let Some(view) = &self.view else { return Ok(scan) };
        Ok(match (view, entity) {
            (_, Collections) => scan,
            (View::Catalog { products }, Products | Variants | ProductMedia | CollectionProducts) => scan.filter(among("product_id", products)),
            (View::Catalog { .. }, _) => raw::empty_frame(entity)?.lazy(),
            (View::Customers { products, .. }, Products) => scan.filter(among("product_id", products).or(col("deleted").eq(lit(true)))),
            (View::Customers { products, .. }, Variants | ProductMedia | CollectionProducts) => scan.filter(among("product_id", products)),
            (View::Customers { customers, .. }, Customers) => scan.filter(among("customer_id", customers)),
            (View::Customers { orders, .. }, Orders | LineItems | RefundLineItems) => scan.filter(among("order_id", orders)),
            (View::Customers { browsers, .. }, Events) => scan.filter(among("client_id", browsers)),
        })
    }

    fn scan_all(&self, entity: RawEntity) -> Result<LazyFrame> {
        if let Some(frame) = self.memory.as_ref().and_then(|m| m.get(entity.name())) {
            return Ok(frame.clone().lazy());
        }
        let Some(files) = self.files.get(entity.name()).filter(|f| !f.is_empty()) else {
            return Ok(raw::empty_frame(entity)?.lazy());
        };
        if files.iter().all(|f| f.only.is_none()) {
            return scan_parquet(files.iter().map(|f| f.path.as_path()));
        }
        // Rarely (a full fetch landed after a compaction that spans its start):
        // one scan per file, filtered where it must be, in landing order.
        let parts = files
            .iter()
            .map(|f| {
                let scan = scan_parquet([f.path.as_path()])?;
                Ok(match &f.only {
                    Some(full) => scan.filter(full.counting_rows()),
                    None => scan,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(concat(parts, UnionArgs::default())?)
    }
}

/// One scan of Parquet files, rows in file order.
pub fn scan_parquet<'a>(paths: impl IntoIterator<Item = &'a std::path::Path>) -> Result<LazyFrame> {
    let paths: Vec<PlRefPath> = paths.into_iter().map(|p| PlRefPath::new(p.to_string_lossy().as_ref())).collect();
    Ok(LazyFrame::scan_parquet_files(paths.into_iter().collect(), ScanArgsParquet::default())?)
}

/// Whether `path` has a Parquet file's envelope (its magic at both ends): the
/// scan that reads many files at once would not say which one is broken.
fn whole_parquet(path: &std::path::Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    let (mut head, mut tail) = ([0u8; 4], [0u8; 4]);
    if length >= 12 {
        file.read_exact(&mut head)?;
        file.seek(SeekFrom::End(-4))?;
        file.read_exact(&mut tail)?;
    }
    if length < 12 || &head != b"PAR1" || &tail != b"PAR1" {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not a whole Parquet file ({length} bytes)")));
    }
    Ok(())
}

/// Normalizes a shop's raw snapshots into its main tables as of `as_of`.
pub fn normalize(raw: &RawTables, as_of: AsOf) -> Result<MainTables> {
    refuse_before_history(raw, as_of)?;
    let (events, event_parts) = events::events(raw, as_of)?;
    assemble(raw, as_of, events, event_parts, orders::orders(raw)?)
}

/// What the main tables at many times share, read once from the raw store:
/// the events ([`SharedEvents`]) and the order tables, which are the same at
/// every `T` (each order's latest version; whether it counts at `T` is the
/// features' test of its times). Made again at each of `medium`'s 26 weekly
/// cut-offs they took 5.5 of the 7.7 s spent materializing the main tables.
pub struct Shared {
    events: SharedEvents,
    /// orders, line_items, refund_line_items, in memory.
    orders: [DataFrame; 3],
}

impl Shared {
    pub fn of(raw: &RawTables) -> Result<Shared> {
        Ok(Shared { events: SharedEvents::of(raw)?, orders: order_tables(raw)? })
    }

    /// The events' parts at `t`, as normalization at `t` gives them.
    pub fn events_at(&self, t: i64) -> Result<EventParts> {
        self.events.parts_at(t)
    }
}

/// [`normalize`] at `t` with what many times share read once: the same
/// tables (for a training set's cut-offs).
pub fn normalize_shared(raw: &RawTables, t: i64, shared: &Shared) -> Result<MainTables> {
    refuse_before_history(raw, Some(t))?;
    from_shared(raw, t, shared.events_at(t)?, &shared.orders)
}

/// What a long-lived process (`serve`) keeps of a shop's normalization
/// between its runs: the events read once ([`GrowingEvents`]) and the order
/// tables, each with the raw files it was made from. A run whose raw store
/// holds the same files (by path and size: a snapshot's files are never
/// rewritten in place — compaction and erasure write new snapshots) takes
/// its main tables at `T` from what was kept — the same tables as
/// [`normalize`] at `T`, as for a training set's cut-offs — instead of reading,
/// deduplicating and stitching every event again. Events files landed after
/// the kept ones are added to them; a part whose files changed otherwise is
/// made again. After one `products/update` on `large`, neither changed.
#[derive(Default)]
pub struct Kept {
    events: Option<(Vec<FileStamp>, GrowingEvents)>,
    orders: Option<(Vec<FileStamp>, [DataFrame; 3])>,
    /// How many times each part was made (events, order tables).
    made: (usize, usize),
    /// How many times events landed since were added to the kept ones.
    grown: usize,
}

/// A raw file as a kept part saw it.
#[derive(Debug, Clone, PartialEq)]
struct FileStamp {
    path: std::path::PathBuf,
    only: Option<land::FullMark>,
    len: u64,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept").field("events", &self.events.is_some()).field("orders", &self.orders.is_some()).field("made", &self.made).field("grown", &self.grown).finish()
    }
}

impl Kept {
    /// How many times each part was made from the raw store (events, order
    /// tables): once, then again each time its files changed (for the events:
    /// otherwise than by files landed after them, see [`Kept::grown`]).
    pub fn made(&self) -> (usize, usize) {
        self.made
    }

    /// How many times the events of snapshots landed since were added to
    /// the kept events (instead of making them again).
    pub fn grown(&self) -> usize {
        self.grown
    }

    /// About how many bytes it holds (the kept columns' and vectors' sizes).
    pub fn estimated_bytes(&self) -> usize {
        let events = self.events.as_ref().map_or(0, |(_, e)| e.estimated_bytes());
        events + self.orders.as_ref().map_or(0, |(_, o)| o.iter().map(DataFrame::estimated_size).sum())
    }
}

/// [`normalize`] at `t`, from what `kept` holds where its files are those of
/// `raw`, and keeping what it makes for the next run.
pub fn normalize_kept(raw: &RawTables, t: i64, kept: &mut Kept) -> Result<MainTables> {
    refuse_before_history(raw, Some(t))?;
    if raw.view.is_some() || raw.memory.is_some() {
        return normalize(raw, Some(t));
    }
    let events_from = raw.stamps(&[RawEntity::Events])?;
    let landed = || anyhow::Ok(raw.scan(RawEntity::Events)?.with_row_index(EVENT_ROW, None));
    match kept.events.take() {
        Some((from, events)) if from == events_from => kept.events = Some((from, events)),
        // Snapshots landed since, after the kept ones: their events added.
        // (Taken out meanwhile: a failure leaves nothing half grown.)
        Some((from, mut events)) if events_from.len() > from.len() && events_from.starts_with(&from) => {
            events.grow(raw.scan_files_after(RawEntity::Events, from.len())?, &landed()?)?;
            kept.events = Some((events_from, events));
            kept.grown += 1;
        }
        // Otherwise (a first run, a compaction or an erasure rewrote them):
        // made again, the old ones dropped first (never both held at once).
        old => {
            drop(old);
            kept.events = Some((events_from, GrowingEvents::of(&landed()?)?));
            kept.made.0 += 1;
        }
    }
    let orders_from = raw.stamps(&[RawEntity::Orders, RawEntity::LineItems, RawEntity::RefundLineItems])?;
    if kept.orders.as_ref().is_none_or(|(from, _)| *from != orders_from) {
        kept.orders = None;
        kept.orders = Some((orders_from, order_tables(raw)?));
        kept.made.1 += 1;
    }
    tracing::debug!(made = ?kept.made, mb = kept.estimated_bytes() >> 20, "kept events and order tables");
    let (events, orders) = (&kept.events.as_ref().expect("kept above").1, &kept.orders.as_ref().expect("kept above").1);
    from_shared(raw, t, events.shared.parts_at(t)?, orders)
}

/// The order tables in memory ([`orders::orders`]).
fn order_tables(raw: &RawTables) -> Result<[DataFrame; 3]> {
    let (orders, line_items, refund_line_items) = orders::orders(raw)?;
    collect_all(vec![orders, line_items, refund_line_items])?.try_into().map_err(|_| anyhow::anyhow!("three order tables"))
}

/// The main tables at `t` from the events' parts at `t` and the order tables.
fn from_shared(raw: &RawTables, t: i64, parts: EventParts, orders: &[DataFrame; 3]) -> Result<MainTables> {
    let [orders, line_items, refund_line_items] = orders.clone().map(DataFrame::lazy);
    assemble(raw, Some(t), parts.table(), parts, (orders, line_items, refund_line_items))
}

fn refuse_before_history(raw: &RawTables, as_of: AsOf) -> Result<()> {
    if let (Some(t), Some(from)) = (as_of, raw.history_from) {
        if t < from {
            let time = |us: i64| chrono::DateTime::from_timestamp_micros(us).map(|t| t.to_rfc3339()).unwrap_or_default();
            anyhow::bail!(
                "--as-of {} is before {}, from when the raw store keeps every version: compaction dropped older superseded versions ([retention] history_days), so tables at that time would not be exact",
                time(t),
                time(from)
            );
        }
    }
    Ok(())
}

/// The main tables from the raw snapshots, the events at `as_of` and the
/// order tables ([`orders::orders`]).
fn assemble(raw: &RawTables, as_of: AsOf, events: LazyFrame, event_parts: EventParts, orders: (LazyFrame, LazyFrame, LazyFrame)) -> Result<MainTables> {
    let (products, variants, product_media, deleted_products, product_versions) = products::products(raw, as_of)?;
    let (collections, collection_versions) = collections::collections(raw, as_of)?;
    let collection_products = collections::memberships(raw, product_versions, collection_versions, &products, &collections)?;
    let (customers, deleted_customers) = customers::customers(raw, as_of)?;
    let (orders, line_items, refund_line_items) = orders;
    Ok(MainTables {
        products, variants, product_media, collections, collection_products, customers, orders, line_items, refund_line_items, events, deleted_products, deleted_customers,
        event_details: None,
        event_parts: Some(event_parts),
    })
}

/// The order in which sources were landed: later snapshots, then webhooks after
/// bulk files, then files by name, then lines.
fn source_order() -> [Expr; 4] {
    [col("snapshot"), col("source_rank"), col("file"), col("line")]
}

fn ascending(n: usize) -> SortMultipleOptions {
    SortMultipleOptions::default().with_order_descending_multi(vec![false; n]).with_maintain_order(true)
}

/// `updated_at` as an orderable i64, nulls lowest (a version without a time is
/// the oldest).
fn version_time() -> Expr {
    col("updated_at").cast(DataType::Int64).fill_null(lit(i64::MIN))
}

/// Ids deleted by a `*/delete` payload (any time: deletions apply whatever `as_of`).
fn deleted_ids(versions: &LazyFrame, id: &str) -> LazyFrame {
    versions.clone().filter(col("deleted").eq(lit(true))).select([col(id)]).unique(None, UniqueKeepStrategy::Any)
}

/// The versions of an entity that are not deletions, minus deleted ids.
fn live_versions(versions: LazyFrame, id: &str) -> LazyFrame {
    live_and_deleted(versions, id).0
}

/// [`live_versions`] and the deleted ids, from one scan.
fn live_and_deleted(versions: LazyFrame, id: &str) -> (LazyFrame, LazyFrame) {
    let versions = versions.cache();
    let deleted = deleted_ids(&versions, id).cache();
    let live = versions
        .filter(col("deleted").eq(lit(false)).or(col("deleted").is_null()))
        .join(deleted.clone(), [col(id)], [col(id)], JoinArgs::new(JoinType::Anti))
        .with_column(version_time().alias("version_time"))
        .cache();
    (live, deleted)
}

/// One version per id as of `as_of`: the latest with `updated_at <= as_of`; when
/// every version is newer, the oldest (ties of either kind: the later source).
fn version_as_of(versions: LazyFrame, id: &str, as_of: AsOf) -> LazyFrame {
    let mut keys = vec![col(id)];
    match as_of {
        None => keys.push(col("version_time")),
        Some(t) => {
            // Eligible versions rank above the rest; among them the newest wins,
            // among the rest the oldest (time ranked descending).
            let eligible = col("version_time").lt_eq(lit(t));
            keys.push(eligible.clone().alias("_eligible"));
            keys.push(when(eligible).then(col("version_time")).otherwise(lit(0i64) - col("version_time")).alias("_rank_time"));
        }
    }
    keys.extend(source_order());
    let n = keys.len();
    versions
        .sort_by_exprs(keys, ascending(n))
        .unique_stable_generic(Some(vec![col(id)]), UniqueKeepStrategy::Last)
}

/// The child rows of the chosen parent versions, unique by child id: the children
/// of the same parent in every file that holds a version of it with the same
/// `updated_at` (bulk output is ungrouped, so a child belongs to its parent in its
/// file, not to a line; a parent listed twice has its children unioned).
fn children_of(children: LazyFrame, all_versions: LazyFrame, chosen: LazyFrame, parent_id: &str, child_id: &str) -> LazyFrame {
    let same_version = all_versions
        .join(chosen.select([col(parent_id), col("version_time")]), [col(parent_id), col("version_time")], [col(parent_id), col("version_time")], JoinArgs::new(JoinType::Semi))
        .select([col("snapshot"), col("file"), col(parent_id)])
        .unique(None, UniqueKeepStrategy::Any);
    let mut keys = vec![col(child_id)];
    keys.extend(source_order());
    let n = keys.len();
    let by_parent = || [col("snapshot"), col("file"), col(parent_id)];
    children
        .join(same_version, by_parent(), by_parent(), JoinArgs::new(JoinType::Semi))
        .sort_by_exprs(keys, ascending(n))
        .unique_stable_generic(Some(vec![col(child_id)]), UniqueKeepStrategy::Last)
}

/// Rows of `lf` whose `id` is in `keep`'s `id`.
fn semi(lf: LazyFrame, keep: &LazyFrame, id: &str) -> LazyFrame {
    lf.join(keep.clone().select([col(id)]), [col(id)], [col(id)], JoinArgs::new(JoinType::Semi))
}

/// Keeps entities created at or before `as_of` (and those without a creation time).
fn created_by(lf: LazyFrame, as_of: AsOf) -> LazyFrame {
    match as_of {
        Some(t) => lf.filter(col("created_at").is_null().or(col("created_at").cast(DataType::Int64).lt_eq(lit(t)))),
        None => lf,
    }
}

/// Collects several plans in one run, so that scans and sub-plans they share are
/// computed once.
pub fn collect_all(frames: Vec<LazyFrame>) -> PolarsResult<Vec<DataFrame>> {
    let opt = frames.first().map(|f| f.get_current_optimizations()).unwrap_or_default();
    LazyFrame::collect_all_with_engine(frames.into_iter().map(|f| f.logical_plan).collect(), Engine::Auto, opt)
}
