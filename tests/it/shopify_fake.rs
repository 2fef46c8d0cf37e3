//! An in-process fake of Shopify's Admin GraphQL API serving a shop held in
//! memory as bulk-JSONL records, through the real protocol:
//! - `POST /admin/api/<version>/graphql.json` with `X-Shopify-Access-Token`
//!   (401 and Shopify's error text for a bad token);
//! - `bulkOperationRunQuery` → an operation CREATED → RUNNING → COMPLETED (with
//!   `url` and `objectCount`) or FAILED (`errorCode`), by elapsed time; one
//!   running operation at a time (`userErrors` "already in progress");
//! - the root connection's `query: "updated_at:>='…'"` filter;
//! - `node(id:)` polling; the JSONL download at `url` (no token needed);
//! - the cost throttle (a leaky bucket, `THROTTLED` with `throttleStatus`), 429 with
//!   `Retry-After`, bursts of 503.

use crate::http::{self, Reply, Request};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A root object and its child lines, as a bulk operation writes them.
#[derive(Clone, Debug)]
pub struct Record {
    pub id: String,
    pub updated_at: Option<String>,
    pub lines: Vec<String>,
}

impl Record {
    pub fn root(&self) -> Value {
        serde_json::from_str(&self.lines[0]).unwrap()
    }

    pub fn set_root(&mut self, root: &Value) {
        self.updated_at = root["updatedAt"].as_str().map(str::to_string);
        self.lines[0] = root.to_string();
    }

    pub fn created_at(&self) -> Option<String> {
        self.root()["createdAt"].as_str().map(str::to_string)
    }
}

/// Entity → records in file order.
pub type Shop = BTreeMap<String, Vec<Record>>;

/// Reads a shop directory's bulk files (`products.jsonl[.gz]`, …).
pub fn read_shop(dir: &Path) -> Shop {
    let mut shop = Shop::new();
    for entity in ["products", "collections", "customers", "orders"] {
        let plain = dir.join(format!("{entity}.jsonl"));
        let reader: Box<dyn BufRead> = if plain.exists() {
            Box::new(BufReader::new(std::fs::File::open(plain).unwrap()))
        } else {
            Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(std::fs::File::open(dir.join(format!("{entity}.jsonl.gz"))).unwrap())))
        };
        let mut records: Vec<Record> = vec![];
        for line in reader.lines() {
            let line = line.unwrap();
            if line.trim().is_empty() {
                continue;
            }
            // Child lines carry `__parentId`; only root lines are parsed further.
            if line.contains("\"__parentId\"") {
                records.last_mut().expect("a child line after its parent").lines.push(line);
            } else {
                let v: Value = serde_json::from_str(&line).unwrap();
                let id = v["id"].as_str().unwrap().to_string();
                records.push(Record { id, updated_at: v["updatedAt"].as_str().map(str::to_string), lines: vec![line] });
            }
        }
        shop.insert(entity.to_string(), records);
    }
    shop
}

#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The next N GraphQL requests answer 503.
    pub server_errors: u32,
    /// The next N GraphQL requests answer 429 with `Retry-After: 1`.
    pub too_many: u32,
    /// The next bulk operation for this entity ends FAILED.
    pub fail_entity: Option<String>,
    /// Charge every request 10 points from a bucket of 40 refilled at 20/s.
    pub throttle: bool,
}

struct Operation {
    id: String,
    started: Instant,
    created_at: String,
    jsonl: String,
    objects: u64,
    fails: bool,
}

impl Operation {
    fn status(&self) -> &'static str {
        match self.started.elapsed().as_millis() {
            0..10 => "CREATED",
            10..40 => "RUNNING",
            _ if self.fails => "FAILED",
            _ => "COMPLETED",
        }
    }
}

struct Shared {
    token: String,
    url: Mutex<String>,
    shop: Mutex<Shop>,
    clock: Mutex<String>,
    faults: Mutex<Faults>,
    operations: Mutex<Vec<Operation>>,
    bucket: Mutex<(f64, Instant)>,
    /// Every bulk query run: (entity, filter).
    queries: Mutex<Vec<(String, Option<String>)>>,
    throttled: Mutex<u64>,
}

pub struct Shopify {
    pub url: String,
    shared: Arc<Shared>,
}

const BUCKET: f64 = 40.0;
const RESTORE: f64 = 20.0;
const COST: f64 = 10.0;

impl Shopify {
    pub fn start(token: &str, shop: Shop, clock: &str) -> Shopify {
        let shared = Arc::new(Shared {
            token: token.to_string(),
            url: Mutex::default(),
            shop: Mutex::new(shop),
            clock: Mutex::new(clock.to_string()),
            faults: Mutex::default(),
            operations: Mutex::default(),
            bucket: Mutex::new((BUCKET, Instant::now())),
            queries: Mutex::default(),
            throttled: Mutex::new(0),
        });
        let server = shared.clone();
        let url = http::start(move |request| respond(&server, request));
        *shared.url.lock().unwrap() = url.clone();
        Shopify { url, shared }
    }

    pub fn set_clock(&self, clock: &str) {
        *self.shared.clock.lock().unwrap() = clock.to_string();
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap() = faults;
    }

    pub fn set_shop(&self, shop: Shop) {
        *self.shared.shop.lock().unwrap() = shop;
    }

    pub fn queries(&self) -> Vec<(String, Option<String>)> {
        self.shared.queries.lock().unwrap().clone()
    }

    pub fn throttled(&self) -> u64 {
        *self.shared.throttled.lock().unwrap()
    }

    pub fn faults(&self) -> Faults {
        self.shared.faults.lock().unwrap().clone()
    }
}

fn respond(shared: &Shared, request: &Request) -> Reply {
    if request.method == "GET" && request.path.starts_with("/bulk/") {
        let id = request.path.trim_start_matches("/bulk/").trim_end_matches(".jsonl");
        let operations = shared.operations.lock().unwrap();
        return match operations.iter().find(|o| o.id.ends_with(&format!("/{id}"))) {
            Some(o) => Reply { content_type: "application/jsonl", ..Reply::text(200, &o.jsonl) },
            None => Reply::text(404, "no such file"),
        };
    }
    if request.method != "POST" || !(request.path.starts_with("/admin/api/") && request.path.ends_with("/graphql.json")) {
        return Reply::text(404, "Not Found");
    }
    if request.headers.get("x-shopify-access-token") != Some(&shared.token) {
        return Reply::json(401, &json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}));
    }
    {
        let mut faults = shared.faults.lock().unwrap();
        if faults.server_errors > 0 {
            faults.server_errors -= 1;
            return Reply::text(503, "Service Unavailable");
        }
        if faults.too_many > 0 {
            faults.too_many -= 1;
            let mut reply = Reply::json(429, &json!({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."}));
            reply.headers.push(("Retry-After", "1".into()));
            return reply;
        }
    }
    let throttle = shared.faults.lock().unwrap().throttle;
    let cost = if throttle { charge(shared) } else { Ok(json!({"requestedQueryCost": 1, "actualQueryCost": 1})) };
    let cost = match cost {
        Ok(cost) => cost,
        Err(status) => {
            *shared.throttled.lock().unwrap() += 1;
            return Reply::json(200, &json!({
                "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": {"cost": {"requestedQueryCost": COST, "actualQueryCost": null, "throttleStatus": status}}
            }));
        }
    };
    let body: Value = match serde_json::from_slice(&request.body) {
        Ok(b) => b,
        Err(e) => return Reply::json(400, &json!({"errors": format!("bad JSON: {e}")})),
    };
    let query = body["query"].as_str().unwrap_or("");
    let data = if query.contains("bulkOperationRunQuery") {
        run_bulk(shared, body["variables"]["query"].as_str().unwrap_or(""))
    } else if query.contains("node(") {
        poll(shared, body["variables"]["id"].as_str().unwrap_or(""))
    } else {
        return Reply::json(200, &json!({"errors": [{"message": "unsupported by the fake"}]}));
    };
    Reply::json(200, &json!({"data": data, "extensions": {"cost": cost}}))
}

/// Takes the cost from the bucket, or says how full it is.
fn charge(shared: &Shared) -> Result<Value, Value> {
    let mut bucket = shared.bucket.lock().unwrap();
    let now = Instant::now();
    let available = (bucket.0 + now.duration_since(bucket.1).as_secs_f64() * RESTORE).min(BUCKET);
    let status = |available: f64| json!({"maximumAvailable": BUCKET, "currentlyAvailable": available.floor(), "restoreRate": RESTORE});
    if available < COST {
        *bucket = (available, now);
        return Err(status(available));
    }
    *bucket = (available - COST, now);
    Ok(json!({"requestedQueryCost": COST, "actualQueryCost": COST, "throttleStatus": status(available - COST)}))
}

fn run_bulk(shared: &Shared, inner: &str) -> Value {
    let entity: String = inner.trim_start_matches(|c: char| c == '{' || c.is_whitespace()).chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    let since = inner.split_once("updated_at:>='").and_then(|(_, rest)| rest.split_once('\'')).map(|(t, _)| t.to_string());
    let mut operations = shared.operations.lock().unwrap();
    if let Some(running) = operations.iter().find(|o| matches!(o.status(), "CREATED" | "RUNNING")) {
        return json!({"bulkOperationRunQuery": {"bulkOperation": null, "userErrors": [
            {"field": null, "message": format!("A bulk query operation for this app and shop is already in progress: {}.", running.id)}
        ]}});
    }
    let shop = shared.shop.lock().unwrap();
    let Some(records) = shop.get(&entity) else {
        return json!({"bulkOperationRunQuery": {"bulkOperation": null, "userErrors": [{"field": ["query"], "message": format!("Field '{entity}' doesn't exist on type 'QueryRoot'")}]}});
    };
    // `updated_at:>='T'` keeps records updated at or after T (compared as instants).
    let after = |r: &Record| match (&since, &r.updated_at) {
        (None, _) => true,
        (Some(t), Some(u)) => instant(u) >= instant(t),
        (Some(_), None) => false,
    };
    let chosen: Vec<&Record> = records.iter().filter(|r| after(r)).collect();
    let objects = chosen.iter().map(|r| r.lines.len() as u64).sum();
    let mut jsonl = String::new();
    for line in chosen.iter().flat_map(|r| r.lines.iter()) {
        jsonl.push_str(line);
        jsonl.push('\n');
    }
    shared.queries.lock().unwrap().push((entity.clone(), since));
    let fails = {
        let mut faults = shared.faults.lock().unwrap();
        let fails = faults.fail_entity.as_deref() == Some(entity.as_str());
        if fails {
            faults.fail_entity = None;
        }
        fails
    };
    let id = format!("gid://shopify/BulkOperation/{}", 1000 + operations.len());
    let created_at = shared.clock.lock().unwrap().clone();
    operations.push(Operation { id: id.clone(), started: Instant::now(), created_at: created_at.clone(), jsonl, objects, fails });
    json!({"bulkOperationRunQuery": {"bulkOperation": {"id": id, "status": "CREATED", "createdAt": created_at}, "userErrors": []}})
}

fn poll(shared: &Shared, id: &str) -> Value {
    let operations = shared.operations.lock().unwrap();
    let Some(o) = operations.iter().find(|o| o.id == id) else { return json!({"node": null}) };
    let status = o.status();
    let done = status == "COMPLETED";
    let url = (done && o.objects > 0).then(|| format!("{}/bulk/{}.jsonl", shared.url.lock().unwrap(), o.id.rsplit('/').next().unwrap()));
    json!({"node": {
        "id": o.id, "status": status,
        "errorCode": if status == "FAILED" { json!("INTERNAL_SERVER_ERROR") } else { Value::Null },
        "objectCount": if done { o.objects.to_string() } else { "0".to_string() },
        "url": url, "createdAt": o.created_at,
        "completedAt": if done { json!(o.created_at) } else { Value::Null },
    }})
}

fn instant(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t).map(|t| t.timestamp_micros()).unwrap_or(i64::MIN)
}
