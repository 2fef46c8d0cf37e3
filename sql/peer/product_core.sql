-- Product sales, refunds and 30-day view and cart-add counts (product_features).
CREATE OR REPLACE TEMP TABLE product_core AS
SELECT p.product_id,
       coalesce(s.purchases, 0) AS total_purchases,
       coalesce(s.units, 0) AS total_units_sold,
       coalesce(s.revenue, 0) AS total_revenue,
       coalesce(r.units, 0) AS refunded_units,
       coalesce(r.amount, 0) AS total_refunded_amount,
       coalesce(e.views, 0) AS view_count_30d,
       coalesce(e.carts, 0) AS cart_add_count_30d
FROM read_parquet('{main}/products.parquet') p
LEFT JOIN (SELECT product_id, count(DISTINCT order_id) AS purchases, sum(quantity) AS units, sum(revenue) AS revenue
           FROM valid_lines WHERE product_id IS NOT NULL GROUP BY product_id) s USING (product_id)
LEFT JOIN (SELECT product_id, sum(quantity) AS units, sum(subtotal) AS amount
           FROM valid_refunds WHERE product_id IS NOT NULL GROUP BY product_id) r USING (product_id)
LEFT JOIN (SELECT product_id,
                  count(*) FILTER (WHERE name = 'product_viewed') AS views,
                  count(*) FILTER (WHERE name = 'product_added_to_cart') AS carts
           FROM events_at_t
           WHERE product_id IS NOT NULL AND ts > {t} - 30 * 86400000000
           GROUP BY product_id) e USING (product_id);
