//! collection_features on the hand-built shop (`tests/fixtures/features`), every
//! column checked against values worked out by hand. T = 2025-03-01T00:00:00Z.
//!
//! Collections: 500 "Tees" (members 1 and 2; 3 is created after T), 501 "Smart
//! Accessories Collection" (smart; member 4; SEO, image with alt), 502 (no members).
//! Member facts at T: product 1 price 20, active, Acme/Shirts, 5 units and 98 in 30d,
//! 152 all time; product 2 price 80, unpublished, Kettle/Home, unsold; product 4
//! price 5, active, Zeta/Accessories, 4 units and 20 in 30d. Shop line revenue in
//! 30d: O1 65 + O2 20 + O6 38 + O8 70 = 193.
//!
//! Sessions in 30d: c4 — view 501 (e20), page, views of 4 (e22, e23: one click),
//! view 500 (e24), view of 4 (not a member of 500), checkout with 4 (e26); 31 minutes
//! later a new session with one view of 501 (e27, a bounce). c5 — search, view 501
//! (e29, 29 minutes later: same session), search, view of 4 (after the search: no
//! click). e32 (500) is older than 30 days, e34 (501) after T.

use crate::common::*;
use shopfeat::features::collection;

fn collections() -> Table {
    features_fixture("2025-03-01T00:00:00Z", collection::build)
}

#[test]
fn one_row_per_collection() {
    let c = collections();
    assert_eq!(c.ids("collection_id"), vec![500, 501, 502]);
}

#[test]
fn members_prices_and_revenue() {
    let c = collections();
    let i = |id: i64, col: &str| c.int("collection_id", id, col);
    let x = |id: i64, col: &str| c.float("collection_id", id, col);
    assert_eq!(c.str("collection_id", 500, "title").as_deref(), Some("Tees"));
    assert_eq!(c.str("collection_id", 500, "handle").as_deref(), Some("tees"));
    assert_eq!(c.bool("collection_id", 500, "is_automated"), Some(false));
    assert_eq!(c.bool("collection_id", 501, "is_automated"), Some(true));
    assert_eq!((i(500, "product_count"), i(500, "active_product_count")), (Some(2), Some(1)));
    close(x(500, "avg_product_price"), 50.0);
    close(x(500, "min_product_price"), 20.0);
    close(x(500, "max_product_price"), 80.0);
    close(x(500, "price_range"), 60.0);
    close(x(500, "price_variance"), 900.0); // ((20 − 50)² + (80 − 50)²) / 2
    assert_eq!((i(500, "vendor_count"), i(500, "product_type_count")), (Some(2), Some(2)));
    assert_eq!(i(500, "units_sold_30d"), Some(5));
    close(x(500, "revenue_30d"), 98.0);
    close(x(500, "total_revenue"), 152.0);
    close(x(500, "revenue_share"), 100.0 * 98.0 / 193.0);
    assert_eq!(list_i64s(c.get("collection_id", 500, "top_products")), vec![1, 2]);
    assert_eq!(list_strs(c.get("collection_id", 500, "top_vendors")), vec!["Acme", "Kettle"]);
    close(x(501, "price_variance"), 0.0);
    close(x(501, "price_range"), 0.0);
    assert_eq!(i(501, "units_sold_30d"), Some(4));
    close(x(501, "revenue_share"), 100.0 * 20.0 / 193.0);
    assert_eq!(list_i64s(c.get("collection_id", 501, "top_products")), vec![4]);
    assert_eq!(list_strs(c.get("collection_id", 501, "top_vendors")), vec!["Zeta"]);
    // No members: counts 0, price statistics null, empty lists.
    assert_eq!(i(502, "product_count"), Some(0));
    for col in ["avg_product_price", "min_product_price", "max_product_price", "price_range", "price_variance"] {
        assert_eq!(x(502, col), None, "{col}");
    }
    close(x(502, "total_revenue"), 0.0);
    assert_eq!(list_i64s(c.get("collection_id", 502, "top_products")), Vec::<i64>::new());
    assert_eq!(list_strs(c.get("collection_id", 502, "top_vendors")), Vec::<String>::new());
}

#[test]
fn views_clicks_bounces_and_conversions_by_session() {
    let c = collections();
    let i = |id: i64, col: &str| c.int("collection_id", id, col);
    let x = |id: i64, col: &str| c.float("collection_id", id, col);
    assert_eq!((i(501, "view_count_30d"), i(501, "unique_viewers_30d")), (Some(3), Some(2)));
    assert_eq!(i(501, "product_click_count_30d"), Some(1));
    close(x(501, "click_through_rate"), 1.0 / 3.0);
    close(x(501, "bounce_rate"), 1.0 / 3.0);
    close(x(501, "conversion_rate"), 1.0 / 3.0); // 1 of 3 sessions checked out with product 4
    assert_eq!((i(500, "view_count_30d"), i(500, "unique_viewers_30d"), i(500, "product_click_count_30d")), (Some(1), Some(1), Some(0)));
    close(x(500, "bounce_rate"), 0.0);
    close(x(500, "conversion_rate"), 0.0); // the checkout held no member of 500
    assert_eq!(i(502, "view_count_30d"), Some(0));
    close(x(502, "click_through_rate"), 0.0);
}

#[test]
fn seo_image_performance_and_freshness() {
    let c = collections();
    let i = |id: i64, col: &str| c.int("collection_id", id, col);
    // 500: title of 4 chars 0, no description 0, handle "tees" +1.
    assert_eq!((i(500, "seo_score"), i(500, "image_score")), (Some(1), Some(0)));
    // 501: title 28 chars +2, description 68 chars +2, handle "acc" 0, SEO title +1, SEO description +1.
    assert_eq!((i(501, "seo_score"), i(501, "image_score")), (Some(6), Some(5)));
    // 502: title 21 chars +2, description 33 chars +1, handle +1; an image without alt text.
    assert_eq!((i(502, "seo_score"), i(502, "image_score")), (Some(4), Some(3)));
    // 0.3·log10(4)/4 + 0.25 (ctr capped) + 0.25 (conversion capped) + 0.1 (share capped) + 0.05·6/8 + 0.05·5/5
    close(c.float("collection_id", 501, "performance_score"), 0.3 * 4f64.log10() / 4.0 + 0.25 + 0.25 + 0.1 + 0.05 * 6.0 / 8.0 + 0.05);
    close(c.float("collection_id", 500, "performance_score"), 0.3 * 2f64.log10() / 4.0 + 0.1 + 0.05 / 8.0);
    close(c.float("collection_id", 502, "performance_score"), 0.05 * 4.0 / 8.0 + 0.05 * 3.0 / 5.0);
    // 501's only version is newer than T: days since update clamp at 0.
    assert_eq!((i(500, "days_since_update"), i(501, "days_since_update"), i(502, "days_since_update")), (Some(59), Some(0), Some(28)));
}
