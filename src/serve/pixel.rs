//! `POST /pixel/<shop>`: a batch of web-pixel events, as a Web Pixel extension
//! posts them (a JSON array, or NDJSON: one event per line).
//!
//! Checked in order: the shop (404), the browser's `Origin` when it sends one —
//! one of the shop's storefront origins (403) —, the shop's ingest token in
//! `X-Shopfeat-Token`, `Authorization: Bearer …` or `?token=` (a beacon cannot
//! set headers) (401), then the batch: every event a JSON object, at most
//! `max_pixel_events` of them (400 / 413). A good batch is written durably to
//! the inbox as one NDJSON file before the 200. CORS: allowed origins get
//! `Access-Control-Allow-Origin` on the answer and on the preflight; the check
//! of `Origin` is ours too, since CORS alone only stops a browser from reading
//! the answer, not the request from arriving.

use super::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The shop's spec, when `shop` is one; else the 404.
fn shop_of<'a>(state: &'a AppState, shop: &str) -> Result<&'a super::ShopSpec, Response> {
    state.shops.get(shop).ok_or_else(|| (StatusCode::NOT_FOUND, "unknown shop\n").into_response())
}

/// The request's `Origin` when it is allowed (or absent: a server-side sender);
/// else the 403.
fn allowed_origin(spec: &super::ShopSpec, headers: &HeaderMap) -> Result<Option<HeaderValue>, Response> {
    match headers.get(header::ORIGIN) {
        None => Ok(None),
        Some(origin) if origin.to_str().is_ok_and(|o| spec.origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(o.trim_end_matches('/')))) => Ok(Some(origin.clone())),
        Some(origin) => {
            tracing::warn!("refused pixel events for shop {} from origin {:?}", spec.id, origin);
            Err((StatusCode::FORBIDDEN, "origin not allowed\n").into_response())
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

/// The batch as NDJSON (one compact event per line) and its event count, or why
/// it is refused.
fn events_of(body: &[u8], max_events: usize) -> Result<(Vec<u8>, usize), (StatusCode, String)> {
    let text = std::str::from_utf8(body).map_err(|_| (StatusCode::BAD_REQUEST, "the body is not UTF-8\n".to_string()))?;
    let events: Vec<serde_json::Value> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).map_err(|e| (StatusCode::BAD_REQUEST, format!("the body is not a JSON array of events: {e}\n")))?
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| (StatusCode::BAD_REQUEST, format!("line {}: not JSON: {e}\n", i + 1))))
            .collect::<Result<_, _>>()?
    };
    if events.len() > max_events {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, format!("{} events in one batch; at most {max_events}\n", events.len())));
    }
    if let Some(i) = events.iter().position(|e| !e.is_object()) {
        return Err((StatusCode::BAD_REQUEST, format!("event {} is not a JSON object\n", i + 1)));
    }
    let mut ndjson = Vec::with_capacity(body.len() + events.len());
    for event in &events {
        serde_json::to_writer(&mut ndjson, event).expect("a JSON value serializes");
        ndjson.push(b'\n');
    }
    Ok((ndjson, events.len()))
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
        return with_cors((StatusCode::UNAUTHORIZED, "missing or wrong ingest token\n").into_response(), origin);
    }
    let (ndjson, count) = match events_of(&body, state.options.max_pixel_events) {
        Ok(batch) => batch,
        Err((status, why)) => return with_cors((status, why).into_response(), origin),
    };
    if count == 0 {
        return with_cors((StatusCode::OK, "{\"accepted\":0}\n").into_response(), origin);
    }
    let inbox = spec.inbox.clone();
    let response = match tokio::task::spawn_blocking(move || inbox.write_events(&ndjson)).await.map_err(anyhow::Error::from).and_then(|w| w) {
        Ok(_) => {
            state.metrics.pixel_events.get_or_create(&super::metrics::ShopLabels { shop: shop.clone() }).inc_by(count as u64);
            state.cycles.wake(&shop);
            (StatusCode::OK, format!("{{\"accepted\":{count}}}\n")).into_response()
        }
        Err(e) => {
            tracing::error!("cannot write pixel events of shop {shop} to its inbox: {e:#}");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot store the events\n").into_response()
        }
    };
    with_cors(response, origin)
}
