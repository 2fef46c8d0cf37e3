//! Features: the main tables at `as_of` → the feature tables of the README's catalog, as
//! columnar Polars expressions over the whole shop.
//!
//! Every table is one file with the same face and the same parts in the same
//! order: `table() -> FeatureTable` (its registry entries,
//! [`registry::FeatureTable`]), the aggregates it needs from the main tables, the
//! base frame the entries are evaluated over, and `build(&Inputs) ->
//! PolarsResult<LazyFrame>`. The rules that hold for every table — point in time,
//! valid orders, line revenue — live here, once; the expressions several tables
//! share (rates, windows, event tests, price tier, device type…) in [`expr`], and
//! the aggregates several tables share in [`aggregates`]. Table files import from
//! those and never from each other.

pub mod aggregates;
pub mod behavior;
pub mod collection;
pub mod embeddings;
pub mod expr;
pub mod fast;
pub mod interaction;
pub mod lifetime;
pub mod pairs;
pub mod product;
pub mod registry;
pub mod search;
pub mod session;
pub mod sessions;
pub mod user;

use crate::normalize::{EventParts, MainTables};
use polars::prelude::*;

/// What every feature table is computed from.
pub struct Inputs {
    pub main: MainTables,
    pub shop_id: String,
    /// The point in time `T`, µs since the epoch, UTC.
    pub as_of: i64,
    /// Bounds on the co-occurrence tables (product pairs, product embeddings).
    pub pairs: pairs::PairOptions,
    /// The events at or before `T` in sessions, computed once: every table that
    /// reads events reads them from here (the main table's copy is dropped).
    pub sessions: LazyFrame,
    /// One row per session with its counts and first/last facts
    /// ([`sessions::session_facts`]): session_features and
    /// customer_behavior_features both read it.
    pub session_facts: LazyFrame,
    /// When sessions browsed each product and pair, from the events of a
    /// whole store (a training set's, for each of its cut-offs); `None`: from
    /// [`Inputs::sessions`] ([`Inputs::browse_times`]).
    pub browse_times: Option<sessions::BrowseTimes>,
    /// The shop's lifetime-value fit and its customers' predictions, computed
    /// once ([`Inputs::new`]); `None` in [`Inputs::lazy`] (the table then fits).
    pub lifetime: Option<lifetime::Fitted>,
}

impl Inputs {
    /// The inputs of every feature table at `as_of`; sessionizes the events once.
    pub fn new(main: MainTables, shop_id: &str, as_of: i64, pairs: pairs::PairOptions) -> PolarsResult<Inputs> {
        let (mut inputs, details) = Inputs::with_details(main, shop_id, as_of, pairs)?;
        let events = inputs.sessions.collect()?;
        // The per-session facts read the long strings of two events a session
        // (first and last), fetched by row in one streaming pass instead of
        // holding every event's.
        let counts = sessions::session_counts(events.clone().lazy()).collect()?;
        let details = sessions::details_of(details, &counts)?.collect_with_engine(Engine::Streaming)?.unwrap_single();
        inputs.session_facts = sessions::with_details(counts.lazy(), details.lazy()).collect()?.lazy();
        inputs.sessions = events.lazy();
        // Events are the largest table: keep one copy, the sessionized one.
        let schema = inputs.main.events.collect_schema()?;
        inputs.main.events = DataFrame::empty_with_schema(&schema).lazy();
        inputs.lifetime = Some(lifetime::fit(&inputs)?);
        Ok(inputs)
    }

    /// The same inputs with the sessions left as a plan: for computing a few
    /// tables (each then sessionizes what it reads), not all of them.
    pub fn lazy(main: MainTables, shop_id: &str, as_of: i64, pairs: pairs::PairOptions) -> PolarsResult<Inputs> {
        Ok(Inputs::with_details(main, shop_id, as_of, pairs)?.0)
    }

    /// [`Inputs::lazy`] and the events' details part.
    fn with_details(mut main: MainTables, shop_id: &str, as_of: i64, pairs: pairs::PairOptions) -> PolarsResult<(Inputs, LazyFrame)> {
        let parts = match main.event_details.take() {
            Some(details) => EventParts { rows: main.events.clone(), details },
            None => EventParts::of_table(main.events.clone()),
        };
        let events = parts.rows.filter(col("timestamp").cast(DataType::Int64).lt_eq(lit(as_of)));
        // A visitor is the linked customer id, else minus the browser's number:
        // distinct visitors are distinct integers, cheaper to count than strings.
        let visitor = when(col("customer_id").is_not_null()).then(col("customer_id")).otherwise(lit(0i64) - col("browser"));
        let sessions = sessions::sessionized(events)?.with_column(visitor.alias("visitor"));
        let session_facts = sessions::with_details(sessions::session_counts(sessions.clone()), parts.details.clone());
        Ok((Inputs { main, shop_id: shop_id.to_string(), as_of, pairs, sessions, session_facts, browse_times: None, lifetime: None }, parts.details))
    }

    /// `T - days < ts <= T` ([`expr::within`] at this `T`).
    pub fn within(&self, ts: &str, days: i64) -> Expr {
        expr::within(self.as_of, ts, days)
    }

    /// `T - to_days < ts <= T - from_days` ([`expr::between_days`] at this `T`).
    pub fn between_days(&self, ts: &str, from_days: i64, to_days: i64) -> Expr {
        expr::between_days(self.as_of, ts, from_days, to_days)
    }

    /// Orders that count as purchases at `T`: not test, created by `T`, not
    /// cancelled by `T`.
    pub fn valid_orders(&self) -> LazyFrame {
        let cancelled_by_t = col("cancelled_at").is_not_null().and(expr::by(self.as_of, "cancelled_at"));
        self.main
            .orders
            .clone()
            .filter(col("test").eq(lit(false)).and(expr::by(self.as_of, "created_at")).and(cancelled_by_t.not()))
    }

    /// Lines of valid orders with their order's time and customer and
    /// `revenue = quantity * unit_price - discount`.
    pub fn valid_lines(&self) -> LazyFrame {
        let orders = self.valid_orders().select([col("order_id"), col("created_at").alias("ordered_at"), col("customer_id")]);
        self.main
            .line_items
            .clone()
            .join(orders, [col("order_id")], [col("order_id")], JoinArgs::new(JoinType::Inner))
            .with_column((col("quantity").cast(DataType::Float64) * col("unit_price") - col("discount")).alias("revenue"))
    }

    /// Refund lines created by `T` on valid orders.
    pub fn valid_refunds(&self) -> LazyFrame {
        self.main
            .refund_line_items
            .clone()
            .filter(expr::by(self.as_of, "created_at"))
            .join(self.valid_orders().select([col("order_id")]), [col("order_id")], [col("order_id")], JoinArgs::new(JoinType::Semi))
    }

    /// Rows of `frame` except those whose `column` names a product deleted in
    /// Shopify: no feature table keeps a row for one. (A product id never seen in
    /// the catalog, e.g. from a partial export, stays.)
    pub fn without_deleted_products(&self, frame: LazyFrame, column: &str) -> LazyFrame {
        let ids = self.main.deleted_products.clone().select([col("product_id").alias(column)]);
        frame.join(ids, [col(column)], [col(column)], JoinArgs::new(JoinType::Anti))
    }

    /// Rows of `frame` except those of customers deleted in Shopify.
    pub fn without_deleted_customers(&self, frame: LazyFrame) -> LazyFrame {
        let ids = self.main.deleted_customers.clone();
        frame.join(ids, [col("customer_id")], [col("customer_id")], JoinArgs::new(JoinType::Anti))
    }

    /// When the sessions up to `T` browsed each product and pair (those of
    /// a whole store when given: at `T`, what is `<= T` of them).
    pub fn browse_times(&self) -> sessions::BrowseTimes {
        self.browse_times.clone().unwrap_or_else(|| sessions::BrowseTimes::of(&self.sessions))
    }

    /// Events at or before `T`, with their `visitor` (the sessionized events).
    pub fn events(&self) -> LazyFrame {
        self.sessions.clone()
    }
}

/// Left-joins `right` on `key`.
pub fn with(left: LazyFrame, right: LazyFrame, key: &str) -> LazyFrame {
    left.join(right, [col(key)], [col(key)], JoinArgs::new(JoinType::Left))
}

/// Left-joins `right` on `key` when `reads` reads one of its columns: a plan cut to
/// a few columns skips the aggregates none of them needs.
pub fn with_read(left: LazyFrame, mut right: LazyFrame, keys: &[&str], reads: &registry::Reads) -> PolarsResult<LazyFrame> {
    if !reads.any_of(&mut right, keys)? {
        return Ok(left);
    }
    let on: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    Ok(left.join(right, on.clone(), on, JoinArgs::new(JoinType::Left)))
}

/// Every feature table's registry entries, in catalog order.
pub fn catalog() -> Vec<registry::FeatureTable> {
    vec![product::table(), user::table(), collection::table(), session::table(), behavior::table(), interaction::table(), search::table(), pairs::table(), lifetime::table(), embeddings::table()]
}

/// Every feature table at `T`, lazily, by name, in catalog order.
pub fn plans(inputs: &Inputs) -> PolarsResult<Vec<(&'static str, LazyFrame)>> {
    let builds: [fn(&Inputs) -> PolarsResult<LazyFrame>; 10] =
        [product::build, user::build, collection::build, session::build, behavior::build, interaction::build, search::build, pairs::build, lifetime::build, embeddings::build];
    catalog().iter().zip(builds).map(|(table, build)| Ok((table.name, build(inputs)?))).collect()
}
