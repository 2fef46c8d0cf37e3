//! The bulk queries (the README's "Inputs"), one per root entity, optionally
//! restricted to records updated since a watermark.

/// Root entities in fetch order: the catalog first, then who bought it, then orders.
use crate::vocabulary::RawEntity;

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

const CUSTOMERS: &str = "id email firstName lastName state verifiedEmail taxExempt tags locale
    createdAt updatedAt numberOfOrders
    amountSpent { amount currencyCode }
    defaultAddress { countryCodeV2 provinceCode city }
    emailMarketingConsent { marketingState }";

const ORDERS: &str = "id name createdAt processedAt updatedAt cancelledAt cancelReason test
    displayFinancialStatus displayFulfillmentStatus currencyCode sourceName tags discountCodes
    customer { id }
    totalPriceSet { shopMoney { amount currencyCode } }
    subtotalPriceSet { shopMoney { amount } }
    totalDiscountsSet { shopMoney { amount } }
    totalTaxSet { shopMoney { amount } }
    totalShippingPriceSet { shopMoney { amount } }
    totalRefundedSet { shopMoney { amount } }
    shippingAddress { countryCodeV2 provinceCode }
    refunds { id createdAt
      refundLineItems(first: 250) { nodes { quantity lineItem { id } subtotalSet { shopMoney { amount } } } } }
    lineItems { edges { node {
      id title sku vendor quantity
      product { id } variant { id }
      originalUnitPriceSet { shopMoney { amount } }
      totalDiscountSet { shopMoney { amount } }
    } } }";

/// The bulk query of `entity` (one of [`RawEntity::FETCHED`]); with `since`, only
/// records updated at or after it (RFC 3339, UTC). `None` for an entity that is
/// not a root of the Admin API.
pub fn bulk_query(entity: RawEntity, since: Option<&str>) -> Option<String> {
    let fields = match entity {
        RawEntity::Products => PRODUCTS,
        RawEntity::Collections => COLLECTIONS,
        RawEntity::Customers => CUSTOMERS,
        RawEntity::Orders => ORDERS,
        _ => return None,
    };
    let filter = since.map(|t| format!("(query: \"updated_at:>='{t}'\")")).unwrap_or_default();
    Some(format!("{{ {entity}{filter} {{ edges {{ node {{\n    {fields}\n}} }} }} }}"))
}
