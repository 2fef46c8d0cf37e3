//! Storefront sessions in the web-pixel envelope: a purchase session for every
//! order that ends in its `checkout_completed`, and browsing sessions between
//! orders that follow the funnel page → collection → product → cart → checkout
//! and drop out along the way.

use super::catalog::{Collection, Product};
use super::orders::{OrderModel, OrderPlan};
use super::rng::Rand;
use super::{gid, iso_ms, JsonlWriter, Shop};
use anyhow::Result;
use serde_json::{json, Value};

const AGENTS: &[(&str, f64)] = &[
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", 0.34),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36", 0.2),
    ("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/604.1", 0.06),
    ("Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36", 0.03),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", 0.17),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36", 0.19),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 0.01),
];
const REFERRERS: &[(Option<&str>, f64)] = &[
    (None, 0.3), (Some("https://www.google.com/"), 0.25), (Some("https://www.bing.com/"), 0.03),
    (Some("https://duckduckgo.com/"), 0.02), (Some("https://l.facebook.com/"), 0.08),
    (Some("https://www.instagram.com/"), 0.06), (Some("https://www.tiktok.com/"), 0.03),
    (Some("https://t.co/abc"), 0.02), (Some("https://mail.google.com/"), 0.04),
    (Some("https://blog.example.org/gift-guide"), 0.07), (Some("EMAIL_CAMPAIGN"), 0.1),
];
const SECOND: i64 = 1_000_000;

/// A known customer's tastes while they browse.
struct Taste {
    customer: usize,
    strength: f64,
    rng: Rand,
}

/// One browser's visit being written.
struct Session {
    client: String,
    customer: Option<i64>,
    t: i64,
    agent: &'static str,
    referrer: Option<&'static str>,
    events: usize,
    /// (time, event without its timestamp) until the visit is written.
    buffer: Vec<(i64, Value)>,
}

pub struct EventWriter<'a> {
    pub out: JsonlWriter,
    pub count: u64,
    shop: &'a Shop,
    products: &'a [Product],
    collections: &'a [Collection],
    serial: u64,
}

impl<'a> EventWriter<'a> {
    pub fn new(out: JsonlWriter, shop: &'a Shop, products: &'a [Product], collections: &'a [Collection]) -> Self {
        EventWriter { out, count: 0, shop, products, collections, serial: 0 }
    }

    fn emit(&mut self, s: &mut Session, name: &str, path: &str, data: Value) -> Result<()> {
        self.serial += 1;
        let first = s.events == 0;
        let (query, referrer) = match (first, s.referrer) {
            (true, Some("EMAIL_CAMPAIGN")) => ("?utm_medium=email&utm_source=newsletter", None),
            (true, r) => ("", r.map(str::to_string)),
            (false, _) => ("", Some(format!("{}/", self.shop.url))),
        };
        let event = json!({
            "id": format!("sh-{:08x}-{:06x}", self.shop.seed as u32, self.serial),
            "name": name, "clientId": s.client, "type": "standard",
            "customerId": s.customer.map(|c| gid("Customer", c)),
            "context": {
                "document": {"location": {"href": format!("{}{path}{query}", self.shop.url), "pathname": path, "search": query},
                             "referrer": referrer.unwrap_or_default(), "title": "Shopfeat Sample"},
                "navigator": {"userAgent": s.agent},
            },
            "data": data,
        });
        s.buffer.push((s.t, event));
        s.events += 1;
        Ok(())
    }

    /// Writes a visit; with `ends_at`, shifted so that its last event is then.
    fn write(&mut self, s: Session, ends_at: Option<i64>) -> Result<()> {
        let shift = match (ends_at, s.buffer.last()) {
            (Some(end), Some((last, _))) => end - last,
            _ => 0,
        };
        for (t, mut event) in s.buffer {
            event["timestamp"] = Value::String(iso_ms(t + shift));
            self.out.write(&event)?;
            self.count += 1;
        }
        Ok(())
    }

    fn step(rng: &mut Rand, s: &mut Session) {
        s.t += rng.range(8, 240) * SECOND + rng.range(0, 999) * 1000;
    }

    fn product_data(&self, product: usize, variant: usize) -> Value {
        let p = &self.products[product];
        let v = &p.variants[variant];
        json!({"productVariant": {"id": gid("ProductVariant", v.id), "price": {"amount": v.price, "currencyCode": "USD"},
               "product": {"id": gid("Product", p.id), "title": p.title, "type": p.product_type, "vendor": p.vendor}}})
    }

    /// Cart lines name products by plain numeric strings, as some pixels do.
    fn cart_line(&self, product: usize, variant: usize, quantity: i64) -> Value {
        let p = &self.products[product];
        let v = &p.variants[variant];
        json!({"quantity": quantity, "merchandise": {"id": v.id.to_string(), "product": {"id": p.id.to_string(), "title": p.title}},
               "cost": {"totalAmount": {"amount": v.price * quantity as f64, "currencyCode": "USD"}}})
    }

    fn view_product(&mut self, rng: &mut Rand, s: &mut Session, product: usize, variant: usize) -> Result<()> {
        Self::step(rng, s);
        let path = format!("/products/{}", self.products[product].handle);
        self.emit(s, "product_viewed", &path, self.product_data(product, variant))
    }

    fn cart_event(&mut self, rng: &mut Rand, s: &mut Session, name: &str, product: usize, variant: usize) -> Result<()> {
        Self::step(rng, s);
        let line = self.cart_line(product, variant, 1);
        self.emit(s, name, "/cart", json!({"cartLine": line}))
    }

    fn search(&mut self, rng: &mut Rand, s: &mut Session, target: usize, model: &OrderModel) -> Result<()> {
        Self::step(rng, s);
        let p = &self.products[target];
        let word = p.title.split(' ').next_back().unwrap_or("gift");
        let query = match rng.range(0, 2) { 0 => word.to_lowercase(), 1 => format!("  {} ", word.to_uppercase()), _ => format!("{}  {}", p.product_type.to_lowercase(), word) };
        let mut results: Vec<usize> = (0..rng.range(2, 7)).map(|_| model.popular[model.popularity.sample(rng)]).collect();
        let position = rng.index(results.len().min(4));
        results.insert(position, target);
        let variants: Vec<Value> = results.iter().map(|&r| {
            let p = &self.products[r];
            json!({"id": gid("ProductVariant", p.variants[0].id), "product": {"id": gid("Product", p.id)}})
        }).collect();
        self.emit(s, "search_submitted", &format!("/search?q={}", query.trim()), json!({"searchResult": {"query": query, "productVariants": variants}}))
    }

    fn start(&mut self, rng: &mut Rand, s: &mut Session) -> Result<()> {
        let landing = if rng.chance(0.6) { "/".to_string() } else { format!("/collections/{}", self.collections[rng.index(self.collections.len())].handle) };
        self.emit(s, "page_viewed", &landing, json!({}))
    }

    fn view_collection_of(&mut self, rng: &mut Rand, s: &mut Session, product: usize) -> Result<()> {
        let Some(&c) = self.products[product].collections.first() else { return Ok(()) };
        Self::step(rng, s);
        let col = &self.collections[c];
        self.emit(s, "collection_viewed", &format!("/collections/{}", col.handle), json!({"collection": {"id": gid("Collection", col.id), "title": col.title}}))
    }

    fn line_items(&self, lines: &[(usize, usize, i64)]) -> Vec<Value> {
        lines.iter().map(|&(p, v, q)| {
            let product = &self.products[p];
            json!({"quantity": q, "title": product.title, "variant": {"id": gid("ProductVariant", product.variants[v].id), "product": {"id": gid("Product", product.id)}}})
        }).collect()
    }

    /// The visit that ends in `order`'s checkout (none for test orders).
    pub fn purchase_session(&mut self, model: &OrderModel, order: &OrderPlan, customer_ids: &[i64], client_of: impl Fn(usize) -> String) -> Result<()> {
        let mut rng = Rand::new(self.shop.seed, 3_000_000_000 + order.index as u64);
        let customer = order.customer.map(|c| customer_ids[c]);
        let client = match order.customer {
            Some(c) if rng.chance(0.7) => client_of(c),
            _ => format!("{}", rng.hex(24)),
        };
        let lines: Vec<(usize, usize, i64)> = order.lines.iter().filter_map(|l| l.product.map(|p| (p, l.variant, l.quantity))).collect();
        let agent = *rng.weighted(AGENTS);
        // Some shoppers browsed anonymously days before buying: stitched later.
        if customer.is_some() && rng.chance(0.25) && !lines.is_empty() {
            let mut early = Session { client: client.clone(), customer: None, t: order.created_at - rng.range(2, 20) * super::DAY, agent, referrer: *rng.weighted(REFERRERS), events: 0, buffer: vec![] };
            self.start(&mut rng, &mut early)?;
            self.view_product(&mut rng, &mut early, lines[0].0, lines[0].1)?;
            self.write(early, None)?;
        }
        let logged_in = customer.filter(|_| rng.chance(0.5));
        let mut s = Session { client, customer: logged_in, t: 0, agent, referrer: *rng.weighted(REFERRERS), events: 0, buffer: vec![] };
        self.start(&mut rng, &mut s)?;
        if let Some(&(first, _, _)) = lines.first() {
            if rng.chance(0.5) {
                self.view_collection_of(&mut rng, &mut s, first)?;
            }
            if rng.chance(0.3) {
                self.search(&mut rng, &mut s, first, model)?;
            }
        }
        let mut viewed = Vec::new();
        for &(p, v, _) in &lines {
            if !viewed.contains(&p) {
                self.view_product(&mut rng, &mut s, p, v)?;
                viewed.push(p);
            }
            self.cart_event(&mut rng, &mut s, "product_added_to_cart", p, v)?;
        }
        if rng.chance(0.15) {
            let other = model.popular[model.popularity.sample(&mut rng)];
            self.view_product(&mut rng, &mut s, other, 0)?;
            self.cart_event(&mut rng, &mut s, "product_added_to_cart", other, 0)?;
            self.cart_event(&mut rng, &mut s, "product_removed_from_cart", other, 0)?;
        }
        Self::step(&mut rng, &mut s);
        let cart: Vec<Value> = lines.iter().map(|&(p, v, q)| self.cart_line(p, v, q)).collect();
        self.emit(&mut s, "cart_viewed", "/cart", json!({"cart": {"lines": cart}}))?;
        Self::step(&mut rng, &mut s);
        let items = self.line_items(&lines);
        let total = json!({"amount": order.total(), "currencyCode": "USD"});
        self.emit(&mut s, "checkout_started", "/checkouts/cn/c1", json!({"checkout": {"lineItems": items, "totalPrice": total}}))?;
        Self::step(&mut rng, &mut s);
        let order_ref = json!({"id": gid("Order", order.id), "customer": customer.map(|c| json!({"id": gid("Customer", c)}))});
        self.emit(&mut s, "checkout_completed", "/checkouts/cn/c1/thank-you", json!({"checkout": {"lineItems": items, "totalPrice": total, "order": order_ref}}))?;
        self.write(s, Some(order.created_at))
    }

    /// A visit that does not buy: a bounce, a browse, or an abandoned cart.
    /// `known_client`: the browser, id and index of a known customer.
    pub fn browse_session(&mut self, model: &OrderModel, key: u64, t: i64, known_client: Option<(String, i64, usize)>) -> Result<()> {
        let mut rng = Rand::new(self.shop.seed, 4_000_000_000 + key);
        // With tastes, a known customer browses within them: their own stream
        // decides (the visit's own draws stay as they are without tastes).
        let mut taste = match (&known_client, self.shop.tastes) {
            (Some((_, _, c)), Some(tastes)) => Some(Taste { customer: *c, strength: tastes.strength, rng: Rand::new(self.shop.seed, 11_000_000_000 + key) }),
            _ => None,
        };
        let (client, customer) = match known_client {
            Some((client, id, _)) => (client, rng.chance(0.5).then_some(id)),
            None => (rng.hex(24), None),
        };
        let mut s = Session { client, customer, t, agent: *rng.weighted(AGENTS), referrer: *rng.weighted(REFERRERS), events: 0, buffer: vec![] };
        self.browse(&mut rng, &mut s, model, &mut taste)?;
        self.write(s, None)
    }

    /// A product to browse: by the shop's popularity, or (with tastes, for a
    /// known customer, `strength` of the time) within their tastes.
    fn pick(rng: &mut Rand, model: &OrderModel, taste: &mut Option<Taste>) -> usize {
        let popular = model.popular[model.popularity.sample(rng)];
        let Some(t) = taste else { return popular };
        if t.rng.chance(t.strength) {
            model.in_taste(t.customer, &mut t.rng)
        } else {
            popular
        }
    }

    fn browse(&mut self, rng: &mut Rand, s: &mut Session, model: &OrderModel, taste: &mut Option<Taste>) -> Result<()> {
        let (rng, s) = (rng, s);
        if rng.chance(0.2) {
            // A bounce: one product page from a search engine or an ad.
            let p = Self::pick(rng, model, taste);
            let path = format!("/products/{}", self.products[p].handle);
            return self.emit(s, "product_viewed", &path, self.product_data(p, 0));
        }
        self.start(rng, s)?;
        if rng.chance(0.15) {
            return Ok(());
        }
        let first = Self::pick(rng, model, taste);
        self.view_collection_of(rng, s, first)?;
        if rng.chance(0.2) {
            self.search(rng, s, first, model)?;
        }
        let mut in_cart = Vec::new();
        for k in 0..rng.range(1, 4) {
            let p = if k == 0 { first } else { Self::pick(rng, model, taste) };
            self.view_product(rng, s, p, 0)?;
            if rng.chance(0.25) {
                self.cart_event(rng, s, "product_added_to_cart", p, 0)?;
                in_cart.push(p);
            }
        }
        if let Some(&p) = in_cart.first() {
            if rng.chance(0.2) {
                self.cart_event(rng, s, "product_removed_from_cart", p, 0)?;
                in_cart.remove(0);
            }
        }
        if !in_cart.is_empty() && rng.chance(0.5) {
            Self::step(rng, s);
            let cart: Vec<Value> = in_cart.iter().map(|&p| self.cart_line(p, 0, 1)).collect();
            self.emit(s, "cart_viewed", "/cart", json!({"cart": {"lines": cart}}))?;
            if rng.chance(0.3) {
                Self::step(rng, s);
                let lines: Vec<(usize, usize, i64)> = in_cart.iter().map(|&p| (p, 0, 1)).collect();
                let items = self.line_items(&lines);
                self.emit(s, "checkout_started", "/checkouts/cn/c2", json!({"checkout": {"lineItems": items}}))?;
            }
        }
        Ok(())
    }
}
