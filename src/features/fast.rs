//! The fast lane's rows: the few rows a delivery touches, recomputed with the
//! registry's own expressions at `T` over the part of the raw store those rows
//! read, in well under a second whatever the shop's size.
//!
//! - A catalog change: the changed products' rows of product_features, their
//!   [`Scope::Own`] columns recomputed from their catalog records alone
//!   ([`RawTables::catalog_of`]). A catalog change touches no order and no
//!   event, so the other columns are left as the current generation has them (a
//!   full cycle recomputes them at its own `T`); a product the current
//!   generation does not have yet gets them as a product nothing references.
//! - An order or a refund: its customer's rows of user_features and
//!   interaction_features, every column but the [`Scope::ShopWide`] ones
//!   recomputed from everything those rows read ([`RawTables::customers_view`]:
//!   the customer's orders, the events of their browsers, the products they
//!   bought). The shop-wide columns (RFM quintiles and what reads them) are left
//!   as the current generation has them, null for a customer it does not have.

use super::registry::{FeatureTable, Scope};
use super::{interaction, pairs::PairOptions, product, user, Inputs};
use crate::normalize::{self, RawTables};
use anyhow::Result;
use polars::prelude::*;

/// Changed products' rows of product_features.
pub struct CatalogRows {
    /// One row per changed product in the catalog at `T`, in the table's schema.
    pub rows: DataFrame,
    /// Changed products that are not in the catalog at `T` (deleted, or created
    /// after it): their items leave Gorse.
    pub gone: Vec<i64>,
}

/// The rows of product_features for `products` at `T`: own columns recomputed,
/// the others from `previous` (the current generation's rows, any superset).
pub fn catalog_rows(raw: &RawTables, products: &[i64], shop_id: &str, as_of: i64, previous: Option<DataFrame>) -> Result<CatalogRows> {
    let main = normalize::normalize(&raw.catalog_of(products), Some(as_of))?;
    let inputs = Inputs::lazy(main, shop_id, as_of, PairOptions::default())?;
    let fresh = product::build(&inputs)?.collect()?;
    let table = product::table();
    let own = table.features_of(Scope::Own);
    let kept: Vec<&str> = table.features.iter().map(|f| f.name).filter(|n| !own.contains(n)).collect();
    let rows = keep_columns(&table, fresh, previous, &kept, Absent::Computed)?;
    let present: PlHashSet<i64> = rows.column("product_id")?.i64()?.iter().flatten().collect();
    let gone = products.iter().copied().filter(|id| !present.contains(id)).collect();
    Ok(CatalogRows { rows, gone })
}

/// An order's or a refund's customers' rows.
pub struct CustomerRows {
    /// Their rows of user_features (customers in the catalog at `T`).
    pub users: DataFrame,
    /// Their rows of interaction_features.
    pub interactions: DataFrame,
}

/// The rows of user_features and interaction_features of `customers` at `T`:
/// every column recomputed but the shop-wide ones, which come from `previous`
/// (the current generation's user rows, any superset), null without one.
pub fn customer_rows(raw: &RawTables, customers: &[i64], shop_id: &str, as_of: i64, previous: Option<DataFrame>) -> Result<CustomerRows> {
    // Two tables read it: normalized once (the events of the customers' browsers
    // are read from the whole events files, the one cost that grows with the shop).
    let main = normalize::normalize(&raw.customers_view(customers)?, Some(as_of))?.for_features().materialize()?;
    let inputs = Inputs::lazy(main, shop_id, as_of, PairOptions::default())?;
    let theirs = || col("customer_id").is_in(lit(Series::new("ids".into(), customers)).implode(false), false);
    let fresh = user::build(&inputs)?.filter(theirs()).collect()?;
    let table = user::table();
    let users = keep_columns(&table, fresh, previous, &table.features_of(Scope::ShopWide), Absent::Null)?;
    let interactions = interaction::build(&inputs)?.filter(theirs()).collect()?;
    Ok(CustomerRows { users, interactions })
}

/// What a kept column holds in a row `previous` does not have.
enum Absent {
    /// The value just computed (a new product: as nothing references it).
    Computed,
    /// Null (a quintile among customers computed over one customer would lie).
    Null,
}

/// `fresh` with the `kept` columns taken from `previous` where it has the row.
fn keep_columns(table: &FeatureTable, fresh: DataFrame, previous: Option<DataFrame>, kept: &[&str], absent: Absent) -> Result<DataFrame> {
    let key: Vec<&str> = table.key.iter().map(|(k, _)| *k).collect();
    let schema = fresh.schema().clone();
    let before = match previous {
        Some(previous) => previous.lazy(),
        // No generation yet: no row is had.
        None => fresh.clone().lazy().slice(0, 0),
    };
    let before = before.select(key.iter().map(|k| col(*k)).chain(kept.iter().map(|c| col(*c).alias(format!("{c}__before")))).chain([lit(true).alias("__had_row")]).collect::<Vec<_>>());
    let on: Vec<Expr> = key.iter().map(|k| col(*k)).collect();
    let mut merged = JoinArgs::new(JoinType::Left);
    merged.maintain_order = MaintainOrderJoin::Left;
    let columns: Vec<Expr> = schema
        .iter()
        .map(|(name, dtype)| {
            let c = name.as_str();
            if !kept.contains(&c) {
                return col(c);
            }
            let otherwise = match absent {
                Absent::Computed => col(c),
                Absent::Null => lit(NULL).cast(dtype.clone()),
            };
            when(col("__had_row")).then(col(format!("{c}__before"))).otherwise(otherwise).alias(c)
        })
        .collect();
    Ok(fresh.lazy().join(before, on.clone(), on, merged).with_column(col("__had_row").fill_null(lit(false))).select(columns).collect()?)
}
