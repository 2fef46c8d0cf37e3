//! customer_behavior_features on the hand-built shop (`tests/fixtures/features`),
//! checked by hand. T = 2025-03-01T00:00:00Z.
//!
//! 900's browser c1: a view on Tue 02-25 10:00, then 24 h later a session of three
//! events on Wed 02-26 (view 10:00, cart add 10:01, cart view 10:03). 902's browser c5
//! (linked by a search): one session on Fri 02-28 — search "  Cap " 09:00, collection
//! view 09:29, search "hat" 09:30, product view 09:31. Other browsers are anonymous.

use crate::common::*;
use shopfeat::features::behavior;

fn behaviors() -> Table {
    features_fixture("2025-03-01T00:00:00Z", behavior::build)
}

#[test]
fn one_row_per_linked_customer() {
    let t = behaviors();
    assert_eq!(t.ids("customer_id"), vec![900, 902]);
}

#[test]
fn a_customer_across_two_sessions() {
    let t = behaviors();
    let i = |c: &str| t.int("customer_id", 900, c);
    let x = |c: &str| t.float("customer_id", 900, c);
    assert_eq!((i("session_count"), i("total_event_count")), (Some(2), Some(4)));
    close(x("avg_events_per_session"), 2.0);
    close(x("avg_session_duration_seconds"), 90.0); // (0 + 180) / 2
    assert_eq!((i("product_view_count"), i("cart_add_count"), i("cart_view_count")), (Some(2), Some(1), Some(1)));
    assert_eq!((i("collection_view_count"), i("cart_remove_count"), i("search_count"), i("checkout_started_count"), i("checkout_completed_count")), (Some(0), Some(0), Some(0), Some(0), Some(0)));
    assert_eq!(i("first_event_at"), Some(ts("2025-02-25T10:00:00Z")));
    assert_eq!(i("last_event_at"), Some(ts("2025-02-26T10:03:00Z")));
    assert_eq!((i("days_since_first_event"), i("days_since_last_event"), i("cross_session_span_days")), (Some(3), Some(2), Some(1)));
    close(x("sessions_per_week"), 2.0); // 2 / max(1/7, 1)
    assert_eq!((i("most_active_hour"), i("most_active_weekday")), (Some(10), Some(2))); // Wednesday has 3 of 4
    assert_eq!((i("unique_products_viewed"), i("unique_collections_viewed")), (Some(1), Some(0)));
    assert_eq!(t.strs("customer_id", 900, "top_search_terms"), Vec::<String>::new());
    close(x("browse_to_cart_rate"), 0.5);
    close(x("cart_to_purchase_rate"), 0.0);
    close(x("search_to_purchase_rate"), 0.0);
    assert_eq!(i("device_count"), Some(1)); // no user agent: desktop both times
    let engagement = 0.4 * 4.0 / 50.0 + 0.3 * 1.0 / 20.0 + 0.3 * 2.0 / 10.0;
    close(x("engagement_score"), engagement);
    close(x("recency_score"), (-0.2f64).exp());
    close(x("diversity_score"), 3.0 / 8.0); // product_viewed, product_added_to_cart, cart_viewed
    close(x("behavioral_score"), 0.4 * engagement + 0.3 * (-0.2f64).exp() + 0.3 * 3.0 / 8.0);
}

#[test]
fn a_searching_customer() {
    let t = behaviors();
    let i = |c: &str| t.int("customer_id", 902, c);
    assert_eq!((i("session_count"), i("total_event_count"), i("search_count")), (Some(1), Some(4), Some(2)));
    close(t.float("customer_id", 902, "avg_session_duration_seconds"), 1860.0);
    assert_eq!((i("days_since_first_event"), i("cross_session_span_days")), (Some(0), Some(0)));
    close(t.float("customer_id", 902, "sessions_per_week"), 1.0);
    assert_eq!((i("most_active_hour"), i("most_active_weekday")), (Some(9), Some(4))); // Friday
    assert_eq!((i("unique_products_viewed"), i("unique_collections_viewed")), (Some(1), Some(1)));
    // "  Cap " → "cap" once, "hat" once: ties alphabetical.
    assert_eq!(t.strs("customer_id", 902, "top_search_terms"), vec!["cap", "hat"]);
    close(t.float("customer_id", 902, "recency_score"), 1.0);
}
