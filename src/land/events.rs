//! Web-pixel events (`{id, name, clientId, timestamp, context, data}`) → event rows
//! with every id the event mentions.

use super::fields::{id_value, FieldResult, Fields};
use super::raw::EventRow;
use serde_json::Value;

/// Product ids of a list of objects, at `path` inside each item, in list order.
fn product_ids(items: &[Value], path: &str, list: &str) -> FieldResult<Vec<i64>> {
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        if let Some(id) = Fields::of(item, list)?.get(path) {
            ids.push(id_value(&format!("{list}[].{path}"), id)?);
        }
    }
    Ok(ids)
}

pub fn web_pixel_event(f: Fields) -> FieldResult<EventRow> {
    let data = f.obj("data")?;
    let d = |path: &str| -> FieldResult<Option<i64>> {
        match data {
            Some(d) => d.id(path).map_err(|e| super::fields::FieldError { field: format!("data.{}", e.field), ..e }),
            None => Ok(None),
        }
    };
    let name = f.str("name")?.ok_or_else(|| super::fields::missing("name"))?;
    let (mut product_id, mut variant_id) = (d("productVariant.product.id")?, d("productVariant.id")?);
    if product_id.is_none() {
        product_id = d("cartLine.merchandise.product.id")?;
        variant_id = d("cartLine.merchandise.id")?;
    }
    let list_ids = match data {
        Some(d) => {
            let mut ids = product_ids(d.array("searchResult.productVariants")?, "product.id", "data.searchResult.productVariants")?;
            ids.extend(product_ids(d.array("cart.lines")?, "merchandise.product.id", "data.cart.lines")?);
            ids.extend(product_ids(d.array("checkout.lineItems")?, "variant.product.id", "data.checkout.lineItems")?);
            ids
        }
        None => vec![],
    };
    let event_customer_id = match f.id("customerId")? {
        Some(id) => Some(id),
        None => d("checkout.order.customer.id")?,
    };
    let event_id = match f.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(super::fields::FieldError { field: "id".into(), problem: format!("expected a string, got {other}") }),
        None => return Err(super::fields::missing("id")),
    };
    Ok(EventRow {
        event_id: Some(event_id),
        name: Some(name),
        client_id: Some(f.str("clientId")?.ok_or_else(|| super::fields::missing("clientId"))?),
        timestamp: Some(f.ts("timestamp")?.ok_or_else(|| super::fields::missing("timestamp"))?),
        event_customer_id,
        product_id,
        variant_id,
        collection_id: d("collection.id")?,
        order_id: d("checkout.order.id")?,
        search_query: data.map(|d| d.str("searchResult.query")).transpose()?.flatten(),
        product_ids: list_ids,
        url: f.str("context.document.location.href")?,
        path: f.str("context.document.location.pathname")?,
        referrer: f.str("context.document.referrer")?,
        user_agent: f.str("context.navigator.userAgent")?,
    })
}

/// A web-pixel event line read straight into its row, without a JSON tree:
/// the fields [`web_pixel_event`] reads, typed, everything else skipped (an
/// events file is most of a shop's raw bytes). `None` whenever the line is not
/// the usual well-formed event — malformed JSON, a field of another type, a
/// key given twice, a required field missing — and [`web_pixel_event`] over
/// the parsed tree then decides, with its messages. So a row from here is the
/// row that one gives (`tests`, below, compares the two on every line of the
/// sample shop and on edge cases).
///
/// One difference, on lines no tracker writes: fields this reader skips are
/// only checked to be JSON, so a line whose unread parts nest deeper than 128
/// levels or hold a number beyond `f64` lands here, where the tree refused it.
pub fn typed_web_pixel_event(line: &str) -> Option<EventRow> {
    let event: typed::Obj<typed::Event> = serde_json::from_str(line).ok()?;
    event.0.row()
}

mod typed {
    //! The shape of a web-pixel event, as far as a row reads it. Every field is
    //! optional here: what is required is checked when the row is made.
    use super::EventRow;
    use serde::de::{self, Deserializer, Visitor};
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Event {
        id: Option<EventId>,
        name: Option<String>,
        #[serde(rename = "clientId")]
        client_id: Option<String>,
        timestamp: Option<String>,
        #[serde(rename = "customerId")]
        customer_id: Option<Id>,
        context: Option<Obj<Context>>,
        data: Option<Obj<Data>>,
    }

    #[derive(Deserialize)]
    struct Context {
        document: Option<Obj<Document>>,
        navigator: Option<Obj<Navigator>>,
    }

    #[derive(Deserialize)]
    struct Document {
        location: Option<Obj<Location>>,
        referrer: Option<String>,
    }

    #[derive(Deserialize)]
    struct Location {
        href: Option<String>,
        pathname: Option<String>,
    }

    #[derive(Deserialize)]
    struct Navigator {
        #[serde(rename = "userAgent")]
        user_agent: Option<String>,
    }

    #[derive(Deserialize)]
    struct Data {
        #[serde(rename = "productVariant")]
        product_variant: Option<Obj<Variant>>,
        #[serde(rename = "cartLine")]
        cart_line: Option<Obj<Merchandised>>,
        #[serde(rename = "searchResult")]
        search_result: Option<Obj<SearchResult>>,
        cart: Option<Obj<Cart>>,
        checkout: Option<Obj<Checkout>>,
        collection: Option<Obj<Identified>>,
    }

    /// A product variant (also a cart line's `merchandise`).
    #[derive(Deserialize)]
    struct Variant {
        id: Option<Id>,
        product: Option<Obj<Identified>>,
    }

    #[derive(Deserialize)]
    struct Merchandised {
        merchandise: Option<Obj<Variant>>,
    }

    #[derive(Deserialize)]
    struct SearchResult {
        query: Option<String>,
        #[serde(rename = "productVariants")]
        product_variants: Option<Vec<Obj<Variant>>>,
    }

    #[derive(Deserialize)]
    struct Cart {
        lines: Option<Vec<Obj<Merchandised>>>,
    }

    #[derive(Deserialize)]
    struct Checkout {
        #[serde(rename = "lineItems")]
        line_items: Option<Vec<Obj<CheckoutLine>>>,
        order: Option<Obj<Order>>,
    }

    #[derive(Deserialize)]
    struct CheckoutLine {
        variant: Option<Obj<Variant>>,
    }

    #[derive(Deserialize)]
    struct Order {
        id: Option<Id>,
        customer: Option<Obj<Identified>>,
    }

    #[derive(Deserialize)]
    struct Identified {
        id: Option<Id>,
    }

    /// An id as `id_value` reads one: a GID, a numeric string, an integer.
    struct Id(i64);

    /// A JSON object read as `T` (a derived struct would also take an array,
    /// field by field in order).
    pub struct Obj<T>(pub T);

    impl<T> std::ops::Deref for Obj<T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.0
        }
    }

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Obj<T>, D::Error> {
            struct ObjVisitor<T>(std::marker::PhantomData<T>);
            impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjVisitor<T> {
                type Value = Obj<T>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                    T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Obj)
                }
            }
            deserializer.deserialize_map(ObjVisitor(std::marker::PhantomData))
        }
    }

    /// An event's own id: a string, or an integer written as one.
    struct EventId(String);

    impl Event {
        pub fn row(self) -> Option<EventRow> {
            let data = self.data;
            let d = data.as_ref();
            let product_of = |v: &Option<Obj<Variant>>| v.as_ref().and_then(|v| product_id(&v.product));
            let variant_of = |v: &Option<Obj<Variant>>| v.as_ref().and_then(|v| id(&v.id));
            let (mut product, mut variant) = (d.and_then(|d| product_of(&d.product_variant)), d.and_then(|d| variant_of(&d.product_variant)));
            if product.is_none() {
                let merchandise = d.and_then(|d| d.cart_line.as_ref()).and_then(|l| l.merchandise.as_ref());
                product = merchandise.and_then(|m| product_id(&m.product));
                variant = merchandise.and_then(|m| id(&m.id));
            }
            let mut product_ids = vec![];
            if let Some(d) = d {
                let searched = d.search_result.iter().flat_map(|s| s.product_variants.iter().flatten()).map(|v| &v.product);
                let in_cart = d.cart.iter().flat_map(|c| c.lines.iter().flatten()).map(|l| l.merchandise.as_ref().and_then(|m| m.product.as_ref()));
                let checked_out = d.checkout.iter().flat_map(|c| c.line_items.iter().flatten()).map(|l| l.variant.as_ref().and_then(|v| v.product.as_ref()));
                product_ids.extend(searched.filter_map(product_id));
                product_ids.extend(in_cart.filter_map(|p| p.and_then(|p| id(&p.id))));
                product_ids.extend(checked_out.filter_map(|p| p.and_then(|p| id(&p.id))));
            }
            let order = d.and_then(|d| d.checkout.as_ref()).and_then(|c| c.order.as_ref());
            let event_customer_id = id(&self.customer_id).or_else(|| order.and_then(|o| o.customer.as_ref()).and_then(|c| id(&c.id)));
            let document = self.context.as_ref().and_then(|c| c.document.as_ref());
            let location = document.and_then(|d| d.location.as_ref());
            Some(EventRow {
                event_id: Some(self.id?.0),
                name: Some(self.name?),
                client_id: Some(self.client_id?),
                timestamp: Some(crate::land::fields::parse_ts(&self.timestamp?)?),
                event_customer_id,
                product_id: product,
                variant_id: variant,
                collection_id: d.and_then(|d| d.collection.as_ref()).and_then(|c| id(&c.id)),
                order_id: order.and_then(|o| id(&o.id)),
                search_query: d.and_then(|d| d.search_result.as_ref()).and_then(|s| s.query.clone()),
                product_ids,
                url: location.and_then(|l| l.href.clone()),
                path: location.and_then(|l| l.pathname.clone()),
                referrer: document.and_then(|d| d.referrer.clone()),
                user_agent: self.context.and_then(|c| c.0.navigator).and_then(|n| n.0.user_agent),
            })
        }
    }

    fn id(id: &Option<Id>) -> Option<i64> {
        id.as_ref().map(|id| id.0)
    }

    fn product_id(product: &Option<Obj<Identified>>) -> Option<i64> {
        product.as_ref().and_then(|p| id(&p.id))
    }

    struct IdVisitor;

    impl Visitor<'_> for IdVisitor {
        type Value = Id;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an id")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id, E> {
            Ok(Id(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id, E> {
            i64::try_from(v).map(Id).map_err(|_| E::custom("an id beyond i64"))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
            crate::land::fields::parse_id(v).map(Id).ok_or_else(|| E::custom("not an id"))
        }
    }

    impl<'de> Deserialize<'de> for Id {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Id, D::Error> {
            deserializer.deserialize_any(IdVisitor)
        }
    }

    struct EventIdVisitor;

    impl Visitor<'_> for EventIdVisitor {
        type Value = EventId;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an event id")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<EventId, E> {
            Ok(EventId(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<EventId, E> {
            Ok(EventId(v.to_string()))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<EventId, E> {
            Ok(EventId(v.to_string()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<EventId, E> {
            Ok(EventId(v))
        }
    }

    impl<'de> Deserialize<'de> for EventId {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EventId, D::Error> {
            deserializer.deserialize_any(EventIdVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// The row of a line as landing read every line before the typed reader.
    fn by_tree(line: &str) -> FieldResult<EventRow> {
        let value: Value = serde_json::from_str(line).map_err(|e| super::super::fields::FieldError { field: "json".into(), problem: e.to_string() })?;
        Fields::of(&value, "event").and_then(web_pixel_event)
    }

    fn repo_file(path: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let mut text = String::new();
        let file = std::fs::File::open(&path).unwrap();
        if path.extension().is_some_and(|e| e == "gz") {
            flate2::read::MultiGzDecoder::new(file).read_to_string(&mut text).unwrap();
        } else {
            std::io::BufReader::new(file).read_to_string(&mut text).unwrap();
        }
        text
    }

    #[test]
    fn every_event_of_the_sample_shop_is_read_typed_into_the_rows_the_tree_gives() {
        let text = repo_file("data/sample/events.jsonl.gz") + &repo_file("tests/fixtures/shop/events.jsonl");
        let mut compared = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let typed = typed_web_pixel_event(line).unwrap_or_else(|| panic!("not read typed: {line}"));
            assert_eq!(Ok(typed), by_tree(line), "{line}");
            compared += 1;
        }
        assert!(compared > 5000, "{compared} lines");
    }

    /// An event with `data` and extra top-level fields spliced in.
    fn event(data: &str, extra: &str) -> String {
        format!(r#"{{"id":"e1","name":"product_viewed","clientId":"c1","timestamp":"2025-02-10T11:00:00.000Z"{extra},"data":{data}}}"#)
    }

    #[test]
    fn on_unusual_lines_the_typed_reader_gives_the_trees_row_or_steps_aside() {
        let deep = format!(r#"{}{}"#, "[".repeat(200), "]".repeat(200));
        // (line, read typed?)
        let cases: Vec<(String, bool)> = vec![
            (event("{}", r#","type":"standard","customerId":"901""#), true),
            (r#"{"id":123,"name":"page_viewed","clientId":"c1","timestamp":"2025-02-10T11:00:00+02:00","data":{}}"#.into(), true),
            (event(r#"{"productVariant":{"id":7,"product":{"id":"8"}}}"#, ""), true),
            (event(r#"{"productVariant":{"id":"gid://shopify/ProductVariant/7?x=1","product":{"id":"gid://shopify/Product/8"}}}"#, ""), true),
            (event(r#"{"productVariant":{"id":"7","product":{"id":null}},"cartLine":{"merchandise":{"id":"9","product":{"id":"10"}}}}"#, ""), true),
            (event(r#"{"productVariant":{"id":"7","product":null},"cartLine":null}"#, ""), true),
            (event(r#"{"productVariant":{"id":"7"},"cartLine":{"merchandise":{"product":{"id":"10"}}}}"#, ""), true),
            (event(r#"{"checkout":{"order":{"id":"5","customer":{"id":"gid://shopify/Customer/6"}},"lineItems":[{"variant":{"product":{"id":"1"}}},{"variant":null},{"quantity":2}]}}"#, r#","customerId":null"#), true),
            (event(r#"{"checkout":{"order":{"customer":{"id":"6"}}}}"#, r#","customerId":"gid://shopify/Customer/4""#), true),
            (event(r#"{"searchResult":{"query":"r\u00e9d \"shirt\"","productVariants":[{"product":{"id":"2"}},{"id":"3"}]},"cart":{"lines":[{"merchandise":{"product":{"id":"1"}}},{"quantity":1}]}}"#, ""), true),
            (event(r#"{"collection":{"id":"gid://shopify/Collection/500","title":"x"},"unknown":{"a":[1,{"b":null}]}}"#, r#","context":{"document":{"location":{"href":"https://a.example/\u00e9?q=1","pathname":"/"},"referrer":""},"navigator":{"userAgent":"Mozilla \"5\""}}"#), true),
            (event("null", r#","context":null"#), true),
            // Not the usual line: the tree decides.
            (r#"["e1","page_viewed","c1","2025-02-10T11:00:00.000Z"]"#.into(), false),
            (event(r#"[{"productVariant":{"product":{"id":"8"}}}]"#, ""), false),
            // (An array of as many items as a struct's fields.)
            (event(r#"{"collection":["500"]}"#, ""), false),
            (event(r#"{"productVariant":{"id":"7","product":[8]}}"#, ""), false),
            (event("{}", r#","name":"page_viewed""#), false),
            (event("{}", "").replace("\"product_viewed\"", "7"), false),
            (event("{}", "").replace("\"clientId\":\"c1\",", ""), false),
            (event("{}", "").replace("2025-02-10T11:00:00.000Z", "yesterday"), false),
            (event("{}", "").replace("\"e1\"", "1.5"), false),
            (event(r#"{"productVariant":{"product":{"id":7.0}}}"#, ""), false),
            (event(r#"{"productVariant":{"product":{"id":99999999999999999999}}}"#, ""), false),
            (event(r#"{"productVariant":{"product":{"id":"seven"}}}"#, ""), false),
            (event(r#"{"searchResult":{"productVariants":[null]}}"#, ""), false),
            (event(r#"{"searchResult":{"productVariants":{"product":{"id":"2"}}}}"#, ""), false),
            (event(r#"{"productVariant":"x"}"#, ""), false),
            (event("{}", "").replace("}}", "}"), false),
            // Documented: unread fields are only checked to be JSON.
            (event("{}", &format!(r#","unread":{deep}"#)), true),
        ];
        for (line, typed_expected) in &cases {
            let typed = typed_web_pixel_event(line);
            assert_eq!(typed.is_some(), *typed_expected, "{line}");
            if let Some(row) = typed {
                if line.contains("unread") {
                    assert!(by_tree(line).is_err(), "the tree refuses nesting beyond 128: {line}");
                } else {
                    assert_eq!(Ok(row), by_tree(line), "{line}");
                }
            }
        }
        // The lines the tree reads where the typed reader steps aside (a key
        // given twice, the lenient non-object step, a float event id).
        for line in [event("{}", r#","name":"page_viewed""#), event(r#"{"productVariant":"x"}"#, ""), event("{}", "").replace("\"e1\"", "1.5")] {
            assert!(by_tree(&line).is_ok(), "{line}");
        }
    }
}
