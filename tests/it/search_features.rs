//! search_product_features on the hand-built shop (`tests/fixtures/features`),
//! checked by hand. T = 2025-03-01T00:00:00Z.
//!
//! Browser c7, one session on 02-27: search "Cap" 08:00 listing products 4, 2, 3, 4;
//! views of 4 (position 1) at 08:01 and of 3 (position 3) at 08:02; a checkout with 4
//! at 08:10; search "cap" 08:20 listing 4, nothing after. Browser c5 (902), one session on 02-28: search "  Cap "
//! 09:00 listing 4, a collection view, search "hat" 09:30 listing 4, a view of 4 at
//! 09:31 (after "hat": its click, not the earlier search's).

use crate::common::*;
use shopfeat::features::search;

fn searches() -> Table {
    features_fixture("2025-03-01T00:00:00Z", search::build)
}

fn row(t: &Table, query: &str, product: i64) -> usize {
    let q: Vec<Option<String>> = t.0.column("search_query").unwrap().str().unwrap().iter().map(|s| s.map(str::to_string)).collect();
    let p = t.i64s("product_id");
    let rows: Vec<usize> = (0..t.height()).filter(|&i| q[i].as_deref() == Some(query) && p[i] == Some(product)).collect();
    assert_eq!(rows.len(), 1, "({query}, {product})");
    rows[0]
}

fn int(t: &Table, query: &str, product: i64, column: &str) -> Option<i64> {
    t.i64s(column)[row(t, query, product)]
}

fn float(t: &Table, query: &str, product: i64, column: &str) -> Option<f64> {
    t.0.column(column).unwrap().f64().unwrap().get(row(t, query, product))
}

#[test]
fn one_row_per_normalized_query_and_listed_product() {
    let t = searches();
    assert_eq!(t.height(), 4); // (cap, 2), (cap, 3), (cap, 4), (hat, 4)
}

#[test]
fn impressions_clicks_and_purchases() {
    let t = searches();
    // "Cap", "cap" and "  Cap " are one query; 4 was listed first each time (twice in
    // 08:00's list: its first position counts, once).
    assert_eq!(int(&t, "cap", 4, "impression_count"), Some(3));
    assert_eq!(int(&t, "cap", 4, "click_count"), Some(1));
    assert_eq!(int(&t, "cap", 4, "purchase_count"), Some(1));
    close(float(&t, "cap", 4, "avg_position"), 1.0);
    close(float(&t, "cap", 4, "click_through_rate"), 1.0 / 3.0);
    close(float(&t, "cap", 4, "conversion_rate"), 1.0);
    assert_eq!(int(&t, "cap", 4, "last_searched_at"), Some(ts("2025-02-28T09:00:00Z")));
    // The click on position 3 bought nothing: the checkout held only 4.
    assert_eq!((int(&t, "cap", 3, "impression_count"), int(&t, "cap", 3, "click_count"), int(&t, "cap", 3, "purchase_count")), (Some(1), Some(1), Some(0)));
    close(float(&t, "cap", 3, "avg_position"), 3.0);
    close(float(&t, "cap", 3, "click_through_rate"), 1.0);
    close(float(&t, "cap", 3, "conversion_rate"), 0.0);
    // Listed, never clicked.
    assert_eq!(int(&t, "cap", 2, "impression_count"), Some(1));
    close(float(&t, "cap", 2, "avg_position"), 2.0);
    assert_eq!((int(&t, "cap", 2, "click_count"), int(&t, "cap", 2, "purchase_count")), (Some(0), Some(0)));
    close(float(&t, "cap", 2, "conversion_rate"), 0.0);
    // The view at 09:31 follows "hat", not "  Cap ".
    assert_eq!((int(&t, "hat", 4, "impression_count"), int(&t, "hat", 4, "click_count"), int(&t, "hat", 4, "purchase_count")), (Some(1), Some(1), Some(0)));
    close(float(&t, "hat", 4, "click_through_rate"), 1.0);
    assert_eq!(int(&t, "hat", 4, "last_searched_at"), Some(ts("2025-02-28T09:30:00Z")));
}
