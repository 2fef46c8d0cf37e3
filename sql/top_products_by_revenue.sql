-- Products by all-time revenue, with the collections that rank them among their
-- top five.
CREATE OR REPLACE VIEW top_products_by_revenue AS
WITH tops AS (
    SELECT title AS collection_title, unnest(top_products) AS product_id
    FROM collection_features
)
SELECT
    p.product_id,
    p.title,
    p.total_revenue,
    p.net_revenue,
    p.total_units_sold,
    p.price_tier,
    coalesce(list(t.collection_title ORDER BY t.collection_title) FILTER (WHERE t.collection_title IS NOT NULL), []) AS top_in_collections
FROM product_features p
LEFT JOIN tops t USING (product_id)
GROUP BY p.product_id, p.title, p.total_revenue, p.net_revenue, p.total_units_sold, p.price_tier
ORDER BY p.total_revenue DESC, p.product_id;
