//! Features: the main tables at `as_of` → the feature tables of `features.md`, as
//! columnar Polars expressions over the whole shop.
//!
//! Every table is one file with the same parts in the same order: its registry
//! entries ([`registry::FeatureTable`]), the aggregates it needs from the main
//! tables, and the base frame the entries are evaluated over. The rules that hold
//! for every table — point in time, windows, valid orders, line revenue, rates that
//! are never NaN — live here, once.

pub mod behavior;
pub mod collection;
pub mod interaction;
pub mod pairs;
pub mod product;
pub mod registry;
pub mod search;
pub mod session;
pub mod sessions;
pub mod user;

use crate::normalize::MainTables;
use polars::prelude::*;

pub const DAY_US: i64 = 86_400_000_000;

/// What every feature table is computed from.
pub struct Inputs {
    pub main: MainTables,
    pub shop_id: String,
    /// The point in time `T`, µs since the epoch, UTC.
    pub as_of: i64,
    /// Bounds on product_feature pairs.
    pub pairs: pairs::PairOptions,
    /// The events at or before `T` in sessions, computed once: every table that
    /// reads events reads them from here (the main table's copy is dropped).
    pub sessions: LazyFrame,
    /// One row per session with its counts and first/last facts
    /// ([`session::aggregates`]): session_features and customer_behavior_features
    /// both read it.
    pub session_facts: LazyFrame,
}

impl Inputs {
    /// The inputs of every feature table at `as_of`; sessionizes the events once.
    pub fn new(main: MainTables, shop_id: &str, as_of: i64, pairs: pairs::PairOptions) -> PolarsResult<Inputs> {
        let mut inputs = Inputs::lazy(main, shop_id, as_of, pairs)?;
        inputs.sessions = inputs.sessions.collect()?.lazy();
        inputs.session_facts = session::aggregates(inputs.sessions.clone()).collect()?.lazy();
        // Events are the largest table: keep one copy, the sessionized one.
        let schema = inputs.main.events.collect_schema()?;
        inputs.main.events = DataFrame::empty_with_schema(&schema).lazy();
        Ok(inputs)
    }

    /// The same inputs with the sessions left as a plan: for computing a few
    /// tables (each then sessionizes what it reads), not all of them.
    pub fn lazy(main: MainTables, shop_id: &str, as_of: i64, pairs: pairs::PairOptions) -> PolarsResult<Inputs> {
        let events = main.events.clone().filter(col("timestamp").cast(DataType::Int64).lt_eq(lit(as_of)));
        // A visitor is the linked customer id, else minus the browser's number:
        // distinct visitors are distinct integers, cheaper to count than strings.
        let visitor = when(col("customer_id").is_not_null()).then(col("customer_id")).otherwise(lit(0i64) - col("browser"));
        let sessions = sessions::sessionized(events)?.with_column(visitor.alias("visitor"));
        let session_facts = session::aggregates(sessions.clone());
        Ok(Inputs { main, shop_id: shop_id.to_string(), as_of, pairs, sessions, session_facts })
    }

    /// `ts` as µs since the epoch.
    fn us(ts: &str) -> Expr {
        col(ts).cast(DataType::Int64)
    }

    /// `T - days < ts <= T`.
    pub fn within(&self, ts: &str, days: i64) -> Expr {
        let t = Self::us(ts);
        t.clone().gt(lit(self.as_of - days * DAY_US)).and(t.lt_eq(lit(self.as_of)))
    }

    /// `T - to_days < ts <= T - from_days` (e.g. "days 8..30": from 7, to 30).
    pub fn between_days(&self, ts: &str, from_days: i64, to_days: i64) -> Expr {
        let t = Self::us(ts);
        t.clone().gt(lit(self.as_of - to_days * DAY_US)).and(t.lt_eq(lit(self.as_of - from_days * DAY_US)))
    }


    /// Orders that count as purchases at `T`: not test, created by `T`, not
    /// cancelled by `T`.
    pub fn valid_orders(&self) -> LazyFrame {
        let cancelled_by_t = col("cancelled_at").is_not_null().and(Self::us("cancelled_at").lt_eq(lit(self.as_of)));
        self.main
            .orders
            .clone()
            .filter(col("test").eq(lit(false)).and(Self::us("created_at").lt_eq(lit(self.as_of))).and(cancelled_by_t.not()))
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
            .filter(Self::us("created_at").lt_eq(lit(self.as_of)))
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

    /// Events at or before `T`, with their `visitor` (the sessionized events).
    pub fn events(&self) -> LazyFrame {
        self.sessions.clone()
    }
}

/// Whole days from `earlier` to `later`: `floor((later - earlier) / 1 day)`; null
/// when either is null.
pub fn whole_days(later: Expr, earlier: Expr) -> Expr {
    (later.cast(DataType::Int64) - earlier.cast(DataType::Int64)).floor_div(lit(DAY_US))
}

/// Whole days from the timestamp column `ts` to `T`.
pub fn days_since(as_of: i64, ts: &str) -> Expr {
    whole_days(lit(as_of), col(ts))
}

/// A count column, 0 where the entity had none.
pub fn zero(c: &str) -> Expr {
    col(c).fill_null(lit(0))
}

/// An amount column, 0.0 where the entity had none.
pub fn zero_f(c: &str) -> Expr {
    col(c).fill_null(lit(0.0))
}

/// `a / b`, or 0.0 when `b` is 0 (never NaN or infinite).
pub fn rate(a: Expr, b: Expr) -> Expr {
    when(b.clone().cast(DataType::Float64).eq(lit(0.0)))
        .then(lit(0.0))
        .otherwise(a.cast(DataType::Float64) / b.cast(DataType::Float64))
}

/// `min(x, cap)` as f64.
pub fn capped(x: Expr, cap: f64) -> Expr {
    x.cast(DataType::Float64).clip_max(lit(cap))
}

/// Count of rows where `cond` holds, as i64.
pub fn count_if(cond: Expr) -> Expr {
    cond.cast(DataType::Int64).sum()
}

/// Left-joins `right` on `key`.
pub fn with(left: LazyFrame, right: LazyFrame, key: &str) -> LazyFrame {
    left.join(right, [col(key)], [col(key)], JoinArgs::new(JoinType::Left))
}

/// Every feature table's registry entries (`as_of` only shapes the expressions).
pub fn catalog(as_of: i64) -> Vec<registry::FeatureTable> {
    vec![product::table(as_of), user::table(as_of), collection::table(as_of), session::table(as_of), behavior::table(as_of), interaction::table(as_of), search::table(as_of), pairs::table(as_of)]
}

/// Every feature table at `T`, lazily, by name, in catalog order.
pub fn plans(inputs: &Inputs) -> PolarsResult<Vec<(&'static str, LazyFrame)>> {
    Ok(vec![("product_features", product::build(inputs)), ("user_features", user::build(inputs)), ("collection_features", collection::build(inputs)?),
        ("session_features", session::build(inputs)?),
        ("customer_behavior_features", behavior::build(inputs)?),
        ("interaction_features", interaction::build(inputs)?),
        ("search_product_features", search::build(inputs)?),
        ("product_pair_features", pairs::build(inputs, inputs.pairs)?),
    ])
}
