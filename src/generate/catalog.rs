//! Products (with variants, media and collection membership) and collections.

use super::rng::Rand;
use super::{gid, iso, money, Preset, Shop, DAY};
use serde_json::{json, Value};

const ADJECTIVES: &[&str] = &["Classic", "Organic", "Vintage", "Urban", "Alpine", "Coastal", "Everyday", "Premium", "Handmade", "Minimal", "Bold", "Soft", "Rugged", "Silk", "Linen", "Merino"];
const NOUNS: &[(&str, &str)] = &[
    ("Shirt", "Shirts"), ("Hoodie", "Shirts"), ("Sneaker", "Shoes"), ("Boot", "Shoes"), ("Backpack", "Bags"),
    ("Tote", "Bags"), ("Mug", "Home"), ("Candle", "Home"), ("Blanket", "Home"), ("Watch", "Accessories"),
    ("Wallet", "Accessories"), ("Sunglasses", "Accessories"), ("Serum", "Beauty"), ("Lip Balm", "Beauty"),
    ("Jacket", "Outerwear"), ("Parka", "Outerwear"), ("Necklace", "Jewelry"), ("Ring", "Jewelry"),
    ("Notebook", "Stationery"), ("Gift Card", ""),
];
const VENDORS: &[&str] = &["Acme", "Northwind", "Bluebird Co", "Fjord & Pine", "Maison Lune", "Kettle Works", "Ridge Supply", "Saltwater", "Tandem", "Oakhaus", "Verde", "Zenith Labs"];
const TAGS: &[&str] = &["new", "sale", "bestseller", "eco", "gift", "limited", "summer", "winter", "unisex", "vegan", "handmade", "imported"];
const COLORS: &[&str] = &["Black", "White", "Navy", "Olive", "Sand", "Red", "Grey", "Teal"];
const SIZES: &[&str] = &["XS", "S", "M", "L", "XL", "XXL"];
const COLLECTION_NAMES: &[&str] = &["Summer Essentials", "Best Sellers", "New Arrivals", "Gifts Under 50", "Outdoor Gear", "Home & Living", "Footwear", "Accessories Edit", "Beauty Picks", "Last Chance"];

pub struct Variant {
    pub id: i64,
    pub title: String,
    pub sku: String,
    pub price: f64,
}

pub struct Product {
    pub id: i64,
    pub title: String,
    pub handle: String,
    pub vendor: &'static str,
    pub product_type: &'static str,
    pub status: &'static str,
    pub created_at: i64,
    pub updated_at: i64,
    pub published_at: Option<i64>,
    pub tags: Vec<&'static str>,
    pub description: String,
    pub variants: Vec<Variant>,
    pub collections: Vec<usize>,
    pub media: usize,
    pub inventory: Vec<i64>,
    pub compare_at: Vec<Option<f64>>,
    pub options: Vec<(&'static str, Vec<String>)>,
    pub media_kinds: Vec<&'static str>,
    pub seo: (Option<String>, Option<String>),
}

pub struct Collection {
    pub id: i64,
    pub title: String,
    pub handle: String,
    pub smart: bool,
    pub description: String,
    pub updated_at: i64,
    pub members: Vec<usize>,
    pub image_alt: Option<String>,
}

pub fn build_products(p: &Preset, seed: u64, start: i64, end: i64) -> Vec<Product> {
    let mut rng = Rand::new(seed, 1);
    let mut next_variant = 42_000_000_000i64;
    let mut media_seen = 0usize;
    (0..p.products + 1)
        .map(|i| {
            let (noun, product_type) = *rng.pick(NOUNS);
            let title = format!("{} {} {}", rng.pick(ADJECTIVES), rng.pick(COLORS), noun);
            let id = 7_100_000_000 + i as i64;
            let handle = format!("{}-{}", title.to_lowercase().replace(' ', "-"), i);
            let status = *rng.weighted(&[("ACTIVE", 0.86), ("DRAFT", 0.09), ("ARCHIVED", 0.05)]);
            let created_at = start - rng.range(0, 540) * DAY + rng.range(0, 120) * DAY;
            let updated_at = (created_at + rng.range(0, 200) * DAY).min(end - 10 * DAY).max(created_at);
            let published_at = (status != "DRAFT" || rng.chance(0.2)).then(|| created_at + rng.range(0, 3) * DAY);
            // Log-normal prices: most mid-range, a long tail into luxury.
            let base = rng.log_normal(45.0, 0.95).clamp(3.0, 2500.0);
            let n_variants = *rng.weighted(&[(1usize, 0.35), (2, 0.15), (3, 0.2), (4, 0.12), (5, 0.07), (6, 0.06), (8, 0.05)]);
            let sized = n_variants > 1;
            let variants: Vec<Variant> = (0..n_variants)
                .map(|v| {
                    next_variant += 1;
                    let title = if sized { SIZES[v % SIZES.len()].to_string() + if v >= SIZES.len() { " / Tall" } else { "" } } else { "Default Title".into() };
                    Variant { id: next_variant, sku: format!("SKU-{i}-{v}"), price: ((base * (1.0 + 0.05 * v as f64)) * 100.0).round() / 100.0, title }
                })
                .collect();
            let compare_at = variants.iter().map(|v| rng.chance(0.3).then(|| (v.price * (1.2 + 0.3 * rng.unit()) * 100.0).round() / 100.0)).collect();
            let inventory = variants.iter().map(|_| if rng.chance(0.05) { -rng.range(1, 5) } else { rng.range(0, 150) }).collect();
            let mut media_kinds = vec!["IMAGE"; rng.range(0, 6) as usize];
            if rng.chance(0.10) { media_kinds.push("VIDEO"); }
            if rng.chance(0.05) { media_kinds.push("EXTERNAL_VIDEO"); }
            if rng.chance(0.04) { media_kinds.push("MODEL_3D"); }
            media_seen += media_kinds.len();
            let mut tags: Vec<&str> = (0..rng.range(0, 5)).map(|_| *rng.pick(TAGS)).collect();
            tags.sort();
            tags.dedup();
            let words = rng.range(0, 60) as usize;
            let description = (0..words).map(|w| *["soft", "durable", "made", "to", "last", "with", "care", "and", "recycled", "materials", "for", "every", "day"].get((w * 7 + i) % 13).unwrap_or(&"x")).collect::<Vec<_>>().join(" ");
            let mut options = vec![("Size", variants.iter().map(|v| v.title.clone()).collect())];
            if !sized { options = vec![("Title", vec!["Default Title".into()])]; }
            if rng.chance(0.3) { options.push(("Color", vec![COLORS[i % COLORS.len()].to_string()])); }
            let seo = (
                rng.chance(0.6).then(|| format!("{title} | Shop the {product_type} range").chars().take(70).collect()),
                rng.chance(0.5).then(|| format!("Discover the {title}, {description}").chars().take(170).collect()),
            );
            Product {
                id, title, handle, vendor: *rng.pick(VENDORS), product_type, status, created_at, updated_at,
                published_at, tags, description, variants, collections: vec![], media: media_seen, inventory,
                compare_at, options, media_kinds, seo,
            }
        })
        .collect()
}

pub fn build_collections(p: &Preset, seed: u64, products: &mut [Product], end: i64) -> Vec<Collection> {
    let mut rng = Rand::new(seed, 2);
    let mut collections: Vec<Collection> = (0..p.collections)
        .map(|i| {
            let name = COLLECTION_NAMES[i % COLLECTION_NAMES.len()];
            let title = if i < COLLECTION_NAMES.len() { name.to_string() } else { format!("{name} {}", i / COLLECTION_NAMES.len() + 1) };
            Collection {
                id: 450_000_000 + i as i64,
                handle: title.to_lowercase().replace(" & ", "-").replace(' ', "-"),
                smart: i % 3 == 2,
                description: if rng.chance(0.7) { format!("Our {} — hand-picked favourites from every corner of the shop, refreshed each season.", title.to_lowercase()) } else { String::new() },
                updated_at: end - rng.range(10, 200) * DAY,
                members: vec![],
                image_alt: rng.chance(0.5).then(|| format!("{title} banner")),
                title,
            }
        })
        .collect();
    let n = collections.len();
    for (pi, product) in products.iter_mut().enumerate() {
        let k = *rng.weighted(&[(0usize, 0.2), (1, 0.5), (2, 0.22), (3, 0.08)]);
        for _ in 0..k.min(n) {
            let c = rng.index(n);
            if !product.collections.contains(&c) {
                product.collections.push(c);
                collections[c].members.push(pi);
            }
        }
    }
    collections
}

/// Bulk lines of one product: the product, its variants, media and memberships.
pub fn product_lines(product: &Product, collections: &[Collection], media_base: i64) -> Vec<Value> {
    let pgid = gid("Product", product.id);
    let mut lines = vec![json!({
        "id": pgid, "title": product.title, "handle": product.handle, "vendor": product.vendor,
        "productType": product.product_type, "tags": product.tags, "status": product.status,
        "createdAt": iso(product.created_at), "updatedAt": iso(product.updated_at),
        "publishedAt": product.published_at.map(iso), "description": product.description,
        "descriptionHtml": if product.description.is_empty() { String::new() } else { format!("<p>{}</p>", product.description) },
        "templateSuffix": null, "onlineStoreUrl": product.published_at.map(|_| format!("https://shopfeat-sample.myshopify.com/products/{}", product.handle)),
        "totalInventory": product.inventory.iter().sum::<i64>(),
        "seo": {"title": product.seo.0, "description": product.seo.1},
        "options": product.options.iter().map(|(name, values)| json!({"name": name, "values": values})).collect::<Vec<_>>(),
    })];
    for (k, v) in product.variants.iter().enumerate() {
        lines.push(json!({
            "id": gid("ProductVariant", v.id), "title": v.title, "sku": v.sku, "price": money(v.price),
            "compareAtPrice": product.compare_at[k].map(money), "inventoryQuantity": product.inventory[k],
            "__parentId": pgid,
        }));
    }
    let first_media = product.media - product.media_kinds.len();
    for (k, kind) in product.media_kinds.iter().enumerate() {
        let id = media_base + (first_media + k) as i64;
        let gid_type = match *kind { "VIDEO" => "Video", "EXTERNAL_VIDEO" => "ExternalVideo", "MODEL_3D" => "Model3d", _ => "MediaImage" };
        lines.push(json!({
            "id": gid(gid_type, id), "mediaContentType": kind,
            "alt": (k % 2 == 0).then(|| format!("{} view {}", product.title, k + 1)), "__parentId": pgid,
        }));
    }
    for &c in &product.collections {
        lines.push(json!({"id": gid("Collection", collections[c].id), "__parentId": pgid}));
    }
    lines
}

pub fn collection_lines(c: &Collection, products: &[Product]) -> Vec<Value> {
    let cgid = gid("Collection", c.id);
    let mut lines = vec![json!({
        "id": cgid, "title": c.title, "handle": c.handle, "description": c.description,
        "descriptionHtml": if c.description.is_empty() { String::new() } else { format!("<p>{}</p>", c.description) },
        "sortOrder": if c.smart { "BEST_SELLING" } else { "MANUAL" }, "templateSuffix": null,
        "updatedAt": iso(c.updated_at),
        "seo": {"title": (c.id % 2 == 0).then(|| format!("{} | Shopfeat Sample", c.title)), "description": null},
        "image": c.image_alt.as_ref().map(|alt| json!({"url": format!("https://cdn.shopify.com/s/files/{}.jpg", c.handle), "altText": alt})),
        "ruleSet": c.smart.then(|| json!({"appliedDisjunctively": false, "rules": [{"column": "TAG", "relation": "EQUALS", "condition": "bestseller"}]})),
    })];
    for &m in &c.members {
        lines.push(json!({"id": gid("Product", products[m].id), "__parentId": cgid}));
    }
    lines
}

/// The REST payload of `products/update` for a product whose price and title changed.
pub fn product_update_payload(product: &Product, shop: &Shop, media_base: i64) -> Value {
    let updated = shop.as_of - 2 * DAY;
    let first_media = product.media - product.media_kinds.len();
    json!({
        "id": product.id, "title": format!("{} (Refreshed)", product.title), "handle": product.handle,
        "body_html": format!("<p>{} &amp; <b>more</b></p>", product.description), "vendor": product.vendor,
        "product_type": product.product_type, "created_at": iso(product.created_at),
        "updated_at": iso(updated), "published_at": product.published_at.map(iso),
        "status": product.status.to_lowercase(), "tags": format!("{}, refreshed", product.tags.join(", ")),
        "admin_graphql_api_id": gid("Product", product.id),
        "options": product.options.iter().map(|(name, values)| json!({"name": name, "values": values})).collect::<Vec<_>>(),
        "variants": product.variants.iter().enumerate().map(|(k, v)| json!({
            "id": v.id, "product_id": product.id, "title": v.title, "sku": v.sku,
            "price": money((v.price * 0.9 * 100.0).round() / 100.0),
            "compare_at_price": money(v.price), "inventory_quantity": product.inventory[k],
        })).collect::<Vec<_>>(),
        "images": product.media_kinds.iter().enumerate().filter(|(_, k)| **k == "IMAGE").map(|(k, _)| json!({
            "id": media_base + (first_media + k) as i64, "product_id": product.id, "alt": null, "position": k + 1,
        })).collect::<Vec<_>>(),
    })
}
