//! events: unique by id (first kept), with the URL's referrer host and the
//! customer each browser is stitched to.
//!
//! With `as_of`, events after it are left out. The table is sorted by browser
//! (in the order browsers first landed), then time, then landing order.
//!
//! Identity stitching (the README's "Normalization"): an event links its `client_id` to a customer
//! when it carries one (`customerId`, or the customer of a completed checkout's
//! order). Every event of that `client_id`, earlier ones too, gets the customer of
//! the client's latest link at or before `as_of` (two links at one instant: the
//! later in file order).
//!
//! The table is built from two parts ([`EventParts`]), which the features read
//! apart: the columns they scan, sort and group, with the browser and the event
//! name as integers, and the long strings (ids, URLs, user agent) that only a
//! session's first and last events are read for, fetched by row.

use super::*;
use crate::vocabulary::EventName;
use rayon::prelude::*;

/// The column that names an event's landed row (its place in the scan of every
/// raw events file, in landing order): the key between [`EventParts::rows`] and
/// [`EventParts::details`].
pub const ROW: &str = "_event_row";

/// The events table in the two parts the features read.
#[derive(Clone)]
pub struct EventParts {
    /// One row per event at `as_of`, sorted as the table is: `_event_row`,
    /// `browser` (1, 2, … per `client_id`), `event` (the name's code,
    /// [`EventName::code`]), `timestamp`, `customer_id`, `product_id`,
    /// `collection_id`, `order_id`, `search_query`, `product_ids`.
    pub rows: LazyFrame,
    /// By `_event_row`, the rest of the table's columns (any superset of the rows:
    /// normalization's covers every landed row, duplicates too).
    pub details: LazyFrame,
}

/// The columns of [`EventParts::rows`] that are the table's own.
const ROW_COLUMNS: [&str; 7] = ["timestamp", "customer_id", "product_id", "collection_id", "order_id", "search_query", "product_ids"];
/// Those of them landed as they are (`customer_id` is the stitched one).
const LANDED_ROW_COLUMNS: [&str; 6] = ["timestamp", "product_id", "collection_id", "order_id", "search_query", "product_ids"];
/// The columns of [`EventParts::details`] (beside `_event_row`).
const DETAIL_COLUMNS: [&str; 9] = ["event_id", "name", "client_id", "event_customer_id", "variant_id", "url", "path", "referrer", "user_agent"];

/// The events table of the raw snapshots at `as_of`, and its parts.
pub fn events(raw: &RawTables, as_of: AsOf) -> Result<(LazyFrame, EventParts)> {
    let landed = raw.scan(RawEntity::Events)?.with_row_index(ROW, None);
    let parts = EventParts { rows: rows(&landed, as_of), details: details_of(&landed) };
    Ok((parts.table(), parts))
}

/// The rows part: unique, at `as_of`, encoded, stitched and sorted.
fn rows(landed: &LazyFrame, as_of: AsOf) -> LazyFrame {
    let mut events = first_landed(landed);
    if let Some(t) = as_of {
        events = events.filter(at_or_before(t));
    }
    stitched(encoded(events).cache(), link_origins(landed))
}

/// The first landed row of each event id (a filter keeps the rows in place,
/// where a unique would gather every column), with the columns the rows part
/// is made of.
fn first_landed(landed: &LazyFrame) -> LazyFrame {
    first_landed_with_ids(landed).drop(cols(["event_id"]))
}

/// [`first_landed`] with the event ids.
fn first_landed_with_ids(landed: &LazyFrame) -> LazyFrame {
    let read = [ROW, "event_id", "name", "client_id", "event_customer_id"].into_iter().chain(LANDED_ROW_COLUMNS);
    landed.clone().select(read.map(col).collect::<Vec<_>>()).filter(col("event_id").is_first_distinct())
}

/// Events after T had not happened at T.
fn at_or_before(t: i64) -> Expr {
    col("timestamp").cast(DataType::Int64).lt_eq(lit(t))
}

/// The landing place (snapshot, file, line) of the few rows that carry a
/// customer: two links at one instant go to the later in file order.
fn link_origins(landed: &LazyFrame) -> LazyFrame {
    landed.clone().filter(col("event_customer_id").is_not_null()).select([col(ROW), col("snapshot"), col("file"), col("line")])
}

/// `events` (encoded) with each browser's customer — that of its latest link
/// among them — sorted by browser and time (ties: landing order), the order
/// sessions are cut in: integer keys, so the sort moves no strings.
fn stitched(events: LazyFrame, link_origins: LazyFrame) -> LazyFrame {
    let links = events
        .clone()
        .filter(col("event_customer_id").is_not_null())
        .select([col(ROW), col("browser"), col("timestamp"), col("event_customer_id")])
        .join(link_origins, [col(ROW)], [col(ROW)], JoinArgs::new(JoinType::Inner));
    let keys = [col("browser"), col("timestamp"), col("snapshot"), col("file"), col("line")];
    let latest_link = links
        .sort_by_exprs(keys, ascending(5))
        .unique_stable_generic(Some(vec![col("browser")]), UniqueKeepStrategy::Last)
        .select([col("browser"), col("event_customer_id").alias("customer_id")]);
    events
        .join(latest_link, [col("browser")], [col("browser")], JoinArgs::new(JoinType::Left))
        .sort_by_exprs([col("browser"), col("timestamp"), col(ROW)], SortMultipleOptions::default())
        .select(rows_part_columns())
}

/// The events of a store read once, for normalizing at many times (a training
/// set's cut-offs): the first landed row of each id with the browser and the
/// event name numbered over the whole store, and the links between browsers
/// and customers. [`SharedEvents::parts_at`] gives exactly the parts
/// [`events`] gives at `T`: renumbered by first appearance among the rows at
/// `T`, as [`encoded`] numbers the strings there (a store-wide number stands
/// for one string), and stitched with the links at `T` — from orders made
/// once, so a cut-off sorts and joins nothing.
pub struct SharedEvents {
    /// In landing order, the columns the rows part takes as they are.
    unique: DataFrame,
    /// `unique`'s store-wide browser and event numbers, and times (µs; a null
    /// time, at no `T`, is `i64::MAX`).
    browsers: Vec<u32>,
    events: Vec<u32>,
    times: Vec<i64>,
    /// `unique`'s rows by store-wide browser, time and landing: at any `T`,
    /// the rows part's order but for the browsers' numbers.
    by_browser: Vec<IdxSize>,
    /// The rows that link a browser to a customer, by browser, then time
    /// and landing place (the latest last): (browser, time, customer).
    links: Vec<(u32, i64, i64)>,
    details: LazyFrame,
}

impl SharedEvents {
    pub fn of(raw: &RawTables) -> Result<SharedEvents> {
        let landed = raw.scan(RawEntity::Events)?.with_row_index(ROW, None);
        let [unique, link_origins]: [DataFrame; 2] = collect_all(vec![encoded(first_landed(&landed)), link_origins(&landed)])?.try_into().map_err(|_| anyhow::anyhow!("two frames"))?;
        SharedEvents::from_unique(unique, link_origins, details_of(&landed))
    }

    /// From [`first_landed`]'s rows [`encoded`] and [`link_origins`].
    fn from_unique(unique: DataFrame, link_origins: DataFrame, details: LazyFrame) -> Result<SharedEvents> {
        let browsers: Vec<u32> = unique.column("browser")?.i64()?.into_no_null_iter().map(|b| b as u32).collect();
        let events: Vec<u32> = unique.column("event")?.u32()?.into_no_null_iter().collect();
        let times: Vec<i64> = unique.column("timestamp")?.cast(&DataType::Int64)?.i64()?.iter().map(|t| t.unwrap_or(i64::MAX)).collect();
        // Ties in browser and time in landing order (`ROW` grows with it).
        let by_browser = unique.clone().lazy().with_row_index("_i", None).sort_by_exprs([col("browser"), col("timestamp"), col(ROW)], SortMultipleOptions::default()).select([col("_i")]).collect()?;
        let by_browser: Vec<IdxSize> = by_browser.column("_i")?.idx()?.into_no_null_iter().collect();
        let links = links_of(unique.clone(), link_origins)?;
        // The numbers and links are held apart now: the frame keeps only what
        // is gathered (on `large`, 11M rows: a quarter of a GB less).
        let unique = unique.select([ROW, "timestamp", "product_id", "collection_id", "order_id", "search_query", "product_ids"])?;
        Ok(SharedEvents { unique, browsers, events, times, by_browser, links, details })
    }

    /// Adds `rows` — first landed rows of ids not landed before, in landing
    /// order after every row held ([`first_landed`]'s columns but the name
    /// and browser id) — numbered `browsers` and `events` store-wide, with
    /// the landing places of their links (`origins`, [`link_origins`]) and
    /// the details of every landed row now.
    fn append(&mut self, rows: DataFrame, browsers: Vec<u32>, events: Vec<u32>, origins: DataFrame, details: LazyFrame) -> Result<()> {
        let held = self.unique.height();
        let times: Vec<i64> = rows.column("timestamp")?.cast(&DataType::Int64)?.i64()?.iter().map(|t| t.unwrap_or(i64::MAX)).collect();
        let mut with_browser = rows.clone();
        with_browser.with_column(Column::new("browser".into(), browsers.iter().map(|&b| i64::from(b)).collect::<Vec<_>>()))?;
        let links = links_of(with_browser, origins)?;
        self.unique.vstack_mut(&rows.select(self.unique.get_column_names_owned())?)?;
        // A cycle's few new rows as a chunk of their own: copying the whole
        // frame into one (11M rows on `large`) only once chunks pile up.
        if self.unique.max_n_chunks() > 16 {
            self.unique.rechunk_mut();
        }
        self.browsers.extend(browsers);
        self.events.extend(events);
        self.times.extend(times);
        // The new rows by the same order as `by_browser` (browser, time with
        // a missing one first, landing), then both lists merged.
        let key = |i: IdxSize| {
            let i = i as usize;
            (self.browsers[i], if self.times[i] == i64::MAX { i64::MIN } else { self.times[i] }, i)
        };
        let mut added: Vec<IdxSize> = (held as IdxSize..self.unique.height() as IdxSize).collect();
        added.sort_unstable_by_key(|&i| key(i));
        self.by_browser = merged(&self.by_browser, &added, |&i| key(i));
        // The new links landed after every link held: at one browser and
        // instant they come after the held ones.
        let links = merged(&self.links, &links, |&(browser, time, _)| (browser, time));
        self.links = links;
        self.details = details;
        Ok(())
    }

    /// About how many bytes it holds (its columns' and vectors' sizes).
    pub fn estimated_bytes(&self) -> usize {
        let numbers = self.browsers.len() * 4 + self.events.len() * 4 + self.times.len() * 8 + self.by_browser.len() * std::mem::size_of::<IdxSize>();
        self.unique.estimated_size() + numbers + self.links.len() * std::mem::size_of::<(u32, i64, i64)>()
    }

    /// The events' parts at `t`: those [`events`] gives at `t`.
    pub fn parts_at(&self, t: i64) -> Result<EventParts> {
        let at_t = |i: usize| self.times[i] <= t && self.times[i] != i64::MAX;
        let in_landing_order: Vec<usize> = (0..self.unique.height()).filter(|&i| at_t(i)).collect();
        // The numbers at `t` of the store-wide ones: by first appearance among
        // the rows at `t`, in landing order.
        let number = |n: u32| (n != 0).then_some(n);
        let fixed = EventName::ALL.len() as u32;
        let (browsers, events) = (in_landing_order.iter().map(|&i| self.browsers[i]), in_landing_order.iter().map(|&i| self.events[i]));
        let (browser_at, event_at) = if in_landing_order.len() == self.unique.height() {
            // Every row is at `t` (a `serve` cycle at now): the numbers by
            // first appearance among them are the store-wide ones.
            let same = |numbers: &[u32]| (0..=numbers.iter().copied().max().unwrap_or(0)).collect::<Vec<u32>>();
            (same(&self.browsers), same(&self.events))
        } else {
            (renumbering(browsers.clone(), numbered(browsers.map(number), |_| None, 1)), renumbering(events.clone(), numbered(events.map(number), |&n| (n <= fixed).then_some(n), fixed + 1)))
        };
        // Sorted by browser at `t`: each browser's rows are together and in
        // order in `by_browser`; only the browsers' order may differ.
        let mut order: Vec<IdxSize> = self.by_browser.iter().copied().filter(|&i| at_t(i as usize)).collect();
        let browser_of = |i: &IdxSize| browser_at[self.browsers[*i as usize] as usize];
        if !order.is_sorted_by_key(browser_of) {
            order.sort_by_key(browser_of);
        }
        let customer_at = self.customers_at(t, browser_at.len());
        let mut rows = self.unique.take(&IdxCa::from_vec("rows".into(), order.clone()))?;
        let store_browser = |i: &IdxSize| self.browsers[*i as usize] as usize;
        rows.with_column(Column::new("browser".into(), order.iter().map(|i| i64::from(browser_of(i))).collect::<Vec<_>>()))?;
        rows.with_column(Column::new("event".into(), order.iter().map(|i| event_at[self.events[*i as usize] as usize]).collect::<Vec<_>>()))?;
        rows.with_column(Column::new("customer_id".into(), order.iter().map(|i| customer_at[store_browser(i)]).collect::<Vec<_>>()))?;
        Ok(EventParts { rows: rows.lazy().select(rows_part_columns()), details: self.details.clone() })
    }

    /// Per store-wide browser number (below `len`), the customer of its latest
    /// link at or before `t`.
    fn customers_at(&self, t: i64, len: usize) -> Vec<Option<i64>> {
        let mut customers = vec![None; len];
        for &(browser, _, customer) in self.links.iter().filter(|link| link.1 <= t) {
            if let Some(slot) = customers.get_mut(browser as usize) {
                *slot = Some(customer);
            }
        }
        customers
    }
}

/// [`SharedEvents`] that the events of snapshots landed since can be added
/// to without reading the store again (a `serve` cycle after pixel events),
/// with what that takes: the store-wide number of each browser id and event
/// name, and a hash of every event id landed, so that a new row whose id
/// landed before is left out (a hash found is checked against the store's
/// ids: two ids with one hash are never taken for one). The same events as
/// [`SharedEvents::of`] the whole store (tested at many times).
pub struct GrowingEvents {
    pub shared: SharedEvents,
    /// Rows landed so far, duplicates too: the next snapshot's first `_event_row`.
    landed_rows: IdxSize,
    /// Every event id landed, hashed ([`id_hash`]), sorted.
    id_hashes: Vec<u64>,
    browser_numbers: PlHashMap<String, u32>,
    /// Names not among [`EventName::ALL`] (the standard ones have their code).
    name_numbers: PlHashMap<String, u32>,
}

/// An event id's hash: the same in every run of a build (std's SipHash with
/// its fixed keys).
fn id_hash(id: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::hash::DefaultHasher>::default().hash_one(id)
}

impl GrowingEvents {
    /// The events of `landed` (every landed row, `_event_row` from 0).
    pub fn of(landed: &LazyFrame) -> Result<GrowingEvents> {
        // The strings beside their numbers, once, for the maps.
        let firsts = first_landed_with_ids(landed).with_columns([col("client_id").alias("_client"), col("name").alias("_name")]);
        let [unique, origins, count]: [DataFrame; 3] = collect_all(vec![encoded(firsts), link_origins(landed), landed.clone().select([len().alias("rows")])])?.try_into().map_err(|_| anyhow::anyhow!("three frames"))?;
        let ids: Vec<&str> = unique.column("event_id")?.str()?.iter().flatten().collect();
        let mut id_hashes: Vec<u64> = ids.par_iter().map(|id| id_hash(id)).collect();
        id_hashes.par_sort_unstable();
        id_hashes.dedup();
        // Each string once with its number (a browser has one number).
        let numbered_strings = |string: &str, number: &str| -> Result<Vec<(String, u32)>> {
            let pairs = unique.select([string, number])?.lazy().drop_nulls(None).unique(None, UniqueKeepStrategy::Any).collect()?;
            let numbers = pairs.column(number)?.cast(&DataType::UInt32)?;
            Ok(pairs.column(string)?.str()?.iter().flatten().zip(numbers.u32()?.into_no_null_iter()).map(|(s, n)| (s.to_string(), n)).collect())
        };
        let browser_numbers = numbered_strings("_client", "browser")?.into_iter().collect();
        let standard = |name: &str| EventName::ALL.iter().any(|n| n.as_str() == name);
        let name_numbers = numbered_strings("_name", "event")?.into_iter().filter(|(name, _)| !standard(name)).collect();
        let landed_rows = count.column("rows")?.cast(&IDX_DTYPE)?.idx()?.get(0).unwrap_or(0);
        let unique = unique.drop_many(["event_id", "_client", "_name"]);
        Ok(GrowingEvents { shared: SharedEvents::from_unique(unique, origins, details_of(landed))?, landed_rows, id_hashes, browser_numbers, name_numbers })
    }

    /// Adds the events of `new` — the files landed since, scanned in landing
    /// order — whose ids did not land before; `all` is every landed row
    /// now (the old files' then `new`'s, `_event_row` from 0).
    pub fn grow(&mut self, new: LazyFrame, all: &LazyFrame) -> Result<()> {
        let new = new.with_row_index(ROW, Some(self.landed_rows));
        let [firsts, origins, count]: [DataFrame; 3] = collect_all(vec![first_landed_with_ids(&new), link_origins(&new), new.clone().select([len().alias("rows")])])?.try_into().map_err(|_| anyhow::anyhow!("three frames"))?;
        let firsts = firsts.filter(&self.not_landed_before(firsts.column("event_id")?.str()?)?)?;
        // Numbered as the whole store's encoding numbers them: a browser id
        // or name seen before keeps its number, the others get the next ones
        // in landing order.
        let next_browser = self.browser_numbers.len() as u32 + 1;
        let browsers = numbered(firsts.column("client_id")?.str()?.iter(), |id| self.browser_numbers.get(*id).copied(), next_browser);
        let known = |name: &&str| EventName::ALL.iter().find(|n| n.as_str() == *name).map(|n| n.code()).or_else(|| self.name_numbers.get(*name).copied());
        let next_name = EventName::ALL.len() as u32 + 1 + self.name_numbers.len() as u32;
        let events = numbered(firsts.column("name")?.str()?.iter(), known, next_name);
        remember(&mut self.browser_numbers, firsts.column("client_id")?.str()?, &browsers, |_| true);
        remember(&mut self.name_numbers, firsts.column("name")?.str()?, &events, |name| !EventName::ALL.iter().any(|k| k.as_str() == name));
        let mut hashes: Vec<u64> = firsts.column("event_id")?.str()?.iter().flatten().map(id_hash).collect();
        hashes.sort_unstable();
        self.id_hashes = merged(&self.id_hashes, &hashes, |&h| h);
        self.id_hashes.dedup();
        self.landed_rows += count.column("rows")?.cast(&IDX_DTYPE)?.idx()?.get(0).unwrap_or(0);
        self.shared.append(firsts.drop_many(["event_id", "name", "client_id"]), browsers, events, origins, details_of(all))
    }

    /// About how many bytes it holds: the events' and what growing them
    /// takes (the maps' strings and entries counted roughly).
    pub fn estimated_bytes(&self) -> usize {
        let strings = |map: &PlHashMap<String, u32>| map.keys().map(|k| k.capacity() + std::mem::size_of::<(String, u32)>() + 1).sum::<usize>();
        self.shared.estimated_bytes() + self.id_hashes.capacity() * 8 + strings(&self.browser_numbers) + strings(&self.name_numbers)
    }

    /// Per id of `ids`, whether no landed row had it: its hash is not among
    /// those landed, or it is but the store's rows with that hash have
    /// another id.
    fn not_landed_before(&self, ids: &StringChunked) -> Result<BooleanChunked> {
        let found = |id: &str| self.id_hashes.binary_search(&id_hash(id)).is_ok();
        let maybe: Vec<&str> = ids.iter().flatten().filter(|id| found(id)).collect();
        let landed: std::collections::HashSet<String> = if maybe.is_empty() {
            Default::default()
        } else {
            let asked = Series::new("ids".into(), &maybe);
            let rows = self.shared.details.clone().filter(col("event_id").is_in(lit(asked).implode(false), false)).select([col("event_id")]).collect()?;
            rows.column("event_id")?.str()?.iter().flatten().map(str::to_string).collect()
        };
        Ok(ids.iter().map(|id| Some(id.is_none_or(|id| !landed.contains(id)))).collect())
    }
}

/// Each of `strings` that `keep` keeps, with its number of `numbers`, into
/// `map` (where it is not yet).
fn remember(map: &mut PlHashMap<String, u32>, strings: &StringChunked, numbers: &[u32], keep: impl Fn(&str) -> bool) {
    for (string, n) in strings.iter().zip(numbers) {
        if let Some(string) = string.filter(|s| keep(s)) {
            map.entry(string.to_string()).or_insert(*n);
        }
    }
}

/// Two lists ascending by `key` as one; at equal keys `a`'s first.
fn merged<T: Copy, K: Ord>(a: &[T], b: &[T], key: impl Fn(&T) -> K) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if key(&a[i]) <= key(&b[j]) {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// The rows of `unique` (`browser`, `timestamp`, `event_customer_id`) that
/// link a browser to a customer, by browser, then time and landing place
/// (`link_origins`): (browser, time, customer).
fn links_of(unique: DataFrame, link_origins: DataFrame) -> Result<Vec<(u32, i64, i64)>> {
    let links = unique
        .lazy()
        .filter(col("event_customer_id").is_not_null())
        .select([col(ROW), col("browser"), col("timestamp").cast(DataType::Int64), col("event_customer_id")])
        .join(link_origins.lazy(), [col(ROW)], [col(ROW)], JoinArgs::new(JoinType::Inner))
        .sort_by_exprs([col("browser"), col("timestamp"), col("snapshot"), col("file"), col("line")], ascending(5))
        .select([col("browser"), col("timestamp"), col("event_customer_id")])
        .collect()?;
    Ok((links.column("browser")?.i64()?.into_no_null_iter())
        .zip(links.column("timestamp")?.i64()?.into_no_null_iter())
        .zip(links.column("event_customer_id")?.i64()?.into_no_null_iter())
        .map(|((b, t), c)| (b as u32, t, c))
        .collect())
}

/// Per store-wide number (0 and those not among `store`: 0), the number at a
/// time: `at[k]` that of the `k`-th of `store`.
fn renumbering(store: impl Iterator<Item = u32>, at: Vec<u32>) -> Vec<u32> {
    let pairs: Vec<(u32, u32)> = store.zip(at).collect();
    let mut map = vec![0; pairs.iter().map(|p| p.0 as usize + 1).max().unwrap_or(1)];
    for (store, at) in pairs {
        map[store as usize] = at;
    }
    map
}

fn details_of(landed: &LazyFrame) -> LazyFrame {
    landed.clone().select(std::iter::once(col(ROW)).chain(DETAIL_COLUMNS.map(col)).collect::<Vec<_>>())
}

impl EventParts {
    /// The parts of an events table (as [`events`] sorts it): for tables made
    /// otherwise than by normalization (tests, the benchmark's Parquet files).
    /// Its details are the whole table by row.
    pub fn of_table(table: LazyFrame) -> EventParts {
        let table = table.with_row_index(ROW, None);
        let read = [ROW, "name", "client_id"].into_iter().chain(ROW_COLUMNS);
        let rows = encoded(table.clone().select(read.map(col).collect::<Vec<_>>()));
        EventParts { rows: rows.select(rows_part_columns()), details: table }
    }

    /// The whole events table, in the rows' order.
    pub fn table(&self) -> LazyFrame {
        let details = self.details.clone();
        let mut joined = JoinArgs::new(JoinType::Left);
        joined.maintain_order = MaintainOrderJoin::Left;
        self.rows
            .clone()
            .drop(cols(["browser", "event"]))
            .join(details, [col(ROW)], [col(ROW)], joined)
            .select([
                col("event_id"), col("name"), col("client_id"), col("timestamp"), col("customer_id"),
                col("event_customer_id"), col("product_id"), col("variant_id"), col("collection_id"),
                col("order_id"), col("search_query"), col("product_ids"), col("url"), col("path"),
                col("referrer"),
                url_host(col("referrer")).alias("referrer_host"),
                col("user_agent"),
            ])
    }
}

/// The columns of [`EventParts::rows`], in order.
fn rows_part_columns() -> Vec<Expr> {
    [col(ROW), col("browser"), col("event")].into_iter().chain(ROW_COLUMNS.map(col)).collect()
}

/// Adds `browser` (1, 2, … per `client_id`, in order of first appearance) and
/// `event` (the name's code) and drops `client_id` and `name`: browsers are
/// grouped, joined and sorted as integers, and every feature tests the name.
///
/// A dictionary, not a hash: distinct ids always get distinct numbers.
fn encoded(events: LazyFrame) -> LazyFrame {
    // Column by column, so a plan that reads no browser (a product's view
    // counts) neither reads nor numbers the client ids. Group-wise (`apply`):
    // each number depends on every row before it, so each runs over the whole
    // column at once — never in batches, and no filter is moved below it.
    let numbers = |name: &'static str, kind: DataType| move |_: &Schema, _: &Field| Ok(Field::new(name.into(), kind.clone()));
    events
        .with_columns([
            col("client_id").apply(|c| Ok(Column::new("browser".into(), number_browsers(c.str()?))), numbers("browser", DataType::Int64)).alias("browser"),
            col("name").apply(|c| Ok(Column::new("event".into(), number_names(c.str()?))), numbers("event", DataType::UInt32)).alias("event"),
        ])
        .drop(cols(["client_id", "name"]))
}

/// Browsers numbered 1, 2, … by first appearance; 0 for a missing id.
fn number_browsers(client_ids: &StringChunked) -> Vec<i64> {
    numbered(client_ids.iter(), |_| None, 1).into_iter().map(i64::from).collect()
}

/// Standard names by their code, others numbered after them by first
/// appearance; 0 for a missing name.
fn number_names(names: &StringChunked) -> Vec<u32> {
    let known = |name: &&str| EventName::ALL.iter().find(|n| n.as_str() == *name).map(|n| n.code());
    numbered(names.iter(), known, EventName::ALL.len() as u32 + 1)
}

/// A number per distinct value: `fixed`'s where it has one, else `first`,
/// `first + 1`, … in order of first appearance; 0 for a null. (Strings when
/// encoding, store-wide numbers when renumbering at a cut-off.)
fn numbered<K: std::hash::Hash + Eq>(values: impl Iterator<Item = Option<K>>, fixed: impl Fn(&K) -> Option<u32>, first: u32) -> Vec<u32> {
    let mut numbers: PlHashMap<K, u32> = PlHashMap::default();
    let mut next = first;
    values
        .map(|value| match value {
            None => 0,
            // `fixed` asked once per distinct value, not per row.
            Some(v) => match numbers.get(&v) {
                Some(n) => *n,
                None => {
                    let n = fixed(&v).unwrap_or_else(|| {
                        next += 1;
                        next - 1
                    });
                    numbers.insert(v, n);
                    n
                }
            },
        })
        .collect()
}

/// The lower-case host of a URL (`https://Shop.Example:443/x` → `shop.example`);
/// null when it has none.
pub fn url_host(url: Expr) -> Expr {
    url.str().to_lowercase().str().extract(lit(r"^[a-z][a-z0-9+.-]*://([^/:?#]+)"), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_and_names_get_a_number_each_in_order_of_first_appearance() {
        let events = df!(
            "client_id" => [Some("b"), Some("a"), Some("b"), None, Some("c")],
            "name" => [Some("product_viewed"), Some("my_custom"), Some("other_custom"), Some("my_custom"), None],
            "timestamp" => [1i64, 2, 3, 4, 5],
        )
        .unwrap();
        let encoded = encoded(events.lazy()).collect().unwrap();
        assert_eq!(encoded.get_column_names(), ["timestamp", "browser", "event"]);
        let browsers: Vec<i64> = encoded.column("browser").unwrap().i64().unwrap().into_no_null_iter().collect();
        assert_eq!(browsers, [1, 2, 1, 0, 3], "distinct ids, distinct numbers; a missing id is 0");
        let events: Vec<u32> = encoded.column("event").unwrap().u32().unwrap().into_no_null_iter().collect();
        let unknown = EventName::ALL.len() as u32 + 1;
        assert_eq!(events, [EventName::ProductViewed.code(), unknown, unknown + 1, unknown, 0], "standard names keep their codes, others get the next");
    }

    /// The parts at `t` from the events read once equal those of the events
    /// at `t` — browsers landing in another order than they were active,
    /// events at one instant, a link superseded by a later one and one landed
    /// later at the same instant, custom names, a null time and a null browser.
    #[test]
    fn the_parts_at_t_from_the_events_read_once_are_those_of_the_events_at_t() {
        // (event id, name, browser, time, customer, snapshot, file line): in
        // landing order; "e3" lands twice (the first copy counts).
        let landed = [
            ("e1", Some("product_viewed"), Some("b"), Some(50), None, "s1", 1),
            ("e2", Some("my_custom"), Some("a"), Some(20), Some(7), "s1", 2),
            ("e3", Some("other_custom"), Some("b"), Some(30), None, "s1", 3),
            ("e4", Some("my_custom"), None, Some(40), None, "s1", 4),
            ("e5", None, Some("c"), Some(10), Some(8), "s1", 5),
            ("e6", Some("third"), Some("a"), Some(60), Some(9), "s2", 1),
            ("e7", Some("other_custom"), Some("d"), Some(0), None, "s2", 2),
            ("e3", Some("product_viewed"), Some("z"), Some(1), None, "s2", 3),
            ("e8", Some("product_viewed"), Some("a"), Some(20), Some(6), "s2", 4),
            ("e9", Some("checkout_completed"), Some("c"), None, Some(5), "s2", 5),
            ("e10", Some("product_viewed"), Some("d"), Some(30), Some(4), "s2", 6),
            ("e11", Some("product_viewed"), Some("b"), Some(30), None, "s2", 7),
        ];
        let frame = df!(
            "event_id" => landed.iter().map(|e| e.0).collect::<Vec<_>>(),
            "name" => landed.iter().map(|e| e.1).collect::<Vec<_>>(),
            "client_id" => landed.iter().map(|e| e.2).collect::<Vec<_>>(),
            "timestamp" => landed.iter().map(|e| e.3.map(i64::from)).collect::<Vec<_>>(),
            "event_customer_id" => landed.iter().map(|e| e.4.map(i64::from)).collect::<Vec<_>>(),
            "product_id" => (0..landed.len() as i64).collect::<Vec<_>>(),
            "collection_id" => vec![None::<i64>; landed.len()],
            "order_id" => vec![None::<i64>; landed.len()],
            "search_query" => landed.iter().map(|e| e.0.to_uppercase()).collect::<Vec<_>>(),
            "snapshot" => landed.iter().map(|e| e.5).collect::<Vec<_>>(),
            "file" => vec!["f"; landed.len()],
            "line" => landed.iter().map(|e| e.6 as i64).collect::<Vec<_>>(),
        )
        .unwrap()
        .lazy()
        .with_column(concat_list([col("product_id"), col("product_id") + lit(1i64)]).unwrap().alias("product_ids"))
        .with_row_index(ROW, None);
        let [unique, origins]: [DataFrame; 2] = collect_all(vec![encoded(first_landed(&frame)), link_origins(&frame)]).unwrap().try_into().unwrap();
        let shared = SharedEvents::from_unique(unique, origins, details_of(&frame)).unwrap();
        for t in [-1, 0, 1, 10, 20, 29, 30, 45, 50, 60, 100] {
            let direct = rows(&frame, Some(t)).collect().unwrap();
            let once = shared.parts_at(t).unwrap().rows.collect().unwrap();
            assert!(direct.equals_missing(&once), "at {t}: {direct} != {once}");
        }
        // Without the row that has no time, every row is at 60 and later
        // (the store-wide numbers are those at `t`).
        let timed = frame.clone().filter(col("timestamp").is_not_null());
        let [unique, origins]: [DataFrame; 2] = collect_all(vec![encoded(first_landed(&timed)), link_origins(&timed)]).unwrap().try_into().unwrap();
        let shared = SharedEvents::from_unique(unique, origins, details_of(&timed)).unwrap();
        for t in [30, 59, 60, 100] {
            let direct = rows(&timed, Some(t)).collect().unwrap();
            let once = shared.parts_at(t).unwrap().rows.collect().unwrap();
            assert!(direct.equals_missing(&once), "every row timed, at {t}: {direct} != {once}");
        }
        // At 30 the browsers' order differs from the store's ("b" landed
        // first, but its first row at 30 lands after "a"'s), and "a"'s two
        // links at one instant go to the later landed.
        let at_30 = rows(&frame, Some(30)).collect().unwrap();
        let ints = |c: &str| at_30.column(c).unwrap().cast(&DataType::Int64).unwrap().i64().unwrap().iter().collect::<Vec<_>>();
        assert_eq!(ints("product_id"), [1, 8, 2, 11, 4, 6, 10].map(Some));
        assert_eq!(ints("browser"), [1, 1, 2, 2, 3, 4, 4].map(Some));
        assert_eq!(ints("customer_id"), [Some(6), Some(6), None, None, Some(8), Some(4), Some(4)]);
    }

    /// (event id, name, browser, time, customer, snapshot, line) rows as a
    /// landed events file's scan would give them; product ids from `first_product`.
    type Landed<'a> = (&'a str, Option<&'a str>, Option<&'a str>, i64, Option<i64>, &'a str, i64);
    fn landed_frame(rows: &[Landed], first_product: i64) -> LazyFrame {
        let n = rows.len();
        df!(
            "event_id" => rows.iter().map(|e| e.0).collect::<Vec<_>>(),
            "name" => rows.iter().map(|e| e.1).collect::<Vec<_>>(),
            "client_id" => rows.iter().map(|e| e.2).collect::<Vec<_>>(),
            "timestamp" => rows.iter().map(|e| e.3).collect::<Vec<_>>(),
            "event_customer_id" => rows.iter().map(|e| e.4).collect::<Vec<_>>(),
            "product_id" => (first_product..first_product + n as i64).collect::<Vec<_>>(),
            "variant_id" => vec![None::<i64>; n],
            "collection_id" => vec![None::<i64>; n],
            "order_id" => vec![None::<i64>; n],
            "search_query" => rows.iter().map(|e| e.0.to_uppercase()).collect::<Vec<_>>(),
            "url" => vec![None::<&str>; n],
            "path" => vec![None::<&str>; n],
            "referrer" => vec![None::<&str>; n],
            "user_agent" => vec![None::<&str>; n],
            "snapshot" => rows.iter().map(|e| e.5).collect::<Vec<_>>(),
            "file" => vec!["f"; n],
            "line" => rows.iter().map(|e| e.6).collect::<Vec<_>>(),
        )
        .unwrap()
        .lazy()
        .with_column(concat_list([col("product_id"), col("product_id") + lit(1i64)]).unwrap().alias("product_ids"))
    }

    /// Events kept and grown by the snapshots landed after them equal the
    /// events of the whole store at every `T`: ids landed before left out
    /// (also within the new rows), browser ids and names seen before keep
    /// their numbers and new ones get the next, a link at an instant another
    /// one has goes to the later landed.
    #[test]
    fn events_grown_by_later_snapshots_are_those_of_the_whole_store() {
        let first: [Landed; 5] = [
            ("e1", Some("product_viewed"), Some("b"), 50, None, "s1", 1),
            ("e2", Some("my_custom"), Some("a"), 20, Some(7), "s1", 2),
            ("e3", Some("other_custom"), Some("b"), 30, None, "s1", 3),
            ("e4", Some("my_custom"), None, 40, None, "s1", 4),
            ("e5", None, Some("c"), 10, Some(8), "s1", 5),
        ];
        let second: [Landed; 8] = [
            ("e6", Some("third"), Some("a"), 60, Some(9), "s2", 1),
            ("e7", Some("other_custom"), Some("d"), 0, None, "s2", 2),
            // Landed before, from another browser: left out ("z" never counts).
            ("e3", Some("product_viewed"), Some("z"), 1, None, "s2", 3),
            // At the instant of e2's link, landed later: this one holds.
            ("e8", Some("product_viewed"), Some("a"), 20, Some(6), "s2", 4),
            ("e10", Some("product_viewed"), Some("d"), 30, Some(4), "s2", 5),
            ("e12", Some("product_viewed"), Some("e"), 5, None, "s2", 6),
            // Twice among the new rows: the first counts ("f" not yet seen).
            ("e12", Some("fourth"), Some("f"), 6, None, "s2", 7),
            ("e11", Some("product_viewed"), Some("b"), 30, None, "s2", 8),
        ];
        let third: [Landed; 3] = [
            ("e13", Some("fourth"), Some("f"), 70, None, "s3", 1),
            ("e1", Some("page_viewed"), Some("q"), 5, None, "s3", 2),
            ("e14", Some("my_custom"), Some("e"), 5, Some(3), "s3", 3),
        ];
        let parts = [landed_frame(&first, 0), landed_frame(&second, 100), landed_frame(&third, 200)];
        let all = |n: usize| concat(parts[..n].to_vec(), UnionArgs::default()).unwrap().with_row_index(ROW, None);
        let mut grown = GrowingEvents::of(&all(1)).unwrap();
        for n in [2, 3] {
            grown.grow(parts[n - 1].clone(), &all(n)).unwrap();
            let whole = GrowingEvents::of(&all(n)).unwrap();
            assert_eq!(grown.browser_numbers, whole.browser_numbers, "after {n} snapshots");
            assert_eq!(grown.name_numbers, whole.name_numbers, "after {n} snapshots");
            assert_eq!(grown.id_hashes, whole.id_hashes, "after {n} snapshots");
            for t in [-1, 0, 1, 5, 6, 10, 20, 29, 30, 45, 50, 60, 70, 100] {
                let direct = rows(&all(n), Some(t)).collect().unwrap();
                let kept = grown.shared.parts_at(t).unwrap().rows.collect().unwrap();
                assert!(direct.equals_missing(&kept), "after {n} snapshots, at {t}: {direct} != {kept}");
            }
        }
        assert!(!grown.browser_numbers.contains_key("z") && !grown.browser_numbers.contains_key("q"), "the browsers of rows landed before never count");
        let at_20 = grown.shared.parts_at(20).unwrap().rows.collect().unwrap();
        let customers: Vec<Option<i64>> = at_20.column("customer_id").unwrap().i64().unwrap().iter().collect();
        assert!(customers.contains(&Some(6)) && !customers.contains(&Some(7)), "the later landed link at one instant holds: {at_20}");
    }
}
