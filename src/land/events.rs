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
