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

pub mod cycles;
pub mod metrics;
mod pixel;
mod webhook;

pub use webhook::{sign, verify_hmac};

use crate::config::Secret;
use crate::features::pairs::PairOptions;
use crate::land::inbox::Inbox;
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
use std::time::Duration;

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
    /// `T` of every cycle (tests, replays); default: the time the cycle starts.
    pub as_of: Option<i64>,
    /// How long SIGTERM waits for running cycles before the process exits (they
    /// are safe to interrupt: outputs are all or nothing).
    pub shutdown_grace: Duration,
    /// The address Shopify reaches this server at (https://…): shops fetched
    /// from Shopify are subscribed to `bulk_operations/finish` deliveries there.
    pub public_url: Option<String>,
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
            as_of: None,
            shutdown_grace: Duration::from_secs(20),
            public_url: None,
        }
    }
}

/// What every handler shares.
pub(crate) struct AppState {
    pub options: ServeOptions,
    pub shops: HashMap<String, ShopSpec>,
    /// Shop id by `X-Shopify-Shop-Domain`.
    pub by_domain: HashMap<String, String>,
    /// Webhook ids already written, per shop (Shopify retries and replays).
    pub seen: Mutex<webhook::SeenIds>,
    pub metrics: metrics::Metrics,
    pub cycles: cycles::Cycles,
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
    subscribe_bulk_finish(&state).await;
    let workers = cycles::start(state.clone());
    axum::serve(listener, router(state.clone())).with_graceful_shutdown(shutdown).await.context("the HTTP server failed")?;
    // Every accepted delivery is written (handlers ran to their end); now let
    // running cycles finish, up to the grace period.
    tracing::info!("stopped accepting requests; waiting up to {:?} for running cycles", state.options.shutdown_grace);
    state.cycles.stop();
    if tokio::time::timeout(state.options.shutdown_grace, futures::future::join_all(workers)).await.is_err() {
        tracing::warn!("cycles still running after {:?}: exiting anyway (their outputs are all or nothing)", state.options.shutdown_grace);
    }
    Ok(())
}

/// Subscribes every shop fetched from Shopify to `bulk_operations/finish` at
/// the public URL, so its full cycles' fetches stop polling as soon as Shopify
/// says an operation finished. A refusal is logged: polling still works.
async fn subscribe_bulk_finish(state: &AppState) {
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

fn app_state(options: ServeOptions) -> Result<AppState> {
    let mut shops = HashMap::new();
    let mut by_domain = HashMap::new();
    let mut seen = webhook::SeenIds::default();
    for spec in &options.shops {
        let removed = spec.inbox.remove_litter()?;
        if removed > 0 {
            tracing::info!("removed {removed} half-written inbox files of shop {} (never acknowledged)", spec.id);
        }
        if let Some(domain) = &spec.domain {
            by_domain.insert(domain.to_ascii_lowercase(), spec.id.clone());
        }
        for id in spec.inbox.seen_webhook_ids()? {
            seen.claim(&spec.id, &id);
        }
        shops.insert(spec.id.clone(), spec.clone());
    }
    let cycles = cycles::Cycles::new(options.jobs, shops.keys());
    Ok(AppState { options, shops, by_domain, seen: Mutex::new(seen), metrics: metrics::Metrics::new(), cycles })
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/webhooks/shopify", post(webhook::receive))
        .route("/pixel/{shop}", post(pixel::receive).options(pixel::preflight))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(state.options.max_body))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_requests))
        .with_state(state)
}

/// Counts every request by route and status.
async fn count_requests(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let route = match path {
        "/webhooks/shopify" => "webhook",
        "/healthz" => "healthz",
        "/metrics" => "metrics",
        p if p.starts_with("/pixel/") => "pixel",
        _ => "other",
    };
    let response = next.run(request).await;
    state.metrics.request(route, response.status().as_u16());
    response
}

/// 200 when the data root answers (a read of a shop's generation pointer), 503
/// otherwise.
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let root = state.options.root.clone();
    let probe = tokio::task::spawn_blocking(move || crate::storage::DataRoot::open(&root).and_then(|r| r.get("healthz-probe").map(|_| ()))).await;
    match probe {
        Ok(Ok(())) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("data root unreachable: {e:#}\n")).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("health check failed: {e}\n")).into_response(),
    }
}

/// The metrics, with the gauges read now: inbox depth and feature age per shop.
async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let reader = state.clone();
    let readings = tokio::task::spawn_blocking(move || {
        let root = crate::storage::DataRoot::open(&reader.options.root).ok();
        let now = chrono::Utc::now();
        reader
            .shops
            .values()
            .map(|spec| {
                let age = root.as_ref().and_then(|r| crate::sinks::generation::current(r, &crate::sinks::parquet::features_dir(&spec.id)).ok().flatten()).and_then(|p| {
                    chrono::DateTime::parse_from_rfc3339(&p.published_at).ok().map(|t| (now - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0)
                });
                (spec.id.clone(), spec.inbox.depth(), age)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    for (shop, depth, age) in readings {
        let labels = metrics::ShopLabels { shop };
        state.metrics.inbox_files.get_or_create(&labels).set(depth as i64);
        if let Some(age) = age {
            state.metrics.feature_age.get_or_create(&labels).set(age);
        }
    }
    ([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode()).into_response()
}
