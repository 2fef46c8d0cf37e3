//! `POST /webhooks/shopify`: one Shopify webhook delivery.
//!
//! In order: the signature (`X-Shopify-Hmac-Sha256`, base64 HMAC-SHA256 of the
//! raw body keyed with the app's API secret, compared in constant time) → 401;
//! the shop (`X-Shopify-Shop-Domain`, a configured shop) → 404; a replay
//! (`X-Shopify-Webhook-Id` written before) → 200, not written again, and one
//! arriving while its first copy is being written waits for that write; past
//! the shop's webhook quota → 429; the topic
//! (`X-Shopify-Topic`): `bulk_operations/finish` wakes the fetch following that
//! operation, topics the landing does not read are acknowledged and dropped,
//! the others are written durably to the shop's inbox → 200. An oversized body
//! is refused (413) before any of this, so nothing refused is written anywhere.

use super::{refuse, refuse_for, AppState};
use crate::config::Secret;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Shopify's signature of `body`: base64 of its HMAC-SHA256 under `secret`.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, body).as_ref())
}

/// Whether `header` is Shopify's signature of `body` (constant-time comparison).
pub fn verify_hmac(secret: &Secret, body: &[u8], header: &str) -> bool {
    let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else { return false };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes());
    ring::hmac::verify(&key, body, &tag).is_ok()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

pub(super) async fn receive(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let signed = header(&headers, "x-shopify-hmac-sha256").is_some_and(|h| verify_hmac(&state.options.secret, &body, h));
    if !signed {
        tracing::warn!("refused a webhook delivery with a missing or wrong signature");
        return refuse(StatusCode::UNAUTHORIZED, "signature", "invalid signature\n");
    }
    let Some(domain) = header(&headers, "x-shopify-shop-domain") else {
        return refuse(StatusCode::BAD_REQUEST, "bad_request", "missing X-Shopify-Shop-Domain\n");
    };
    let Some(shop) = state.by_domain.get(&domain.to_ascii_lowercase()).cloned() else {
        tracing::warn!("refused a webhook delivery for {domain}, which is not a configured shop");
        return refuse(StatusCode::NOT_FOUND, "unknown_shop", "unknown shop\n");
    };
    let (Some(topic), Some(webhook_id)) = (header(&headers, "x-shopify-topic"), header(&headers, "x-shopify-webhook-id")) else {
        return refuse(StatusCode::BAD_REQUEST, "bad_request", "missing X-Shopify-Topic or X-Shopify-Webhook-Id\n");
    };
    let (topic, webhook_id) = (topic.to_string(), webhook_id.to_string());
    // A redelivery while the first copy is being written waits for that write:
    // acknowledged once it is on disk, written again if it failed.
    loop {
        let claim = state.seen.lock().expect("seen ids").claim(&shop, &webhook_id);
        match claim {
            Claim::New => break,
            Claim::Done => {
                state.metrics.delivery(&shop, "duplicate");
                return (StatusCode::OK, "already received\n").into_response();
            }
            Claim::Pending(mut outcome) => {
                let _ = outcome.wait_for(|o| o.is_some()).await;
            }
        }
    }
    if topic == "bulk_operations/finish" {
        // The delivery itself holds no records: it only says polling can stop.
        state.seen.lock().expect("seen ids").finish(&shop, &webhook_id, true);
        crate::shopify::bulk::operation_finished();
        state.metrics.delivery(&shop, "bulk_finished");
        return (StatusCode::OK, "ok\n").into_response();
    }
    if crate::privacy::is_compliance_topic(&topic) {
        // Acknowledged once written; the shop's next cycle carries it out.
        let written = tokio::spawn(write_delivery(state.clone(), shop, topic, webhook_id, body, true));
        return match written.await {
            Ok(true) => (StatusCode::OK, "ok\n").into_response(),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "cannot store the request\n").into_response(),
        };
    }
    if topic == "app/uninstalled" || crate::land::webhooks::lands_topic(&topic) {
        // Deliveries after an uninstall mean the app is installed again.
        let inbox = state.shops[&shop].inbox.clone();
        let uninstalled = topic == "app/uninstalled";
        if uninstalled != inbox.uninstalled() {
            if let Err(e) = tokio::task::spawn_blocking(move || inbox.mark_uninstalled(uninstalled)).await.map_err(anyhow::Error::from).and_then(|w| w) {
                tracing::error!("shop {shop}: cannot record that the app was {}: {e:#}", if uninstalled { "uninstalled" } else { "installed again" });
            }
        }
    }
    if !crate::land::webhooks::lands_topic(&topic) {
        tracing::debug!("ignored a {topic} delivery for shop {shop}: no feature reads it");
        state.seen.lock().expect("seen ids").finish(&shop, &webhook_id, true);
        state.metrics.delivery(&shop, "ignored");
        return (StatusCode::OK, "ignored\n").into_response();
    }
    if !state.fits_quota(&shop, false, body.len() as u64) {
        state.seen.lock().expect("seen ids").finish(&shop, &webhook_id, false);
        tracing::warn!("shop {shop}: the inbox's webhook quota is full; refusing a {topic} delivery until a cycle lands the backlog");
        return refuse_for(StatusCode::TOO_MANY_REQUESTS, "quota", "the shop's inbox is full; try again later\n", state.quota_retry_after());
    }
    // The write runs to its end apart from this request: if Shopify hangs up
    // (its 5 s timeout), the delivery is still written, or its id released.
    let written = tokio::spawn(write_delivery(state.clone(), shop, topic, webhook_id, body, false));
    match written.await {
        Ok(true) => (StatusCode::OK, "ok\n").into_response(),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "cannot store the delivery\n").into_response(),
    }
}

/// Writes one delivery durably and settles its id: remembered once written,
/// released when the write failed (not acknowledged, so Shopify retries it).
async fn write_delivery(state: Arc<AppState>, shop: String, topic: String, webhook_id: String, body: Bytes, privacy: bool) -> bool {
    let inbox = state.shops[&shop].inbox.clone();
    let bytes = body.len() as u64;
    let written = {
        let (topic, webhook_id) = (topic.clone(), webhook_id.clone());
        let write = move || match privacy {
            true => inbox.write_privacy(&topic, &webhook_id, &body),
            false => inbox.write_webhook(&topic, &webhook_id, &body),
        };
        tokio::task::spawn_blocking(write).await.map_err(anyhow::Error::from).and_then(|w| w)
    };
    state.seen.lock().expect("seen ids").finish(&shop, &webhook_id, written.is_ok());
    match written {
        Ok(_) => {
            if !privacy {
                state.add_usage(&shop, false, bytes);
            }
            state.metrics.delivery(&shop, if privacy { "privacy" } else { "written" });
            state.cycles.wake(&shop);
            true
        }
        Err(e) => {
            tracing::error!("cannot write a {topic} delivery of shop {shop} to its inbox: {e:#}");
            false
        }
    }
}

/// What a webhook id is to the server.
pub(crate) enum Claim {
    /// Never seen: the caller writes it (and then [`SeenIds::finish`]es it).
    New,
    /// Written before.
    Done,
    /// Being written by another request: its outcome (`Some(written)`) arrives here.
    Pending(tokio::sync::watch::Receiver<Option<bool>>),
}

/// The webhook ids received per shop, the most recent [`SeenIds::CAPACITY`] of
/// each (Shopify retries a delivery for up to 48 hours; a replay older than what
/// is remembered is written again, which normalization deduplicates), and those
/// being written.
#[derive(Default)]
pub(crate) struct SeenIds {
    per_shop: HashMap<String, ShopIds>,
}

#[derive(Default)]
struct ShopIds {
    done: HashSet<String>,
    order: VecDeque<String>,
    pending: HashMap<String, tokio::sync::watch::Sender<Option<bool>>>,
}

impl SeenIds {
    pub const CAPACITY: usize = 500_000;

    /// Claims `id` for writing, unless it is written or being written.
    pub fn claim(&mut self, shop: &str, id: &str) -> Claim {
        let ids = self.per_shop.entry(shop.to_string()).or_default();
        if ids.done.contains(id) {
            return Claim::Done;
        }
        if let Some(writing) = ids.pending.get(id) {
            return Claim::Pending(writing.subscribe());
        }
        ids.pending.insert(id.to_string(), tokio::sync::watch::channel(None).0);
        Claim::New
    }

    /// The claim of `id` ends: remembered when `written`, free again when not;
    /// requests waiting on it learn which.
    pub fn finish(&mut self, shop: &str, id: &str, written: bool) {
        let ids = self.per_shop.entry(shop.to_string()).or_default();
        if let Some(waiting) = ids.pending.remove(id) {
            waiting.send_replace(Some(written));
        }
        if written {
            ids.remember(id);
        }
    }

    /// `id` was written before this process started.
    pub fn remember(&mut self, shop: &str, id: &str) {
        self.per_shop.entry(shop.to_string()).or_default().remember(id);
    }
}

impl ShopIds {
    fn remember(&mut self, id: &str) {
        if !self.done.insert(id.to_string()) {
            return;
        }
        self.order.push_back(id.to_string());
        if self.order.len() > SeenIds::CAPACITY {
            if let Some(oldest) = self.order.pop_front() {
                self.done.remove(&oldest);
            }
        }
    }
}
