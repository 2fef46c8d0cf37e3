//! customers: one version per customer as of `as_of`; customers created after it
//! are left out.

use super::*;

/// (customers, deleted customer ids)
pub fn customers(raw: &RawTables, as_of: AsOf) -> Result<(LazyFrame, LazyFrame)> {
    let (live, deleted) = live_and_deleted(raw.scan(RawEntity::Customers)?, "customer_id");
    let versions = created_by(live, as_of);
    let customers = version_as_of(versions, "customer_id", as_of).select([
        col("customer_id"), col("email"), col("first_name"), col("last_name"), col("state"),
        col("verified_email"), col("tax_exempt"), col("tags"), col("locale"),
        col("created_at"), col("updated_at"), col("country_code"), col("province_code"),
        col("city"), col("marketing_state"),
        col("marketing_state").eq(lit("SUBSCRIBED")).fill_null(lit(false)).alias("accepts_marketing"),
        col("country_code").is_not_null().alias("has_default_address"),
        // Shopify's lifetime totals include facts after any as_of: kept for
        // inspection, never used by a feature.
        col("number_of_orders"), col("amount_spent"),
    ]);
    Ok((customers, deleted))
}
