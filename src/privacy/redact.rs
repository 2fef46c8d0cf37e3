//! `customers/redact`: after it, nothing under the shop's root names the
//! customer — not their id, email or phone, not their addresses, not the
//! browser ids stitched to them.
//!
//! What happens to what they did (the README's "Privacy"): their customer
//! versions are removed; their orders (those of `orders_to_redact` and every
//! order of theirs) stay as guest orders — no customer, the record's personal
//! fields (customer, email, phone, addresses, client details, notes) removed —
//! so sales, pairs and popularity are unchanged; their events stay under a new
//! random browser id that nothing links back (their sessions stay whole, linked
//! to no one). Tables keyed by the person (user, behaviour, interaction,
//! lifetime) lose them at the next compute.
//!
//! How: every raw snapshot that holds any of it is rewritten (the rewrite of
//! compaction: new files, one commit, old files deleted), rejected records
//! naming them are dropped, the inbox's landed and rejected copies and the
//! shop's exports that name them are deleted, the `main/` inspection tables
//! and the fast lane's `fast/` delta tables are removed, and the features are recomputed with every older generation
//! (and both DuckDB files, rebuilt whole) dropped.

use super::Customer;
use crate::land::{self, compact, SnapshotManifest};
use crate::storage::DataRoot;
use crate::vocabulary::RawEntity;
use anyhow::Result;
use polars::prelude::*;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// What a redaction did.
#[derive(Debug, Clone, Default)]
pub struct Redacted {
    pub snapshots_rewritten: usize,
    pub rows_redacted: u64,
    pub files_deleted: usize,
}

/// Everything under which the shop's data names the person.
#[derive(Debug, Clone, Default)]
pub struct Person {
    pub customer_ids: BTreeSet<i64>,
    /// Lower case.
    pub emails: BTreeSet<String>,
    pub phones: BTreeSet<String>,
    pub orders: BTreeSet<i64>,
    pub browsers: BTreeSet<String>,
}

impl Person {
    pub fn is_empty(&self) -> bool {
        self.customer_ids.is_empty() && self.emails.is_empty() && self.phones.is_empty() && self.orders.is_empty() && self.browsers.is_empty()
    }

    /// The texts that identify the person wherever they appear, in lower case:
    /// GIDs, emails, phones, browser ids. (A bare numeric id is told apart in
    /// [`Person::named_in`].)
    fn needles(&self) -> Vec<String> {
        let gids = self.customer_ids.iter().map(|id| format!("gid://shopify/Customer/{id}"));
        gids.chain(self.emails.iter().cloned()).chain(self.phones.iter().cloned()).chain(self.browsers.iter().cloned()).filter(|n| n.len() >= 4).map(|n| n.to_ascii_lowercase()).collect()
    }

    /// Whether `text` names the person: a needle (emails in any case), or a
    /// customer id not inside a longer number.
    pub fn named_in(&self, text: &[u8]) -> bool {
        let lower = text.to_ascii_lowercase();
        if self.needles().iter().any(|n| contains(&lower, n.as_bytes())) {
            return true;
        }
        self.customer_ids.iter().any(|id| contains_number(text, &id.to_string()))
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Whether `number` occurs in `text` with no digit right before or after it.
fn contains_number(text: &[u8], number: &str) -> bool {
    let n = number.as_bytes();
    text.windows(n.len()).enumerate().any(|(i, w)| {
        w == n && (i == 0 || !text[i - 1].is_ascii_digit()) && text.get(i + n.len()).is_none_or(|c| !c.is_ascii_digit())
    })
}

/// Erases the customer from `shop` (the caller holds its lock). `inbox`: the
/// shop's inbox, whose landed and rejected copies are erased too.
pub fn redact_customer(root: &DataRoot, shop: &str, customer: &Customer, orders: &[i64], inbox: Option<&Path>) -> Result<Redacted> {
    compact::finish_interrupted(root, shop)?;
    let manifests = land::snapshots(root, shop)?;
    let person = identify(root, &manifests, customer, orders)?;
    // Remembered first, so a late delivery of one of these orders landed after
    // this erasure is erased too (see [`erase_late_arrivals`]).
    remember_orders(root, shop, &person.orders)?;
    let mut done = Redacted::default();
    if !person.is_empty() {
        rewrite_raw(root, shop, &manifests, &person, &mut done)?;
    }
    done.files_deleted += delete_named_files(root, shop, inbox, &person, customer)?;
    Ok(done)
}

/// The orders of erased customers: `<shop>/privacy/redacted_orders.json`. Only
/// order ids, which stay in the data anyway (as guest orders): nothing in it
/// says who bought them.
fn redacted_orders_path(shop: &str) -> String {
    format!("{shop}/privacy/redacted_orders.json")
}

fn redacted_orders(root: &DataRoot, shop: &str) -> Result<BTreeSet<i64>> {
    match root.get(&redacted_orders_path(shop))? {
        Some(bytes) => Ok(serde_json::from_slice(&bytes)?),
        None => Ok(BTreeSet::new()),
    }
}

fn remember_orders(root: &DataRoot, shop: &str, orders: &BTreeSet<i64>) -> Result<()> {
    let mut all = redacted_orders(root, shop)?;
    if orders.is_subset(&all) {
        return Ok(());
    }
    all.extend(orders);
    root.put(&redacted_orders_path(shop), &serde_json::to_vec(&all)?)
}

/// A delivery or fetch landed after an erasure may bring the person back (a
/// late `orders/updated` of one of their orders names them): the snapshot
/// just landed is erased of the erased customers' orders, their personal
/// fields and the browsers that bought them, as the erasure did, and so are
/// the inbox's copies of what it landed (`inbox`). How many rows.
pub fn erase_late_arrivals(root: &DataRoot, shop: &str, snapshot: &str, inbox: Option<&Path>) -> Result<u64> {
    let orders = redacted_orders(root, shop)?;
    if orders.is_empty() || snapshot.is_empty() {
        return Ok(0);
    }
    let manifests = land::snapshots(root, shop)?;
    let Some(landed) = manifests.iter().find(|m| m.snapshot == snapshot) else { return Ok(0) };
    let landed = std::slice::from_ref(landed);
    let mut person = Person { orders, ..Default::default() };
    // Their customer, when a late order names one: erased with it.
    let customer_ids = landed_column(root, landed, RawEntity::Orders, col("order_id").is_in(lit(ids_lit(&person.orders)).implode(false), false), "customer_id")?;
    person.customer_ids.extend(customer_ids.iter().filter_map(|v| v.parse::<i64>().ok()));
    // Every browser the snapshot links to them gets a new id of its own (none is left to the catch-all).
    let linked = col("order_id").is_in(lit(ids_lit(&person.orders)).implode(false), false).or(col("event_customer_id").is_in(lit(ids_lit(&person.customer_ids)).implode(false), false));
    let browsers = landed_column(root, landed, RawEntity::Events, linked, "client_id")?;
    person.browsers.extend(browsers);
    let mut done = Redacted::default();
    rewrite_raw(root, shop, landed, &person, &mut done)?;
    if done.rows_redacted > 0 {
        if let Some(inbox) = inbox {
            delete_named_under(&inbox.join("landed").join(snapshot), &person)?;
        }
        tracing::info!("shop {shop}: {} rows of erased customers' orders in snapshot {snapshot} erased again", done.rows_redacted);
    }
    Ok(done.rows_redacted)
}

/// Every row of `entity` in `manifests`' files, whether they count for
/// normalization or not (an erasure reaches them all); `None` without any.
pub(crate) fn scan_entity(root: &DataRoot, manifests: &[SnapshotManifest], entity: RawEntity) -> Result<Option<LazyFrame>> {
    let paths: Vec<_> = manifests.iter().filter_map(|m| m.files.get(entity.name())).map(|rel| root.local_copy(rel)).collect::<Result<_>>()?;
    if paths.is_empty() {
        return Ok(None);
    }
    Ok(Some(crate::normalize::scan_parquet(paths.iter().map(|p| p.as_path()))?))
}

/// The distinct values (as text) of `column` in `manifests`' rows of `entity` that match `filter`.
fn landed_column(root: &DataRoot, manifests: &[SnapshotManifest], entity: RawEntity, filter: Expr, column: &str) -> Result<Vec<String>> {
    let Some(rows) = scan_entity(root, manifests, entity)? else { return Ok(vec![]) };
    let found = rows.filter(filter).select([col(column).cast(DataType::String)]).unique(None, UniqueKeepStrategy::Any).collect()?;
    Ok(found.column(column)?.str()?.iter().flatten().map(str::to_string).collect())
}

/// Who the customer is in the shop's data: the ids of customer versions with
/// their id or email, every email and phone those versions carry, their orders,
/// and the browsers stitched to them (an event naming them or their order).
pub fn identify(root: &DataRoot, manifests: &[SnapshotManifest], customer: &Customer, orders: &[i64]) -> Result<Person> {
    let mut person = Person::default();
    person.customer_ids.extend(customer.id);
    person.emails.extend(customer.email.iter().map(|e| e.to_lowercase()));
    person.phones.extend(customer.phone.iter().cloned());
    person.orders.extend(orders);
    let scan = |entity| scan_entity(root, manifests, entity);
    if let Some(customers) = scan(RawEntity::Customers)? {
        let ids = ids_lit(&person.customer_ids);
        let emails = Series::new("emails".into(), person.emails.iter().cloned().collect::<Vec<_>>());
        let theirs = customers
            .filter(col("customer_id").is_in(lit(ids).implode(false), false).or(col("email").str().to_lowercase().is_in(lit(emails).implode(false), false)))
            .select([col("customer_id"), col("email"), col("record")])
            .collect()?;
        for (id, email, record) in theirs.column("customer_id")?.i64()?.iter().zip(theirs.column("email")?.str()?.iter()).zip(theirs.column("record")?.str()?.iter()).map(|((a, b), c)| (a, b, c)) {
            person.customer_ids.extend(id);
            person.emails.extend(email.map(str::to_lowercase));
            if let Some(value) = record.and_then(|r| serde_json::from_str::<Value>(r).ok()) {
                collect_phones(&value, &mut person.phones);
            }
        }
    }
    if let Some(orders) = scan(RawEntity::Orders)? {
        let theirs = orders.filter(col("customer_id").is_in(lit(ids_lit(&person.customer_ids)).implode(false), false)).select([col("order_id")]).collect()?;
        person.orders.extend(theirs.column("order_id")?.i64()?.iter().flatten());
    }
    if let Some(events) = scan(RawEntity::Events)? {
        let linked = col("event_customer_id").is_in(lit(ids_lit(&person.customer_ids)).implode(false), false).or(col("order_id").is_in(lit(ids_lit(&person.orders)).implode(false), false));
        let browsers = events.filter(linked).select([col("client_id")]).unique(None, UniqueKeepStrategy::Any).collect()?;
        person.browsers.extend(browsers.column("client_id")?.str()?.iter().flatten().map(str::to_string));
    }
    Ok(person)
}

fn ids_lit(ids: &BTreeSet<i64>) -> Series {
    Series::new("ids".into(), ids.iter().copied().collect::<Vec<i64>>())
}

/// Every phone number a customer record carries (`phone`, `defaultPhoneNumber`…).
fn collect_phones(value: &Value, phones: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s) if k.to_ascii_lowercase().contains("phone") && !s.trim().is_empty() => {
                        phones.insert(s.trim().to_string());
                    }
                    _ => collect_phones(v, phones),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_phones(v, phones)),
        _ => {}
    }
}

/// The rows of `entity` that hold the person, as a filter.
pub(crate) fn personal_rows(entity: RawEntity, person: &Person) -> Option<Expr> {
    let ids = || lit(ids_lit(&person.customer_ids)).implode(false);
    let orders = || lit(ids_lit(&person.orders)).implode(false);
    Some(match entity {
        RawEntity::Customers => {
            let emails = Series::new("emails".into(), person.emails.iter().cloned().collect::<Vec<_>>());
            col("customer_id").is_in(ids(), false).or(col("email").str().to_lowercase().is_in(lit(emails).implode(false), false))
        }
        RawEntity::Orders => col("order_id").is_in(orders(), false).or(col("customer_id").is_in(ids(), false)),
        RawEntity::LineItems | RawEntity::RefundLineItems => col("order_id").is_in(orders(), false),
        RawEntity::Events => {
            let browsers = Series::new("browsers".into(), person.browsers.iter().cloned().collect::<Vec<_>>());
            col("client_id").is_in(lit(browsers).implode(false), false).or(col("event_customer_id").is_in(ids(), false)).or(col("order_id").is_in(orders(), false))
        }
        _ => return None,
    })
}

/// Rewrites, in one commit, every snapshot holding the person.
fn rewrite_raw(root: &DataRoot, shop: &str, manifests: &[SnapshotManifest], person: &Person, done: &mut Redacted) -> Result<()> {
    let mut holding = vec![];
    for manifest in manifests {
        if holds(root, manifest, person)? {
            holding.push(std::slice::from_ref(manifest));
        }
    }
    if holding.is_empty() {
        return Ok(());
    }
    // One new browser id per old one, random, kept nowhere: the person's
    // sessions stay whole and link to no one.
    let anonymous: HashMap<String, String> = person.browsers.iter().map(|b| Ok((b.clone(), format!("anon-{:016x}", random_u64()?)))).collect::<Result<_>>()?;
    let rows_redacted = std::cell::Cell::new(0u64);
    let mut rows = |entity: RawEntity, lf: LazyFrame| -> Result<LazyFrame> {
        let Some(personal) = personal_rows(entity, person) else { return Ok(lf) };
        let frame = lf.with_column(personal.alias("_personal")).collect()?;
        let n = frame.column("_personal")?.bool()?.sum().unwrap_or(0) as u64;
        rows_redacted.set(rows_redacted.get() + n);
        if n == 0 {
            return Ok(frame.drop("_personal")?.lazy());
        }
        if entity == RawEntity::Customers {
            return Ok(frame.lazy().filter(col("_personal").not()).drop(cols(["_personal"])));
        }
        Ok(anonymized(frame, entity, person, &anonymous)?.lazy())
    };
    let mut rejected = |lf: LazyFrame| -> Result<LazyFrame> {
        let frame = lf.collect()?;
        let keep: BooleanChunked = frame.column("record")?.str()?.iter().map(|r| Some(!r.is_some_and(|r| person.named_in(r.as_bytes())))).collect();
        rows_redacted.set(rows_redacted.get() + keep.iter().filter(|k| *k == Some(false)).count() as u64);
        Ok(frame.filter(&keep)?.lazy())
    };
    let written = compact::rewrite(root, shop, "redaction", &holding, &mut rows, &mut rejected, None)?;
    done.snapshots_rewritten = written.len();
    done.rows_redacted = rows_redacted.get();
    Ok(())
}

/// Whether a snapshot holds anything of the person (rows or rejected records).
fn holds(root: &DataRoot, manifest: &SnapshotManifest, person: &Person) -> Result<bool> {
    for (entity, rel) in manifest.files.iter().filter_map(|(e, rel)| RawEntity::from_name(e).map(|e| (e, rel))) {
        let Some(personal) = personal_rows(entity, person) else { continue };
        let path = root.local_copy(rel)?;
        let found = crate::normalize::scan_parquet([path.as_path()])?.filter(personal).select([len()]).collect()?;
        if found.column("len")?.u32()?.get(0).unwrap_or(0) > 0 {
            return Ok(true);
        }
    }
    if let Some(rel) = &manifest.rejected {
        let path = root.local_copy(rel)?;
        let records = crate::normalize::scan_parquet([path.as_path()])?.select([col("record")]).collect()?;
        if records.column("record")?.str()?.iter().flatten().any(|r| person.named_in(r.as_bytes())) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A random number from the system's generator (ring's, already a dependency
/// for the webhook signatures).
fn random_u64() -> Result<u64> {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(|_| anyhow::anyhow!("the system's random generator failed"))?;
    Ok(u64::from_le_bytes(bytes))
}

/// The person's rows of `entity` (marked `_personal`) made anonymous: no
/// customer, a new browser id, the record's personal fields removed.
fn anonymized(frame: DataFrame, entity: RawEntity, person: &Person, anonymous: &HashMap<String, String>) -> Result<DataFrame> {
    let personal: Vec<bool> = frame.column("_personal")?.bool()?.iter().map(|p| p.unwrap_or(false)).collect();
    let records: Vec<Option<String>> = frame
        .column("record")?
        .str()?
        .iter()
        .zip(&personal)
        .map(|(record, &mine)| match (record, mine) {
            (Some(r), true) => Some(scrub_record(r, person, anonymous)),
            (r, _) => r.map(str::to_string),
        })
        .collect();
    let mut lf = frame.lazy().with_column(lit(Series::new("record".into(), records)).alias("record"));
    let mine = col("_personal");
    lf = match entity {
        RawEntity::Orders => lf.with_column(when(mine.clone()).then(lit(NULL).cast(DataType::Int64)).otherwise(col("customer_id")).alias("customer_id")),
        RawEntity::Events => {
            let (old, new): (Vec<String>, Vec<String>) = anonymous.iter().map(|(o, n)| (o.clone(), n.clone())).unzip();
            let replaced = col("client_id").replace_strict(lit(Series::new("old".into(), old)), lit(Series::new("new".into(), new)), Some(lit("anon")), Some(DataType::String));
            // URLs and the referrer stay unless they name the person.
            let mut lf = lf.with_columns([
                when(mine.clone()).then(replaced).otherwise(col("client_id")).alias("client_id"),
                when(mine.clone()).then(lit(NULL).cast(DataType::Int64)).otherwise(col("event_customer_id")).alias("event_customer_id"),
            ]);
            for text in ["url", "path", "referrer", "search_query"] {
                let named = person.needles().into_iter().fold(lit(false), |any, n| any.or(col(text).str().to_lowercase().str().contains_literal(lit(n)).fill_null(lit(false))));
                lf = lf.with_column(when(mine.clone().and(named)).then(lit(NULL).cast(DataType::String)).otherwise(col(text)).alias(text));
            }
            lf
        }
        _ => lf,
    };
    Ok(lf.drop(cols(["_personal"])).collect()?)
}

/// Keys whose values are personal wherever they appear in a record (compared
/// in lower case without `_`, so REST's `billing_address` and GraphQL's
/// `billingAddress` are one).
const PERSONAL_KEYS: &[&str] = &[
    "customer", "customerid", "email", "contactemail", "phone", "billingaddress", "shippingaddress", "defaultaddress", "addresses",
    "clientdetails", "browserip", "note", "noteattributes", "firstname", "lastname", "company", "address1", "address2", "zip",
    "latitude", "longitude", "originlocation", "destinationlocation", "buyeridentity", "smsmarketingphone", "user",
];

/// A record without the person: personal keys removed, the browser id replaced,
/// any other value naming them nulled; `{}` when anything naming them remains.
pub fn scrub_record(record: &str, person: &Person, anonymous: &HashMap<String, String>) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(record) else { return "{}".into() };
    scrub(&mut value, person, anonymous);
    let text = value.to_string();
    // The same test as the search that proves the erasure, numeric id included.
    if person.named_in(text.as_bytes()) {
        return "{}".into();
    }
    text
}

fn scrub(value: &mut Value, person: &Person, anonymous: &HashMap<String, String>) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !PERSONAL_KEYS.contains(&k.to_ascii_lowercase().replace('_', "").as_str()));
            for (k, v) in map.iter_mut() {
                let key = k.to_ascii_lowercase().replace('_', "");
                match v {
                    Value::String(s) if key == "clientid" => *s = anonymous.get(s.as_str()).cloned().unwrap_or_else(|| "anon".into()),
                    _ => scrub(v, person, anonymous),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub(v, person, anonymous)),
        Value::String(s) if person.named_in(s.as_bytes()) => *value = Value::Null,
        _ => {}
    }
}

/// Deletes the files outside the raw snapshots that name the person: the
/// inbox's landed and rejected copies, the shop's exports, the `main/`
/// inspection tables (written by `normalize`) and the `fast/` delta tables (of
/// `serve`'s fast lane), all of them; how many.
fn delete_named_files(root: &DataRoot, shop: &str, inbox: Option<&Path>, person: &Person, customer: &Customer) -> Result<usize> {
    let mut deleted = 0;
    let mut person = person.clone();
    // A request by email alone for someone the data never knew still clears copies naming them.
    person.emails.extend(customer.email.iter().map(|e| e.to_lowercase()));
    if let Some(inbox) = inbox {
        for done in ["landed", "rejected"] {
            deleted += delete_named_under(&inbox.join(done), &person)?;
        }
    }
    for name in root.list(&format!("{shop}/privacy/exports"))? {
        let rel = format!("{shop}/privacy/exports/{name}");
        if root.get(&rel)?.is_some_and(|bytes| person.named_in(&bytes)) {
            root.delete(&rel)?;
            deleted += 1;
        }
    }
    // The inspection tables, and the fast lane's delta tables (user and
    // interaction rows by customer); the next full cycle holds what they did.
    for dir in ["main", "fast"] {
        if !root.subdirs(&format!("{shop}/{dir}"))?.is_empty() {
            root.delete_dir(&format!("{shop}/{dir}"))?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Deletes the files under `dir` that name the person (and a rejected file's
/// `.reason` beside it).
fn delete_named_under(dir: &Path, person: &Person) -> Result<usize> {
    let mut deleted = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            deleted += delete_named_under(&path, person)?;
        } else if std::fs::read(&path).is_ok_and(|bytes| person.named_in(&bytes)) {
            std::fs::remove_file(&path)?;
            let _ = std::fs::remove_file(path.with_extension(format!("{}.reason", path.extension().and_then(|e| e.to_str()).unwrap_or(""))));
            deleted += 1;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_loses_the_persons_fields_and_keeps_the_rest() {
        let person = Person { customer_ids: [901].into(), emails: ["kai@example.com".into()].into(), browsers: ["c1-browser".into()].into(), ..Default::default() };
        let anonymous = HashMap::from([("c1-browser".to_string(), "anon-1".to_string())]);
        let order = r#"{"id":7001,"email":"KAI@example.com","customer":{"id":901},"billing_address":{"city":"Oslo"},"line_items":[{"id":1,"quantity":2,"title":"Mug"}],"total_price":"9010.00","note":"call me"}"#;
        let scrubbed: Value = serde_json::from_str(&scrub_record(order, &person, &anonymous)).unwrap();
        assert_eq!(scrubbed, serde_json::json!({"id":7001,"line_items":[{"id":1,"quantity":2,"title":"Mug"}],"total_price":"9010.00"}));
        let event = r#"{"id":"e1","clientId":"c1-browser","data":{"checkout":{"email":"kai@example.com","lineItems":[]}},"context":{"document":{"location":{"href":"https://s/?e=kai@example.com"}}}}"#;
        let scrubbed: Value = serde_json::from_str(&scrub_record(event, &person, &anonymous)).unwrap();
        assert_eq!(scrubbed, serde_json::json!({"id":"e1","clientId":"anon-1","data":{"checkout":{"lineItems":[]}},"context":{"document":{"location":{"href":null}}}}));
        assert!(person.named_in(b"{\"id\": 901}") && !person.named_in(b"{\"total\": 9010}") && !person.named_in(b"{\"id\": 19015}"));
    }
}
