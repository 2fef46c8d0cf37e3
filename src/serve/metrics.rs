//! `/metrics`: what an operator graphs and alerts on, in Prometheus' text format.
//!
//! - `shopfeat_http_requests_total{route,status}`
//! - `shopfeat_webhook_deliveries_total{shop,outcome}`: written, duplicate, ignored
//! - `shopfeat_pixel_events_total{shop}`
//! - `shopfeat_refusals_total{route,reason}`: requests refused, by why (signature,
//!   unknown_shop, origin, token, bad_request, too_large, too_many_events,
//!   event_too_large, quota, rate, busy, timeout; route `connection`: connections
//!   past the cap)
//! - `shopfeat_inbox_files{shop}`: deliveries and batches waiting to land
//! - `shopfeat_inbox_bytes{shop,kind}`: their bytes (webhook, pixel)
//! - `shopfeat_cycles_total{shop,kind,outcome}`: incremental / full; ok, failed, busy
//! - `shopfeat_cycle_duration_seconds{shop,kind}`
//! - `shopfeat_cycle_queue{shop}`: 1 while a shop has data waiting for its cycle
//! - `shopfeat_feature_age_seconds{shop}`: since the current generation was published

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    pub route: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InboxLabels {
    pub shop: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShopLabels {
    pub shop: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub shop: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CycleLabels {
    pub shop: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CycleOutcomeLabels {
    pub shop: String,
    pub kind: String,
    pub outcome: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub refusals: Family<RefusalLabels, Counter>,
    pub deliveries: Family<OutcomeLabels, Counter>,
    pub pixel_events: Family<ShopLabels, Counter>,
    pub inbox_files: Family<ShopLabels, Gauge>,
    pub inbox_bytes: Family<InboxLabels, Gauge>,
    pub cycles: Family<CycleOutcomeLabels, Counter>,
    pub cycle_seconds: HistogramFamily<CycleLabels>,
    pub queued: Family<ShopLabels, Gauge>,
    pub feature_age: Family<ShopLabels, Gauge<f64, AtomicU64>>,
}

fn cycle_histogram() -> Histogram {
    // 50 ms … ~27 min: a sample shop's cycle to a large shop's full one.
    Histogram::new(exponential_buckets(0.05, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("shopfeat");
        let m = Metrics {
            requests: Family::default(),
            refusals: Family::default(),
            deliveries: Family::default(),
            pixel_events: Family::default(),
            inbox_files: Family::default(),
            inbox_bytes: Family::default(),
            cycles: Family::default(),
            cycle_seconds: Family::new_with_constructor(cycle_histogram as fn() -> Histogram),
            queued: Family::default(),
            feature_age: Family::default(),
            registry: Registry::default(),
        };
        registry.register("http_requests", "HTTP requests by route and status", m.requests.clone());
        registry.register("refusals", "Requests refused, by route and reason", m.refusals.clone());
        registry.register("webhook_deliveries", "Webhook deliveries by outcome (written, duplicate, ignored)", m.deliveries.clone());
        registry.register("pixel_events", "Web-pixel events written to the inbox", m.pixel_events.clone());
        registry.register("inbox_files", "Files waiting in the shop's inbox", m.inbox_files.clone());
        registry.register("inbox_bytes", "Bytes waiting in the shop's inbox, by kind (webhook, pixel)", m.inbox_bytes.clone());
        registry.register("cycles", "Cycles by kind (incremental, full) and outcome (ok, failed, busy)", m.cycles.clone());
        registry.register("cycle_duration_seconds", "Duration of cycles", m.cycle_seconds.clone());
        registry.register("cycle_queue", "1 while the shop has data waiting for a cycle", m.queued.clone());
        registry.register("feature_age_seconds", "Seconds since the shop's current feature generation was published", m.feature_age.clone());
        Metrics { registry, ..m }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    pub fn request(&self, route: &str, status: u16) {
        self.requests.get_or_create(&RequestLabels { route: route.to_string(), status }).inc();
    }

    pub fn refusal(&self, route: &str, reason: &str) {
        self.refusals.get_or_create(&RefusalLabels { route: route.to_string(), reason: reason.to_string() }).inc();
    }

    /// The inbox gauges of `shop` from what is known to wait in it.
    pub fn inbox(&self, shop: &str, usage: &crate::land::inbox::Usage) {
        self.inbox_files.get_or_create(&ShopLabels { shop: shop.to_string() }).set((usage.webhooks.files + usage.pixel.files) as i64);
        for (kind, amount) in [("webhook", usage.webhooks), ("pixel", usage.pixel)] {
            self.inbox_bytes.get_or_create(&InboxLabels { shop: shop.to_string(), kind: kind.to_string() }).set(amount.bytes as i64);
        }
    }

    pub fn delivery(&self, shop: &str, outcome: &str) {
        self.deliveries.get_or_create(&OutcomeLabels { shop: shop.to_string(), outcome: outcome.to_string() }).inc();
    }

    pub fn cycle(&self, shop: &str, kind: &str, outcome: &str, seconds: f64) {
        self.cycles.get_or_create(&CycleOutcomeLabels { shop: shop.to_string(), kind: kind.to_string(), outcome: outcome.to_string() }).inc();
        if outcome != "busy" {
            self.cycle_seconds.get_or_create(&CycleLabels { shop: shop.to_string(), kind: kind.to_string() }).observe(seconds);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
