-- Per (customer, product): linked views and cart adds, and valid orders
-- (interaction_features); deleted products and customers have no row.
CREATE OR REPLACE TEMP TABLE interaction_core AS
WITH events AS (
    SELECT customer_id, product_id,
           count(*) FILTER (WHERE name = 'product_viewed') AS views,
           count(*) FILTER (WHERE name = 'product_added_to_cart') AS cart_adds
    FROM events_at_t
    WHERE customer_id IS NOT NULL AND product_id IS NOT NULL
      AND name IN ('product_viewed', 'product_added_to_cart', 'product_removed_from_cart')
    GROUP BY ALL
),
purchases AS (
    SELECT customer_id, product_id, count(DISTINCT order_id) AS orders
    FROM valid_lines
    WHERE customer_id IS NOT NULL AND product_id IS NOT NULL
    GROUP BY ALL
)
SELECT customer_id, product_id,
       coalesce(views, 0) AS view_count,
       coalesce(cart_adds, 0) AS cart_add_count,
       coalesce(orders, 0) AS purchase_count
FROM events FULL JOIN purchases USING (customer_id, product_id)
WHERE product_id NOT IN (SELECT product_id FROM read_parquet('{main}/deleted_products.parquet'))
  AND customer_id NOT IN (SELECT customer_id FROM read_parquet('{main}/deleted_customers.parquet'));
