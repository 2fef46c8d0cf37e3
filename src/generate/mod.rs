//! Synthetic shops of any size, in exactly the raw shapes the README's "Inputs" describes.
//!
//! Deterministic: a preset and a seed give byte-identical files. Streaming: orders
//! and events are regenerated from per-order random streams and written as they
//! are made, so memory holds the catalog and per-customer totals, never the
//! orders. Realistic where later features and benchmarks look: Zipf product
//! popularity, log-normal prices, repeat customers with a long tail, guests, test
//! and cancelled orders, partial refunds, discounts, custom line items, funnel
//! sessions with searches, anonymous visitors stitched at checkout, and planted
//! bundles recorded in the manifest.

mod catalog;
mod customers;
mod events;
mod orders;
pub mod rng;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

pub use crate::time::DAY_US as DAY;

/// Sizes of a generated shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresetName {
    /// 350 products, 381 customers, 6 collections, 395 orders, a few thousand events.
    Sample,
    /// ≈10k products, 50k customers, 100k orders, 1M events.
    Medium,
    /// ≈50k products, 200k customers, 1M orders (≈3M line items), 10M events.
    Large,
}

#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: PresetName,
    pub products: usize,
    pub customers: usize,
    pub collections: usize,
    pub orders: usize,
    /// Browsing (non-buying) visits per order.
    pub browse_per_order: f64,
    pub bundles: usize,
}

impl PresetName {
    pub fn preset(self) -> Preset {
        let (products, customers, collections, orders, browse_per_order, bundles) = match self {
            PresetName::Sample => (350, 381, 6, 395, 0.6, 3),
            PresetName::Medium => (10_000, 50_000, 40, 100_000, 0.1, 10),
            PresetName::Large => (50_000, 200_000, 120, 1_000_000, 0.1, 20),
        };
        Preset { name: self, products, customers, collections, orders, browse_per_order, bundles }
    }
}

/// The shop being generated: its clock and identity.
pub struct Shop {
    pub seed: u64,
    pub preset: Preset,
    pub start: i64,
    pub as_of: i64,
    pub url: String,
    pub tastes: Option<Tastes>,
}

/// Per-customer tastes (`generate --tastes`), as real shops have them: each
/// customer keeps to two product types and re-buys a few staples. Off unless
/// asked for, so the presets stay byte-identical.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Tastes {
    /// Share of a customer's lines drawn from their two product types (by the
    /// shop's popularity within each) instead of the whole shop's popularity.
    pub strength: f64,
    /// Share of a customer's orders that re-buy one of their three staples
    /// (products of their types, fixed per customer).
    pub repeat: f64,
}

impl Default for Tastes {
    fn default() -> Self {
        Tastes { strength: 0.7, repeat: 0.3 }
    }
}

/// `manifest.json` of a generated shop.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub shop_id: String,
    pub currency: String,
    /// The shop's clock: its data ends here (RFC 3339, UTC).
    pub as_of: String,
    pub preset: PresetName,
    pub seed: u64,
    /// Rows each main table must have after normalization.
    pub expected_rows: BTreeMap<String, u64>,
    /// Planted pairs, bought together in `rate` of all orders (split evenly).
    pub bundles: Vec<Bundle>,
    /// The customers' tastes, when the shop was generated with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tastes: Option<Tastes>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bundle {
    pub product_id_a: i64,
    pub product_id_b: i64,
    /// Share of all orders that contain this bundle by construction.
    pub rate: f64,
}

pub fn gid(kind: &str, id: i64) -> String {
    format!("gid://shopify/{kind}/{id}")
}

pub fn iso(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn iso_ms(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub fn money(x: f64) -> String {
    format!("{x:.2}")
}

/// A JSONL file, plain or gzip (fixed header, so output is byte-identical).
pub struct JsonlWriter {
    inner: Box<dyn Write>,
}

impl JsonlWriter {
    pub fn create(dir: &Path, name: &str, gzip: bool) -> Result<Self> {
        let path = dir.join(if gzip { format!("{name}.jsonl.gz") } else { format!("{name}.jsonl") });
        let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let buffered = std::io::BufWriter::with_capacity(1 << 20, file);
        let inner: Box<dyn Write> = if gzip {
            Box::new(flate2::GzBuilder::new().mtime(0).write(buffered, flate2::Compression::default()))
        } else {
            Box::new(buffered)
        };
        Ok(JsonlWriter { inner })
    }

    pub fn write(&mut self, value: &Value) -> Result<()> {
        serde_json::to_writer(&mut self.inner, value)?;
        self.inner.write_all(b"\n")?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<()> {
        self.inner.flush()?;
        Ok(())
    }
}

const MEDIA_BASE: i64 = 31_000_000_000;

fn count(rows: &mut BTreeMap<String, u64>, table: &str, n: usize) {
    *rows.entry(table.to_string()).or_default() += n as u64;
}

/// The product whose `products/update` webhook drops its non-image media.
const UPDATED_PRODUCT: usize = 0;

/// Writes a shop of `preset` into `out` and returns its manifest. The phases run
/// in a fixed order, each with its own random streams, so a seed gives the same
/// files whatever changes inside one phase.
pub fn generate(name: PresetName, seed: u64, out: &Path, gzip: bool, progress: &crate::progress::Progress) -> Result<Manifest> {
    generate_with(name, seed, None, out, gzip, progress)
}

/// [`generate`], with customers' `tastes` when given.
pub fn generate_with(name: PresetName, seed: u64, tastes: Option<Tastes>, out: &Path, gzip: bool, progress: &crate::progress::Progress) -> Result<Manifest> {
    let preset = name.preset();
    std::fs::create_dir_all(out.join("webhooks")).with_context(|| format!("cannot create {}", out.display()))?;
    let as_of = chrono::DateTime::parse_from_rfc3339("2025-11-30T23:59:59Z")?.timestamp_micros();
    let shop = Shop { seed, preset, start: as_of - 183 * DAY, as_of, url: "https://shopfeat-sample.myshopify.com".into(), tastes };
    progress.set_total((preset.orders * 2) as u64);

    // Catalog: one extra product, deleted by a webhook at the end.
    let mut products = catalog::build_products(&preset, seed, shop.start, as_of);
    let collections = catalog::build_collections(&preset, seed, &mut products, as_of);
    let model = orders::OrderModel::new(&shop, &products, preset.customers);
    let customer_ids: Vec<i64> = (0..preset.customers).map(customers::customer_id).collect();
    let plan = Plan { out, gzip, shop: &shop, products: &products, collections: &collections, model: &model, customer_ids: &customer_ids };

    let mut rows = BTreeMap::new();
    plan.write_catalog(&mut rows)?;
    let first_customer = plan.write_customers(&mut rows, progress)?;
    plan.write_orders_and_events(&mut rows, progress)?;
    plan.write_webhooks(&first_customer, &mut rows)?;

    let manifest = Manifest {
        shop_id: "sample".into(),
        currency: "USD".into(),
        as_of: iso(as_of),
        preset: name,
        seed,
        expected_rows: rows,
        bundles: model.bundles.iter().map(|&(a, b)| Bundle {
            product_id_a: products[a].id.min(products[b].id),
            product_id_b: products[a].id.max(products[b].id),
            rate: orders::BUNDLE_ORDER_RATE / model.bundles.len() as f64,
        }).collect(),
        tastes,
    };
    std::fs::write(out.join("manifest.json"), serde_json::to_vec_pretty(&manifest)?)?;
    Ok(manifest)
}

/// What every phase of [`generate`] reads.
struct Plan<'a> {
    out: &'a Path,
    gzip: bool,
    shop: &'a Shop,
    products: &'a [catalog::Product],
    collections: &'a [catalog::Collection],
    model: &'a orders::OrderModel<'a>,
    customer_ids: &'a [i64],
}

impl Plan<'_> {
    /// The product deleted by a webhook (its rows are not expected).
    fn deleted_product(&self) -> usize {
        self.products.len() - 1
    }

    /// `products.jsonl` and `collections.jsonl`.
    fn write_catalog(&self, rows: &mut BTreeMap<String, u64>) -> Result<()> {
        let mut out_products = JsonlWriter::create(self.out, "products", self.gzip)?;
        for (i, product) in self.products.iter().enumerate() {
            for line in catalog::product_lines(product, self.collections, MEDIA_BASE) {
                out_products.write(&line)?;
            }
            if i != self.deleted_product() {
                count(rows, "products", 1);
                count(rows, "variants", product.variants.len());
                let media = if i == UPDATED_PRODUCT { product.media_kinds.iter().filter(|k| **k == "IMAGE").count() } else { product.media_kinds.len() };
                count(rows, "product_media", media);
                count(rows, "collection_products", product.collections.len());
            }
        }
        out_products.finish()?;
        let mut out_collections = JsonlWriter::create(self.out, "collections", self.gzip)?;
        for c in self.collections {
            for line in catalog::collection_lines(c, self.products) {
                out_collections.write(&line)?;
            }
        }
        out_collections.finish()?;
        count(rows, "collections", self.collections.len());
        Ok(())
    }

    /// `customers.jsonl`, with lifetime totals from a first pass over the orders;
    /// returns the first customer's line (its update webhook builds on it).
    fn write_customers(&self, rows: &mut BTreeMap<String, u64>, progress: &crate::progress::Progress) -> Result<Value> {
        let n = self.customer_ids.len();
        let mut stats = vec![customers::OrderStats::default(); n];
        for i in 0..self.shop.preset.orders {
            let o = self.model.plan(i);
            if let Some(c) = o.customer {
                let s = &mut stats[c];
                s.orders += 1;
                s.spent += o.total();
                s.first_order_at = Some(s.first_order_at.map_or(o.created_at, |t| t.min(o.created_at)));
            }
            progress.inc(1);
        }
        let mut out_customers = JsonlWriter::create(self.out, "customers", self.gzip)?;
        let mut first_customer = Value::Null;
        for (i, s) in stats.iter().enumerate() {
            let line = customers::customer_line(self.shop, i, s);
            out_customers.write(&line)?;
            if i == 0 {
                first_customer = line;
            }
        }
        out_customers.finish()?;
        count(rows, "customers", n);
        Ok(first_customer)
    }

    /// `orders.jsonl` and `events.jsonl`: orders and the visits around them, in
    /// time order.
    fn write_orders_and_events(&self, rows: &mut BTreeMap<String, u64>, progress: &crate::progress::Progress) -> Result<()> {
        let (shop, model, customer_ids) = (self.shop, self.model, self.customer_ids);
        let orders = shop.preset.orders;
        let client_of = |c: usize| format!("{:024x}", (c as u128 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) >> 32);
        let mut out_orders = JsonlWriter::create(self.out, "orders", self.gzip)?;
        let mut events = events::EventWriter::new(JsonlWriter::create(self.out, "events", self.gzip)?, shop, self.products, self.collections);
        let mut browse_rng = rng::Rand::new(shop.seed, 5);
        let mut browse_key = 0u64;
        for i in 0..orders {
            let o = model.plan(i);
            for line in model.bulk_lines(&o, customer_ids) {
                out_orders.write(&line)?;
            }
            count(rows, "orders", 1);
            count(rows, "line_items", o.lines.len());
            count(rows, "refund_line_items", o.refunds.iter().map(|r| r.lines.len()).sum());
            if !o.test {
                events.purchase_session(model, &o, customer_ids, client_of)?;
            }
            let next = if i + 1 < orders { model.plan(i + 1).created_at } else { shop.as_of };
            let visits = shop.preset.browse_per_order.floor() as usize + browse_rng.chance(shop.preset.browse_per_order.fract()) as usize;
            for _ in 0..visits {
                browse_key += 1;
                let t = o.created_at + (browse_rng.unit() * (next - o.created_at).max(1) as f64) as i64;
                let t = t.min(shop.as_of - 3_600_000_000);
                let known = browse_rng.chance(0.4).then(|| {
                    let c = model.customer_rank[model.customer_popularity.sample(&mut browse_rng)];
                    (client_of(c), customer_ids[c], c)
                });
                events.browse_session(model, browse_key, t, known)?;
            }
            progress.inc(1);
        }
        out_orders.finish()?;
        count(rows, "events", events.count as usize);
        events.out.finish()
    }

    /// `webhooks/*.json`: payloads that arrived after the bulk export.
    fn write_webhooks(&self, first_customer: &Value, rows: &mut BTreeMap<String, u64>) -> Result<()> {
        let (shop, model, products) = (self.shop, self.model, self.products);
        let hooks = self.out.join("webhooks");
        let write_hook = |name: &str, value: &Value| -> Result<()> {
            std::fs::write(hooks.join(name), serde_json::to_vec_pretty(value)?).with_context(|| format!("cannot write webhook {name}"))
        };
        write_hook("products_update-1.json", &catalog::product_update_payload(&products[UPDATED_PRODUCT], shop, MEDIA_BASE))?;
        write_hook("products_delete-1.json", &serde_json::json!({"id": products[self.deleted_product()].id}))?;
        write_hook("customers_update-1.json", &customers::customer_update_payload(shop, first_customer))?;
        let orders = shop.preset.orders;
        let updated_order = model.plan(orders.saturating_sub(30));
        write_hook("orders_updated-1.json", &model.rest_payload(&updated_order, self.customer_ids, shop.as_of - 3_600_000_000))?;
        let refunded = (orders / 2..orders)
            .map(|i| model.plan(i))
            .find(|o| o.refunds.is_empty() && o.cancelled_at.is_none() && !o.test && o.lines[0].product.is_some())
            .context("no order to refund")?;
        let refund = serde_json::json!({
            "id": 920_000_000i64, "order_id": refunded.id, "created_at": iso(shop.as_of - 3 * 3_600_000_000),
            "note": "damaged in transit", "restock": false,
            "refund_line_items": [{"line_item_id": refunded.lines[0].id, "quantity": 1, "subtotal": refunded.refund_subtotal(0, 1)}],
        });
        write_hook("refunds_create-1.json", &refund)?;
        count(rows, "refund_line_items", 1);
        Ok(())
    }
}
