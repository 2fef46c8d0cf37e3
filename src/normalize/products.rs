//! products, variants and product_media: one version per product as of `as_of`,
//! with the variants and media of that version.

use super::*;

/// (products, variants, media, deleted product ids, every landed version)
pub fn products(raw: &RawTables, as_of: AsOf) -> Result<(LazyFrame, LazyFrame, LazyFrame, LazyFrame, LazyFrame)> {
    let (live, deleted) = live_and_deleted(raw.scan(RawEntity::Products)?, "product_id");
    let versions = created_by(live.clone(), as_of);
    let chosen = version_as_of(versions.clone(), "product_id", as_of).cache();
    let variants = children_of(raw.scan(RawEntity::Variants)?, versions.clone(), chosen.clone(), "product_id", "variant_id").select([
        col("variant_id"), col("product_id"), col("title"), col("sku"), col("price"),
        col("compare_at_price"), col("inventory_quantity"),
    ]);
    let media = children_of(raw.scan(RawEntity::ProductMedia)?, versions, chosen.clone(), "product_id", "media_id")
        .select([col("media_id"), col("product_id"), col("media_type"), col("alt")]);
    let products = chosen.select([
        col("product_id"), col("title"), col("handle"), col("vendor"), col("product_type"),
        col("status"), col("tags"), col("description"), col("description_html"),
        col("seo_title"), col("seo_description"), col("created_at"), col("updated_at"),
        col("published_at"), col("option_count"),
    ]);
    Ok((products, variants, media, deleted, live))
}
