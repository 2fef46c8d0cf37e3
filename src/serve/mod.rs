//! `shopfeat serve`: the piece a shop app deploys. It receives Shopify's webhook
//! deliveries and the storefront's web-pixel events, writes each durably to its
//! shop's inbox before acknowledging it, and keeps the features and Gorse fresh
//! with debounced incremental cycles (land the inbox → compute → export what
//! changed) and scheduled full cycles.
//!
//! ```text
//! POST /webhooks/shopify   HMAC-verified delivery → <inbox>/webhooks/   (webhook)
//! POST /pixel/<shop>       pixel batch, token + origin checked → <inbox>/ (pixel)
//! GET  /healthz            the process and the data root answer
//! GET  /metrics            Prometheus text format (metrics)
//! ```
//!
//! Requests never wait for a cycle: a delivery is written and acknowledged
//! whatever the cycles are doing (back-pressure is a longer inbox, visible in
//! `/metrics` and `shopfeat status`). Cycles run one at a time per shop under
//! the shop's lock ([`crate::lock`]), at most `jobs` shops at once ([`cycles`]).
//!
//! The server faces the internet, so everything it takes is bounded: bodies
//! (`max_body`), pixel events (`max_event_bytes` each, `max_pixel_events` per
//! batch), what waits in each shop's inbox (separate quotas for webhooks and
//! pixel batches: 429 with `Retry-After` past them), connections (closed past
//! `max_connections`) and the time to send a request's head (`header_timeout`),
//! requests in flight per route (503 past it) and their time (408), and pixel
//! posts per token and second (429). Probes answer from state the server keeps, never from a fresh walk of
//! the data root.

pub mod cycles;
pub mod metrics;
mod pixel;
mod webhook;

pub use webhook::{sign, verify_hmac};

use crate::config::Secret;
use crate::features::pairs::PairOptions;
use crate::land::inbox::{Amount, Inbox, Usage};
use crate::pipeline::Source;
use crate::sinks::gorse;
use anyhow::{Context, Result};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// One shop `serve` takes deliveries for.
#[derive(Debug, Clone)]
pub struct ShopSpec {
    /// The folder under the root.
    pub id: String,
    /// `NAME.myshopify.com`: what Shopify names the shop in `X-Shopify-Shop-Domain`.
    pub domain: Option<String>,
    pub inbox: Inbox,
    /// What a scheduled full cycle lands (a historical fetch, or local exports).
    pub full_source: Option<Source>,
    pub gorse: Option<gorse::Options>,
    pub pairs: PairOptions,
    /// When full cycles run (UTC).
    pub schedule: Option<croner::Cron>,
    /// The token a pixel batch must carry; none: pixel intake is off for the shop.
    pub pixel_token: Option<Secret>,
    /// Storefront origins allowed to post pixel batches from a browser.
    pub origins: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: String,
    /// The data root's URL (each cycle opens it afresh).
    pub root: String,
    pub shops: Vec<ShopSpec>,
    /// The app's API secret, which signs webhook deliveries.
    pub secret: Secret,
    /// Quiet time after a shop's last delivery before its cycle starts …
    pub debounce: Duration,
    /// … but no longer than this after the first waiting delivery.
    pub max_delay: Duration,
    /// Shops whose cycles may run at once.
    pub jobs: usize,
    /// The largest request body accepted.
    pub max_body: usize,
    /// The largest number of events in one pixel batch.
    pub max_pixel_events: usize,
    /// The largest pixel event (its compact JSON), in bytes.
    pub max_event_bytes: usize,
    /// What may wait in a shop's inbox, webhook deliveries and pixel batches
    /// apart: past it, 429 with `Retry-After` until a cycle lands the backlog.
    pub webhook_quota: Amount,
    pub pixel_quota: Amount,
    /// Requests of one route (webhooks, pixel, probes) being served at once;
    /// more get 503 with `Retry-After`.
    pub max_in_flight: usize,
    /// The longest a request may take, its body included (408 after).
    pub request_timeout: Duration,
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// The longest a client may take to send a request's head, or stay idle
    /// between requests on a kept-alive connection; then it is closed.
    pub header_timeout: Duration,
    /// Pixel posts per second per ingest token (a burst of one second's worth).
    pub pixel_requests_per_sec: f64,
    /// `T` of every cycle (tests, replays); default: the time the cycle starts.
    pub as_of: Option<i64>,
    /// How long SIGTERM waits for running cycles before the process exits (they
    /// are safe to interrupt: outputs are all or nothing).
    pub shutdown_grace: Duration,
    /// The address Shopify reaches this server at (https://…): shops fetched
    /// from Shopify are subscribed to `bulk_operations/finish` deliveries there.
    pub public_url: Option<String>,
    /// When a cycle compacts its shop's raw store, and what it keeps.
    pub compaction: crate::land::compact::Policy,
    /// The fast lane: catalog, order and refund deliveries go to Gorse at once
    /// by a fast cycle (the rows they touch, [`crate::pipeline::fast_cycle`]),
    /// and a full recompute follows this long after the first fast cycle.
    /// `None`: every delivery waits for the debounced cycle.
    pub fast_catch_up: Option<Duration>,
    /// Each shop's events and order tables kept in memory from one cycle to
    /// the next ([`crate::normalize::Kept`]): a cycle whose landing changed
    /// neither (a catalog delivery) does not normalize them again. Costs
    /// about their size in memory per shop between cycles.
    pub keep_normalized: bool,
}

impl ServeOptions {
    pub fn new(listen: &str, root: &str, shops: Vec<ShopSpec>, secret: Secret) -> ServeOptions {
        ServeOptions {
            listen: listen.to_string(),
            root: root.to_string(),
            shops,
            secret,
            debounce: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            jobs: 2,
            max_body: 5 << 20,
            max_pixel_events: 10_000,
            max_event_bytes: 16 << 10,
            webhook_quota: Amount { files: 100_000, bytes: 1 << 30 },
            pixel_quota: Amount { files: 20_000, bytes: 256 << 20 },
            max_in_flight: 256,
            request_timeout: Duration::from_secs(15),
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            pixel_requests_per_sec: 50.0,
            as_of: None,
            shutdown_grace: Duration::from_secs(20),
            public_url: None,
            compaction: Default::default(),
            fast_catch_up: Some(Duration::from_secs(15 * 60)),
            keep_normalized: true,
        }
    }
}

/// What every handler shares.
pub(crate) struct AppState {
    pub options: ServeOptions,
    pub shops: HashMap<String, ShopSpec>,
    /// Shop id by `X-Shopify-Shop-Domain`.
    pub by_domain: HashMap<String, String>,
    /// Webhook ids already written or being written, per shop (Shopify retries
    /// and replays).
    pub seen: Mutex<webhook::SeenIds>,
    pub metrics: metrics::Metrics,
    pub cycles: cycles::Cycles,
    /// What waits in each shop's inbox: counted up as files are written, set
    /// from a listing after each cycle (so requests and scrapes never list).
    pub usage: HashMap<String, Mutex<Usage>>,
    /// When each shop's current generation was published, as last seen.
    pub published: Mutex<HashMap<String, chrono::DateTime<chrono::Utc>>>,
    /// The data root's last probe (`/healthz`).
    pub health: Mutex<Health>,
    /// Requests being served, per route.
    in_flight: HashMap<&'static str, Arc<Semaphore>>,
    /// Pixel posts per token.
    pub pixel_rate: pixel::RateLimiter,
    /// What each shop's last cycle kept of its normalization
    /// ([`ServeOptions::keep_normalized`]).
    pub kept: HashMap<String, Arc<Mutex<crate::normalize::Kept>>>,
}

/// What the last probe of the data root found.
#[derive(Debug, Clone)]
pub enum Health {
    NotProbedYet,
    Ok { at: Instant },
    Failed { at: Instant, why: String },
}

/// How often the data root is probed for `/healthz`.
const HEALTH_PROBE_EVERY: Duration = Duration::from_secs(10);

impl AppState {
    /// Counts `amount` into what waits in `shop`'s inbox (a file just written).
    pub(crate) fn add_usage(&self, shop: &str, pixel: bool, bytes: u64) {
        let mut usage = self.usage[shop].lock().expect("usage");
        if pixel { usage.pixel.add(1, bytes) } else { usage.webhooks.add(1, bytes) }
        self.metrics.inbox(shop, &usage);
    }

    /// Whether one more file of `bytes` fits `shop`'s quota of its kind.
    pub(crate) fn fits_quota(&self, shop: &str, pixel: bool, bytes: u64) -> bool {
        let usage = *self.usage[shop].lock().expect("usage");
        let (now, quota) = if pixel { (usage.pixel, self.options.pixel_quota) } else { (usage.webhooks, self.options.webhook_quota) };
        now.files < quota.files && now.bytes + bytes <= quota.bytes
    }

    /// When a client refused for the quota should try again: once a cycle has
    /// had time to land the backlog.
    pub(crate) fn quota_retry_after(&self) -> Duration {
        self.options.max_delay + Duration::from_secs(5)
    }

    /// Sets what waits in `shop`'s inbox from a listing.
    pub(crate) fn set_usage(&self, shop: &str, usage: Usage) {
        *self.usage[shop].lock().expect("usage") = usage;
        self.metrics.inbox(shop, &usage);
    }
}

/// Why a request was refused, carried on its response for the refusal metric.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refusal(pub &'static str);

/// A refusal: `status` with `message`, counted by `reason`.
pub(crate) fn refuse(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Response {
    let mut response = (status, message.into()).into_response();
    response.extensions_mut().insert(Refusal(reason));
    response
}

/// A refusal that tells the client when to come back.
pub(crate) fn refuse_for(status: StatusCode, reason: &'static str, message: impl Into<String>, retry_after: Duration) -> Response {
    let mut response = refuse(status, reason, message);
    let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
    response
}

/// Serves until SIGTERM or Ctrl-C (or `shutdown` resolves): binds `listen`, then
/// reports the bound address through `bound` (port 0 picks a free one).
pub async fn serve(options: ServeOptions, bound: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(&options.listen).await.with_context(|| format!("cannot listen on {}", options.listen))?;
    let addr = listener.local_addr()?;
    let state = Arc::new(app_state(options)?);
    tracing::info!("listening on http://{addr} for {} shops: {}", state.shops.len(), state.shops.keys().cloned().collect::<Vec<_>>().join(", "));
    if let Some(tx) = bound {
        let _ = tx.send(addr);
    }
    // The listener answers at once: subscriptions (each with its retries) and
    // the probes run beside it.
    let subscriptions = tokio::spawn(subscribe_bulk_finish(state.clone()));
    let stop_probing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = probe_health(state.clone(), stop_probing.clone());
    let workers = cycles::start(state.clone());
    accept(listener, router(state.clone()), &state, shutdown).await;
    stop_probing.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || prober.join()).await;
    if tokio::time::timeout(state.options.shutdown_grace, subscriptions).await.is_err() {
        tracing::warn!("webhook subscriptions still running after {:?}: left unfinished", state.options.shutdown_grace);
    }
    // Every accepted delivery is written (handlers ran to their end); now let
    // running cycles finish, up to the grace period.
    tracing::info!("stopped accepting requests; waiting up to {:?} for running cycles", state.options.shutdown_grace);
    state.cycles.stop();
    if tokio::time::timeout(state.options.shutdown_grace, futures::future::join_all(workers)).await.is_err() {
        tracing::warn!("cycles still running after {:?}: exiting anyway (their outputs are all or nothing)", state.options.shutdown_grace);
    }
    Ok(())
}

/// Serves connections until `shutdown`, then lets every request in flight end.
/// At most `max_connections` are open at once (more are closed as they arrive),
/// and each is HTTP/1 with `header_timeout` to send a request's head: a client
/// that trickles its headers, or idles on a kept-alive connection, is cut off.
async fn accept(listener: tokio::net::TcpListener, router: Router, state: &AppState, shutdown: impl std::future::Future<Output = ()>) {
    let most = state.options.max_connections.clamp(1, u32::MAX as usize);
    let open = Arc::new(Semaphore::new(most));
    let closing = tokio::sync::watch::channel(false).0;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors, say: wait rather than spin.
                Err(e) => {
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            state.metrics.refusal("connection", "connections");
            continue; // dropped: closed at once
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let mut closed = closing.subscribe();
        let header_timeout = state.options.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout);
            let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = closed.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    // Idle connections close now; those serving a request finish it first.
    closing.send_replace(true);
    let _ = open.acquire_many(most as u32).await;
}

/// Subscribes every shop fetched from Shopify to `bulk_operations/finish` at
/// the public URL, so its full cycles' fetches stop polling as soon as Shopify
/// says an operation finished. A refusal is logged: polling still works.
async fn subscribe_bulk_finish(state: Arc<AppState>) {
    let Some(public) = &state.options.public_url else { return };
    let endpoint = format!("{}/webhooks/shopify", public.trim_end_matches('/'));
    for spec in state.shops.values() {
        if let Some(Source::Shopify(fetch)) = &spec.full_source {
            match crate::shopify::subscribe_bulk_finish(fetch, &endpoint).await {
                Ok(()) => tracing::info!("shop {}: subscribed to bulk_operations/finish at {endpoint}", spec.id),
                Err(e) => tracing::warn!("shop {}: {e:#} (fetches poll instead)", spec.id),
            }
        }
    }
}

/// SIGTERM (Kubernetes, systemd) or Ctrl-C.
pub async fn termination() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
    }
}

/// Probes the data root every [`HEALTH_PROBE_EVERY`] with one client, on a
/// thread of its own (an object-store client blocks), and keeps what it found for
/// `/healthz`; ends when `stop` is set.
fn probe_health(state: Arc<AppState>, stop: Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut root: Option<crate::storage::DataRoot> = None;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if root.is_none() {
                match crate::storage::DataRoot::open(&state.options.root) {
                    Ok(r) => root = Some(r),
                    Err(e) => *state.health.lock().expect("health") = Health::Failed { at: Instant::now(), why: format!("{e:#}") },
                }
            }
            if let Some(r) = &root {
                let health = match r.get("healthz-probe") {
                    Ok(_) => Health::Ok { at: Instant::now() },
                    Err(e) => Health::Failed { at: Instant::now(), why: format!("{e:#}") },
                };
                *state.health.lock().expect("health") = health;
            }
            let next = Instant::now() + HEALTH_PROBE_EVERY;
            while Instant::now() < next && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    })
}

fn app_state(options: ServeOptions) -> Result<AppState> {
    // Weak secrets fail open (an empty HMAC key lets anyone sign deliveries):
    // refused here too, for callers that build the options themselves.
    options.secret.check_strong("the webhook secret (SHOPIFY_API_SECRET or [shopify] api_secret)")?;
    let mut shops = HashMap::new();
    let mut by_domain = HashMap::new();
    let mut seen = webhook::SeenIds::default();
    let mut usage = HashMap::new();
    for spec in &options.shops {
        if let Some(token) = &spec.pixel_token {
            token.check_strong(&format!("the pixel ingest token of shop {}", spec.id))?;
        }
        let removed = spec.inbox.remove_litter()?;
        if removed > 0 {
            tracing::info!("removed {removed} half-written inbox files of shop {} (never acknowledged)", spec.id);
        }
        if let Some(domain) = &spec.domain {
            by_domain.insert(domain.to_ascii_lowercase(), spec.id.clone());
        }
        for id in spec.inbox.seen_webhook_ids()? {
            seen.remember(&spec.id, &id);
        }
        usage.insert(spec.id.clone(), Mutex::new(spec.inbox.usage()));
        shops.insert(spec.id.clone(), spec.clone());
    }
    let cycles = cycles::Cycles::new(options.jobs, shops.keys());
    let metrics = metrics::Metrics::new();
    for (shop, u) in &usage {
        metrics.inbox(shop, &u.lock().expect("usage"));
    }
    let in_flight = ROUTES.iter().map(|r| (*r, Arc::new(Semaphore::new(options.max_in_flight.max(1))))).collect();
    let pixel_rate = pixel::RateLimiter::new(options.pixel_requests_per_sec);
    let kept = shops.keys().map(|shop| (shop.clone(), Arc::default())).collect();
    Ok(AppState {
        options,
        shops,
        by_domain,
        seen: Mutex::new(seen),
        metrics,
        cycles,
        usage,
        published: Mutex::new(HashMap::new()),
        health: Mutex::new(Health::NotProbedYet),
        in_flight,
        pixel_rate,
        kept,
    })
}

/// The routes, as metrics and limits name them.
const ROUTES: [&str; 5] = ["webhook", "pixel", "healthz", "metrics", "other"];

fn route_of(path: &str) -> &'static str {
    match path {
        "/webhooks/shopify" => "webhook",
        "/healthz" => "healthz",
        "/metrics" => "metrics",
        p if p.starts_with("/pixel/") => "pixel",
        _ => "other",
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/webhooks/shopify", post(webhook::receive))
        .route("/pixel/{shop}", post(pixel::receive).options(pixel::preflight))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(state.options.max_body))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Every request: at most `max_in_flight` at once per route (503 past it),
/// at most `request_timeout` long (408), counted by route and status, and by
/// reason when refused.
async fn guard(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = route_of(request.uri().path());
    let response = match state.in_flight[route].clone().try_acquire_owned() {
        Err(_) => refuse_for(StatusCode::SERVICE_UNAVAILABLE, "busy", "too many requests in flight\n", Duration::from_secs(1)),
        Ok(_permit) => match tokio::time::timeout(state.options.request_timeout, next.run(request)).await {
            Ok(response) => response,
            // (A webhook's write goes on to its end: it runs apart from the request.)
            Err(_) => refuse(StatusCode::REQUEST_TIMEOUT, "timeout", "the request took too long\n"),
        },
    };
    let status = response.status();
    match response.extensions().get::<Refusal>() {
        Some(Refusal(reason)) => state.metrics.refusal(route, reason),
        // axum's own refusals: the body limit, a malformed request.
        None if status == StatusCode::PAYLOAD_TOO_LARGE => state.metrics.refusal(route, "too_large"),
        None if status.is_client_error() && route != "other" => state.metrics.refusal(route, "bad_request"),
        None => {}
    }
    state.metrics.request(route, status.as_u16());
    response
}

/// 200 while the last probe of the data root (every 10 s, in the background)
/// answered, 503 once it failed; nothing is opened or read per request.
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let health = state.health.lock().expect("health").clone();
    match health {
        Health::NotProbedYet => (StatusCode::OK, "ok (the data root is being probed)\n").into_response(),
        Health::Ok { at } => (StatusCode::OK, format!("ok (data root answered {:.0} s ago)\n", at.elapsed().as_secs_f64())).into_response(),
        Health::Failed { at, why } => (StatusCode::SERVICE_UNAVAILABLE, format!("data root unreachable {:.0} s ago: {why}\n", at.elapsed().as_secs_f64())).into_response(),
    }
}

/// The metrics; the gauges come from what the server keeps (inbox usage,
/// publication times), never from a listing per scrape.
async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let now = chrono::Utc::now();
    for (shop, published) in state.published.lock().expect("published").iter() {
        let age = (now - *published).num_milliseconds() as f64 / 1000.0;
        state.metrics.feature_age.get_or_create(&metrics::ShopLabels { shop: shop.clone() }).set(age);
    }
    ([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode()).into_response()
}
