//! The hand-written fixture shop (`tests/fixtures/shop`), in every raw shape,
//! normalized and checked value by value.

use crate::common::*;

fn landed() -> Landed {
    let landed = land(&[fixture("shop")]);
    assert!(landed.report.problems.is_empty(), "fixture must land cleanly: {:?}", landed.report.problems);
    landed
}

#[test]
fn gids_and_numeric_ids_are_one_id_and_deletions_remove_the_product() {
    let t = landed().tables(None);
    // 4 is deleted by products_delete; 2 arrives both as a GID and as REST's number.
    assert_eq!(t["products"].ids("product_id"), vec![1, 2, 3, 5]);
}

#[test]
fn the_latest_updated_at_wins_and_children_travel_with_their_version() {
    let t = landed().tables(None);
    let p = &t["products"];
    assert_eq!(p.str("product_id", 1, "title").as_deref(), Some("Red Shirt"));
    assert_eq!(p.str("product_id", 1, "status").as_deref(), Some("ACTIVE"));
    assert_eq!(p.strs("product_id", 1, "tags"), vec!["sale", "new"]);
    assert_eq!(p.int("product_id", 1, "option_count"), Some(1));
    assert_eq!(p.str("product_id", 1, "seo_title").as_deref(), Some("Red"));
    assert_eq!(p.str("product_id", 1, "seo_description"), None);
    assert_eq!(p.int("product_id", 1, "published_at"), Some(ts("2025-01-02T00:00:00Z")));
    // Variant 13 belonged to the older version of product 1.
    let v = &t["variants"];
    assert_eq!(v.ids("variant_id"), vec![11, 12, 21, 22]);
    assert_eq!(v.int("variant_id", 11, "product_id"), Some(1));
    assert_eq!(v.float("variant_id", 11, "price"), Some(19.99));
    assert_eq!(v.float("variant_id", 11, "compare_at_price"), Some(25.0));
    assert_eq!(v.int("variant_id", 11, "inventory_quantity"), Some(5));
    assert_eq!(v.float("variant_id", 12, "compare_at_price"), None);
    assert_eq!(v.int("variant_id", 12, "inventory_quantity"), Some(-2));
    // Media: product 1's image and video; product 2's REST image replaced its 3D model.
    let m = &t["product_media"];
    assert_eq!(m.ids("media_id"), vec![101, 102, 202]);
    assert_eq!(m.str("media_id", 101, "media_type").as_deref(), Some("IMAGE"));
    assert_eq!(m.str("media_id", 101, "alt").as_deref(), Some("front"));
    assert_eq!(m.str("media_id", 102, "media_type").as_deref(), Some("VIDEO"));
    assert_eq!(m.str("media_id", 202, "media_type").as_deref(), Some("IMAGE"));
}

#[test]
fn a_rest_product_update_maps_to_the_graphql_columns() {
    let t = landed().tables(None);
    let p = &t["products"];
    assert_eq!(p.str("product_id", 2, "title").as_deref(), Some("Blue Mug XL"));
    assert_eq!(p.str("product_id", 2, "description").as_deref(), Some("Blue & big"));
    assert_eq!(p.str("product_id", 2, "description_html").as_deref(), Some("<p>Blue &amp; <b>big</b></p>"));
    assert_eq!(p.str("product_id", 2, "status").as_deref(), Some("ACTIVE"));
    assert_eq!(p.strs("product_id", 2, "tags"), vec!["a", "b", "c"]);
    assert_eq!(p.int("product_id", 2, "option_count"), Some(2));
    // -05:00 offset → UTC.
    assert_eq!(p.int("product_id", 2, "updated_at"), Some(ts("2025-04-01T05:00:00Z")));
    assert_eq!(p.int("product_id", 2, "published_at"), Some(ts("2025-04-01T05:00:00Z")));
    let v = &t["variants"];
    assert_eq!(v.float("variant_id", 21, "price"), Some(9.0));
    assert_eq!(v.float("variant_id", 21, "compare_at_price"), Some(12.0));
    assert_eq!(v.int("variant_id", 22, "product_id"), Some(2));
    // A REST update keeps the memberships listed by the bulk export.
    let cp = &t["collection_products"];
    assert_eq!(cp.ids("product_id"), vec![1, 2]);
}

#[test]
fn collections_and_memberships_from_both_sides_without_deleted_products() {
    let t = landed().tables(None);
    let c = &t["collections"];
    assert_eq!(c.ids("collection_id"), vec![500, 501]);
    assert_eq!(c.bool("collection_id", 500, "is_automated"), Some(false));
    assert_eq!(c.bool("collection_id", 501, "is_automated"), Some(true));
    assert_eq!(c.str("collection_id", 500, "image_alt").as_deref(), Some("banner"));
    assert_eq!(c.str("collection_id", 500, "seo_title").as_deref(), Some("S&M"));
    assert_eq!(c.str("collection_id", 501, "image_url"), None);
    // (500, 1) is listed by both the product and the collection: once. (500, 4) is deleted.
    let cp = &t["collection_products"];
    assert_eq!(cp.height(), 2);
    assert_eq!(cp.ids("collection_id"), vec![500, 500]);
}

#[test]
fn customers_from_both_shapes_with_ties_to_the_later_line() {
    let t = landed().tables(None);
    let c = &t["customers"];
    assert_eq!(c.ids("customer_id"), vec![900, 901]);
    // Two versions of 900 with the same updatedAt: the later line wins.
    assert_eq!(c.str("customer_id", 900, "email").as_deref(), Some("ava2@example.com"));
    assert_eq!(c.bool("customer_id", 900, "accepts_marketing"), Some(true));
    assert_eq!(c.bool("customer_id", 900, "has_default_address"), Some(true));
    assert_eq!(c.str("customer_id", 900, "province_code").as_deref(), Some("NY"));
    // 901's REST update: state upper-cased, tags split, consent `subscribed`.
    assert_eq!(c.str("customer_id", 901, "state").as_deref(), Some("ENABLED"));
    assert_eq!(c.strs("customer_id", 901, "tags"), vec!["vip"]);
    assert_eq!(c.bool("customer_id", 901, "accepts_marketing"), Some(true));
    assert_eq!(c.bool("customer_id", 901, "verified_email"), Some(true));
    assert_eq!(c.str("customer_id", 901, "country_code").as_deref(), Some("GB"));
    assert_eq!(c.str("customer_id", 901, "province_code"), None);
}

#[test]
fn orders_take_their_latest_version_and_its_lines() {
    let t = landed().tables(None);
    let o = &t["orders"];
    assert_eq!(o.ids("order_id"), vec![7001, 7002]);
    assert_eq!(o.str("order_id", 7001, "financial_status").as_deref(), Some("PARTIALLY_REFUNDED"));
    assert_eq!(o.strs("order_id", 7001, "tags"), vec!["gift", "priority"]);
    assert_eq!(o.strs("order_id", 7001, "discount_codes"), vec!["WELCOME"]);
    assert_eq!(o.float("order_id", 7001, "total_price"), Some(47.97));
    assert_eq!(o.int("order_id", 7001, "customer_id"), Some(900));
    assert_eq!(o.int("order_id", 7001, "created_at"), Some(ts("2025-02-10T12:00:00Z")));
    assert_eq!(o.bool("order_id", 7001, "test"), Some(false));
    // A guest checkout has no customer.
    assert_eq!(o.int("order_id", 7002, "customer_id"), None);
    assert_eq!(o.float("order_id", 7002, "total_price"), Some(8.0));
    let l = &t["line_items"];
    assert_eq!(l.ids("line_item_id"), vec![70011, 70012, 70021]);
    assert_eq!(l.int("line_item_id", 70011, "order_id"), Some(7001));
    assert_eq!(l.int("line_item_id", 70011, "product_id"), Some(1));
    assert_eq!(l.int("line_item_id", 70011, "variant_id"), Some(11));
    assert_eq!(l.int("line_item_id", 70011, "quantity"), Some(2));
    assert_eq!(l.float("line_item_id", 70011, "unit_price"), Some(19.99));
    assert_eq!(l.float("line_item_id", 70011, "discount"), Some(2.0));
    // A custom line item has no product but still belongs to its order.
    assert_eq!(l.int("line_item_id", 70012, "product_id"), None);
    assert_eq!(l.int("line_item_id", 70012, "order_id"), Some(7001));
    assert_eq!(l.float("line_item_id", 70012, "unit_price"), Some(5.0));
    assert_eq!(l.int("line_item_id", 70021, "product_id"), Some(2));
}

#[test]
fn refunds_are_the_union_by_id_over_versions_and_refund_webhooks() {
    let t = landed().tables(None);
    let r = &t["refund_line_items"];
    // 801 appears in the bulk order and in the REST order update: once. 802 only in refunds/create.
    assert_eq!(r.ids("refund_id"), vec![801, 802]);
    assert_eq!(r.int("refund_id", 801, "line_item_id"), Some(70011));
    assert_eq!(r.int("refund_id", 801, "product_id"), Some(1));
    assert_eq!(r.int("refund_id", 801, "quantity"), Some(1));
    assert_eq!(r.float("refund_id", 801, "subtotal"), Some(17.99));
    assert_eq!(r.int("refund_id", 801, "created_at"), Some(ts("2025-02-20T00:00:00Z")));
    assert_eq!(r.int("refund_id", 802, "order_id"), Some(7001));
    assert_eq!(r.float("refund_id", 802, "subtotal"), Some(17.99));
    assert_eq!(r.int("refund_id", 802, "created_at"), Some(ts("2025-02-24T00:00:00Z")));
}

#[test]
fn every_event_shape_yields_its_ids() {
    let t = landed().tables(None);
    let e = &t["events"];
    // e2 appears twice: the first is kept.
    assert_eq!(e.height(), 11);
    assert_eq!(as_i64(e.get_by("event_id", "e2", "product_id")), Some(1));
    assert_eq!(as_i64(e.get_by("event_id", "e2", "variant_id")), Some(11));
    // Cart lines with plain numeric strings.
    assert_eq!(as_i64(e.get_by("event_id", "e3", "product_id")), Some(1));
    assert_eq!(as_i64(e.get_by("event_id", "e3", "variant_id")), Some(11));
    assert_eq!(as_i64(e.get_by("event_id", "e7", "product_id")), Some(1));
    assert_eq!(list_i64s(e.get_by("event_id", "e4", "product_ids")), vec![1, 2]);
    assert_eq!(list_i64s(e.get_by("event_id", "e5", "product_ids")), vec![2, 1]);
    assert_eq!(as_str(e.get_by("event_id", "e5", "search_query")).as_deref(), Some("  Red   Shirt "));
    assert_eq!(as_i64(e.get_by("event_id", "e6", "collection_id")), Some(500));
    assert_eq!(list_i64s(e.get_by("event_id", "e8", "product_ids")), vec![1]);
    assert_eq!(as_i64(e.get_by("event_id", "e9", "order_id")), Some(7001));
    assert_eq!(as_i64(e.get_by("event_id", "e9", "event_customer_id")), Some(900));
    assert_eq!(as_i64(e.get_by("event_id", "e9", "timestamp")), Some(ts("2025-02-10T12:00:00Z")));
    assert_eq!(as_str(e.get_by("event_id", "e1", "path")).as_deref(), Some("/"));
    assert_eq!(as_str(e.get_by("event_id", "e1", "url")).as_deref(), Some("https://shop.example/?utm_medium=email"));
    assert_eq!(as_str(e.get_by("event_id", "e1", "referrer_host")).as_deref(), Some("www.google.com"));
    assert_eq!(as_str(e.get_by("event_id", "e2", "referrer_host")), None);
    assert_eq!(as_str(e.get_by("event_id", "e1", "user_agent")).as_deref(), Some("Mozilla/5.0 (iPhone)"));
}

#[test]
fn identity_stitching_gives_earlier_anonymous_events_the_customer() {
    let landed = landed();
    let t = landed.tables(None);
    let e = &t["events"];
    // c1 was anonymous until its checkout_completed for 900's order: all its events are 900's.
    for id in ["e1", "e2", "e3", "e4", "e7", "e8", "e9"] {
        assert_eq!(as_i64(e.get_by("event_id", id, "customer_id")), Some(900), "{id}");
    }
    // c2's latest link is e10 (900, on 2025-03-01)…
    assert_eq!(as_i64(e.get_by("event_id", "e5", "customer_id")), Some(900));
    assert_eq!(as_i64(e.get_by("event_id", "e5", "event_customer_id")), Some(901));
    // …but as of 2025-02-15 it was e5's 901.
    let before = landed.tables(Some(ts("2025-02-15T00:00:00Z")));
    assert_eq!(as_i64(before["events"].get_by("event_id", "e5", "customer_id")), Some(901));
    assert_eq!(as_i64(before["events"].get_by("event_id", "e6", "customer_id")), Some(901));
    // c3 never linked.
    assert_eq!(as_i64(e.get_by("event_id", "e11", "customer_id")), None);
}

#[test]
fn as_of_takes_versions_as_they_stood_then() {
    let landed = landed();
    let t = landed.tables(Some(ts("2025-02-15T00:00:00Z")));
    let p = &t["products"];
    // 3 was created after T; 5's versions are all newer than T: the oldest one stands.
    assert_eq!(p.ids("product_id"), vec![1, 2, 5]);
    assert_eq!(p.str("product_id", 5, "title").as_deref(), Some("P5 v1"));
    // 2's versions (2025-03-01 bulk, 2025-04-01 REST) are both newer: the bulk one.
    assert_eq!(p.str("product_id", 2, "title").as_deref(), Some("Blue Mug"));
    assert_eq!(t["variants"].float("variant_id", 21, "price"), Some(8.0));
    assert_eq!(t["product_media"].ids("media_id"), vec![101, 102, 201]);
    assert_eq!(t["product_media"].str("media_id", 201, "media_type").as_deref(), Some("MODEL_3D"));
    assert_eq!(t["customers"].str("customer_id", 901, "state").as_deref(), Some("DISABLED"));
    assert_eq!(t["customers"].bool("customer_id", 901, "has_default_address"), Some(false));

    let older = landed.tables(Some(ts("2025-01-20T00:00:00Z")));
    let p = &older["products"];
    assert_eq!(p.str("product_id", 1, "title").as_deref(), Some("Old Red Shirt"));
    assert_eq!(p.str("product_id", 1, "status").as_deref(), Some("DRAFT"));
    // The old version's own variant, not the new version's.
    assert_eq!(older["variants"].ids("variant_id"), vec![13, 21]);
    // Deletions apply whatever T.
    assert!(!p.ids("product_id").contains(&4));
}

#[test]
fn landing_twice_changes_nothing() {
    let landed = landed();
    let files = shopfeat::land::collect_inputs(&[fixture("shop")]).unwrap();
    shopfeat::land::land(&landed.root, "test", &files, &shopfeat::progress::Progress::hidden()).unwrap();
    let t = landed.tables(None);
    assert_eq!(t["products"].ids("product_id"), vec![1, 2, 3, 5]);
    assert_eq!(t["line_items"].height(), 3);
    assert_eq!(t["refund_line_items"].height(), 2);
    assert_eq!(t["events"].height(), 11);
    assert_eq!(t["variants"].ids("variant_id"), vec![11, 12, 21, 22]);
}
