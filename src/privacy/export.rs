//! `customers/data_request`: one JSON document with everything the shop's root
//! holds of the customer — every raw record (and rejected record) naming them,
//! their rows of the current feature tables, what Gorse was sent for them —
//! written to `<shop>/privacy/exports/<data_request id>.json` for the store
//! owner to hand over.

use super::redact::{identify, personal_rows, scan_entity, Person};
use super::Customer;
use crate::land;
use crate::storage::DataRoot;
use crate::vocabulary::RawEntity;
use anyhow::Result;
use polars::prelude::*;
use serde_json::{json, Map, Value};

/// The tables keyed by a customer, whose rows of theirs the export holds.
const PERSON_TABLES: [&str; 4] = ["user_features", "customer_behavior_features", "interaction_features", "customer_lifetime_features"];

pub fn export_path(shop: &str, data_request_id: &str) -> String {
    format!("{shop}/privacy/exports/{}.json", data_request_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect::<String>())
}

/// Writes the export of `customer` (and `orders`); its path under the root and
/// the number of raw records it holds.
pub fn export_customer(root: &DataRoot, shop: &str, customer: &Customer, orders: &[i64], data_request_id: &str) -> Result<(String, u64)> {
    let manifests = land::snapshots(root, shop)?;
    let person = identify(root, &manifests, customer, orders)?;
    let mut raw = Map::new();
    let mut records = 0u64;
    for entity in RawEntity::ALL {
        let Some(personal) = personal_rows(entity, &person) else { continue };
        let Some(rows) = scan_entity(root, &manifests, entity)? else { continue };
        let rows = rows.filter(personal).select([col("record")]).collect()?;
        let texts: Vec<Value> = rows.column("record")?.str()?.iter().flatten().map(record_value).collect();
        records += texts.len() as u64;
        if !texts.is_empty() {
            raw.insert(entity.name().to_string(), Value::Array(texts));
        }
    }
    let mut rejected = vec![];
    for rel in manifests.iter().filter_map(|m| m.rejected.as_ref()) {
        let path = root.local_copy(rel)?;
        let rows = crate::normalize::scan_parquet([path.as_path()])?.select([col("record")]).collect()?;
        rejected.extend(rows.column("record")?.str()?.iter().flatten().filter(|r| person.named_in(r.as_bytes())).map(|r| Value::String(r.to_string())));
    }
    records += rejected.len() as u64;
    let document = json!({
        "shop": shop,
        "data_request_id": data_request_id,
        "generated_at": crate::time::now_rfc3339(),
        "customer": customer,
        "identifiers": identifiers(&person),
        "raw_records": raw,
        "rejected_records": rejected,
        "features": feature_rows(root, shop, &person)?,
        "gorse": gorse_rows(root, shop, &person)?,
    });
    let rel = export_path(shop, data_request_id);
    root.put(&rel, &serde_json::to_vec_pretty(&document)?)?;
    Ok((rel, records))
}

/// A raw record as JSON (as text when it is not JSON: a record that landed
/// unreadable is still theirs).
fn record_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn identifiers(person: &Person) -> Value {
    json!({
        "customer_ids": person.customer_ids,
        "emails": person.emails,
        "phones": person.phones,
        "orders": person.orders,
        "browsers": person.browsers,
    })
}

/// Their rows of the current generation's tables keyed by a customer.
fn feature_rows(root: &DataRoot, shop: &str, person: &Person) -> Result<Value> {
    let mut tables = Map::new();
    let ids = Series::new("ids".into(), person.customer_ids.iter().copied().collect::<Vec<i64>>());
    for table in PERSON_TABLES {
        let Ok(rel) = crate::sinks::parquet::current_table_path(root, shop, table) else { continue };
        if root.get(&rel)?.is_none() {
            continue;
        }
        let path = root.local_copy(&rel)?;
        let rows = crate::normalize::scan_parquet([path.as_path()])?.filter(col("customer_id").is_in(lit(ids.clone()).implode(false), false)).collect()?;
        tables.insert(table.to_string(), Value::Array((0..rows.height()).map(|i| row_json(&rows, i)).collect()));
    }
    Ok(Value::Object(tables))
}

/// One row as a JSON object (times and other values as their text).
fn row_json(frame: &DataFrame, i: usize) -> Value {
    let mut row = Map::new();
    for column in frame.columns() {
        let value = match column.get(i) {
            Ok(AnyValue::Null) | Err(_) => Value::Null,
            Ok(AnyValue::Boolean(b)) => Value::Bool(b),
            Ok(AnyValue::Int64(n)) => json!(n),
            Ok(AnyValue::Int32(n)) => json!(n),
            Ok(AnyValue::UInt32(n)) => json!(n),
            Ok(AnyValue::UInt64(n)) => json!(n),
            Ok(AnyValue::Float64(x)) => json!(x),
            Ok(AnyValue::Float32(x)) => json!(x),
            Ok(AnyValue::String(s)) => Value::String(s.to_string()),
            Ok(other) => Value::String(other.to_string()),
        };
        row.insert(column.name().to_string(), value);
    }
    Value::Object(row)
}

/// What Gorse holds for them: the users and feedback the export checkpoint
/// lists under their ids.
fn gorse_rows(root: &DataRoot, shop: &str, person: &Person) -> Result<Value> {
    use crate::sinks::gorse::checkpoint::{rows_file, Delivered};
    use crate::sinks::gorse::mapping::Kind;
    if root.get(&rows_file(shop))?.is_none() {
        return Ok(Value::Null);
    }
    let delivered = Delivered::load(root, &rows_file(shop))?;
    // A user's key is `<prefix><customer id>`; a feedback's `<type>/<user key>/<item key>`.
    let theirs = |user: &str| person.customer_ids.iter().any(|c| user.strip_suffix(&c.to_string()).is_some_and(|prefix| !prefix.ends_with(|ch: char| ch.is_ascii_digit())));
    let users: Vec<String> = delivered.ids(Kind::User).into_iter().filter(|id| theirs(id)).collect();
    let feedback: Vec<String> = delivered.ids(Kind::Feedback).into_iter().filter(|id| id.split('/').nth(1).is_some_and(theirs)).collect();
    Ok(json!({ "users": users, "feedback": feedback }))
}
