//! `POST /webhooks/shopify`: one Shopify webhook delivery.
//!
//! In order: the signature (`X-Shopify-Hmac-Sha256`, base64 HMAC-SHA256 of the
//! raw body keyed with the app's API secret, compared in constant time) → 401;
//! the shop (`X-Shopify-Shop-Domain`, a configured shop) → 404; a replay
//! (`X-Shopify-Webhook-Id` seen before) → 200, not written again; the topic
//! (`X-Shopify-Topic`): `bulk_operations/finish` wakes the fetch following that
//! operation, topics the landing does not read are acknowledged and dropped,
//! the others are written durably to the shop's inbox → 200. An oversized body
//! is refused (413) before any of this, so nothing refused is written anywhere.

use super::AppState;
use crate::config::Secret;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
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

pub(super) async fn receive(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> (StatusCode, &'static str) {
    let signed = header(&headers, "x-shopify-hmac-sha256").is_some_and(|h| verify_hmac(&state.options.secret, &body, h));
    if !signed {
        tracing::warn!("refused a webhook delivery with a missing or wrong signature");
        return (StatusCode::UNAUTHORIZED, "invalid signature\n");
    }
    let Some(domain) = header(&headers, "x-shopify-shop-domain") else {
        return (StatusCode::BAD_REQUEST, "missing X-Shopify-Shop-Domain\n");
    };
    let Some(shop) = state.by_domain.get(&domain.to_ascii_lowercase()).cloned() else {
        tracing::warn!("refused a webhook delivery for {domain}, which is not a configured shop");
        return (StatusCode::NOT_FOUND, "unknown shop\n");
    };
    let (Some(topic), Some(webhook_id)) = (header(&headers, "x-shopify-topic"), header(&headers, "x-shopify-webhook-id")) else {
        return (StatusCode::BAD_REQUEST, "missing X-Shopify-Topic or X-Shopify-Webhook-Id\n");
    };
    let (topic, webhook_id) = (topic.to_string(), webhook_id.to_string());
    if !state.seen.lock().expect("seen ids").claim(&shop, &webhook_id) {
        state.metrics.delivery(&shop, "duplicate");
        return (StatusCode::OK, "already received\n");
    }
    if topic == "bulk_operations/finish" {
        // The delivery itself holds no records: it only says polling can stop.
        crate::shopify::bulk::operation_finished();
        state.metrics.delivery(&shop, "bulk_finished");
        return (StatusCode::OK, "ok\n");
    }
    if !crate::land::webhooks::lands_topic(&topic) {
        tracing::debug!("ignored a {topic} delivery for shop {shop}: no feature reads it");
        state.metrics.delivery(&shop, "ignored");
        return (StatusCode::OK, "ignored\n");
    }
    let inbox = state.shops[&shop].inbox.clone();
    let written = {
        let (topic, webhook_id) = (topic.clone(), webhook_id.clone());
        tokio::task::spawn_blocking(move || inbox.write_webhook(&topic, &webhook_id, &body)).await.map_err(anyhow::Error::from).and_then(|w| w)
    };
    match written {
        Ok(_) => {
            state.metrics.delivery(&shop, "written");
            state.cycles.wake(&shop);
            (StatusCode::OK, "ok\n")
        }
        Err(e) => {
            // Not acknowledged, so Shopify retries it; the id is free again.
            tracing::error!("cannot write a {topic} delivery of shop {shop} to its inbox: {e:#}");
            state.seen.lock().expect("seen ids").release(&shop, &webhook_id);
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot store the delivery\n")
        }
    }
}

/// The webhook ids received per shop, the most recent [`SeenIds::CAPACITY`] of
/// each (Shopify retries a delivery for up to 48 hours; a replay older than what
/// is remembered is written again, which normalization deduplicates).
#[derive(Default)]
pub(crate) struct SeenIds {
    per_shop: std::collections::HashMap<String, (std::collections::HashSet<String>, std::collections::VecDeque<String>)>,
}

impl SeenIds {
    pub const CAPACITY: usize = 500_000;

    pub fn claim(&mut self, shop: &str, id: &str) -> bool {
        let (set, order) = self.per_shop.entry(shop.to_string()).or_default();
        if !set.insert(id.to_string()) {
            return false;
        }
        order.push_back(id.to_string());
        if order.len() > Self::CAPACITY {
            if let Some(oldest) = order.pop_front() {
                set.remove(&oldest);
            }
        }
        true
    }

    pub fn release(&mut self, shop: &str, id: &str) {
        if let Some((set, order)) = self.per_shop.get_mut(shop) {
            set.remove(id);
            order.retain(|o| o != id);
        }
    }
}
