//! interaction_features on the hand-built shop (`tests/fixtures/features`), checked
//! by hand. T = 2025-03-01T00:00:00Z.
//!
//! Linked events: browser c1 is 900's (e1 carries the customer): views of product 1
//! on 02-25 10:00 and 02-26 10:00, a cart add on 02-26 (its cart view does not
//! count); c2–c6 are anonymous. Valid purchases: 900 — product 1 in O1 (3 units,
//! 02-20 12:00, 1 unit refunded by T); 901 — product 1 in O3 (3 units, 01-10 12:00)
//! and O6 (1 unit, 02-26 12:00), product 4 in O6 (4 units); 903 bought only a custom
//! line; the refund of O3 comes after T. 902's browser c5 viewed product 4.

use crate::common::*;
use shopfeat::features::interaction;

fn interactions() -> Table {
    features_fixture("2025-03-01T00:00:00Z", interaction::build)
}

fn row(t: &Table, customer: i64, product: i64) -> usize {
    let c = t.i64s("customer_id");
    let p = t.i64s("product_id");
    let rows: Vec<usize> = (0..t.height()).filter(|&i| c[i] == Some(customer) && p[i] == Some(product)).collect();
    assert_eq!(rows.len(), 1, "({customer}, {product})");
    rows[0]
}

fn int(t: &Table, customer: i64, product: i64, column: &str) -> Option<i64> {
    t.i64s(column)[row(t, customer, product)]
}

fn float(t: &Table, customer: i64, product: i64, column: &str) -> Option<f64> {
    t.0.column(column).unwrap().f64().unwrap().get(row(t, customer, product))
}

#[test]
fn one_row_per_customer_and_product_with_events_or_purchases() {
    let t = interactions();
    let mut pairs: Vec<(i64, i64)> = t.i64s("customer_id").into_iter().zip(t.i64s("product_id")).map(|(c, p)| (c.unwrap(), p.unwrap())).collect();
    pairs.sort();
    // 902's linked browser viewed product 4 once.
    assert_eq!(pairs, vec![(900, 1), (901, 1), (901, 4), (902, 4)]);
    assert_eq!(int(&t, 902, 4, "view_count"), Some(1));
    assert_eq!(int(&t, 902, 4, "purchase_count"), Some(0));
}

#[test]
fn viewed_carted_bought_and_refunded() {
    let t = interactions();
    let i = |c: &str| int(&t, 900, 1, c);
    assert_eq!((i("view_count"), i("cart_add_count"), i("cart_remove_count")), (Some(2), Some(1), Some(0)));
    assert_eq!((i("purchase_count"), i("units_purchased")), (Some(1), Some(3)));
    assert_eq!(i("first_view_at"), Some(ts("2025-02-25T10:00:00Z")));
    assert_eq!(i("last_view_at"), Some(ts("2025-02-26T10:00:00Z")));
    assert_eq!(i("first_purchase_at"), Some(ts("2025-02-20T12:00:00Z")));
    assert_eq!(i("last_purchase_at"), Some(ts("2025-02-20T12:00:00Z")));
    assert_eq!(i("last_cart_add_at"), Some(ts("2025-02-26T10:01:00Z"))); // e6
    assert_eq!(i("view_to_purchase_days"), Some(0)); // bought before the first view: max(0, …)
    assert_eq!(i("interaction_span_days"), Some(5)); // 02-20 12:00 → 02-26 10:00
    close(float(&t, 900, 1, "interaction_score"), 12.0); // 2 + 3·1 + 7·1
    // (0.3·min(1/2, 1) + 0.5·min(1/1, 1) + 0.2) · (0.7 + 0.3·(1 − 2/365)), last view 2 whole days before T.
    close(float(&t, 900, 1, "affinity_score"), 0.85 * (0.7 + 0.3 * (1.0 - 2.0 / 365.0)));
    assert_eq!(i("refunded_units"), Some(1));
    close(float(&t, 900, 1, "refund_rate"), 1.0 / 3.0);
}

#[test]
fn bought_without_views() {
    let t = interactions();
    let i = |p: i64, c: &str| int(&t, 901, p, c);
    assert_eq!((i(1, "view_count"), i(1, "purchase_count"), i(1, "units_purchased")), (Some(0), Some(2), Some(4)));
    assert_eq!(i(1, "first_view_at"), None);
    assert_eq!(i(1, "last_cart_add_at"), None);
    assert_eq!(i(1, "view_to_purchase_days"), None);
    assert_eq!(i(1, "interaction_span_days"), Some(47)); // 01-10 12:00 → 02-26 12:00
    close(float(&t, 901, 1, "interaction_score"), 14.0);
    // No views: browse term 0 and recency 1; no cart adds: purchase term 0; purchased: 0.2.
    close(float(&t, 901, 1, "affinity_score"), 0.2);
    assert_eq!(i(1, "refunded_units"), Some(0)); // O3's refund is after T
    close(float(&t, 901, 1, "refund_rate"), 0.0);
    assert_eq!((i(4, "purchase_count"), i(4, "units_purchased"), i(4, "interaction_span_days")), (Some(1), Some(4), Some(0)));
    close(float(&t, 901, 4, "interaction_score"), 7.0);
}
