//! Customers, written after the orders have been totalled (Shopify's lifetime
//! `numberOfOrders` and `amountSpent` are part of the record).

use super::rng::Rand;
use super::{gid, iso, money, Shop, DAY};
use serde_json::{json, Value};

const FIRST: &[&str] = &["Ava", "Liam", "Mia", "Noah", "Zoe", "Omar", "Ines", "Kai", "Lena", "Ravi", "Sofia", "Tomas", "Yuki", "Amara", "Jonas", "Priya"];
const LAST: &[&str] = &["Smith", "Garcia", "Müller", "Dubois", "Kim", "Okafor", "Rossi", "Nguyen", "Silva", "Cohen", "Brown", "Novak"];
const PLACES: &[(&str, Option<&str>, &str, f64)] = &[
    ("US", Some("NY"), "New York", 0.2), ("US", Some("CA"), "Los Angeles", 0.18), ("US", Some("TX"), "Austin", 0.1),
    ("CA", Some("ON"), "Toronto", 0.1), ("GB", None, "London", 0.14), ("DE", None, "Berlin", 0.1),
    ("FR", None, "Lyon", 0.08), ("AU", Some("NSW"), "Sydney", 0.06), ("NL", None, "Utrecht", 0.04),
];

/// What the orders said of a customer.
#[derive(Clone, Default)]
pub struct OrderStats {
    pub orders: i64,
    pub spent: f64,
    pub first_order_at: Option<i64>,
}

pub fn customer_id(index: usize) -> i64 {
    6_900_000_000 + index as i64
}

pub fn customer_line(shop: &Shop, index: usize, stats: &OrderStats) -> Value {
    let mut rng = Rand::new(shop.seed, 2_000_000_000 + index as u64);
    let first = *rng.pick(FIRST);
    let last = *rng.pick(LAST);
    let mut created_at = shop.as_of - rng.range(1, 720) * DAY;
    if let Some(first_order) = stats.first_order_at {
        created_at = created_at.min(first_order - rng.range(0, 30) * DAY - 3_600_000_000);
    }
    let state = *rng.weighted(&[("ENABLED", 0.8), ("DISABLED", 0.12), ("INVITED", 0.06), ("DECLINED", 0.02)]);
    let place = (!rng.chance(0.1)).then(|| {
        let weighted: Vec<((&str, Option<&str>, &str), f64)> = PLACES.iter().map(|&(c, p, city, w)| ((c, p, city), w)).collect();
        *rng.weighted(&weighted)
    });
    let mut tags: Vec<&str> = [("vip", 0.05), ("newsletter", 0.3), ("wholesale", 0.03), ("returning", 0.2)]
        .iter()
        .filter(|(_, p)| rng.chance(*p))
        .map(|(t, _)| *t)
        .collect();
    tags.sort();
    let updated_at = (created_at + rng.range(0, 300) * DAY).min(shop.as_of - 5 * DAY).max(created_at);
    json!({
        "id": gid("Customer", customer_id(index)),
        "email": format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), index),
        "firstName": first, "lastName": last, "state": state, "verifiedEmail": rng.chance(0.85),
        "taxExempt": rng.chance(0.03), "tags": tags, "locale": if rng.chance(0.8) { "en" } else { "de" },
        "createdAt": iso(created_at), "updatedAt": iso(updated_at),
        "numberOfOrders": stats.orders.to_string(),
        "amountSpent": {"amount": money(stats.spent), "currencyCode": "USD"},
        "defaultAddress": place.map(|(c, p, city)| json!({"countryCodeV2": c, "provinceCode": p, "city": city})),
        "emailMarketingConsent": {"marketingState": if rng.chance(0.4) { "SUBSCRIBED" } else { "NOT_SUBSCRIBED" }},
    })
}

/// The REST payload of `customers/update`: the same customer with new tags and
/// consent, in REST's shape.
pub fn customer_update_payload(shop: &Shop, bulk: &Value) -> Value {
    let s = |k: &str| bulk.get(k).cloned().unwrap_or(Value::Null);
    let address = bulk.get("defaultAddress").filter(|a| !a.is_null()).map(|a| json!({
        "country_code": a["countryCodeV2"], "province_code": a["provinceCode"], "city": a["city"], "default": true,
    }));
    let id = bulk["id"].as_str().and_then(|g| g.rsplit('/').next()).and_then(|n| n.parse::<i64>().ok()).unwrap_or_default();
    json!({
        "id": id, "email": s("email"), "first_name": s("firstName"), "last_name": s("lastName"),
        "state": s("state").as_str().map(str::to_lowercase), "verified_email": true, "tax_exempt": s("taxExempt"),
        "tags": "returning, vip", "created_at": s("createdAt"), "updated_at": iso(shop.as_of - DAY),
        "orders_count": s("numberOfOrders").as_str().and_then(|n| n.parse::<i64>().ok()),
        "total_spent": bulk["amountSpent"]["amount"], "currency": "USD",
        "default_address": address,
        "email_marketing_consent": {"state": "subscribed", "opt_in_level": "single_opt_in", "consent_updated_at": null},
        "admin_graphql_api_id": s("id"),
    })
}
