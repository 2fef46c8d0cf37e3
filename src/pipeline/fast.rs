//! The fast lane of `serve`: a catalog change, an order or a refund reaches
//! Gorse in well under a second, whatever the shop's size.
//!
//! ```text
//! land the deliveries → the rows they touch at T → delta tables → Gorse
//! ```
//!
//! A fast cycle lands only the waiting deliveries of [`fast_topics`] (one
//! snapshot, as any landing) and recomputes the rows they touch
//! ([`features::fast`]): for a catalog change, the changed products' rows of
//! product_features (their [`Scope::Own`] columns; the others stay as the
//! current generation has them); for an order or a refund, its customer's rows
//! of user_features and interaction_features (every column but the
//! [`Scope::ShopWide`] ones). It writes those rows as small delta tables
//! (`<shop>/fast/<snapshot>/<table>.parquet`, named in the run history) and
//! sends their items, users and feedback to Gorse. It writes no generation:
//! analysts reading `CURRENT` see whole generations only, and the full cycle
//! that `serve` schedules after the first fast one recomputes every table.
//!
//! [`Scope::Own`]: crate::features::registry::Scope::Own
//! [`Scope::ShopWide`]: crate::features::registry::Scope::ShopWide

use super::land::{land_inbox_files, IngestReport};
use super::report::{Stage, StageReport};
use crate::features::{self, fast::{CatalogRows, CustomerRows}, registry::Scope};
use crate::land::inbox::Inbox;
use crate::land::InputFile;
use crate::normalize::RawTables;
use crate::sinks::gorse;
use crate::storage::DataRoot;
use anyhow::Result;
use polars::prelude::*;
use serde::Serialize;

/// The deliveries a fast cycle takes: a product's catalog changes …
const CATALOG_TOPICS: &[&str] = &["products/create", "products/update", "products/delete"];
/// … and an order's or a refund's (`orders/edited` carries an order edit, not
/// an order: the debounced cycle lands it).
const ORDER_TOPICS: &[&str] = &["orders/create", "orders/updated", "orders/paid", "orders/cancelled", "orders/fulfilled", "orders/partially_fulfilled", "orders/delete", "refunds/create"];
/// Every topic a fast cycle takes.
pub fn fast_topics() -> Vec<&'static str> {
    CATALOG_TOPICS.iter().chain(ORDER_TOPICS).copied().collect()
}

/// Delta tables kept per shop (the newest); a full cycle's generation holds
/// everything they do.
const KEEP_DELTAS: usize = 50;

#[derive(Debug, Clone, Default)]
pub struct FastOptions {
    /// `T`; default: now.
    pub as_of: Option<i64>,
    pub gorse: Option<gorse::Options>,
}

/// What [`fast_cycle`] did.
#[derive(Debug, Serialize)]
pub struct FastReport {
    pub shop: String,
    pub as_of: String,
    pub land: IngestReport,
    /// The products, orders and customers the deliveries named (customers: of
    /// the orders, as the raw store has them), first mention first.
    pub products: Vec<i64>,
    pub orders: Vec<i64>,
    pub customers: Vec<i64>,
    /// Changed products not in the catalog at `T` (deleted): their items left Gorse.
    pub gone: Vec<i64>,
    /// The rows written, per table.
    pub tables: Vec<DeltaTable>,
    pub export: Option<gorse::Report>,
    pub stages: Vec<StageReport>,
}

/// One table's refreshed rows.
#[derive(Debug, Serialize)]
pub struct DeltaTable {
    pub table: &'static str,
    pub rows: usize,
    /// The columns recomputed; the others are as the current generation has them.
    pub refreshed_columns: Vec<&'static str>,
    /// Where the rows were written, under the data root.
    pub path: String,
}

/// Runs one fast cycle of `shop` over the deliveries of [`fast_topics`]
/// waiting in `inbox`; `None` when there are none.
pub fn fast_cycle(root: &DataRoot, shop: &str, inbox: &Inbox, options: &FastOptions) -> Result<Option<FastReport>> {
    let files = inbox.pending_of(&fast_topics())?;
    if files.is_empty() {
        return Ok(None);
    }
    let named = Named::of(&files);
    let land = land_inbox_files(root, shop, inbox, files)?;
    let as_of = options.as_of.unwrap_or_else(crate::time::now_us);

    let stage = Stage::start("compute");
    let raw = RawTables::open(root, shop)?;
    let products = match named.products.is_empty() {
        true => None,
        false => Some(features::fast::catalog_rows(&raw, &named.products, shop, as_of, current_rows(root, shop, "product_features", "product_id", &named.products)?)?),
    };
    let customers = if named.orders.is_empty() { vec![] } else { raw.customers_of_orders(&named.orders)? };
    let customer_rows = match customers.is_empty() {
        true => None,
        false => Some(features::fast::customer_rows(&raw, &customers, shop, as_of, current_rows(root, shop, "user_features", "customer_id", &customers)?)?),
    };
    let mut stages = vec![stage.finish()];

    let stage = Stage::start("write");
    // Named after the snapshot the deliveries landed in (a new id when every one
    // was rejected and none was written).
    let delta_id = match land.landed.snapshot.as_str() {
        "" => crate::land::new_snapshot_id(chrono::Utc::now()),
        snapshot => snapshot.to_string(),
    };
    let mut tables = vec![];
    let write = |table: &'static str, rows: &DataFrame, scope: &[Scope]| -> Result<DeltaTable> {
        let registry = features::catalog().into_iter().find(|t| t.name == table).expect("a feature table");
        let refreshed_columns = registry.features.iter().zip(registry.scopes()).filter(|(_, s)| scope.contains(s)).map(|(f, _)| f.name).collect();
        Ok(DeltaTable { table, rows: rows.height(), refreshed_columns, path: write_delta(root, shop, &delta_id, table, rows)? })
    };
    if let Some(p) = &products {
        tables.push(write("product_features", &p.rows, &[Scope::Own])?);
    }
    if let Some(c) = &customer_rows {
        tables.push(write("user_features", &c.users, &[Scope::Own, Scope::Related])?);
        tables.push(write("interaction_features", &c.interactions, &[Scope::Own, Scope::Related, Scope::ShopWide])?);
    }
    prune_deltas(root, shop)?;
    stages.push(stage.finish());

    let export = match &options.gorse {
        Some(gorse) => {
            let stage = Stage::start("export");
            let report = send(root, shop, gorse, products.as_ref(), customer_rows.as_ref())?;
            stages.push(stage.finish());
            Some(report)
        }
        None => None,
    };
    Ok(Some(FastReport {
        shop: shop.to_string(),
        as_of: crate::time::rfc3339(as_of),
        land,
        products: named.products,
        orders: named.orders,
        customers,
        gone: products.map(|p| p.gone).unwrap_or_default(),
        tables,
        export,
        stages,
    }))
}

/// The changed products' items, then the customers as users (with their rows of
/// the current customer_lifetime_features) and their feedback on the items
/// Gorse has (the current generation's products and those just sent).
fn send(root: &DataRoot, shop: &str, options: &gorse::Options, products: Option<&CatalogRows>, customers: Option<&CustomerRows>) -> Result<gorse::Report> {
    let mut sources = vec![];
    let mut gone: &[i64] = &[];
    if let Some(p) = products {
        // The vectors are shop-wide: the current generation's, until a full cycle.
        let embeddings = current_rows(root, shop, "product_embeddings", "product_id", &ids(&p.rows, "product_id")?)?;
        sources.push(gorse::mapping::items(p.rows.clone(), embeddings, &options.prefix)?);
        gone = &p.gone;
    }
    if let Some(c) = customers {
        let lifetime = current_rows(root, shop, "customer_lifetime_features", "customer_id", &ids(&c.users, "customer_id")?)?;
        let mut known = match current_rows(root, shop, "product_features", "product_id", &ids(&c.interactions, "product_id")?)? {
            Some(current) => ids(&current, "product_id")?,
            None => vec![],
        };
        if let Some(p) = products {
            known.extend(ids(&p.rows, "product_id")?);
        }
        let on_known = c.interactions.clone().lazy().filter(col("product_id").is_in(lit(Series::new("ids".into(), known)).implode(false), false)).collect()?;
        sources.extend(gorse::mapping::users_and_feedback(c.users.clone(), lifetime, on_known, &options.prefix)?);
    }
    gorse::send_fast(options, &sources, gone)
}

/// The ids in `frame`'s `column`.
fn ids(frame: &DataFrame, column: &str) -> Result<Vec<i64>> {
    Ok(frame.column(column)?.i64()?.iter().flatten().collect())
}

/// The ids the deliveries name: products (a product payload's `id`) and orders
/// (an order payload's `id`, a refund's `order_id`), first mention first. A
/// payload without one is reported by the landing; it names nothing.
#[derive(Default)]
struct Named {
    products: Vec<i64>,
    orders: Vec<i64>,
}

impl Named {
    fn of(files: &[InputFile]) -> Named {
        let mut named = Named::default();
        for file in files {
            let topic = crate::land::webhooks::topic_of(&file.path).unwrap_or_default();
            let (ids, field) = match topic.as_str() {
                t if CATALOG_TOPICS.contains(&t) => (&mut named.products, "id"),
                "refunds/create" => (&mut named.orders, "order_id"),
                t if ORDER_TOPICS.contains(&t) => (&mut named.orders, "id"),
                _ => continue,
            };
            let payload = std::fs::read(&file.path).ok().and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
            let id = payload.and_then(|v| match &v[field] {
                serde_json::Value::Number(n) => n.as_i64(),
                serde_json::Value::String(s) => s.rsplit('/').next()?.parse().ok(),
                _ => None,
            });
            match id {
                Some(id) if !ids.contains(&id) => ids.push(id),
                Some(_) => {}
                None => tracing::warn!("{}: no {field} in the delivery; it changes no row", file.path.display()),
            }
        }
        named
    }
}

/// The current generation's rows of `table` whose `key` is in `ids`, if there
/// is a current generation.
fn current_rows(root: &DataRoot, shop: &str, table: &str, key: &str, ids: &[i64]) -> Result<Option<DataFrame>> {
    let Some(rows) = crate::sinks::parquet::read_current(root, shop, table)? else { return Ok(None) };
    Ok(Some(rows.lazy().filter(col(key).is_in(lit(Series::new("ids".into(), ids)).implode(false), false)).collect()?))
}

/// Writes `rows` as `<shop>/fast/<id>/<table>.parquet`, whole or not at all.
fn write_delta(root: &DataRoot, shop: &str, id: &str, table: &str, rows: &DataFrame) -> Result<String> {
    let rel = format!("{shop}/fast/{id}/{table}.parquet");
    let mut staged = root.stage(&rel)?;
    ParquetWriter::new(staged.writer()).finish(&mut rows.clone()).map_err(|e| anyhow::anyhow!("cannot write {rel}: {e}"))?;
    root.commit(staged)?;
    Ok(rel)
}

/// Keeps the newest [`KEEP_DELTAS`] fast cycles' delta tables.
fn prune_deltas(root: &DataRoot, shop: &str) -> Result<()> {
    let base = format!("{shop}/fast");
    let mut deltas = root.subdirs(&base)?;
    deltas.sort();
    for old in deltas.iter().rev().skip(KEEP_DELTAS) {
        root.delete_dir(&format!("{base}/{old}"))?;
    }
    Ok(())
}
