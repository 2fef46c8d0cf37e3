//! collections (one version each as of `as_of`; collections have no creation time
//! and are never left out) and collection_products (the memberships the most
//! recent list of either side holds, minus products or collections not in the
//! catalog).

use super::*;

/// (collections, every landed version of them)
pub fn collections(raw: &RawTables, as_of: AsOf) -> Result<(LazyFrame, LazyFrame)> {
    let versions = live_versions(raw.scan(RawEntity::Collections)?, "collection_id");
    let chosen = version_as_of(versions.clone(), "collection_id", as_of).cache().select([
        col("collection_id"), col("title"), col("handle"), col("description"),
        col("description_html"), col("sort_order"), col("seo_title"), col("seo_description"),
        col("image_url"), col("image_alt"), col("is_automated"), col("updated_at"),
    ]);
    Ok((chosen, versions))
}

/// Memberships as the most recent complete lists say. A bulk product line lists
/// all of its product's collections, a bulk collection line all of its products.
/// For each pair, the lists of the latest snapshot that listed either side decide:
/// within one snapshot both sides count (a consistent export has them agree);
/// across snapshots the newer side's list wins, so a membership removed in
/// Shopify disappears as soon as either side is fetched again. REST collects
/// (exports of the collects endpoint) add their pairs. Pairs of products or
/// collections not in the catalog are left out.
///
/// `product_versions` and `collection_versions` are the landed versions of each
/// (the scans products and collections are normalized from, so the plan reads
/// each raw entity once).
pub fn memberships(raw: &RawTables, product_versions: LazyFrame, collection_versions: LazyFrame, products: &LazyFrame, collections: &LazyFrame) -> Result<LazyFrame> {
    let listed_by = |kind: &str| col("record").str().contains_literal(lit(format!("\"__parentId\":\"gid://shopify/{kind}/")));
    let rows = raw.scan(RawEntity::CollectionProducts)?.select([
        col("collection_id"),
        col("product_id"),
        col("snapshot"),
        col("file"),
        when(listed_by("Product")).then(lit("product")).when(listed_by("Collection")).then(lit("collection")).otherwise(lit("collect")).alias("side"),
    ])
    .cache();
    // Where each product's and collection's latest complete list is: the file of
    // its latest bulk line.
    let latest_list = |versions: LazyFrame, id: &str, prefix: &str| {
        versions
            .filter(col("source").eq(lit("bulk")))
            .select([col(id), col("snapshot"), col("file"), col("line")])
            .sort_by_exprs([col("snapshot"), col("file"), col("line")], ascending(3))
            .unique_stable(Some(cols([id])), UniqueKeepStrategy::Last)
            .select([col(id), col("snapshot").alias(format!("{prefix}_snapshot")), col("file").alias(format!("{prefix}_file"))])
    };
    let product_lists = latest_list(product_versions, "product_id", "p");
    let collection_lists = latest_list(collection_versions, "collection_id", "c");
    let in_list = |side: &str, id: &str, prefix: &str, lists: &LazyFrame| {
        let on = [col(id), col("snapshot"), col("file")];
        let list_on = [col(id), col(format!("{prefix}_snapshot")), col(format!("{prefix}_file"))];
        rows.clone()
            .filter(col("side").eq(lit(side)))
            .join(lists.clone(), on, list_on, JoinArgs::new(JoinType::Semi))
            .select([col("collection_id"), col("product_id"), lit(true).alias(format!("by_{prefix}"))])
            .unique(None, UniqueKeepStrategy::Any)
    };
    let pair = || [col("collection_id"), col("product_id")];
    let full = || JoinArgs::new(JoinType::Full).with_coalesce(JoinCoalesce::CoalesceColumns);
    let candidates = in_list("product", "product_id", "p", &product_lists)
        .join(in_list("collection", "collection_id", "c", &collection_lists), pair(), pair(), full())
        .join(product_lists, [col("product_id")], [col("product_id")], JoinArgs::new(JoinType::Left))
        .join(collection_lists, [col("collection_id")], [col("collection_id")], JoinArgs::new(JoinType::Left));
    let by = |c: &str| col(c).fill_null(lit(false));
    let decided = candidates
        .filter(
            when(col("p_snapshot").is_null()).then(by("by_c"))
                .when(col("c_snapshot").is_null()).then(by("by_p"))
                .when(col("p_snapshot").eq(col("c_snapshot"))).then(by("by_p").or(by("by_c")))
                .when(col("p_snapshot").gt(col("c_snapshot"))).then(by("by_p"))
                .otherwise(by("by_c")),
        )
        .select(pair());
    let collects = rows.filter(col("side").eq(lit("collect"))).select(pair());
    let listed = concat([decided, collects], UnionArgs::default())?.unique_stable(None, UniqueKeepStrategy::First);
    Ok(semi(semi(listed, products, "product_id"), collections, "collection_id"))
}
