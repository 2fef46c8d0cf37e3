//! The fast lane's rows: a changed product's row of product_features recomputed
//! from its own catalog records alone, in milliseconds whatever the shop's size.
//!
//! Only the product's [`Scope::Own`] columns are recomputed, with the registry's
//! own expressions at `T` over the catalog records of the changed products
//! ([`RawTables::catalog_of`]: their versions, variants, media and memberships).
//! A catalog change touches no order and no event, so the other columns are left
//! as the current generation has them (a full cycle recomputes them at its own
//! `T`); a product the current generation does not have yet gets them as a
//! product that nothing references (no views, no sales) until then.

use super::registry::{FeatureTable, Scope};
use super::{pairs::PairOptions, product, Inputs};
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
    let rows = match previous {
        Some(previous) => keep_unrefreshed(&product::table(), fresh, previous)?,
        None => fresh,
    };
    let present: PlHashSet<i64> = rows.column("product_id")?.i64()?.iter().flatten().collect();
    let gone = products.iter().copied().filter(|id| !present.contains(id)).collect();
    Ok(CatalogRows { rows, gone })
}

/// `fresh` with every column but the key, `shop_id`, `computed_at` and the own
/// columns taken from `previous` where it has the row.
fn keep_unrefreshed(table: &FeatureTable, fresh: DataFrame, previous: DataFrame) -> Result<DataFrame> {
    let own = table.features_of(Scope::Own);
    let key: Vec<&str> = table.key.iter().map(|(k, _)| *k).collect();
    let kept: Vec<&str> = table.features.iter().map(|f| f.name).filter(|n| !own.contains(n)).collect();
    let before = previous.lazy().select(key.iter().map(|k| col(*k)).chain(kept.iter().map(|c| col(*c).alias(format!("{c}__before")))).collect::<Vec<_>>());
    let on: Vec<Expr> = key.iter().map(|k| col(*k)).collect();
    let mut merged = JoinArgs::new(JoinType::Left);
    merged.maintain_order = MaintainOrderJoin::Left;
    let columns: Vec<Expr> = fresh
        .get_column_names()
        .iter()
        .map(|c| match kept.contains(&c.as_str()) {
            // The product was in the last generation: its row there.
            true => when(col("__had_row")).then(col(format!("{c}__before"))).otherwise(col(c.as_str())).alias(c.as_str()),
            false => col(c.as_str()),
        })
        .collect();
    let had_row = before.with_column(lit(true).alias("__had_row"));
    Ok(fresh.lazy().join(had_row, on.clone(), on, merged).with_column(col("__had_row").fill_null(lit(false))).select(columns).collect()?)
}
