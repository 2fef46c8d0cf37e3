//! The shop's nouns, named once: the raw entities a snapshot holds and the
//! storefront event names the features read.

use serde::{Deserialize, Serialize};

/// A raw table: one Parquet file per snapshot under `<shop>/raw/<entity>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawEntity {
    Products,
    Variants,
    ProductMedia,
    CollectionProducts,
    Collections,
    Customers,
    Orders,
    LineItems,
    RefundLineItems,
    Events,
}

impl RawEntity {
    pub const ALL: [RawEntity; 10] = [
        RawEntity::Products,
        RawEntity::Variants,
        RawEntity::ProductMedia,
        RawEntity::CollectionProducts,
        RawEntity::Collections,
        RawEntity::Customers,
        RawEntity::Orders,
        RawEntity::LineItems,
        RawEntity::RefundLineItems,
        RawEntity::Events,
    ];

    /// The root entities of the Admin API's bulk queries, in fetch order.
    pub const FETCHED: [RawEntity; 4] = [RawEntity::Products, RawEntity::Collections, RawEntity::Customers, RawEntity::Orders];

    /// The folder and table name (`product_media`).
    pub fn name(self) -> &'static str {
        match self {
            RawEntity::Products => "products",
            RawEntity::Variants => "variants",
            RawEntity::ProductMedia => "product_media",
            RawEntity::CollectionProducts => "collection_products",
            RawEntity::Collections => "collections",
            RawEntity::Customers => "customers",
            RawEntity::Orders => "orders",
            RawEntity::LineItems => "line_items",
            RawEntity::RefundLineItems => "refund_line_items",
            RawEntity::Events => "events",
        }
    }

    pub fn from_name(name: &str) -> Option<RawEntity> {
        RawEntity::ALL.into_iter().find(|e| e.name() == name)
    }
}

impl std::fmt::Display for RawEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A standard web-pixel event name (the `name` of an event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    PageViewed,
    ProductViewed,
    CollectionViewed,
    SearchSubmitted,
    ProductAddedToCart,
    ProductRemovedFromCart,
    CartViewed,
    CheckoutStarted,
    CheckoutCompleted,
}

impl EventName {
    pub const ALL: [EventName; 9] = [
        EventName::PageViewed,
        EventName::ProductViewed,
        EventName::CollectionViewed,
        EventName::SearchSubmitted,
        EventName::ProductAddedToCart,
        EventName::ProductRemovedFromCart,
        EventName::CartViewed,
        EventName::CheckoutStarted,
        EventName::CheckoutCompleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventName::PageViewed => "page_viewed",
            EventName::ProductViewed => "product_viewed",
            EventName::CollectionViewed => "collection_viewed",
            EventName::SearchSubmitted => "search_submitted",
            EventName::ProductAddedToCart => "product_added_to_cart",
            EventName::ProductRemovedFromCart => "product_removed_from_cart",
            EventName::CartViewed => "cart_viewed",
            EventName::CheckoutStarted => "checkout_started",
            EventName::CheckoutCompleted => "checkout_completed",
        }
    }

    /// The event's code in the events frame the features read (`event`): its
    /// place in [`EventName::ALL`] from 1; other names get the codes after these,
    /// 0 is a missing name.
    pub fn code(self) -> u32 {
        EventName::ALL.iter().position(|&n| n == self).expect("every name is in ALL") as u32 + 1
    }
}
