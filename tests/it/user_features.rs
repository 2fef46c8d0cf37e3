//! user_features on the hand-built shop (`tests/fixtures/features`), every column
//! checked against values worked out by hand. T = 2025-03-01T00:00:00Z.
//!
//! Customers: 900 ENABLED, verified, NY US, 2 tags, subscribed, created 2024-12-01;
//! 901 DISABLED, no address, created 2024-12-02; 902 INVITED, created 2025-02-15,
//! no orders; 903 ENABLED, verified, GB, created 2024-12-01; 904 created after T.
//! Valid orders at T: 900 — O1 (2025-02-20 12:00, total 70, discounts 4; its test,
//! cancelled-before-T and after-T orders do not count); 901 — O3 (2025-01-10 12:00,
//! 54) and O6 (2025-02-26 12:00, 25, discounts 2; cancelled after T); 903 — O8
//! (2025-02-20 12:00, 70, one custom line 2×35). O2 is a guest's.

use crate::common::*;
use shopfeat::features::user;

fn users() -> Table {
    features_fixture("2025-03-01T00:00:00Z", user::build)
}

#[test]
fn one_row_per_customer_at_t() {
    let u = users();
    assert_eq!(u.ids("customer_id"), vec![900, 901, 902, 903]);
}

#[test]
fn a_one_time_customer_with_a_refund() {
    let u = users();
    let s = |c: &str| u.str("customer_id", 900, c);
    let i = |c: &str| u.int("customer_id", 900, c);
    let x = |c: &str| u.float("customer_id", 900, c);
    let b = |c: &str| u.bool("customer_id", 900, c);
    assert_eq!(s("customer_state").as_deref(), Some("ENABLED"));
    assert_eq!((b("verified_email"), b("accepts_marketing"), b("tax_exempt"), b("has_default_address")), (Some(true), Some(true), Some(false), Some(true)));
    assert_eq!((s("country_code").as_deref(), s("province_code").as_deref()), (Some("US"), Some("NY")));
    assert_eq!(s("geographic_region").as_deref(), Some("NY, US"));
    assert_eq!(i("tag_count"), Some(2));
    assert_eq!(i("customer_age_days"), Some(90)); // 31 + 31 + 28
    assert_eq!(i("total_purchases"), Some(1));
    close(x("total_spent"), 70.0);
    close(x("avg_order_value"), 70.0);
    close(x("max_order_value"), 70.0);
    assert_eq!(i("total_units"), Some(4)); // 2 + 1 + a custom line of 1
    assert_eq!((i("orders_30d"), i("orders_90d")), (Some(1), Some(1)));
    close(x("spent_30d"), 70.0);
    close(x("spent_90d"), 70.0);
    assert_eq!(i("first_order_at"), Some(ts("2025-02-20T12:00:00Z")));
    assert_eq!(i("last_order_at"), Some(ts("2025-02-20T12:00:00Z")));
    assert_eq!((i("days_since_first_order"), i("days_since_last_order")), (Some(8), Some(8))); // 8.5 days
    close(x("avg_days_between_orders"), 0.0);
    close(x("order_frequency_per_month"), 0.0);
    assert_eq!(i("distinct_products_purchased"), Some(1));
    assert_eq!(i("distinct_categories_purchased"), Some(1));
    assert_eq!(s("preferred_category").as_deref(), Some("Shirts"));
    assert_eq!(s("preferred_vendor").as_deref(), Some("Acme"));
    close(x("avg_unit_price"), 16.25); // (36 + 24 + 5) / 4
    assert_eq!(s("price_point_preference").as_deref(), Some("budget"));
    assert_eq!(i("orders_with_discount"), Some(1));
    close(x("discount_sensitivity"), 1.0);
    close(x("total_discount_amount"), 4.0);
    close(x("avg_discount_amount"), 4.0);
    assert_eq!(i("refunded_orders"), Some(1));
    close(x("refund_rate"), 1.0);
    close(x("total_refunded_amount"), 18.0);
    close(x("net_lifetime_value"), 52.0);
    // n = 3 customers with orders. Recency x = −8 (900), −8 (903), −2 (901): ranks 1, 1, 3;
    // 1 + floor(5·0/3) = 1. Frequency 1, 1, 2 and monetary 70, 70, 79 likewise.
    assert_eq!((i("recency_score"), i("frequency_score"), i("monetary_score")), (Some(1), Some(1), Some(1)));
    assert_eq!(s("rfm_segment").as_deref(), Some("hibernating"));
    assert_eq!(i("customer_health_score"), Some(70)); // 40 + 30 + 20 + 10 − 30 (refund_rate > 0.5)
    // Signals: 4 linked events in 90d (< 5), frequency 0 (< 0.1), refund_rate 1 (> 0.2).
    close(x("churn_risk_score"), 0.6);
    assert_eq!(s("lifecycle_stage").as_deref(), Some("one_time"));
}

#[test]
fn a_repeat_customer_with_tied_preferences() {
    let u = users();
    let s = |c: &str| u.str("customer_id", 901, c);
    let i = |c: &str| u.int("customer_id", 901, c);
    let x = |c: &str| u.float("customer_id", 901, c);
    assert_eq!(s("customer_state").as_deref(), Some("DISABLED"));
    assert_eq!(u.bool("customer_id", 901, "has_default_address"), Some(false));
    assert_eq!(u.bool("customer_id", 901, "accepts_marketing"), Some(false));
    assert_eq!(s("geographic_region"), None);
    assert_eq!(i("tag_count"), Some(0));
    assert_eq!(i("customer_age_days"), Some(89));
    assert_eq!(i("total_purchases"), Some(2));
    close(x("total_spent"), 79.0);
    close(x("avg_order_value"), 39.5);
    close(x("max_order_value"), 54.0);
    assert_eq!(i("total_units"), Some(8)); // 3 + 1 + 4
    assert_eq!((i("orders_30d"), i("orders_90d")), (Some(1), Some(2)));
    close(x("spent_30d"), 25.0);
    close(x("spent_90d"), 79.0);
    assert_eq!((i("days_since_first_order"), i("days_since_last_order")), (Some(49), Some(2)));
    close(x("avg_days_between_orders"), 47.0); // 2025-01-10 12:00 → 2025-02-26 12:00
    close(x("order_frequency_per_month"), 30.0 / 47.0); // 1 / max(47 / 30, 1)
    assert_eq!(i("distinct_products_purchased"), Some(2));
    assert_eq!(i("distinct_categories_purchased"), Some(2));
    // 4 units of Shirts (Acme) and 4 of Accessories (Zeta): ties go alphabetically.
    assert_eq!(s("preferred_category").as_deref(), Some("Accessories"));
    assert_eq!(s("preferred_vendor").as_deref(), Some("Acme"));
    close(x("avg_unit_price"), 11.5); // (54 + 18 + 20) / 8
    assert_eq!(i("orders_with_discount"), Some(1));
    close(x("discount_sensitivity"), 0.5);
    close(x("total_discount_amount"), 2.0);
    close(x("avg_discount_amount"), 2.0);
    // O3's refund is created after T.
    assert_eq!(i("refunded_orders"), Some(0));
    close(x("refund_rate"), 0.0);
    close(x("net_lifetime_value"), 79.0);
    // Rank 3 of 3: 1 + floor(5·2/3) = 4 for R, F and M.
    assert_eq!((i("recency_score"), i("frequency_score"), i("monetary_score")), (Some(4), Some(4), Some(4)));
    assert_eq!(s("rfm_segment").as_deref(), Some("champions"));
    assert_eq!(i("customer_health_score"), Some(20)); // 10 (DISABLED) + 10 (age > 30)
    close(x("churn_risk_score"), 0.2); // only: no linked events in 90d
    assert_eq!(s("lifecycle_stage").as_deref(), Some("repeat_active"));
}

#[test]
fn a_customer_without_orders() {
    let u = users();
    let i = |c: &str| u.int("customer_id", 902, c);
    let x = |c: &str| u.float("customer_id", 902, c);
    for c in ["total_purchases", "total_units", "orders_30d", "orders_90d", "distinct_products_purchased", "distinct_categories_purchased", "orders_with_discount", "refunded_orders", "recency_score", "frequency_score", "monetary_score", "customer_health_score"] {
        assert_eq!(i(c), Some(0), "{c}");
    }
    for c in ["total_spent", "avg_order_value", "max_order_value", "spent_30d", "spent_90d", "avg_days_between_orders", "order_frequency_per_month", "avg_unit_price", "discount_sensitivity", "total_discount_amount", "avg_discount_amount", "refund_rate", "total_refunded_amount", "net_lifetime_value"] {
        close(x(c), 0.0);
    }
    for c in ["first_order_at", "last_order_at", "days_since_first_order", "days_since_last_order"] {
        assert_eq!(i(c), None, "{c}");
    }
    for c in ["preferred_category", "preferred_vendor", "price_point_preference"] {
        assert_eq!(u.str("customer_id", 902, c), None, "{c}");
    }
    assert_eq!(u.str("customer_id", 902, "rfm_segment").as_deref(), Some("none"));
    assert_eq!(i("customer_age_days"), Some(14));
    close(x("churn_risk_score"), 0.4); // no events, frequency 0 < 0.1
    assert_eq!(u.str("customer_id", 902, "lifecycle_stage").as_deref(), Some("new"));
}

#[test]
fn a_customer_who_bought_only_a_custom_line() {
    let u = users();
    assert_eq!(u.str("customer_id", 903, "geographic_region").as_deref(), Some("GB"));
    assert_eq!(u.int("customer_id", 903, "total_units"), Some(2));
    assert_eq!(u.int("customer_id", 903, "distinct_products_purchased"), Some(0));
    assert_eq!(u.str("customer_id", 903, "preferred_category"), None);
    close(u.float("customer_id", 903, "avg_unit_price"), 35.0);
    assert_eq!(u.str("customer_id", 903, "price_point_preference").as_deref(), Some("mid"));
    // Tied with 900 on all three: the lowest rank, score 1.
    assert_eq!(u.int("customer_id", 903, "monetary_score"), Some(1));
    assert_eq!(u.int("customer_id", 903, "customer_health_score"), Some(100));
    assert_eq!(u.str("customer_id", 903, "lifecycle_stage").as_deref(), Some("one_time"));
}
