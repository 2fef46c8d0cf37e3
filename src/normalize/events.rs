//! events: unique by id (first kept), with the URL's referrer host and the
//! customer each browser is stitched to.
//!
//! With `as_of`, events after it are left out. The table is sorted by
//! `client_id`, then time, then landing order.
//!
//! Identity stitching (the README's "Normalization"): an event links its `client_id` to a customer
//! when it carries one (`customerId`, or the customer of a completed checkout's
//! order). Every event of that `client_id`, earlier ones too, gets the customer of
//! the client's latest link at or before `as_of` (two links at one instant: the
//! later in file order).

use super::*;

pub fn events(raw: &RawTables, as_of: AsOf) -> Result<LazyFrame> {
    // The first landed of each id: a filter keeps the rows in place, where a
    // unique would gather every column of the largest table.
    let mut events = raw.scan(RawEntity::Events)?.filter(col("event_id").is_first_distinct()).with_row_index("_landing", None);
    if let Some(t) = as_of {
        // Events after T had not happened at T.
        events = events.filter(col("timestamp").cast(DataType::Int64).lt_eq(lit(t)));
    }
    let events = events.cache();
    let mut links = events.clone().filter(col("event_customer_id").is_not_null());
    if let Some(t) = as_of {
        links = links.filter(col("timestamp").cast(DataType::Int64).lt_eq(lit(t)));
    }
    let keys = [col("client_id"), col("timestamp"), col("snapshot"), col("file"), col("line")];
    let latest_link = links
        .sort_by_exprs(keys, ascending(5))
        .unique_stable_generic(Some(vec![col("client_id")]), UniqueKeepStrategy::Last)
        .select([col("client_id"), col("event_customer_id").alias("customer_id")]);
    // Ordered by browser and time (ties: landing order), the order sessions are
    // cut in, so the feature stage never sorts or copies the largest table.
    Ok(events
        .join(latest_link, [col("client_id")], [col("client_id")], JoinArgs::new(JoinType::Left))
        .sort_by_exprs([col("client_id"), col("timestamp"), col("_landing")], SortMultipleOptions::default())
        .select([
            col("event_id"), col("name"), col("client_id"), col("timestamp"), col("customer_id"),
            col("event_customer_id"), col("product_id"), col("variant_id"), col("collection_id"),
            col("order_id"), col("search_query"), col("product_ids"), col("url"), col("path"),
            col("referrer"),
            url_host(col("referrer")).alias("referrer_host"),
            col("user_agent"),
        ]))
}

/// The lower-case host of a URL (`https://Shop.Example:443/x` → `shop.example`);
/// null when it has none.
pub fn url_host(url: Expr) -> Expr {
    url.str().to_lowercase().str().extract(lit(r"^[a-z][a-z0-9+.-]*://([^/:?#]+)"), 1)
}
