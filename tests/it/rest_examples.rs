//! Shopify's own documented REST examples (`tests/fixtures/shopify-rest-2025-01`), landed as webhook
//! payloads and normalized to the values they hold.

use crate::common::*;

fn landed() -> Landed {
    let dir = rest_examples();
    let files: Vec<_> = ["order", "product", "customer", "refund", "custom_collection", "smart_collection", "collect"]
        .iter()
        .map(|n| dir.join(format!("{n}.json")))
        .collect();
    let landed = land(&files);
    assert!(landed.report.problems.is_empty(), "{:?}", landed.report.problems);
    landed
}

#[test]
fn rest_orders_keep_lines_refunds_and_utc_times() {
    let t = landed().tables(None);
    let o = &t["orders"];
    assert_eq!(o.ids("order_id"), vec![450789469]);
    // 2008-01-10T11:00:00-05:00
    assert_eq!(o.int("order_id", 450789469, "created_at"), Some(ts("2008-01-10T16:00:00Z")));
    assert_eq!(o.float("order_id", 450789469, "total_price"), Some(598.94));
    assert_eq!(o.str("order_id", 450789469, "financial_status").as_deref(), Some("PARTIALLY_REFUNDED"));
    assert_eq!(o.int("order_id", 450789469, "customer_id"), Some(207119551));
    assert_eq!(o.strs("order_id", 450789469, "discount_codes"), vec!["TENOFF"]);
    let l = &t["line_items"];
    assert_eq!(l.ids("line_item_id"), vec![466157049, 518995019, 703073504]);
    assert_eq!(l.int("line_item_id", 466157049, "product_id"), Some(632910392));
    assert_eq!(l.float("line_item_id", 466157049, "unit_price"), Some(199.0));
    assert_eq!(l.int("line_item_id", 466157049, "quantity"), Some(1));
    // The refund is inline in the order and in refund.json: one refund, two lines,
    // with the numbers (not strings) REST uses for refund subtotals.
    let r = &t["refund_line_items"];
    assert_eq!(r.ids("line_item_id"), vec![466157049, 703073504]);
    assert_eq!(r.float("line_item_id", 703073504, "subtotal"), Some(195.66));
    assert_eq!(r.float("line_item_id", 466157049, "subtotal"), Some(195.67));
    assert_eq!(r.int("line_item_id", 466157049, "product_id"), Some(632910392));
    // refund.json comes later in name order than order.json: its occurrence wins.
    assert_eq!(r.int("line_item_id", 466157049, "created_at"), Some(ts("2025-01-02T16:38:15Z")));
}

#[test]
fn rest_products_keep_variants_images_and_tags() {
    let t = landed().tables(None);
    let p = &t["products"];
    assert_eq!(p.ids("product_id"), vec![632910392, 921728736]);
    assert_eq!(p.str("product_id", 632910392, "title").as_deref(), Some("IPod Nano - 8GB"));
    assert_eq!(p.str("product_id", 632910392, "status").as_deref(), Some("ACTIVE"));
    assert_eq!(p.strs("product_id", 632910392, "tags"), vec!["Emotive", "Flash Memory", "MP3", "Music"]);
    assert_eq!(p.int("product_id", 632910392, "published_at"), Some(ts("2008-01-01T00:00:00Z")));
    assert_eq!(p.int("product_id", 632910392, "updated_at"), Some(ts("2025-01-02T16:29:59Z")));
    assert!(p.str("product_id", 632910392, "description").unwrap().starts_with("It's the small iPod with one very big idea: Video."));
    assert_eq!(p.strs("product_id", 921728736, "tags"), Vec::<String>::new());
    let v = &t["variants"];
    assert_eq!(v.ids("variant_id"), vec![39072856, 49148385, 447654529, 457924702, 808950810]);
    assert_eq!(v.float("variant_id", 808950810, "price"), Some(199.0));
    assert_eq!(v.int("variant_id", 808950810, "inventory_quantity"), Some(10));
    assert_eq!(v.float("variant_id", 808950810, "compare_at_price"), None);
    assert_eq!(t["product_media"].ids("media_id"), vec![378407906, 562641783, 850703190]);
}

#[test]
fn rest_customers_and_collections_map_to_the_graphql_columns() {
    let t = landed().tables(None);
    let c = &t["customers"];
    assert_eq!(c.str("customer_id", 207119551, "state").as_deref(), Some("DISABLED"));
    assert_eq!(c.strs("customer_id", 207119551, "tags"), vec!["Léon", "Noël"]);
    assert_eq!(c.bool("customer_id", 207119551, "accepts_marketing"), Some(false));
    assert_eq!(c.str("customer_id", 207119551, "province_code").as_deref(), Some("KY"));
    assert_eq!(c.int("customer_id", 1073339462, "created_at"), Some(ts("2025-01-02T16:27:00Z")));
    let col = &t["collections"];
    assert_eq!(col.ids("collection_id"), vec![395646240, 691652237, 841564295, 1063001328]);
    assert_eq!(col.bool("collection_id", 841564295, "is_automated"), Some(false));
    assert_eq!(col.bool("collection_id", 1063001328, "is_automated"), Some(true));
    assert_eq!(col.str("collection_id", 841564295, "image_alt").as_deref(), Some("MP3 Player 8gb"));
    assert_eq!(col.str("collection_id", 841564295, "description").as_deref(), Some("The best selling ipod ever"));
    // Collects of a collection we know nothing of (482865238) are dropped.
    let cp = &t["collection_products"];
    assert_eq!(cp.ids("collection_id"), vec![395646240, 841564295]);
}
