//! An in-process fake of Shopify's Admin GraphQL API, as strict as the real one,
//! serving a shop held in memory as bulk-JSONL records, through the real protocol:
//! - `POST /admin/api/<version>/graphql.json` with `X-Shopify-Access-Token`
//!   (401 and Shopify's error text for a bad token); a version out of support is
//!   answered as the oldest supported one, and `X-Shopify-API-Version` says which;
//! - every document is parsed ([`crate::graphql`]); its calculated cost is
//!   charged, and a query over 1,000 points is refused (`MAX_COST_EXCEEDED`);
//! - `bulkOperationRunQuery` runs Shopify's bulk validator (at least one
//!   connection, at most five, nested at most two deep, none inside a list field,
//!   `id` on a node holding a nested connection, no top-level `node`/`nodes`) and
//!   answers its messages in `userErrors`; the operation goes CREATED → RUNNING →
//!   COMPLETED (with `url`, `objectCount`, `rootObjectCount`) or FAILED
//!   (`errorCode`), by elapsed time; one running operation at a time before
//!   2026-01, five from it (`userErrors` `OPERATION_IN_PROGRESS`);
//! - its output holds exactly the selected fields, and is ungrouped: lines in a
//!   shuffled order, children often before their parent, unless the mutation
//!   asks for `groupObjects: true`;
//! - the root connection's `query: "updated_at:>='…'"` filter;
//! - `bulkOperation(id:)` polling; the JSONL download at `url` (no token needed);
//! - `nodes(ids:)` and `node(id:)` over orders and refunds, with connections paged
//!   by `first`/`after` (at most 250) and their `pageInfo`;
//! - protected customer data (names, emails, phones, addresses) denied on demand:
//!   such a bulk query ends FAILED with `ACCESS_DENIED`;
//! - the cost throttle (a leaky bucket, `THROTTLED` with `throttleStatus`), 429 with
//!   `Retry-After`, bursts of 503.

use crate::graphql::{self, fields_of, Document, Field};
use crate::http::{self, Reply, Request};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Reads a shop directory's bulk files (`products.jsonl[.gz]`, …), children
/// attached to their parent by `__parentId` wherever they stand.
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
        let mut children: Vec<(String, String)> = vec![];
        for line in reader.lines() {
            let line = line.unwrap();
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&line).unwrap();
            match v["__parentId"].as_str() {
                Some(parent) => children.push((parent.to_string(), line)),
                None => {
                    let id = v["id"].as_str().unwrap().to_string();
                    records.push(Record { id, updated_at: v["updatedAt"].as_str().map(str::to_string), lines: vec![line] });
                }
            }
        }
        let index: BTreeMap<String, usize> = records.iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect();
        for (parent, line) in children {
            records[index[&parent]].lines.push(line);
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
    /// Charge every request its calculated cost from a bucket of 1,000 points
    /// refilled at 400 a second (empty when the fault is set).
    pub throttle: bool,
    /// The app has no access to protected customer data.
    pub deny_protected: bool,
    /// The `Retry-After` of the 429 answers (default `1`).
    pub retry_after: Option<String>,
    /// Operations complete with their `objectCount` but no `url`.
    pub lose_url: bool,
    /// Downloads end after half the lines.
    pub truncate: bool,
    /// How long a bulk operation runs (default 40 ms).
    pub operation_time: Option<Duration>,
    /// The next N `bulkOperationRunQuery` calls start their operation, then
    /// answer 503 (the answer lost on its way back, as after a timeout).
    pub lose_run_answers: u32,
}

/// Customer fields behind protected-customer-data approval.
const PROTECTED: &[&str] = &["email", "firstName", "lastName", "phone", "defaultAddress", "addresses", "displayName"];

/// API versions in support at the fake's clock (December 2026), oldest first.
const SUPPORTED: &[&str] = &["2026-01", "2026-04", "2026-07", "2026-10"];

struct Operation {
    id: String,
    /// The bulk query it runs.
    query: String,
    started: Instant,
    /// How long it runs (another app run's operations run longer).
    runs_for: Duration,
    created_at: String,
    jsonl: String,
    objects: u64,
    roots: u64,
    fails: Option<&'static str>,
}

impl Operation {
    fn status(&self) -> &'static str {
        let elapsed = self.started.elapsed();
        if elapsed < Duration::from_millis(10) {
            "CREATED"
        } else if elapsed < self.runs_for {
            "RUNNING"
        } else if self.fails.is_some() {
            "FAILED"
        } else {
            "COMPLETED"
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
    /// Every GraphQL document received, with the API version it went to; a bulk
    /// query's inner document too.
    documents: Mutex<Vec<(String, String)>>,
    throttled: Mutex<u64>,
    /// Webhook subscriptions: (topic, endpoint).
    subscriptions: Mutex<Vec<(String, String)>>,
}

pub struct Shopify {
    pub url: String,
    shared: Arc<Shared>,
}

const BUCKET: f64 = 1000.0;
const RESTORE: f64 = 400.0;

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
            documents: Mutex::default(),
            throttled: Mutex::new(0),
            subscriptions: Mutex::default(),
        });
        let server = shared.clone();
        let url = http::start(move |request| respond(&server, request));
        *shared.url.lock().unwrap() = url.clone();
        Shopify { url, shared }
    }

    pub fn set_clock(&self, clock: &str) {
        *self.shared.clock.lock().unwrap() = clock.to_string();
    }

    /// Sets the faults; turning the throttle on starts it with an empty bucket.
    pub fn set_faults(&self, faults: Faults) {
        if faults.throttle {
            *self.shared.bucket.lock().unwrap() = (0.0, Instant::now());
        }
        *self.shared.faults.lock().unwrap() = faults;
    }

    pub fn set_shop(&self, shop: Shop) {
        *self.shared.shop.lock().unwrap() = shop;
    }

    /// Starts `n` bulk operations of another run of the app, running for `runs_for`.
    /// Bulk operations started so far (each holds a slot of the shop's while it runs).
    pub fn operations_started(&self) -> usize {
        self.shared.operations.lock().unwrap().len()
    }

    pub fn occupy(&self, n: usize, runs_for: Duration) {
        let mut operations = self.shared.operations.lock().unwrap();
        for _ in 0..n {
            let id = format!("gid://shopify/BulkOperation/{}", 1000 + operations.len());
            let created_at = self.shared.clock.lock().unwrap().clone();
            operations.push(Operation { id, query: String::new(), started: Instant::now(), runs_for, created_at, jsonl: String::new(), objects: 0, roots: 0, fails: None });
        }
    }

    pub fn queries(&self) -> Vec<(String, Option<String>)> {
        self.shared.queries.lock().unwrap().clone()
    }

    /// Every GraphQL document received, with the API version of its endpoint.
    pub fn documents(&self) -> Vec<(String, String)> {
        self.shared.documents.lock().unwrap().clone()
    }

    pub fn throttled(&self) -> u64 {
        *self.shared.throttled.lock().unwrap()
    }

    pub fn faults(&self) -> Faults {
        self.shared.faults.lock().unwrap().clone()
    }

    /// The most bulk operations that were running at one moment.
    pub fn subscriptions(&self) -> Vec<(String, String)> {
        self.shared.subscriptions.lock().unwrap().clone()
    }

    pub fn most_running_at_once(&self) -> usize {
        let operations = self.shared.operations.lock().unwrap();
        operations
            .iter()
            .map(|o| operations.iter().filter(|p| p.started <= o.started && o.started < p.started + p.runs_for).count())
            .max()
            .unwrap_or(0)
    }
}

fn respond(shared: &Shared, request: &Request) -> Reply {
    if request.method == "GET" && request.path.starts_with("/bulk/") {
        let id = request.path.trim_start_matches("/bulk/").trim_end_matches(".jsonl");
        let operations = shared.operations.lock().unwrap();
        let truncate = shared.faults.lock().unwrap().truncate;
        return match operations.iter().find(|o| o.id.ends_with(&format!("/{id}"))) {
            Some(o) if truncate => {
                let half: String = o.jsonl.lines().take(o.jsonl.lines().count() / 2).map(|l| format!("{l}\n")).collect();
                Reply { content_type: "application/jsonl", ..Reply::text(200, &half) }
            }
            Some(o) => Reply { content_type: "application/jsonl", ..Reply::text(200, &o.jsonl) },
            None => Reply::text(404, "no such file"),
        };
    }
    let Some(version) = request.path.strip_prefix("/admin/api/").and_then(|p| p.strip_suffix("/graphql.json")).filter(|_| request.method == "POST") else {
        return Reply::text(404, "Not Found");
    };
    // Shopify answers an unsupported version as the oldest supported one.
    let version = if SUPPORTED.contains(&version) { version.to_string() } else { SUPPORTED[0].to_string() };
    let mut reply = answer(shared, request, &version);
    reply.headers.push(("X-Shopify-API-Version", version));
    reply
}

fn answer(shared: &Shared, request: &Request, version: &str) -> Reply {
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
            reply.headers.push(("Retry-After", faults.retry_after.clone().unwrap_or_else(|| "1".into())));
            return reply;
        }
    }
    let body: Value = match serde_json::from_slice(&request.body) {
        Ok(b) => b,
        Err(e) => return Reply::json(400, &json!({"errors": format!("bad JSON: {e}")})),
    };
    let text = body["query"].as_str().unwrap_or("");
    let variables = body.get("variables").cloned().unwrap_or(json!({}));
    shared.documents.lock().unwrap().push((version.to_string(), text.to_string()));
    let doc = match graphql::parse(text) {
        Ok(d) => d,
        Err(e) => return Reply::json(200, &json!({"errors": [{"message": e}]})),
    };
    let requested = graphql::cost(&doc, &variables);
    if requested > graphql::MAX_COST {
        return Reply::json(200, &json!({"errors": [{
            "message": format!("Query cost is {requested}, which exceeds the single query max cost limit ({}).", graphql::MAX_COST),
            "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": graphql::MAX_COST}
        }]}));
    }
    let throttle = shared.faults.lock().unwrap().throttle;
    let cost = if throttle { charge(shared, requested as f64) } else { Ok(json!({"requestedQueryCost": requested, "actualQueryCost": requested})) };
    let cost = match cost {
        Ok(cost) => cost,
        Err(status) => {
            *shared.throttled.lock().unwrap() += 1;
            return Reply::json(200, &json!({
                "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": null, "throttleStatus": status}}
            }));
        }
    };
    let Some(top) = fields_of(&doc.selections).next() else {
        return Reply::json(200, &json!({"errors": [{"message": "Parse error: empty document"}]}));
    };
    let data = match (doc.operation.as_str(), top.name.as_str()) {
        ("mutation", "bulkOperationRunQuery") => run_bulk(shared, top, &variables, version),
        ("mutation", "webhookSubscriptionCreate") => subscribe(shared, top, &variables, version),
        ("query", "bulkOperations") => Ok(recent(shared, version)),
        ("query", "bulkOperation") => poll(shared, top.arg("id", &variables).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()),
        ("query", "nodes") => nodes(shared, top, &variables),
        ("query", "node") => node(shared, top, &variables),
        (_, name) => return Reply::json(200, &json!({"errors": [{"message": format!("Field '{name}' doesn't exist on type 'QueryRoot'")}]})),
    };
    let lost = doc.operation == "mutation" && top.name == "bulkOperationRunQuery" && data.is_ok() && {
        let mut faults = shared.faults.lock().unwrap();
        let lose = faults.lose_run_answers > 0;
        faults.lose_run_answers = faults.lose_run_answers.saturating_sub(1);
        lose
    };
    if lost {
        return Reply::text(503, "Service Unavailable");
    }
    match data {
        Ok(data) => Reply::json(200, &json!({"data": data, "extensions": {"cost": cost}})),
        Err(message) => Reply::json(200, &json!({"errors": [{"message": message}]})),
    }
}

/// `webhookSubscriptionCreate`: the topic one of the enum's values; the
/// endpoint in `uri` from 2025-10 (`callbackUrl` before, where `uri` does not
/// exist), HTTPS only; one subscription per topic and address.
fn subscribe(shared: &Shared, top: &Field, variables: &Value, version: &str) -> Result<Value, String> {
    const TOPICS: &[&str] = &["BULK_OPERATIONS_FINISH", "ORDERS_CREATE", "ORDERS_UPDATED", "PRODUCTS_UPDATE", "PRODUCTS_CREATE", "PRODUCTS_DELETE", "CUSTOMERS_UPDATE", "APP_UNINSTALLED"];
    let topic = top.arg("topic", variables).and_then(|t| t.as_str().map(str::to_string)).ok_or("Variable $topic of type WebhookSubscriptionTopic! was provided invalid value")?;
    if !TOPICS.contains(&topic.as_str()) {
        return Err(format!("Variable $topic of type WebhookSubscriptionTopic! was provided invalid value: Expected \"{topic}\" to be one of: {}", TOPICS.join(", ")));
    }
    let input = top.arg("webhookSubscription", variables).ok_or("Variable $webhookSubscription of type WebhookSubscriptionInput! was provided invalid value")?;
    let (field, other) = if version >= "2025-10" { ("uri", "callbackUrl") } else { ("callbackUrl", "uri") };
    if version < "2025-10" && input.get(other).is_some() {
        return Err(format!("Variable $webhookSubscription of type WebhookSubscriptionInput! was provided invalid value for {other} (Field is not defined on WebhookSubscriptionInput)"));
    }
    let errors = |message: &str| Ok(json!({"webhookSubscriptionCreate": {"webhookSubscription": null, "userErrors": [{"field": ["webhookSubscription", field], "message": message}]}}));
    let Some(endpoint) = input.get(field).and_then(|v| v.as_str()).map(str::to_string) else {
        return errors(&format!("{field} can't be blank"));
    };
    if !endpoint.starts_with("https://") {
        return errors("Address protocol http:// is not supported");
    }
    let mut subscriptions = shared.subscriptions.lock().unwrap();
    if subscriptions.iter().any(|(t, e)| *t == topic && *e == endpoint) {
        return errors("Address for this topic has already been taken");
    }
    subscriptions.push((topic, endpoint));
    let id = format!("gid://shopify/WebhookSubscription/{}", subscriptions.len());
    Ok(json!({"webhookSubscriptionCreate": {"webhookSubscription": {"id": id}, "userErrors": []}}))
}

/// Takes the cost from the bucket, or says how full it is.
fn charge(shared: &Shared, cost: f64) -> Result<Value, Value> {
    let mut bucket = shared.bucket.lock().unwrap();
    let now = Instant::now();
    let available = (bucket.0 + now.duration_since(bucket.1).as_secs_f64() * RESTORE).min(BUCKET);
    let status = |available: f64| json!({"maximumAvailable": BUCKET, "currentlyAvailable": available.floor(), "restoreRate": RESTORE});
    if available < cost {
        *bucket = (available, now);
        return Err(status(available));
    }
    *bucket = (available - cost, now);
    Ok(json!({"requestedQueryCost": cost, "actualQueryCost": cost, "throttleStatus": status(available - cost)}))
}

fn user_error(message: String, code: &str) -> Result<Value, String> {
    Ok(json!({"bulkOperationRunQuery": {"bulkOperation": null, "userErrors": [{"field": ["query"], "message": message, "code": code}]}}))
}

/// The connection a child line of `entity` belongs to, by its GID's type.
fn connection_of(entity: &str, child_id: &str) -> &'static str {
    let kind = child_id.trim_start_matches("gid://shopify/").split('/').next().unwrap_or("");
    match (entity, kind) {
        ("products", "ProductVariant") => "variants",
        ("products", "Collection") => "collections",
        ("products", _) => "media",
        ("collections", _) => "products",
        ("orders", _) => "lineItems",
        _ => "",
    }
}

fn run_bulk(shared: &Shared, mutation: &Field, variables: &Value, version: &str) -> Result<Value, String> {
    let inner = mutation.arg("query", variables).and_then(|q| q.as_str().map(str::to_string)).unwrap_or_default();
    let grouped = mutation.arg("groupObjects", variables) == Some(json!(true));
    shared.documents.lock().unwrap().push((version.to_string(), inner.clone()));
    let doc: Document = match graphql::parse(&inner) {
        Ok(d) => d,
        Err(e) => return user_error(format!("Invalid bulk query: {e}"), "INVALID"),
    };
    if let Err(message) = graphql::validate_bulk(&doc) {
        return user_error(message, "INVALID");
    }
    let root = fields_of(&doc.selections).next().expect("validated: one top-level field");
    let entity = root.name.clone();
    let since = root.arg("query", &json!({})).and_then(|q| q.as_str().and_then(|q| q.split_once("updated_at:>='")).and_then(|(_, rest)| rest.split_once('\'')).map(|(t, _)| t.to_string()));
    let node = root.connection_node().expect("validated: the root is a connection").to_vec();

    let mut operations = shared.operations.lock().unwrap();
    let limit = if version >= "2026-01" { 5 } else { 1 };
    let running: Vec<&Operation> = operations.iter().filter(|o| matches!(o.status(), "CREATED" | "RUNNING")).collect();
    if running.len() >= limit {
        let message = if limit == 1 {
            format!("A bulk query operation for this app and shop is already in progress: {}.", running[0].id)
        } else {
            format!("Bulk query operations limit reached: an app can run {limit} bulk query operations at a time on a shop.")
        };
        return user_error(message, "OPERATION_IN_PROGRESS");
    }
    let shop = shared.shop.lock().unwrap();
    let Some(records) = shop.get(&entity) else {
        return user_error(format!("Invalid bulk query: Field '{entity}' doesn't exist on type 'QueryRoot'"), "INVALID");
    };
    // `updated_at:>='T'` keeps records updated at or after T (compared as instants).
    let after = |r: &Record| match (&since, &r.updated_at) {
        (None, _) => true,
        (Some(t), Some(u)) => instant(u) >= instant(t),
        (Some(_), None) => false,
    };
    let chosen: Vec<&Record> = records.iter().filter(|r| after(r)).collect();
    let mut lines = vec![];
    for record in &chosen {
        lines.push(graphql::project(&record.root(), &node, variables, false)?.to_string());
        for child in &record.lines[1..] {
            let child: Value = serde_json::from_str(child).unwrap();
            let connection = connection_of(&entity, child["id"].as_str().unwrap_or(""));
            if let Some(selection) = fields_of(&node).find(|f| f.name == connection).and_then(Field::connection_node) {
                let mut projected = graphql::project(&child, selection, variables, false)?;
                projected["__parentId"] = json!(record.id);
                lines.push(projected.to_string());
            }
        }
    }
    if !grouped {
        // Ungrouped, as Shopify writes from 2026-01: lines in no particular order.
        let n = operations.len();
        lines.sort_by_cached_key(|line| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (n, line).hash(&mut h);
            h.finish()
        });
    }
    shared.queries.lock().unwrap().push((entity.clone(), since));
    let faults = &mut shared.faults.lock().unwrap();
    let fails = if faults.fail_entity.as_deref() == Some(entity.as_str()) {
        faults.fail_entity = None;
        Some("INTERNAL_SERVER_ERROR")
    } else if faults.deny_protected && entity == "customers" && fields_of(&node).any(|f| PROTECTED.contains(&f.name.as_str())) {
        Some("ACCESS_DENIED")
    } else {
        None
    };
    let id = format!("gid://shopify/BulkOperation/{}", 1000 + operations.len());
    let created_at = shared.clock.lock().unwrap().clone();
    let jsonl: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let runs_for = faults.operation_time.unwrap_or(Duration::from_millis(40));
    operations.push(Operation { id: id.clone(), query: inner.clone(), started: Instant::now(), runs_for, created_at: created_at.clone(), jsonl, objects: lines.len() as u64, roots: chosen.len() as u64, fails });
    Ok(json!({"bulkOperationRunQuery": {"bulkOperation": {"id": id, "status": "CREATED", "createdAt": created_at}, "userErrors": []}}))
}

/// `bulkOperations` (2026-01 on): the app's operations, newest first.
fn recent(shared: &Shared, version: &str) -> Value {
    if version < "2026-01" {
        return json!({"bulkOperations": null});
    }
    let operations = shared.operations.lock().unwrap();
    let nodes: Vec<Value> = operations.iter().rev().map(|o| json!({"id": o.id, "status": o.status(), "query": o.query, "createdAt": o.created_at})).collect();
    json!({"bulkOperations": {"nodes": nodes}})
}

fn poll(shared: &Shared, id: String) -> Result<Value, String> {
    let operations = shared.operations.lock().unwrap();
    let Some(o) = operations.iter().find(|o| o.id == id) else { return Ok(json!({"bulkOperation": null})) };
    let status = o.status();
    let done = status == "COMPLETED";
    let lose_url = shared.faults.lock().unwrap().lose_url;
    let url = (done && o.objects > 0 && !lose_url).then(|| format!("{}/bulk/{}.jsonl", shared.url.lock().unwrap(), o.id.rsplit('/').next().unwrap()));
    Ok(json!({"bulkOperation": {
        "id": o.id, "status": status,
        "errorCode": o.fails.filter(|_| status == "FAILED"),
        "objectCount": if done { o.objects.to_string() } else { "0".to_string() },
        "rootObjectCount": if done { o.roots.to_string() } else { "0".to_string() },
        "url": url, "createdAt": o.created_at,
        "completedAt": if done { json!(o.created_at) } else { Value::Null },
    }}))
}

/// An order's root line by GID.
fn order(shared: &Shared, id: &str) -> Option<Value> {
    shared.shop.lock().unwrap().get("orders")?.iter().find(|r| r.id == id).map(Record::root)
}

fn nodes(shared: &Shared, field: &Field, variables: &Value) -> Result<Value, String> {
    let ids = field.arg("ids", variables).and_then(|v| v.as_array().cloned()).unwrap_or_default();
    if ids.len() > 250 {
        return Err("The nodes field accepts at most 250 ids.".into());
    }
    let mut out = vec![];
    for id in ids {
        out.push(match order(shared, id.as_str().unwrap_or("")) {
            Some(o) => graphql::project(&o, &field.selections, variables, true)?,
            None => Value::Null,
        });
    }
    Ok(json!({"nodes": out}))
}

fn node(shared: &Shared, field: &Field, variables: &Value) -> Result<Value, String> {
    let id = field.arg("id", variables).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let found = if id.contains("/Refund/") {
        let shop = shared.shop.lock().unwrap();
        shop.get("orders").into_iter().flatten().flat_map(|r| r.root()["refunds"].as_array().cloned().unwrap_or_default()).find(|r| r["id"] == id.as_str())
    } else {
        order(shared, &id)
    };
    Ok(json!({"node": match found {
        Some(v) => graphql::project(&v, &field.selections, variables, true)?,
        None => Value::Null,
    }}))
}

fn instant(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t).map(|t| t.timestamp_micros()).unwrap_or(i64::MIN)
}
