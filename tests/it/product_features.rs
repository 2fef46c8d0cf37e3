//! product_features on a hand-built shop (`tests/fixtures/features`), every column
//! checked against values worked out by hand. T = 2025-03-01T00:00:00Z, so the
//! 30-day window is (2025-01-30, 2025-03-01], 7 days (2025-02-22, …], days 8..30
//! (2025-01-30, 2025-02-22].
//!
//! Orders (P1 = product 1): O1 2025-02-20 customer 900: P1 2×20 − 4 = 36, P1 1×24 = 24,
//! a custom line 5; O2 2025-02-27 guest: P1 1×20 = 20; O3 2025-01-10 customer 901:
//! P1 3×18 = 54; O4 test; O5 cancelled before T; O6 2025-02-26 customer 901,
//! cancelled after T: P1 1×20 − 2 = 18 and product 4 4×5; O7 created after T; O8
//! 2025-02-20 customer 903: a custom line 2×35. Refunds: 1 unit / 18.00
//! of O1 on 2025-02-22; one of O3 on 2025-03-05 (after T). O2 and event e3 are each
//! delivered twice: they count once.

use crate::common::*;
use shopfeat::features::product;

fn features_at(t: &str) -> Table {
    features_fixture(t, product::build)
}

#[test]
fn one_row_per_product_in_the_catalog_at_t() {
    let f = features_at("2025-03-01T00:00:00Z");
    // Product 3 is created after T.
    assert_eq!(f.ids("product_id"), vec![1, 2, 4]);
    assert_eq!(f.str("product_id", 1, "shop_id").as_deref(), Some("shop-x"));
    assert_eq!(f.int("product_id", 1, "computed_at"), Some(ts("2025-03-01T00:00:00Z")));
}

#[test]
fn events_and_sales_of_a_busy_product() {
    let f = features_at("2025-03-01T00:00:00Z");
    let i = |c: &str| f.int("product_id", 1, c);
    assert_eq!(f.str("product_id", 1, "title").as_deref(), Some("Alpha Tee"));
    assert_eq!(f.str("product_id", 1, "handle").as_deref(), Some("alpha-tee"));
    assert_eq!(f.str("product_id", 1, "vendor").as_deref(), Some("Acme"));
    assert_eq!(f.str("product_id", 1, "product_type").as_deref(), Some("Shirts"));
    assert_eq!(f.str("product_id", 1, "status").as_deref(), Some("ACTIVE"));
    // Views in 30d: e1, e2 (c1, stitched to 900), e3 (c2); e4 is older, e5 after T.
    assert_eq!(i("view_count_30d"), Some(3));
    // Visitors: 900 and c:c2.
    assert_eq!(i("unique_viewers_30d"), Some(2));
    assert_eq!(i("cart_add_count_30d"), Some(2)); // e6, e7
    assert_eq!(i("cart_remove_count_30d"), Some(1)); // e8
    assert_eq!(i("cart_view_count_30d"), Some(1)); // e9 lists P1 twice: once; e10 is older
    // Valid orders in 30d with P1: O1, O2, O6 (cancelled after T still counts).
    assert_eq!(i("purchase_count_30d"), Some(3));
    assert_eq!(i("unique_purchasers_30d"), Some(2)); // 900, 901; O2 is a guest
    assert_eq!(i("units_sold_30d"), Some(5)); // 2 + 1 + 1 + 1
    close(f.float("product_id", 1, "revenue_30d"), 98.0); // 36 + 24 + 20 + 18
    close(f.float("product_id", 1, "view_to_cart_rate"), 2.0 / 3.0);
    close(f.float("product_id", 1, "cart_to_purchase_rate"), 1.5); // 3 / 2
    close(f.float("product_id", 1, "conversion_rate"), 1.0); // 3 / 3
    close(f.float("product_id", 1, "cart_abandonment_rate"), 0.0); // max(0, 2 - 3) / 2
    close(f.float("product_id", 1, "cart_modification_rate"), 0.5); // 1 / 2
    close(f.float("product_id", 1, "cart_view_to_purchase_rate"), 3.0); // 3 / 1
    // All time: O1, O2, O3, O6.
    assert_eq!(i("total_purchases"), Some(4));
    assert_eq!(i("total_units_sold"), Some(8)); // 5 + 3
    close(f.float("product_id", 1, "total_revenue"), 152.0); // 98 + 54
    assert_eq!(i("last_viewed_at"), Some(ts("2025-02-26T10:00:00Z")));
    assert_eq!(i("first_purchased_at"), Some(ts("2025-01-10T12:00:00Z")));
    assert_eq!(i("last_purchased_at"), Some(ts("2025-02-27T12:00:00Z")));
    assert_eq!(i("days_since_first_purchase"), Some(49)); // 49.5 days, floored
    assert_eq!(i("days_since_last_purchase"), Some(1)); // 1.5 days
}

#[test]
fn prices_inventory_and_content_of_a_busy_product() {
    let f = features_at("2025-03-01T00:00:00Z");
    let i = |c: &str| f.int("product_id", 1, c);
    let x = |c: &str| f.float("product_id", 1, c);
    // The version re-priced to 99 on 2025-03-05 is after T: variants 20 and 24.
    close(x("price"), 20.0);
    close(x("max_price"), 24.0);
    close(x("compare_at_price"), 30.0);
    close(x("discount_pct"), 1.0 - 20.0 / 30.0);
    close(x("avg_selling_price"), 19.0); // 152 / 8
    // Unit prices 18 (×2 in O1, ×3 in O3, ×1 in O6), 24, 20: mean 19,
    // Σq(p − 19)² = 6·1 + 25 + 1 = 32, / 8 units.
    close(x("price_variance"), 4.0);
    assert_eq!(f.str("product_id", 1, "price_tier").as_deref(), Some("budget"));
    assert_eq!(i("total_inventory"), Some(7)); // 10 − 3
    close(x("inventory_turnover"), 5.0 / 7.0);
    close(x("stock_velocity"), 5.0 / 30.0);
    close(x("days_of_stock"), 42.0); // 7 / (5 / 30)
    assert_eq!(i("variant_count"), Some(2));
    assert_eq!(i("image_count"), Some(2));
    assert_eq!(i("media_count"), Some(4));
    assert_eq!(i("option_count"), Some(2));
    assert_eq!(i("tag_count"), Some(3));
    assert_eq!(i("collection_count"), Some(1));
    // Its products line lists collection 500 (handle "tees").
    assert_eq!(f.strs("product_id", 1, "collection_handles"), vec!["tees".to_string()]);
    assert_eq!(i("published_at"), Some(ts("2025-01-01T00:00:00Z")));
    assert_eq!(f.bool("product_id", 1, "has_video_content"), Some(true));
    assert_eq!(f.bool("product_id", 1, "has_3d_content"), Some(true));
    close(x("variant_complexity"), 0.2);
    close(x("image_richness"), 0.4);
    close(x("tag_diversity"), 0.3);
    close(x("media_richness"), 90.0); // 30 + 40 + 2·10
    assert_eq!(i("description_length"), Some(130));
    assert_eq!(i("seo_title_length"), Some(44));
    assert_eq!(i("seo_description_length"), Some(0));
    // 30 (SEO title) + 0 (no SEO description) + 20 (title 44 chars) + 20 (description 130 chars).
    assert_eq!(i("seo_optimization"), Some(70));
    // min(130/10, 50) + min(137/20, 30) + no bonus (html < 200).
    close(x("content_richness_score"), 13.0 + 6.85);
    close(x("popularity_score"), 0.3 * 0.03 + 0.7 * 0.3);
    // a7 = (2 views + 3·1 cart + 5·2 purchases) / 7 = 15/7; a23 = (1 + 3·1 + 5·1) / 23 = 9/23;
    // 15/7 ÷ 9/23 ≈ 5.48, capped at 2, halved.
    close(x("trending_score"), 1.0);
    assert_eq!(i("refunded_units"), Some(1)); // the O3 refund is after T
    close(x("refund_rate"), 0.125); // 1 / 8
    close(x("total_refunded_amount"), 18.0);
    close(x("net_revenue"), 134.0); // 152 − 18
    assert_eq!(i("refund_risk_score"), Some(50)); // 0.125 > 0.1
    assert_eq!(i("product_age_days"), Some(59)); // 2025-01-01 → 2025-03-01
    assert_eq!(i("days_since_update"), Some(28)); // version of 2025-02-01
    assert_eq!(f.bool("product_id", 1, "is_active"), Some(true));
}

#[test]
fn a_product_never_sold_or_viewed_has_zeros_not_nan() {
    let f = features_at("2025-03-01T00:00:00Z");
    let i = |c: &str| f.int("product_id", 2, c);
    let x = |c: &str| f.float("product_id", 2, c);
    for c in ["view_count_30d", "unique_viewers_30d", "cart_add_count_30d", "purchase_count_30d", "units_sold_30d", "total_purchases", "total_units_sold", "refunded_units", "total_inventory", "image_count", "media_count", "tag_count", "description_length", "seo_optimization", "refund_risk_score"] {
        assert_eq!(i(c), Some(0), "{c}");
    }
    // Collection 500 lists it.
    assert_eq!(i("collection_count"), Some(1));
    // e9's cart lists product 2 once.
    assert_eq!(i("cart_view_count_30d"), Some(1));
    for c in ["revenue_30d", "view_to_cart_rate", "cart_to_purchase_rate", "conversion_rate", "cart_abandonment_rate", "cart_modification_rate", "cart_view_to_purchase_rate", "total_revenue", "discount_pct", "price_variance", "inventory_turnover", "stock_velocity", "popularity_score", "trending_score", "refund_rate", "net_revenue", "content_richness_score", "media_richness"] {
        close(x(c), 0.0);
    }
    close(x("price"), 80.0);
    close(x("avg_selling_price"), 80.0); // never sold: the price
    assert_eq!(x("compare_at_price"), None);
    assert_eq!(x("days_of_stock"), None);
    assert_eq!(f.str("product_id", 2, "price_tier").as_deref(), Some("premium"));
    assert_eq!(i("last_viewed_at"), None);
    assert_eq!(i("days_since_first_purchase"), None);
    assert_eq!(f.bool("product_id", 2, "has_video_content"), Some(false));
    // Not published: not active.
    assert_eq!(f.bool("product_id", 2, "is_active"), Some(false));
    assert_eq!(i("published_at"), None);
    assert_eq!(f.strs("product_id", 2, "collection_handles"), vec!["tees".to_string()]);
}

#[test]
fn as_of_later_sees_the_new_price_and_the_new_product() {
    let f = features_at("2025-03-20T00:00:00Z");
    assert_eq!(f.ids("product_id"), vec![1, 2, 3, 4]);
    close(f.float("product_id", 1, "price"), 99.0);
    // O7 (2025-03-02) now counts, O6 (cancelled 2025-03-03) no longer does;
    // the refund of 2025-03-05 now counts.
    assert_eq!(f.int("product_id", 1, "total_purchases"), Some(4));
    assert_eq!(f.int("product_id", 1, "refunded_units"), Some(2));
}
