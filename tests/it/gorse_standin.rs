//! An in-process stand-in for Gorse v0.5's REST API, on loopback, as Gorse's own
//! tests (server/rest_test.go, storage/data/database_test.go) describe it:
//! - `X-API-Key` checked when a key is set: 401 `unauthorized`; `/api/health/*` exempt;
//! - a body without `Content-Type: application/json` → 400; error bodies are plain
//!   text; success is `{"RowAffected": n}`;
//! - items and users are replaced whole on insert, the first occurrence of an id in
//!   a batch wins; `PUT /api/feedback` overwrites, `POST` adds to `Value`; feedback
//!   for an unknown user or item inserts a bare one; deleting a user or item
//!   deletes its feedback;
//! - labels: null, string, number, array of all strings or all numbers, or an
//!   object of those; anything else → 400;
//! - `GET /api/{items,users,feedback}?n=&cursor=` lists in id order, empty cursor
//!   at the end.
//! Faults are injected on writes only (reads are how the tests look at the result).

use crate::http::{self, Reply, Request};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Store {
    pub items: BTreeMap<String, Value>,
    pub users: BTreeMap<String, Value>,
    /// (type, user, item) → feedback
    pub feedback: BTreeMap<(String, String, String), Value>,
}

/// Shares of write requests that fail, each drawn independently per request.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// 500 before applying.
    pub server_error: f64,
    /// 429 (Retry-After: 0) before applying.
    pub too_many: f64,
    /// Applied, then answered after `slow_for` (past the client's timeout).
    pub slow: f64,
    pub slow_for: Duration,
    /// Applied, then the connection is closed without an answer.
    pub dropped: f64,
    /// Added to every write.
    pub latency: Duration,
}

struct Shared {
    key: Option<String>,
    store: Mutex<Store>,
    faults: Mutex<Faults>,
    rng: Mutex<u64>,
    /// "METHOD /api/<resource>" → requests received
    requests: Mutex<BTreeMap<String, u64>>,
}

pub struct Gorse {
    pub url: String,
    shared: Arc<Shared>,
}

impl Gorse {
    pub fn start(key: Option<&str>) -> Gorse {
        let shared = Arc::new(Shared {
            key: key.map(str::to_string),
            store: Mutex::default(),
            faults: Mutex::default(),
            rng: Mutex::new(0x9e37_79b9_7f4a_7c15),
            requests: Mutex::default(),
        });
        let server = shared.clone();
        let url = http::start(move |request| respond(&server, request));
        Gorse { url, shared }
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap() = faults;
    }

    pub fn store(&self) -> Store {
        self.shared.store.lock().unwrap().clone()
    }

    /// One item as the store holds it (cheaper than a copy of the whole store).
    pub fn item(&self, id: &str) -> Option<Value> {
        self.shared.store.lock().unwrap().items.get(id).cloned()
    }

    /// One feedback (type, user, item) as the store holds it.
    pub fn feedback(&self, kind: &str, user: &str, item: &str) -> Option<Value> {
        self.shared.store.lock().unwrap().feedback.get(&(kind.to_string(), user.to_string(), item.to_string())).cloned()
    }

    /// The ids of the users held.
    pub fn user_ids(&self) -> Vec<String> {
        self.shared.store.lock().unwrap().users.keys().cloned().collect()
    }

    pub fn requests(&self) -> BTreeMap<String, u64> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn total_requests(&self) -> u64 {
        self.requests().values().sum()
    }

    pub fn reset_counts(&self) {
        self.shared.requests.lock().unwrap().clear();
    }

    /// Every object of `resource` (`items`, `users`, `feedback`) read back through
    /// the listing API, page by page.
    pub fn list(&self, resource: &str) -> Vec<Value> {
        let field = match resource {
            "items" => "Items",
            "users" => "Users",
            _ => "Feedback",
        };
        let (mut all, mut cursor) = (vec![], String::new());
        loop {
            let page = self.get(&format!("/api/{resource}?n=100&cursor={cursor}"));
            all.extend(page[field].as_array().unwrap().iter().cloned());
            cursor = page["Cursor"].as_str().unwrap().to_string();
            if cursor.is_empty() {
                return all;
            }
        }
    }

    fn get(&self, path: &str) -> Value {
        let key = self.shared.key.clone().unwrap_or_default();
        let (status, body) = http::get(&self.url, path, &[("X-API-Key", &key)]);
        assert!(status.starts_with("HTTP/1.1 200"), "GET {path}: {status}");
        serde_json::from_str(&body).unwrap()
    }
}

/// Counts the request, draws a fault, and answers as Gorse would.
fn respond(shared: &Shared, request: &Request) -> Reply {
    let resource = request.path.split('/').take(3).collect::<Vec<_>>().join("/");
    *shared.requests.lock().unwrap().entry(format!("{} {resource}", request.method)).or_default() += 1;
    let write = request.method != "GET";
    let faults = shared.faults.lock().unwrap().clone();
    let roll = if write { next_random(shared) } else { 1.0 };
    let mut threshold = faults.server_error;
    if roll < threshold {
        return Reply { delay: faults.latency, ..Reply::text(500, "internal server error") };
    }
    threshold += faults.too_many;
    if roll < threshold {
        let mut reply = Reply::text(429, "too many requests");
        reply.headers.push(("Retry-After", "0".into()));
        return reply;
    }
    let mut reply = handle(shared, request);
    reply.delay = if write { faults.latency } else { Duration::ZERO };
    threshold += faults.slow;
    if roll < threshold {
        reply.delay = faults.slow_for; // applied, answered too late
    } else if roll < threshold + faults.dropped {
        reply.drop = true; // applied, never answered
    }
    reply
}

fn next_random(shared: &Shared) -> f64 {
    let mut state = shared.rng.lock().unwrap();
    // xorshift64*: reproducible fault sequences.
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
}

fn handle(shared: &Shared, request: &Request) -> Reply {
    if let Some(key) = &shared.key {
        if !request.path.starts_with("/api/health") && request.headers.get("x-api-key") != Some(key) {
            return Reply::text(401, "unauthorized");
        }
    }
    if matches!(request.method.as_str(), "POST" | "PUT") && !request.headers.get("content-type").is_some_and(|c| c.starts_with("application/json")) {
        return Reply::text(400, "unsupported content type");
    }
    let mut store = shared.store.lock().unwrap();
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    let result = match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["api", "health", ..]) => Ok(json!({"Ready": true})),
        ("POST", ["api", "items"]) => insert(&request.body, "ItemId", &mut store.items, item),
        ("POST", ["api", "users"]) => insert(&request.body, "UserId", &mut store.users, user),
        ("PUT", ["api", "feedback"]) => feedback(&request.body, &mut store, true),
        ("POST", ["api", "feedback"]) => feedback(&request.body, &mut store, false),
        ("DELETE", ["api", "item", id]) => {
            let n = store.items.remove(*id).is_some() as u64;
            store.feedback.retain(|(_, _, i), _| i != id);
            Ok(json!({"RowAffected": n}))
        }
        ("DELETE", ["api", "user", id]) => {
            let n = store.users.remove(*id).is_some() as u64;
            store.feedback.retain(|(_, u, _), _| u != id);
            Ok(json!({"RowAffected": n}))
        }
        ("DELETE", ["api", "feedback", t, u, i]) => {
            let n = store.feedback.remove(&(t.to_string(), u.to_string(), i.to_string())).is_some() as u64;
            Ok(json!({"RowAffected": n}))
        }
        ("GET", ["api", "items"]) => Ok(page(&store.items, &request.query, "Items")),
        ("GET", ["api", "users"]) => Ok(page(&store.users, &request.query, "Users")),
        ("GET", ["api", "feedback"]) => {
            let keyed: BTreeMap<String, Value> = store.feedback.iter().map(|((t, u, i), v)| (format!("{t}/{u}/{i}"), v.clone())).collect();
            Ok(page(&keyed, &request.query, "Feedback"))
        }
        _ => return Reply::text(404, "404 page not found"),
    };
    match result {
        Ok(v) => Reply::json(200, &v),
        Err(why) => Reply::text(400, &why),
    }
}

fn page(objects: &BTreeMap<String, Value>, query: &BTreeMap<String, String>, field: &str) -> Value {
    let n: usize = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(10);
    let cursor = query.get("cursor").cloned().unwrap_or_default();
    let rest: Vec<(&String, &Value)> = objects.iter().filter(|(k, _)| cursor.is_empty() || k.as_str() > cursor.as_str()).collect();
    let taken: Vec<Value> = rest.iter().take(n).map(|(_, v)| (*v).clone()).collect();
    let next = if rest.len() > n { rest[n - 1].0.clone() } else { String::new() };
    json!({ "Cursor": next, field: taken })
}

fn insert(body: &[u8], id_field: &str, table: &mut BTreeMap<String, Value>, shape: fn(&Map<String, Value>) -> Result<Value, String>) -> Result<Value, String> {
    let rows: Vec<Value> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut batch: BTreeMap<String, Value> = BTreeMap::new();
    for row in &rows {
        let row = row.as_object().ok_or("not an object")?;
        let id = row.get(id_field).and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or(format!("{id_field} is required"))?;
        if id.contains('/') {
            return Err(format!("invalid {id_field} {id:?}"));
        }
        let object = shape(row)?;
        batch.entry(id.to_string()).or_insert(object); // the first occurrence wins
    }
    let n = batch.len();
    table.extend(batch);
    Ok(json!({"RowAffected": n}))
}

fn item(row: &Map<String, Value>) -> Result<Value, String> {
    let categories = row.get("Categories").cloned().unwrap_or(json!([]));
    if !categories.as_array().is_some_and(|c| c.iter().all(Value::is_string)) {
        return Err("Categories must be strings".into());
    }
    Ok(json!({
        "ItemId": row["ItemId"],
        "IsHidden": row.get("IsHidden").and_then(Value::as_bool).unwrap_or(false),
        "Categories": categories,
        "Timestamp": timestamp(row.get("Timestamp"))?,
        "Labels": labels(row.get("Labels"))?,
        "Comment": row.get("Comment").and_then(Value::as_str).unwrap_or(""),
    }))
}

fn user(row: &Map<String, Value>) -> Result<Value, String> {
    Ok(json!({ "UserId": row["UserId"], "Labels": labels(row.get("Labels"))?, "Subscribe": [], "Comment": "" }))
}

fn feedback(body: &[u8], store: &mut Store, overwrite: bool) -> Result<Value, String> {
    let rows: Vec<Value> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut n = 0;
    for row in &rows {
        let field = |f: &str| row.get(f).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string).ok_or(format!("{f} is required"));
        let (kind, user, item) = (field("FeedbackType")?, field("UserId")?, field("ItemId")?);
        let value = row.get("Value").and_then(Value::as_f64).unwrap_or(0.0);
        let timestamp = timestamp(row.get("Timestamp"))?;
        store.users.entry(user.clone()).or_insert_with(|| json!({"UserId": user, "Labels": null, "Subscribe": [], "Comment": ""}));
        store.items.entry(item.clone()).or_insert_with(|| json!({"ItemId": item, "IsHidden": false, "Categories": [], "Timestamp": "0001-01-01T00:00:00Z", "Labels": null, "Comment": ""}));
        let key = (kind.clone(), user.clone(), item.clone());
        let value = match store.feedback.get(&key) {
            Some(old) if !overwrite => old["Value"].as_f64().unwrap_or(0.0) + value,
            _ => value,
        };
        store.feedback.insert(key, json!({"FeedbackType": kind, "UserId": user, "ItemId": item, "Value": value, "Timestamp": timestamp, "Comment": ""}));
        n += 1;
    }
    Ok(json!({"RowAffected": n}))
}

fn timestamp(value: Option<&Value>) -> Result<Value, String> {
    match value {
        None | Some(Value::Null) => Ok(json!("0001-01-01T00:00:00Z")),
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s).map(|_| json!(s)).map_err(|e| format!("parsing time {s:?}: {e}")),
        Some(other) => Err(format!("cannot unmarshal {other} into time")),
    }
}

fn labels(value: Option<&Value>) -> Result<Value, String> {
    fn plain(v: &Value) -> bool {
        match v {
            Value::Null | Value::String(_) | Value::Number(_) => true,
            Value::Array(a) => a.iter().all(Value::is_string) || a.iter().all(Value::is_number),
            _ => false,
        }
    }
    let value = value.cloned().unwrap_or(Value::Null);
    let ok = match &value {
        Value::Object(m) => m.values().all(plain),
        v => plain(v),
    };
    if ok {
        Ok(value)
    } else {
        Err(format!("unsupported labels: {value}"))
    }
}
