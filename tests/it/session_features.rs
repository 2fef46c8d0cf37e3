//! session_features on `tests/fixtures/sessions`, checked by hand. T = 2025-03-01.
//!
//! Browser a: six events from 10:00 to 11:05 on 2025-02-01 (the 10:20 → 10:50 gap is
//! exactly 30:00: same session), ending in order 7001's checkout (customer 900);
//! then one page 30:00.001 after its last event: a new session, a bounce. Browser b:
//! a collection, a cart add and remove, a cart view, a search, no checkout. Browsers
//! c–f: one page each, from different referrers and devices; g only after T.

use crate::common::*;
use shopfeat::features::session;

fn sessions() -> Table {
    feature_table_on("sessions", "2025-03-01T00:00:00Z", session::build)
}

fn get(t: &Table, id: &str, column: &str) -> polars::prelude::AnyValue<'static> {
    t.get_by("session_id", id, column)
}

#[test]
fn sessions_split_on_gaps_over_thirty_minutes() {
    let t = sessions();
    let mut ids: Vec<String> = t.0.column("session_id").unwrap().str().unwrap().iter().flatten().map(str::to_string).collect();
    ids.sort();
    // session_id = client_id:start in ms.
    assert_eq!(ids, ["a:1738404000000", "a:1738409700001", "b:1739178000000", "c:1739347200000", "d:1739347200000", "e:1739347200000", "f:1739347200000"]);
}

#[test]
fn a_session_that_buys() {
    let t = sessions();
    let s = "a:1738404000000";
    let i = |c: &str| as_i64(get(&t, s, c));
    let b = |c: &str| get(&t, s, c) == polars::prelude::AnyValue::Boolean(true);
    let text = |c: &str| as_str(get(&t, s, c));
    assert_eq!(text("client_id").as_deref(), Some("a"));
    assert_eq!(i("customer_id"), Some(900)); // stitched by the checkout
    assert_eq!(i("started_at"), Some(ts("2025-02-01T10:00:00Z")));
    assert_eq!(i("ended_at"), Some(ts("2025-02-01T11:05:00Z")));
    assert_eq!(i("duration_seconds"), Some(3900));
    assert_eq!(i("event_count"), Some(6));
    assert_eq!((i("page_view_count"), i("product_view_count"), i("collection_view_count"), i("search_count")), (Some(1), Some(2), Some(0), Some(0)));
    assert_eq!((i("cart_add_count"), i("cart_remove_count"), i("cart_view_count")), (Some(1), Some(0), Some(0)));
    assert_eq!(i("unique_products_viewed"), Some(2));
    assert!(b("checkout_started") && b("checkout_completed"));
    assert_eq!(i("order_id"), Some(7001));
    assert_eq!(get(&t, s, "order_value").extract::<f64>(), Some(52.97));
    assert!(!b("is_bounce") && !b("cart_abandoned"));
    assert_eq!(text("landing_page").as_deref(), Some("/"));
    assert_eq!(text("exit_page").as_deref(), Some("/checkouts/c/thank-you"));
    assert_eq!(text("referrer_domain"), None);
    assert_eq!(text("traffic_source").as_deref(), Some("email")); // ?utm_medium=email
    assert_eq!(text("device_type").as_deref(), Some("mobile"));
}

#[test]
fn a_bounce_and_an_abandoned_cart() {
    let t = sessions();
    let s = "a:1738409700001";
    assert_eq!(as_i64(get(&t, s, "customer_id")), Some(900));
    assert_eq!(as_i64(get(&t, s, "event_count")), Some(1));
    assert_eq!(as_i64(get(&t, s, "duration_seconds")), Some(0));
    assert_eq!(get(&t, s, "is_bounce"), polars::prelude::AnyValue::Boolean(true));
    assert_eq!(as_i64(get(&t, s, "order_id")), None);
    assert_eq!(get(&t, s, "order_value"), polars::prelude::AnyValue::Null);
    assert_eq!(as_str(get(&t, s, "landing_page")).as_deref(), Some("/about"));
    assert_eq!(as_str(get(&t, s, "referrer_domain")).as_deref(), Some("www.google.com"));
    assert_eq!(as_str(get(&t, s, "traffic_source")).as_deref(), Some("search"));
    let b = "b:1739178000000";
    assert_eq!(as_i64(get(&t, b, "customer_id")), None);
    assert_eq!(as_i64(get(&t, b, "duration_seconds")), Some(480));
    for (c, n) in [("collection_view_count", 1), ("cart_add_count", 1), ("cart_remove_count", 1), ("cart_view_count", 1), ("search_count", 1), ("product_view_count", 0)] {
        assert_eq!(as_i64(get(&t, b, c)), Some(n), "{c}");
    }
    assert_eq!(get(&t, b, "cart_abandoned"), polars::prelude::AnyValue::Boolean(true));
    assert_eq!(get(&t, b, "checkout_started"), polars::prelude::AnyValue::Boolean(false));
    assert_eq!(as_str(get(&t, b, "exit_page")).as_deref(), Some("/search"));
    assert_eq!(as_str(get(&t, b, "traffic_source")).as_deref(), Some("social"));
    assert_eq!(as_str(get(&t, b, "device_type")).as_deref(), Some("desktop"));
}

#[test]
fn traffic_sources_and_devices() {
    let t = sessions();
    let expect = [
        ("c:1739347200000", None, "direct", "tablet"),  // the shop's own host; iPad
        ("d:1739347200000", Some("mail.google.com"), "email", "tablet"), // Android without "mobile"
        ("e:1739347200000", Some("www.dropbox.com"), "referral", "bot"), // "x" is not a label of dropbox.com
        ("f:1739347200000", Some("x.com"), "social", "mobile"),
    ];
    for (s, domain, source, device) in expect {
        assert_eq!(as_str(get(&t, s, "referrer_domain")).as_deref(), domain, "{s}");
        assert_eq!(as_str(get(&t, s, "traffic_source")).as_deref(), Some(source), "{s}");
        assert_eq!(as_str(get(&t, s, "device_type")).as_deref(), Some(device), "{s}");
    }
}
