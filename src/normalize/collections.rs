//! collections (one version each as of `as_of`; collections have no creation time
//! and are never left out) and collection_products (every listed membership, from
//! either side, minus products or collections not in the catalog).

use super::*;

pub fn collections(raw: &RawTables, as_of: AsOf) -> Result<LazyFrame> {
    let versions = live_versions(raw.scan(RawEntity::Collections)?, "collection_id");
    Ok(version_as_of(versions, "collection_id", as_of).cache().select([
        col("collection_id"), col("title"), col("handle"), col("description"),
        col("description_html"), col("sort_order"), col("seo_title"), col("seo_description"),
        col("image_url"), col("image_alt"), col("is_automated"), col("updated_at"),
    ]))
}

pub fn memberships(raw: &RawTables, products: &LazyFrame, collections: &LazyFrame) -> Result<LazyFrame> {
    let listed = raw
        .scan(RawEntity::CollectionProducts)?
        .select([col("collection_id"), col("product_id")])
        .unique_stable(None, UniqueKeepStrategy::First);
    Ok(semi(semi(listed, products, "product_id"), collections, "collection_id"))
}
