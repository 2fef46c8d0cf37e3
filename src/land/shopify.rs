//! Decoders from Shopify's two record shapes — GraphQL bulk lines (camelCase, GIDs,
//! money bags) and REST webhook payloads (snake_case, numeric ids, decimal
//! strings) — to the same raw rows.

use super::fields::{plain_text, FieldResult, Fields};
use super::raw::*;

/// Upper-cases REST's lower-case enums (`active` → `ACTIVE`) so both shapes agree.
fn upper(value: Option<String>) -> Option<String> {
    value.map(|s| s.to_uppercase())
}

pub fn graphql_product(f: Fields) -> FieldResult<ProductRow> {
    Ok(ProductRow {
        product_id: Some(f.required_id("id")?),
        deleted: Some(false),
        title: f.str("title")?,
        handle: f.str("handle")?,
        vendor: f.str("vendor")?,
        product_type: f.str("productType")?,
        status: upper(f.str("status")?),
        tags: f.tags("tags")?,
        description: f.str("description")?,
        description_html: f.str("descriptionHtml")?,
        seo_title: f.str("seo.title")?,
        seo_description: f.str("seo.description")?,
        created_at: f.ts("createdAt")?,
        updated_at: f.ts("updatedAt")?,
        published_at: f.ts("publishedAt")?,
        option_count: Some(f.array("options")?.len() as i64),
        has_collections: Some(true),
    })
}

pub fn rest_product(f: Fields) -> FieldResult<ProductRow> {
    let html = f.str("body_html")?;
    Ok(ProductRow {
        product_id: Some(f.required_id("id")?),
        deleted: Some(false),
        title: f.str("title")?,
        handle: f.str("handle")?,
        vendor: f.str("vendor")?,
        product_type: f.str("product_type")?,
        status: upper(f.str("status")?),
        tags: f.tags("tags")?,
        description: html.as_deref().map(plain_text),
        description_html: html,
        seo_title: None,
        seo_description: None,
        created_at: f.ts("created_at")?,
        updated_at: f.ts("updated_at")?,
        published_at: f.ts("published_at")?,
        option_count: Some(f.array("options")?.len() as i64),
        // REST payloads say nothing of collections: memberships stay as listed elsewhere.
        has_collections: Some(false),
    })
}

pub fn graphql_variant(f: Fields, product_id: i64, parent_line: i64) -> FieldResult<VariantRow> {
    Ok(VariantRow {
        variant_id: Some(f.required_id("id")?),
        product_id: Some(product_id),
        parent_line: Some(parent_line),
        title: f.str("title")?,
        sku: f.str("sku")?,
        price: f.money("price")?,
        compare_at_price: f.money("compareAtPrice")?,
        inventory_quantity: f.i64("inventoryQuantity")?,
    })
}

pub fn rest_variant(f: Fields, product_id: i64, parent_line: i64) -> FieldResult<VariantRow> {
    Ok(VariantRow {
        variant_id: Some(f.required_id("id")?),
        product_id: Some(product_id),
        parent_line: Some(parent_line),
        title: f.str("title")?,
        sku: f.str("sku")?,
        price: f.money("price")?,
        compare_at_price: f.money("compare_at_price")?,
        inventory_quantity: f.i64("inventory_quantity")?,
    })
}

/// Media type from `mediaContentType`, else from the GID's type.
pub fn graphql_media(f: Fields, gid_type: &str, product_id: i64, parent_line: i64) -> FieldResult<MediaRow> {
    let from_gid = match gid_type {
        "Video" => "VIDEO",
        "ExternalVideo" => "EXTERNAL_VIDEO",
        "Model3d" => "MODEL_3D",
        _ => "IMAGE",
    };
    Ok(MediaRow {
        media_id: Some(f.required_id("id")?),
        product_id: Some(product_id),
        parent_line: Some(parent_line),
        media_type: Some(f.str("mediaContentType")?.unwrap_or_else(|| from_gid.to_string())),
        alt: f.str("alt")?,
    })
}

pub fn rest_image(f: Fields, product_id: i64, parent_line: i64) -> FieldResult<MediaRow> {
    Ok(MediaRow {
        media_id: Some(f.required_id("id")?),
        product_id: Some(product_id),
        parent_line: Some(parent_line),
        media_type: Some("IMAGE".to_string()),
        alt: f.str("alt")?,
    })
}

pub fn graphql_collection(f: Fields) -> FieldResult<CollectionRow> {
    Ok(CollectionRow {
        collection_id: Some(f.required_id("id")?),
        deleted: Some(false),
        title: f.str("title")?,
        handle: f.str("handle")?,
        description: f.str("description")?,
        description_html: f.str("descriptionHtml")?,
        sort_order: f.str("sortOrder")?,
        seo_title: f.str("seo.title")?,
        seo_description: f.str("seo.description")?,
        image_url: f.str("image.url")?,
        image_alt: f.str("image.altText")?,
        is_automated: Some(f.get("ruleSet").is_some()),
        updated_at: f.ts("updatedAt")?,
    })
}

/// A REST custom or smart collection; smart ones carry `rules`.
pub fn rest_collection(f: Fields, smart_hint: bool) -> FieldResult<CollectionRow> {
    let html = f.str("body_html")?;
    Ok(CollectionRow {
        collection_id: Some(f.required_id("id")?),
        deleted: Some(false),
        title: f.str("title")?,
        handle: f.str("handle")?,
        description: html.as_deref().map(plain_text),
        description_html: html,
        sort_order: upper(f.str("sort_order")?),
        seo_title: None,
        seo_description: None,
        image_url: f.str("image.src")?,
        image_alt: f.str("image.alt")?,
        is_automated: Some(smart_hint || f.get("rules").is_some()),
        updated_at: f.ts("updated_at")?,
    })
}

pub fn graphql_customer(f: Fields) -> FieldResult<CustomerRow> {
    Ok(CustomerRow {
        customer_id: Some(f.required_id("id")?),
        deleted: Some(false),
        email: f.str("email")?,
        first_name: f.str("firstName")?,
        last_name: f.str("lastName")?,
        state: upper(f.str("state")?),
        verified_email: f.bool("verifiedEmail")?,
        tax_exempt: f.bool("taxExempt")?,
        tags: f.tags("tags")?,
        locale: f.str("locale")?,
        created_at: f.ts("createdAt")?,
        updated_at: f.ts("updatedAt")?,
        number_of_orders: f.i64("numberOfOrders")?,
        amount_spent: f.money("amountSpent")?,
        country_code: f.str("defaultAddress.countryCodeV2")?,
        province_code: f.str("defaultAddress.provinceCode")?,
        city: f.str("defaultAddress.city")?,
        marketing_state: upper(f.str("emailMarketingConsent.marketingState")?),
    })
}

pub fn rest_customer(f: Fields) -> FieldResult<CustomerRow> {
    Ok(CustomerRow {
        customer_id: Some(f.required_id("id")?),
        deleted: Some(false),
        email: f.str("email")?,
        first_name: f.str("first_name")?,
        last_name: f.str("last_name")?,
        state: upper(f.str("state")?),
        verified_email: f.bool("verified_email")?,
        tax_exempt: f.bool("tax_exempt")?,
        tags: f.tags("tags")?,
        locale: f.str("locale")?,
        created_at: f.ts("created_at")?,
        updated_at: f.ts("updated_at")?,
        number_of_orders: f.i64("orders_count")?,
        amount_spent: f.money("total_spent")?,
        country_code: f.str("default_address.country_code")?,
        province_code: f.str("default_address.province_code")?,
        city: f.str("default_address.city")?,
        marketing_state: upper(f.str("email_marketing_consent.state")?),
    })
}

pub fn graphql_order(f: Fields) -> FieldResult<OrderRow> {
    Ok(OrderRow {
        order_id: Some(f.required_id("id")?),
        deleted: Some(false),
        name: f.str("name")?,
        customer_id: f.id("customer.id")?,
        created_at: f.ts("createdAt")?,
        processed_at: f.ts("processedAt")?,
        updated_at: f.ts("updatedAt")?,
        cancelled_at: f.ts("cancelledAt")?,
        cancel_reason: f.str("cancelReason")?,
        test: Some(f.bool("test")?.unwrap_or(false)),
        financial_status: f.str("displayFinancialStatus")?,
        fulfillment_status: f.str("displayFulfillmentStatus")?,
        currency: f.str("currencyCode")?,
        source_name: f.str("sourceName")?,
        tags: f.tags("tags")?,
        discount_codes: f.tags("discountCodes")?,
        total_price: f.money("totalPriceSet")?,
        subtotal_price: f.money("subtotalPriceSet")?,
        total_discounts: f.money("totalDiscountsSet")?,
        total_tax: f.money("totalTaxSet")?,
        total_shipping: f.money("totalShippingPriceSet")?,
        total_refunded: f.money("totalRefundedSet")?,
        country_code: f.str("shippingAddress.countryCodeV2")?,
        province_code: f.str("shippingAddress.provinceCode")?,
    })
}

pub fn rest_order(f: Fields) -> FieldResult<OrderRow> {
    let discount_codes = f
        .array("discount_codes")?
        .iter()
        .map(|d| Fields::of(d, "discount_codes[]")?.str("code"))
        .collect::<FieldResult<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    Ok(OrderRow {
        order_id: Some(f.required_id("id")?),
        deleted: Some(false),
        name: f.str("name")?,
        customer_id: f.id("customer.id")?,
        created_at: f.ts("created_at")?,
        processed_at: f.ts("processed_at")?,
        updated_at: f.ts("updated_at")?,
        cancelled_at: f.ts("cancelled_at")?,
        cancel_reason: f.str("cancel_reason")?,
        test: Some(f.bool("test")?.unwrap_or(false)),
        financial_status: upper(f.str("financial_status")?),
        fulfillment_status: upper(f.str("fulfillment_status")?),
        currency: f.str("currency")?,
        source_name: f.str("source_name")?,
        tags: f.tags("tags")?,
        discount_codes,
        total_price: f.money("total_price")?,
        subtotal_price: f.money("subtotal_price")?,
        total_discounts: f.money("total_discounts")?,
        total_tax: f.money("total_tax")?,
        total_shipping: f.money("total_shipping_price_set")?,
        total_refunded: None,
        country_code: f.str("shipping_address.country_code")?,
        province_code: f.str("shipping_address.province_code")?,
    })
}

pub fn graphql_line_item(f: Fields, order_id: i64, parent_line: i64) -> FieldResult<LineItemRow> {
    Ok(LineItemRow {
        line_item_id: Some(f.required_id("id")?),
        order_id: Some(order_id),
        parent_line: Some(parent_line),
        product_id: f.id("product.id")?,
        variant_id: f.id("variant.id")?,
        title: f.str("title")?,
        sku: f.str("sku")?,
        vendor: f.str("vendor")?,
        quantity: Some(f.i64("quantity")?.unwrap_or(0)),
        unit_price: Some(f.money("originalUnitPriceSet")?.unwrap_or(0.0)),
        discount: Some(f.money("totalDiscountSet")?.unwrap_or(0.0)),
    })
}

pub fn rest_line_item(f: Fields, order_id: i64, parent_line: i64) -> FieldResult<LineItemRow> {
    Ok(LineItemRow {
        line_item_id: Some(f.required_id("id")?),
        order_id: Some(order_id),
        parent_line: Some(parent_line),
        product_id: f.id("product_id")?,
        variant_id: f.id("variant_id")?,
        title: f.str("title")?,
        sku: f.str("sku")?,
        vendor: f.str("vendor")?,
        quantity: Some(f.i64("quantity")?.unwrap_or(0)),
        unit_price: Some(f.money("price")?.unwrap_or(0.0)),
        discount: Some(f.money("total_discount")?.unwrap_or(0.0)),
    })
}

/// The refund line items of one refund object, in either shape.
pub fn refund_lines(refund: Fields, order_id: i64) -> FieldResult<Vec<RefundLineRow>> {
    let refund_id = refund.required_id("id")?;
    let created_at = match refund.ts("createdAt")? {
        Some(t) => Some(t),
        None => refund.ts("created_at")?,
    };
    let graphql_nodes = refund.array("refundLineItems.nodes")?;
    let nodes = if graphql_nodes.is_empty() { refund.array("refund_line_items")? } else { graphql_nodes };
    nodes
        .iter()
        .map(|node| {
            let n = Fields::of(node, "refund line item")?;
            let line_item_id = match n.id("lineItem.id")? {
                Some(id) => id,
                None => n.required_id("line_item_id")?,
            };
            let subtotal = match n.money("subtotalSet")? {
                Some(x) => Some(x),
                None => n.money("subtotal")?,
            };
            Ok(RefundLineRow {
                refund_id: Some(refund_id),
                order_id: Some(order_id),
                refund_created_at: created_at,
                line_item_id: Some(line_item_id),
                quantity: Some(n.i64("quantity")?.unwrap_or(0)),
                subtotal: Some(subtotal.unwrap_or(0.0)),
            })
        })
        .collect()
}
