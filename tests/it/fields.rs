//! Typed field reads: ids, timestamps, money and HTML in every shape Shopify sends.

use serde_json::Value;
use shopfeat::land::fields::*;

#[test]
fn ids_of_every_shape_are_the_same_number() {
    assert_eq!(parse_id("gid://shopify/Product/632910392"), Some(632910392));
    assert_eq!(parse_id("632910392"), Some(632910392));
    assert_eq!(parse_id("gid://shopify/LineItem/5?x=1"), Some(5));
    assert_eq!(parse_id("gid://shopify/Product/abc"), None);
    assert_eq!(gid_type("gid://shopify/ProductVariant/7"), Some("ProductVariant"));
}

#[test]
fn timestamps_with_offsets_become_utc() {
    let a = parse_ts("2008-01-10T11:00:00-05:00").unwrap();
    let b = parse_ts("2008-01-10T16:00:00Z").unwrap();
    assert_eq!(a, b);
}

#[test]
fn html_becomes_plain_text() {
    assert_eq!(plain_text("<p>It's <b>the</b> small iPod &amp; more</p>"), "It's the small iPod & more");
    assert_eq!(plain_text("a&#39;b &lt;c&gt; &bogus"), "a'b <c> &bogus");
}

#[test]
fn money_reads_strings_numbers_and_money_bags() {
    let v: Value = serde_json::json!({"a": "12.50", "b": 3.5, "c": {"shopMoney": {"amount": "7.00"}}, "d": "x"});
    let f = Fields::of(&v, "r").unwrap();
    assert_eq!(f.money("a").unwrap(), Some(12.5));
    assert_eq!(f.money("b").unwrap(), Some(3.5));
    assert_eq!(f.money("c").unwrap(), Some(7.0));
    assert!(f.money("d").is_err());
    assert_eq!(f.money("zz").unwrap(), None);
}
