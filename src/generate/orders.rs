//! Orders as pure functions of (seed, index): the generator can regenerate any
//! order to total up customers before writing them, with no order kept in memory.

use super::catalog::Product;
use super::rng::{Rand, Zipf};
use super::{gid, iso, money, Shop, DAY};
use serde_json::{json, Value};

pub struct LinePlan {
    pub id: i64,
    /// `None` for a custom line item (no product).
    pub product: Option<usize>,
    pub variant: usize,
    pub title: String,
    pub quantity: i64,
    pub unit_price: f64,
    pub discount: f64,
}

pub struct RefundPlan {
    pub id: i64,
    pub created_at: i64,
    /// (line index, quantity)
    pub lines: Vec<(usize, i64)>,
}

pub struct OrderPlan {
    pub index: usize,
    pub id: i64,
    pub created_at: i64,
    pub customer: Option<usize>,
    pub test: bool,
    pub cancelled_at: Option<i64>,
    pub lines: Vec<LinePlan>,
    pub shipping: f64,
    pub discount_code: Option<&'static str>,
    pub refunds: Vec<RefundPlan>,
    pub country: &'static str,
}

impl OrderPlan {
    pub fn subtotal(&self) -> f64 {
        self.lines.iter().map(|l| l.quantity as f64 * l.unit_price - l.discount).sum()
    }
    pub fn total_discounts(&self) -> f64 {
        self.lines.iter().map(|l| l.discount).sum()
    }
    pub fn tax(&self) -> f64 {
        (self.subtotal() * 0.08 * 100.0).round() / 100.0
    }
    pub fn total(&self) -> f64 {
        ((self.subtotal() + self.shipping + self.tax()) * 100.0).round() / 100.0
    }
    pub fn refund_subtotal(&self, line: usize, quantity: i64) -> f64 {
        let l = &self.lines[line];
        ((l.unit_price - l.discount / l.quantity as f64) * quantity as f64 * 100.0).round() / 100.0
    }
    pub fn refunded(&self) -> f64 {
        self.refunds.iter().flat_map(|r| r.lines.iter()).map(|&(l, q)| self.refund_subtotal(l, q)).sum()
    }
    pub fn updated_at(&self, as_of: i64) -> i64 {
        let last_refund = self.refunds.iter().map(|r| r.created_at).max().unwrap_or(self.created_at);
        self.created_at.max(self.cancelled_at.unwrap_or(0)).max(last_refund).min(as_of)
    }
}

/// What orders are drawn from: popularity, bundles, customers.
pub struct OrderModel<'a> {
    pub shop: &'a Shop,
    pub products: &'a [Product],
    /// Sellable products (active or archived), most popular first.
    pub popular: Vec<usize>,
    pub popularity: Zipf,
    pub customer_rank: Vec<usize>,
    pub customer_popularity: Zipf,
    pub bundles: Vec<(usize, usize)>,
    /// With tastes: the product types, and each type's products, most popular first.
    types: Vec<&'static str>,
    by_type: Vec<(Vec<usize>, Zipf)>,
}

/// A customer's tastes: two product types (indices into the model's types) and
/// three staples.
struct Taste {
    types: [usize; 2],
    staples: [usize; 3],
}

const COUNTRIES: &[(&str, f64)] = &[("US", 0.55), ("CA", 0.1), ("GB", 0.12), ("DE", 0.08), ("FR", 0.06), ("AU", 0.05), ("NL", 0.04)];
pub const BUNDLE_ORDER_RATE: f64 = 0.09;

impl<'a> OrderModel<'a> {
    pub fn new(shop: &'a Shop, products: &'a [Product], customers: usize) -> Self {
        let mut rng = Rand::new(shop.seed, 3);
        let mut popular: Vec<usize> = (0..products.len()).filter(|&i| products[i].status != "DRAFT").collect();
        // A shuffle fixes which products are popular.
        for i in (1..popular.len()).rev() {
            let j = rng.index(i + 1);
            popular.swap(i, j);
        }
        let mut customer_rank: Vec<usize> = (0..customers).collect();
        for i in (1..customer_rank.len()).rev() {
            let j = rng.index(i + 1);
            customer_rank.swap(i, j);
        }
        // Bundles: pairs of mid-popularity products bought together at a known rate.
        let n = popular.len();
        let bundles = (0..shop.preset.bundles)
            .map(|b| (popular[(n / 10 + 2 * b) % n], popular[(n / 10 + 2 * b + 1) % n]))
            .collect();
        // Product types and their products in the shop's popularity order (no
        // draws: the shop without tastes is unchanged).
        let mut types: Vec<&'static str> = popular.iter().map(|&p| products[p].product_type).collect();
        types.sort_unstable();
        types.dedup();
        let by_type = types
            .iter()
            .map(|t| {
                let list: Vec<usize> = popular.iter().copied().filter(|&p| products[p].product_type == *t).collect();
                let zipf = Zipf::new(list.len(), 1.05);
                (list, zipf)
            })
            .collect();
        OrderModel {
            shop,
            products,
            popularity: Zipf::new(n, 1.05),
            popular,
            customer_popularity: Zipf::new(customers, 0.6),
            customer_rank,
            bundles,
            types,
            by_type,
        }
    }

    /// A product of type `t`, by the shop's popularity within the type.
    fn of_type(&self, rng: &mut Rand, t: usize) -> usize {
        let (list, popularity) = &self.by_type[t];
        list[popularity.sample(rng)]
    }

    /// A product of one of `customer`'s two types (with tastes), by the shop's
    /// popularity within the type: what they browse when browsing their taste.
    pub fn in_taste(&self, customer: usize, rng: &mut Rand) -> usize {
        let taste = self.taste(customer);
        let t = taste.types[rng.index(2)];
        self.of_type(rng, t)
    }

    /// `customer`'s tastes, fixed by their own random stream.
    fn taste(&self, customer: usize) -> Taste {
        let mut rng = Rand::new(self.shop.seed, 8_000_000 + customer as u64);
        let first = rng.index(self.types.len());
        let second = (first + 1 + rng.index(self.types.len().saturating_sub(1).max(1))) % self.types.len();
        let types = [first, second];
        let staples = [0, 1, 2].map(|k| self.of_type(&mut rng, types[k % 2]));
        Taste { types, staples }
    }

    fn line(&self, rng: &mut Rand, id: i64, product: usize, discounted: bool) -> LinePlan {
        let p = &self.products[product];
        let variant = rng.index(p.variants.len());
        let quantity = *rng.weighted(&[(1i64, 0.75), (2, 0.18), (3, 0.07)]);
        let unit_price = p.variants[variant].price;
        let discount = if discounted { (unit_price * quantity as f64 * 0.15 * 100.0).round() / 100.0 } else { 0.0 };
        LinePlan { id, product: Some(product), variant, title: p.title.clone(), quantity, unit_price, discount }
    }

    pub fn plan(&self, index: usize) -> OrderPlan {
        let shop = self.shop;
        let n = shop.preset.orders;
        let mut rng = Rand::new(shop.seed, 1_000_000 + index as u64);
        let window = (shop.as_of - shop.start) as f64;
        let created_at = shop.start + (window * (index as f64 + rng.unit()) / n as f64) as i64;
        let customer = (!rng.chance(0.12)).then(|| self.customer_rank[self.customer_popularity.sample(&mut rng)]);
        let discounted = rng.chance(0.2);
        let mut lines = Vec::new();
        let mut next_line = 14_000_000_000 + index as i64 * 16;
        // Nothing is sold before it exists.
        let exists = |p: usize| self.products[p].created_at <= created_at;
        if rng.chance(BUNDLE_ORDER_RATE) && !self.bundles.is_empty() {
            let (a, b) = *rng.pick(&self.bundles);
            for product in [a, b].into_iter().filter(|&p| exists(p)) {
                lines.push(self.line(&mut rng, next_line, product, discounted));
                next_line += 1;
            }
        }
        // With tastes, a customer's own stream decides what comes from them (the
        // shop's stream is not drawn from for it).
        let mut tasted = self.shop.tastes.zip(customer).map(|(tastes, c)| (tastes, self.taste(c), Rand::new(shop.seed, 9_000_000 + index as u64)));
        if let Some((tastes, taste, taste_rng)) = &mut tasted {
            if taste_rng.chance(tastes.repeat) {
                let staple = *taste_rng.pick(&taste.staples);
                if exists(staple) {
                    lines.push(self.line(&mut rng, next_line, staple, discounted));
                    next_line += 1;
                }
            }
        }
        // About three lines per order, as in the shops this engine was built for.
        let extra = *rng.weighted(&[(1usize, 0.25), (2, 0.3), (3, 0.2), (4, 0.13), (5, 0.08), (6, 0.04)]);
        for _ in 0..extra.saturating_sub(lines.len() / 2) {
            let from_taste = tasted.as_mut().and_then(|(tastes, taste, taste_rng)| {
                let t = taste.types[taste_rng.index(2)];
                let chosen = taste_rng.chance(tastes.strength).then(|| (0..8).map(|_| self.of_type(taste_rng, t)).find(|&p| exists(p)));
                chosen
            });
            let product = match from_taste {
                Some(chosen) => chosen,
                None => (0..8).map(|_| self.popular[self.popularity.sample(&mut rng)]).find(|&p| exists(p)),
            };
            let Some(product) = product else { continue };
            lines.push(self.line(&mut rng, next_line, product, discounted));
            next_line += 1;
            // Sometimes the same product twice, as two lines (another variant).
            if rng.chance(0.02) {
                lines.push(self.line(&mut rng, next_line, product, discounted));
                next_line += 1;
            }
        }
        if rng.chance(0.03) || lines.is_empty() {
            let price = (rng.range(5, 40) as f64) - 0.01;
            lines.push(LinePlan { id: next_line, product: None, variant: 0, title: "Gift wrapping".into(), quantity: 1, unit_price: price, discount: 0.0 });
        }
        let test = rng.chance(0.015);
        let cancelled_at = rng.chance(0.04).then(|| created_at + rng.range(1, 72) * 3_600_000_000);
        let mut refunds = Vec::new();
        if cancelled_at.is_none() && rng.chance(0.07) {
            let at = created_at + rng.range(2, 25) * DAY;
            if at <= shop.as_of {
                let line = rng.index(lines.len());
                let q = rng.range(1, lines[line].quantity);
                refunds.push(RefundPlan { id: 910_000_000 + index as i64, created_at: at, lines: vec![(line, q)] });
            }
        }
        OrderPlan {
            index, id: 5_800_000_000 + index as i64, created_at, customer, test, cancelled_at, lines,
            shipping: if rng.chance(0.4) { 0.0 } else { 4.99 + rng.range(0, 5) as f64 },
            discount_code: discounted.then(|| *rng.pick(&["WELCOME15", "SUMMER15", "VIP15"])),
            refunds, country: *rng.weighted(COUNTRIES),
        }
    }

    /// The bulk lines of an order: the order (refunds inline), then its line items.
    pub fn bulk_lines(&self, o: &OrderPlan, customer_ids: &[i64]) -> Vec<Value> {
        let ogid = gid("Order", o.id);
        let status = if o.cancelled_at.is_some() { "VOIDED" } else if o.refunds.is_empty() { "PAID" } else { "PARTIALLY_REFUNDED" };
        let mut lines = vec![json!({
            "id": ogid, "name": format!("#{}", 1001 + o.index), "createdAt": iso(o.created_at),
            "processedAt": iso(o.created_at), "updatedAt": iso(o.updated_at(self.shop.as_of)),
            "cancelledAt": o.cancelled_at.map(iso), "cancelReason": o.cancelled_at.map(|_| "CUSTOMER"),
            "test": o.test, "displayFinancialStatus": status,
            "displayFulfillmentStatus": if o.cancelled_at.is_some() { "UNFULFILLED" } else { "FULFILLED" },
            "currencyCode": "USD", "sourceName": "web", "tags": [],
            "discountCodes": o.discount_code.map(|c| vec![c]).unwrap_or_default(),
            "customer": o.customer.map(|c| json!({"id": gid("Customer", customer_ids[c])})),
            "totalPriceSet": {"shopMoney": {"amount": money(o.total()), "currencyCode": "USD"}},
            "subtotalPriceSet": {"shopMoney": {"amount": money(o.subtotal())}},
            "totalDiscountsSet": {"shopMoney": {"amount": money(o.total_discounts())}},
            "totalTaxSet": {"shopMoney": {"amount": money(o.tax())}},
            "totalShippingPriceSet": {"shopMoney": {"amount": money(o.shipping)}},
            "totalRefundedSet": {"shopMoney": {"amount": money(o.refunded())}},
            "shippingAddress": {"countryCodeV2": o.country, "provinceCode": (o.country == "US").then_some("NY")},
            "refunds": o.refunds.iter().map(|r| json!({
                "id": gid("Refund", r.id), "createdAt": iso(r.created_at),
                "refundLineItems": {"nodes": r.lines.iter().map(|&(l, q)| json!({
                    "quantity": q, "lineItem": {"id": gid("LineItem", o.lines[l].id)},
                    "subtotalSet": {"shopMoney": {"amount": money(o.refund_subtotal(l, q))}},
                })).collect::<Vec<_>>()},
            })).collect::<Vec<_>>(),
        })];
        for l in &o.lines {
            let product = l.product.map(|p| &self.products[p]);
            lines.push(json!({
                "id": gid("LineItem", l.id), "title": l.title,
                "sku": product.map(|p| p.variants[l.variant].sku.clone()),
                "vendor": product.map(|p| p.vendor), "quantity": l.quantity,
                "product": product.map(|p| json!({"id": gid("Product", p.id)})),
                "variant": product.map(|p| json!({"id": gid("ProductVariant", p.variants[l.variant].id)})),
                "originalUnitPriceSet": {"shopMoney": {"amount": money(l.unit_price)}},
                "totalDiscountSet": {"shopMoney": {"amount": money(l.discount)}},
                "__parentId": ogid,
            }));
        }
        lines
    }

    /// The REST payload of `orders/updated` for an order (same lines, new tags).
    pub fn rest_payload(&self, o: &OrderPlan, customer_ids: &[i64], updated_at: i64) -> Value {
        json!({
            "id": o.id, "admin_graphql_api_id": gid("Order", o.id), "name": format!("#{}", 1001 + o.index),
            "created_at": iso(o.created_at), "processed_at": iso(o.created_at), "updated_at": iso(updated_at),
            "cancelled_at": o.cancelled_at.map(iso), "cancel_reason": null, "test": o.test,
            "financial_status": if o.refunds.is_empty() { "paid" } else { "partially_refunded" },
            "fulfillment_status": "fulfilled", "currency": "USD", "source_name": "web", "tags": "gift, priority",
            "discount_codes": o.discount_code.map(|c| vec![json!({"code": c, "amount": money(o.total_discounts()), "type": "percentage"})]).unwrap_or_default(),
            "customer": o.customer.map(|c| json!({"id": customer_ids[c]})),
            "total_price": money(o.total()), "subtotal_price": money(o.subtotal()),
            "total_discounts": money(o.total_discounts()), "total_tax": money(o.tax()),
            "shipping_address": {"country_code": o.country},
            "line_items": o.lines.iter().map(|l| {
                let product = l.product.map(|p| &self.products[p]);
                json!({
                    "id": l.id, "product_id": product.map(|p| p.id),
                    "variant_id": product.map(|p| p.variants[l.variant].id), "quantity": l.quantity,
                    "price": money(l.unit_price), "total_discount": money(l.discount), "title": l.title,
                    "vendor": product.map(|p| p.vendor), "sku": product.map(|p| p.variants[l.variant].sku.clone()),
                })
            }).collect::<Vec<_>>(),
            "refunds": o.refunds.iter().map(|r| json!({
                "id": r.id, "order_id": o.id, "created_at": iso(r.created_at),
                "refund_line_items": r.lines.iter().map(|&(l, q)| json!({
                    "line_item_id": o.lines[l].id, "quantity": q, "subtotal": o.refund_subtotal(l, q),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}
