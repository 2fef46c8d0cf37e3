//! Decoders from Shopify's two record shapes to the same raw rows: GraphQL bulk
//! lines (camelCase, GIDs, money bags) and REST webhook payloads (snake_case,
//! numeric ids, decimal strings). Each field is read once, with its name in both
//! shapes side by side, so the two mappings cannot drift apart.

use super::fields::{plain_text, FieldResult, Fields};
use super::raw::*;

/// Which of Shopify's record shapes a record is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Graphql,
    Rest,
}

impl Shape {
    /// A field's path in this shape.
    fn path(self, graphql: &'static str, rest: &'static str) -> &'static str {
        match self {
            Shape::Graphql => graphql,
            Shape::Rest => rest,
        }
    }

    /// The plain-text description: GraphQL sends it; REST only has `body_html`.
    fn description(self, f: Fields, html: Option<&str>) -> FieldResult<Option<String>> {
        match self {
            Shape::Graphql => f.str("description"),
            Shape::Rest => Ok(html.map(plain_text)),
        }
    }
}

/// Upper-cases REST's lower-case enums (`active` → `ACTIVE`) so both shapes agree.
fn upper(value: Option<String>) -> Option<String> {
    value.map(|s| s.to_uppercase())
}

pub fn product(f: Fields, shape: Shape) -> FieldResult<ProductRow> {
    let k = |graphql, rest| shape.path(graphql, rest);
    let html = f.str(k("descriptionHtml", "body_html"))?;
    Ok(ProductRow {
        product_id: Some(f.required_id("id")?),
        deleted: Some(false),
        title: f.str("title")?,
        handle: f.str("handle")?,
        vendor: f.str("vendor")?,
        product_type: f.str(k("productType", "product_type"))?,
        status: upper(f.str("status")?),
        tags: f.tags("tags")?,
        description: shape.description(f, html.as_deref())?,
        description_html: html,
        seo_title: f.str("seo.title")?,
        seo_description: f.str("seo.description")?,
        created_at: f.ts(k("createdAt", "created_at"))?,
        updated_at: f.ts(k("updatedAt", "updated_at"))?,
        published_at: f.ts(k("publishedAt", "published_at"))?,
        option_count: Some(f.array("options")?.len() as i64),
        // REST payloads say nothing of collections: memberships stay as listed elsewhere.
        has_collections: Some(shape == Shape::Graphql),
    })
}

pub fn variant(f: Fields, shape: Shape, product_id: i64, parent_line: Option<i64>) -> FieldResult<VariantRow> {
    let k = |graphql, rest| shape.path(graphql, rest);
    Ok(VariantRow {
        variant_id: Some(f.required_id("id")?),
        product_id: Some(product_id),
        parent_line,
        title: f.str("title")?,
        sku: f.str("sku")?,
        price: f.money("price")?,
        compare_at_price: f.money(k("compareAtPrice", "compare_at_price"))?,
        inventory_quantity: f.i64(k("inventoryQuantity", "inventory_quantity"))?,
    })
}

/// A media item. GraphQL says its type in `mediaContentType` (else the GID's type
/// tells); REST `images` are images.
pub fn media(f: Fields, gid_type: Option<&str>, product_id: i64, parent_line: Option<i64>) -> FieldResult<MediaRow> {
    let from_gid = match gid_type {
        Some("Video") => "VIDEO",
        Some("ExternalVideo") => "EXTERNAL_VIDEO",
        Some("Model3d") => "MODEL_3D",
        _ => "IMAGE",
    };
    Ok(MediaRow {
        media_id: Some(f.required_id("id")?),
        product_id: Some(product_id),
        parent_line,
        media_type: Some(f.str("mediaContentType")?.unwrap_or_else(|| from_gid.to_string())),
        alt: f.str("alt")?,
    })
}

/// A custom or smart collection; smart ones carry a `ruleSet` (GraphQL) or `rules`
/// (REST), or come from a `smart_collections` list.
pub fn collection(f: Fields, shape: Shape, smart_hint: bool) -> FieldResult<CollectionRow> {
    let k = |graphql, rest| shape.path(graphql, rest);
    let html = f.str(k("descriptionHtml", "body_html"))?;
    Ok(CollectionRow {
        collection_id: Some(f.required_id("id")?),
        deleted: Some(false),
        title: f.str("title")?,
        handle: f.str("handle")?,
        description: shape.description(f, html.as_deref())?,
        description_html: html,
        sort_order: upper(f.str(k("sortOrder", "sort_order"))?),
        seo_title: f.str("seo.title")?,
        seo_description: f.str("seo.description")?,
        image_url: f.str(k("image.url", "image.src"))?,
        image_alt: f.str(k("image.altText", "image.alt"))?,
        is_automated: Some(smart_hint || f.get(k("ruleSet", "rules")).is_some()),
        updated_at: f.ts(k("updatedAt", "updated_at"))?,
    })
}

pub fn customer(f: Fields, shape: Shape) -> FieldResult<CustomerRow> {
    let k = |graphql, rest| shape.path(graphql, rest);
    Ok(CustomerRow {
        customer_id: Some(f.required_id("id")?),
        deleted: Some(false),
        email: f.str("email")?,
        first_name: f.str(k("firstName", "first_name"))?,
        last_name: f.str(k("lastName", "last_name"))?,
        state: upper(f.str("state")?),
        verified_email: f.bool(k("verifiedEmail", "verified_email"))?,
        tax_exempt: f.bool(k("taxExempt", "tax_exempt"))?,
        tags: f.tags("tags")?,
        locale: f.str("locale")?,
        created_at: f.ts(k("createdAt", "created_at"))?,
        updated_at: f.ts(k("updatedAt", "updated_at"))?,
        number_of_orders: f.i64(k("numberOfOrders", "orders_count"))?,
        amount_spent: f.money(k("amountSpent", "total_spent"))?,
        country_code: f.str(k("defaultAddress.countryCodeV2", "default_address.country_code"))?,
        province_code: f.str(k("defaultAddress.provinceCode", "default_address.province_code"))?,
        city: f.str(k("defaultAddress.city", "default_address.city"))?,
        marketing_state: upper(f.str(k("emailMarketingConsent.marketingState", "email_marketing_consent.state"))?),
    })
}

/// Discount codes: GraphQL lists strings; REST lists `{code, amount, type}` objects.
fn discount_codes(f: Fields, shape: Shape) -> FieldResult<Vec<String>> {
    match shape {
        Shape::Graphql => f.tags("discountCodes"),
        Shape::Rest => Ok(f
            .array("discount_codes")?
            .iter()
            .map(|d| Fields::of(d, "discount_codes[]")?.str("code"))
            .collect::<FieldResult<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect()),
    }
}

pub fn order(f: Fields, shape: Shape) -> FieldResult<OrderRow> {
    let k = |graphql, rest| shape.path(graphql, rest);
    Ok(OrderRow {
        order_id: Some(f.required_id("id")?),
        deleted: Some(false),
        name: f.str("name")?,
        customer_id: f.id("customer.id")?,
        created_at: f.ts(k("createdAt", "created_at"))?,
        processed_at: f.ts(k("processedAt", "processed_at"))?,
        updated_at: f.ts(k("updatedAt", "updated_at"))?,
        cancelled_at: f.ts(k("cancelledAt", "cancelled_at"))?,
        cancel_reason: f.str(k("cancelReason", "cancel_reason"))?,
        test: Some(f.bool("test")?.unwrap_or(false)),
        financial_status: upper(f.str(k("displayFinancialStatus", "financial_status"))?),
        fulfillment_status: upper(f.str(k("displayFulfillmentStatus", "fulfillment_status"))?),
        currency: f.str(k("currencyCode", "currency"))?,
        source_name: f.str(k("sourceName", "source_name"))?,
        tags: f.tags("tags")?,
        discount_codes: discount_codes(f, shape)?,
        total_price: f.money(k("totalPriceSet", "total_price"))?,
        subtotal_price: f.money(k("subtotalPriceSet", "subtotal_price"))?,
        total_discounts: f.money(k("totalDiscountsSet", "total_discounts"))?,
        total_tax: f.money(k("totalTaxSet", "total_tax"))?,
        total_shipping: f.money(k("totalShippingPriceSet", "total_shipping_price_set"))?,
        total_refunded: f.money(k("totalRefundedSet", "total_refunded"))?,
        country_code: f.str(k("shippingAddress.countryCodeV2", "shipping_address.country_code"))?,
        province_code: f.str(k("shippingAddress.provinceCode", "shipping_address.province_code"))?,
    })
}

pub fn line_item(f: Fields, shape: Shape, order_id: i64, parent_line: Option<i64>) -> FieldResult<LineItemRow> {
    let k = |graphql, rest| shape.path(graphql, rest);
    Ok(LineItemRow {
        line_item_id: Some(f.required_id("id")?),
        order_id: Some(order_id),
        parent_line,
        product_id: f.id(k("product.id", "product_id"))?,
        variant_id: f.id(k("variant.id", "variant_id"))?,
        title: f.str("title")?,
        sku: f.str("sku")?,
        vendor: f.str("vendor")?,
        quantity: Some(f.i64("quantity")?.unwrap_or(0)),
        unit_price: Some(f.money(k("originalUnitPriceSet", "price"))?.unwrap_or(0.0)),
        discount: Some(f.money(k("totalDiscountSet", "total_discount"))?.unwrap_or(0.0)),
    })
}

/// The refund line items of one refund object (inline in an order, or a
/// `refunds/create` payload).
pub fn refund_lines(refund: Fields, shape: Shape, order_id: i64) -> FieldResult<Vec<RefundLineRow>> {
    let k = |graphql, rest| shape.path(graphql, rest);
    let refund_id = refund.required_id("id")?;
    let created_at = refund.ts(k("createdAt", "created_at"))?;
    refund
        .array(k("refundLineItems.nodes", "refund_line_items"))?
        .iter()
        .map(|node| {
            let n = Fields::of(node, "refund line item")?;
            Ok(RefundLineRow {
                refund_id: Some(refund_id),
                order_id: Some(order_id),
                refund_created_at: created_at,
                line_item_id: Some(n.required_id(k("lineItem.id", "line_item_id"))?),
                quantity: Some(n.i64("quantity")?.unwrap_or(0)),
                subtotal: Some(n.money(k("subtotalSet", "subtotal"))?.unwrap_or(0.0)),
            })
        })
        .collect()
}
