//! What the fetcher asks Shopify for: the bulk queries, one per root entity
//! (optionally restricted to records updated since a watermark), and the paged
//! queries for refund lines, which a bulk query cannot hold.
//!
//! Every bulk query keeps to Shopify's bulk validator: one top-level connection,
//! at most five connections nested at most two deep, none inside a list field,
//! and `id` on every node that holds a nested connection. Only fields a feature
//! reads are asked for: no names, emails, phones or street addresses.

use crate::vocabulary::RawEntity;

/// The Admin API version the fetcher speaks: the latest stable one. Shopify
/// supports a version for at least twelve months and then answers as the oldest
/// supported one, so this moves forward with the releases.
pub const API_VERSION: &str = "2026-10";

/// The first version that runs several bulk queries of one app at once (five).
pub const CONCURRENT_BULK_SINCE: &str = "2026-01";

const PRODUCTS: &str = "id title handle vendor productType tags status createdAt updatedAt publishedAt
    description descriptionHtml templateSuffix onlineStoreUrl totalInventory
    seo { title description }
    options { name values }
    variants { edges { node { id title sku price compareAtPrice inventoryQuantity } } }
    media { edges { node { id mediaContentType alt } } }
    collections { edges { node { id } } }";

const COLLECTIONS: &str = "id title handle description descriptionHtml sortOrder templateSuffix updatedAt
    seo { title description }
    image { url altText }
    ruleSet { appliedDisjunctively rules { column relation condition } }
    products { edges { node { id } } }";

/// The customer fields every app may read.
const CUSTOMERS: &str = "id state verifiedEmail taxExempt tags locale
    createdAt updatedAt numberOfOrders
    amountSpent { amount currencyCode }
    emailMarketingConsent { marketingState }";

/// Protected customer data the features read (country and province): asked for
/// unless Shopify denies it to the app.
pub const CUSTOMER_ADDRESS: &str = "defaultAddress { countryCodeV2 provinceCode }";

/// Refunds as headers only: their lines are a connection inside the `refunds`
/// list, which bulk queries cannot hold ([`refund_lines_query`] fetches them).
const ORDERS: &str = "id name createdAt processedAt updatedAt cancelledAt cancelReason test
    displayFinancialStatus displayFulfillmentStatus currencyCode sourceName tags discountCodes
    customer { id }
    totalPriceSet { shopMoney { amount currencyCode } }
    subtotalPriceSet { shopMoney { amount } }
    totalDiscountsSet { shopMoney { amount } }
    totalTaxSet { shopMoney { amount } }
    totalShippingPriceSet { shopMoney { amount } }
    totalRefundedSet { shopMoney { amount } }
    refunds { id createdAt }
    lineItems { edges { node {
      id title sku vendor quantity
      product { id } variant { id }
      originalUnitPriceSet { shopMoney { amount } }
      totalDiscountSet { shopMoney { amount } }
    } } }";

/// What a bulk query for `entity` may leave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fields {
    All,
    /// Without protected customer data (Shopify denied it).
    Unprotected,
}

/// The bulk query of `entity` (one of [`RawEntity::FETCHED`]); with `since`, only
/// records updated at or after it (RFC 3339, UTC). `None` for an entity that is
/// not a root of the Admin API.
pub fn bulk_query(entity: RawEntity, since: Option<&str>, fields: Fields) -> Option<String> {
    let selection = match (entity, fields) {
        (RawEntity::Products, _) => PRODUCTS.to_string(),
        (RawEntity::Collections, _) => COLLECTIONS.to_string(),
        (RawEntity::Customers, Fields::All) => format!("{CUSTOMERS}\n    {CUSTOMER_ADDRESS}"),
        (RawEntity::Customers, Fields::Unprotected) => CUSTOMERS.to_string(),
        (RawEntity::Orders, _) => ORDERS.to_string(),
        _ => return None,
    };
    let filter = since.map(|t| format!("(query: \"updated_at:>='{t}'\")")).unwrap_or_default();
    Some(format!("{{ {entity}{filter} {{ edges {{ node {{\n    {selection}\n}} }} }} }}"))
}

/// Refund lines per page: with [`ORDERS_PER_REFUND_QUERY`] orders a query's
/// requested cost stays under Shopify's single-query limit of 1,000 points
/// (per order: 1 + refunds 1 + lines 2 + 10 × 4 + pageInfo 1 = 45; 20 orders = 900).
pub const REFUND_LINES_PER_PAGE: usize = 10;
pub const ORDERS_PER_REFUND_QUERY: usize = 20;
/// A refund with more lines than a page is paged on its own: 2 + 200 × 4 + 2 ≈ 800 points.
pub const REFUND_LINES_PER_LATER_PAGE: usize = 200;

const REFUND_LINE_FIELDS: &str = "quantity lineItem { id } subtotalSet { shopMoney { amount } }";

/// The refunds of some orders (`$ids`), each with its first page of lines.
pub fn refund_lines_query() -> String {
    format!(
        "query refundLines($ids: [ID!]!) {{ nodes(ids: $ids) {{ ... on Order {{ id refunds {{ id createdAt \
         refundLineItems(first: {REFUND_LINES_PER_PAGE}) {{ nodes {{ {REFUND_LINE_FIELDS} }} pageInfo {{ hasNextPage endCursor }} }} }} }} }} }}"
    )
}

/// The next page of one refund's lines (`$id`, after `$after`).
pub fn more_refund_lines_query() -> String {
    format!(
        "query moreRefundLines($id: ID!, $after: String!) {{ node(id: $id) {{ ... on Refund {{ id \
         refundLineItems(first: {REFUND_LINES_PER_LATER_PAGE}, after: $after) {{ nodes {{ {REFUND_LINE_FIELDS} }} pageInfo {{ hasNextPage endCursor }} }} }} }} }}"
    )
}
