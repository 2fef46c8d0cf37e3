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
    let read = [ROW, "event_id", "name", "client_id", "event_customer_id"].into_iter().chain(LANDED_ROW_COLUMNS);
    landed.clone().select(read.map(col).collect::<Vec<_>>()).filter(col("event_id").is_first_distinct()).drop(cols(["event_id"]))
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
/// event name numbered over the whole store, and the landing places of links.
/// [`SharedEvents::parts_at`] gives exactly the parts [`events`] gives at `T`:
/// renumbered by first appearance among the rows at `T`, as [`encoded`]
/// numbers the strings there (a store-wide number stands for one string), and
/// stitched with the links at `T`.
pub struct SharedEvents {
    unique: DataFrame,
    link_origins: DataFrame,
    details: LazyFrame,
}

impl SharedEvents {
    pub fn of(raw: &RawTables) -> Result<SharedEvents> {
        let landed = raw.scan(RawEntity::Events)?.with_row_index(ROW, None);
        let [unique, link_origins]: [DataFrame; 2] = collect_all(vec![encoded(first_landed(&landed)), link_origins(&landed)])?.try_into().map_err(|_| anyhow::anyhow!("two frames"))?;
        Ok(SharedEvents { unique, link_origins, details: details_of(&landed) })
    }

    /// The events' parts at `t`: those [`events`] gives at `t`.
    pub fn parts_at(&self, t: i64) -> EventParts {
        let events = renumbered(self.unique.clone().lazy().filter(at_or_before(t))).cache();
        EventParts { rows: stitched(events, self.link_origins.clone().lazy()), details: self.details.clone() }
    }
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

/// [`encoded`]'s numbers of a subset of its rows, numbered again by first
/// appearance in it: what [`encoded`] gives the same rows' strings.
fn renumbered(events: LazyFrame) -> LazyFrame {
    events.map(renumber, OptFlags::empty(), None, Some("renumber events"))
}

fn renumber(mut events: DataFrame) -> PolarsResult<DataFrame> {
    // 0 is a null's number in both; the standard names keep theirs.
    let number = |n: u32| (n != 0).then_some(n);
    let fixed = EventName::ALL.len() as u32;
    let browser = numbered(events.column("browser")?.i64()?.into_no_null_iter().map(|b| number(b as u32)), |_| None, 1);
    let event = numbered(events.column("event")?.u32()?.into_no_null_iter().map(number), |&n| (n <= fixed).then_some(n), fixed + 1);
    events.with_column(Column::new("browser".into(), browser.into_iter().map(i64::from).collect::<Vec<_>>()))?;
    events.with_column(Column::new("event".into(), event))?;
    Ok(events)
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

    #[test]
    fn the_store_wide_numbers_renumbered_at_t_are_those_of_the_rows_at_t() {
        let events = df!(
            "client_id" => [Some("b"), Some("a"), Some("b"), None, Some("c"), Some("a"), Some("d")],
            "name" => [Some("product_viewed"), Some("my_custom"), Some("other_custom"), Some("my_custom"), None, Some("third"), Some("other_custom")],
            "timestamp" => [5i64, 2, 3, 4, 1, 6, 0],
        )
        .unwrap();
        let store_wide = encoded(events.clone().lazy()).collect().unwrap();
        for t in -1..=6 {
            let at_t = encoded(events.clone().lazy().filter(col("timestamp").lt_eq(lit(t)))).collect().unwrap();
            let renumbered = renumbered(store_wide.clone().lazy().filter(col("timestamp").lt_eq(lit(t)))).collect().unwrap();
            assert!(at_t.equals_missing(&renumbered), "at {t}: {at_t} != {renumbered}");
        }
        // The store-wide numbers differ from those at an early time (so the
        // renumbering is doing something).
        let early = encoded(events.clone().lazy().filter(col("timestamp").lt_eq(lit(2)))).collect().unwrap();
        assert_ne!(early.column("browser").unwrap().i64().unwrap().get(0), store_wide.column("browser").unwrap().i64().unwrap().get(1));
    }
}
