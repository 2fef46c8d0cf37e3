//! `POST /pixel/<shop>`: a batch of web-pixel events, as a Web Pixel extension
//! posts them (a JSON array, or NDJSON: one event per line).
//!
//! Checked in order: the shop (404), the browser's `Origin` when it sends one —
//! one of the shop's storefront origins (403) —, the shop's ingest token in
//! `X-Shopfeat-Token`, `Authorization: Bearer …` or `?token=` (a beacon cannot
//! set headers) (401), the token's rate (429), the batch: every event a JSON
//! object of at most `max_event_bytes`, at most `max_pixel_events` of them,
//! counted before they are all parsed (400 / 413), then the shop's pixel quota
//! (429). A good batch is written durably to
//! the inbox as one NDJSON file before the 200. CORS: allowed origins get
//! `Access-Control-Allow-Origin` on the answer and on the preflight; the check
//! of `Origin` is ours too, since CORS alone only stops a browser from reading
//! the answer, not the request from arriving.

use super::{refuse, refuse_for, AppState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The shop's spec, when `shop` is one; else the 404.
fn shop_of<'a>(state: &'a AppState, shop: &str) -> Result<&'a super::ShopSpec, Response> {
    state.shops.get(shop).ok_or_else(|| refuse(StatusCode::NOT_FOUND, "unknown_shop", "unknown shop\n"))
}

/// The request's `Origin` when it is allowed (or absent: a server-side sender);
/// else the 403.
fn allowed_origin(spec: &super::ShopSpec, headers: &HeaderMap) -> Result<Option<HeaderValue>, Response> {
    match headers.get(header::ORIGIN) {
        None => Ok(None),
        Some(origin) if origin.to_str().is_ok_and(|o| spec.origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(o.trim_end_matches('/')))) => Ok(Some(origin.clone())),
        Some(origin) => {
            tracing::warn!("refused pixel events for shop {} from origin {:?}", spec.id, origin);
            Err(refuse(StatusCode::FORBIDDEN, "origin", "origin not allowed\n"))
        }
    }
}

fn with_cors(mut response: Response, origin: Option<HeaderValue>) -> Response {
    if let Some(origin) = origin {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// The CORS preflight of a browser about to post with a token header.
pub(super) async fn preflight(State(state): State<Arc<AppState>>, Path(shop): Path<String>, headers: HeaderMap) -> Response {
    let spec = match shop_of(&state, &shop) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match allowed_origin(spec, &headers) {
        Err(r) => r,
        Ok(origin) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            let h = response.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type, x-shopfeat-token, authorization"));
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
            with_cors(response, origin)
        }
    }
}

/// The ingest token the request carries.
fn token_of(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let from_header = headers.get("x-shopfeat-token").and_then(|v| v.to_str().ok()).map(str::to_string);
    let bearer = || headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::to_string);
    let query = || uri.query().and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned()));
    from_header.or_else(bearer).or_else(query)
}

/// Equal in time independent of where they differ (tokens are secrets).
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Why a batch is refused: status, reason (for the metric), message.
type Refused = (StatusCode, &'static str, String);

/// The batch as NDJSON (one compact event per line) and its event count, or why
/// it is refused. Events are counted before they are parsed (NDJSON: its lines;
/// an array: one element at a time, stopping at the first one too many), and
/// each is held to `max_event_bytes`.
fn events_of(body: &[u8], max_events: usize, max_event_bytes: usize) -> Result<(Vec<u8>, usize), Refused> {
    let text = std::str::from_utf8(body).map_err(|_| (StatusCode::BAD_REQUEST, "bad_body", "the body is not UTF-8\n".to_string()))?;
    let mut ndjson = Vec::with_capacity(body.len() + 64);
    if text.trim_start().starts_with('[') {
        let mut refused = None;
        let mut parser = serde_json::Deserializer::from_str(text);
        let parsed = serde::Deserializer::deserialize_seq(&mut parser, EventArray { out: &mut ndjson, max_events, max_event_bytes, refused: &mut refused }).and_then(|n| parser.end().map(|()| n));
        return match (parsed, refused) {
            (_, Some(refused)) => Err(refused),
            (Err(e), None) => Err((StatusCode::BAD_REQUEST, "bad_body", format!("the body is not a JSON array of events: {e}\n"))),
            (Ok(count), None) => Ok((ndjson, count)),
        };
    }
    let lines: Vec<(usize, &str)> = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).collect();
    if lines.len() > max_events {
        return Err(too_many(&lines.len().to_string(), max_events));
    }
    for (i, line) in &lines {
        if line.len() > max_event_bytes {
            return Err(too_large(i + 1, line.len(), max_event_bytes));
        }
        let event: serde_json::Value = serde_json::from_str(line).map_err(|e| (StatusCode::BAD_REQUEST, "bad_body", format!("line {}: not JSON: {e}\n", i + 1)))?;
        if !event.is_object() {
            return Err(not_an_object(i + 1));
        }
        serde_json::to_writer(&mut ndjson, &event).expect("a JSON value serializes");
        ndjson.push(b'\n');
    }
    Ok((ndjson, lines.len()))
}

fn too_many(count: &str, max: usize) -> Refused {
    (StatusCode::PAYLOAD_TOO_LARGE, "too_many_events", format!("{count} events in one batch; at most {max}\n"))
}

fn too_large(event: usize, bytes: usize, max: usize) -> Refused {
    (StatusCode::PAYLOAD_TOO_LARGE, "event_too_large", format!("event {event} has {bytes} bytes; at most {max}\n"))
}

fn not_an_object(event: usize) -> Refused {
    (StatusCode::BAD_REQUEST, "bad_body", format!("event {event} is not a JSON object\n"))
}

/// A JSON array of events, read one element at a time into NDJSON.
struct EventArray<'a> {
    out: &'a mut Vec<u8>,
    max_events: usize,
    max_event_bytes: usize,
    /// Set when the batch is refused for what it holds (the parse then stops).
    refused: &'a mut Option<Refused>,
}

impl<'de> serde::de::Visitor<'de> for EventArray<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of events")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut events: A) -> Result<usize, A::Error> {
        let EventArray { out, max_events, max_event_bytes, refused } = self;
        let mut stop = |why: Refused| {
            *refused = Some(why);
            <A::Error as serde::de::Error>::custom("refused")
        };
        let mut count = 0;
        while count < max_events {
            let Some(event) = events.next_element::<serde_json::Value>()? else { return Ok(count) };
            count += 1;
            if !event.is_object() {
                return Err(stop(not_an_object(count)));
            }
            let start = out.len();
            serde_json::to_writer(&mut *out, &event).expect("a JSON value serializes");
            if out.len() - start > max_event_bytes {
                return Err(stop(too_large(count, out.len() - start, max_event_bytes)));
            }
            out.push(b'\n');
        }
        // One more element, skimmed without building it, is one too many.
        if events.next_element::<serde::de::IgnoredAny>()?.is_some() {
            return Err(stop(too_many(&format!("more than {max_events}"), max_events)));
        }
        Ok(count)
    }
}

/// Pixel posts allowed per token: a token bucket per shop (each shop has one
/// ingest token) refilled at `rate` per second, holding one second's worth.
pub(crate) struct RateLimiter {
    rate: f64,
    buckets: std::sync::Mutex<std::collections::HashMap<String, (f64, std::time::Instant)>>,
}

impl RateLimiter {
    pub fn new(rate: f64) -> RateLimiter {
        RateLimiter { rate: rate.max(0.001), buckets: Default::default() }
    }

    /// Takes one request from `key`'s bucket; else how long until one is there.
    pub fn take(&self, key: &str) -> Result<(), std::time::Duration> {
        let burst = self.rate.max(1.0);
        let now = std::time::Instant::now();
        let mut buckets = self.buckets.lock().expect("rate buckets");
        let (tokens, last) = buckets.entry(key.to_string()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(std::time::Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

pub(super) async fn receive(State(state): State<Arc<AppState>>, Path(shop): Path<String>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let spec = match shop_of(&state, &shop) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let origin = match allowed_origin(spec, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let authorized = match (&spec.pixel_token, token_of(&headers, &uri)) {
        (Some(expected), Some(given)) => same_secret(expected.expose(), &given),
        _ => false,
    };
    if !authorized {
        return with_cors(refuse(StatusCode::UNAUTHORIZED, "token", "missing or wrong ingest token\n"), origin);
    }
    // The token ships to every visitor's browser: what it may send is bounded.
    if let Err(wait) = state.pixel_rate.take(&shop) {
        return with_cors(refuse_for(StatusCode::TOO_MANY_REQUESTS, "rate", "too many pixel posts; slow down\n", wait), origin);
    }
    let (ndjson, count) = match events_of(&body, state.options.max_pixel_events, state.options.max_event_bytes) {
        Ok(batch) => batch,
        Err((status, reason, why)) => return with_cors(refuse(status, reason, why), origin),
    };
    if count == 0 {
        return with_cors((StatusCode::OK, "{\"accepted\":0}\n").into_response(), origin);
    }
    if !state.fits_quota(&shop, true, ndjson.len() as u64) {
        tracing::warn!("shop {shop}: the inbox's pixel quota is full; refusing pixel batches until a cycle lands the backlog");
        return with_cors(refuse_for(StatusCode::TOO_MANY_REQUESTS, "quota", "the shop's inbox is full; try again later\n", state.quota_retry_after()), origin);
    }
    // Written to its end apart from the request (a browser that leaves the page
    // does not cut a batch in half).
    let writer = state.clone();
    let written = tokio::spawn(async move {
        let inbox = writer.shops[&shop].inbox.clone();
        let bytes = ndjson.len() as u64;
        let written = tokio::task::spawn_blocking(move || inbox.write_events(&ndjson)).await.map_err(anyhow::Error::from).and_then(|w| w);
        match written {
            Ok(_) => {
                writer.add_usage(&shop, true, bytes);
                writer.metrics.pixel_events.get_or_create(&super::metrics::ShopLabels { shop: shop.clone() }).inc_by(count as u64);
                writer.cycles.wake(&shop);
                true
            }
            Err(e) => {
                tracing::error!("cannot write pixel events of shop {shop} to its inbox: {e:#}");
                false
            }
        }
    });
    let response = match written.await {
        Ok(true) => (StatusCode::OK, format!("{{\"accepted\":{count}}}\n")).into_response(),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "cannot store the events\n").into_response(),
    };
    with_cors(response, origin)
}
