-- The benchmark's peer: the core features as plain SQL over the normalized main
-- tables ({main}/<table>.parquet) at T ({t}, µs since the epoch). Same
-- definitions as the engine (the README's catalog): valid orders are not test, created by
-- T and not cancelled by T; line revenue = quantity · unit_price − discount;
-- refunds count when created by T on a valid order.

CREATE OR REPLACE TEMP TABLE valid_orders AS
SELECT order_id, customer_id, total_price
FROM read_parquet('{main}/orders.parquet')
WHERE test = false
  AND epoch_us(created_at) <= {t}
  AND NOT coalesce(epoch_us(cancelled_at) <= {t}, false);

CREATE OR REPLACE TEMP TABLE valid_lines AS
SELECT l.order_id, l.product_id, l.quantity, l.quantity * l.unit_price - l.discount AS revenue
FROM read_parquet('{main}/line_items.parquet') l
JOIN valid_orders o USING (order_id);

CREATE OR REPLACE TEMP TABLE valid_refunds AS
SELECT r.order_id, r.product_id, r.quantity, r.subtotal
FROM read_parquet('{main}/refund_line_items.parquet') r
WHERE epoch_us(r.created_at) <= {t}
  AND r.order_id IN (SELECT order_id FROM valid_orders);

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
           FROM read_parquet('{main}/events.parquet')
           WHERE product_id IS NOT NULL
             AND epoch_us("timestamp") > {t} - 30 * 86400000000
             AND epoch_us("timestamp") <= {t}
           GROUP BY product_id) e USING (product_id);

CREATE OR REPLACE TEMP TABLE user_core AS
SELECT c.customer_id,
       coalesce(o.n, 0) AS total_purchases,
       coalesce(o.spent, 0) AS total_spent,
       CASE WHEN coalesce(o.n, 0) = 0 THEN 0 ELSE o.spent / o.n END AS avg_order_value,
       coalesce(o.max_total, 0) AS max_order_value,
       coalesce(r.orders, 0) AS refunded_orders,
       coalesce(r.amount, 0) AS total_refunded_amount
FROM read_parquet('{main}/customers.parquet') c
LEFT JOIN (SELECT customer_id, count(*) AS n, sum(total_price) AS spent, max(total_price) AS max_total
           FROM valid_orders WHERE customer_id IS NOT NULL GROUP BY customer_id) o USING (customer_id)
LEFT JOIN (SELECT o.customer_id, count(DISTINCT r.order_id) AS orders, sum(r.subtotal) AS amount
           FROM valid_refunds r JOIN valid_orders o USING (order_id)
           WHERE o.customer_id IS NOT NULL GROUP BY o.customer_id) r USING (customer_id);

-- Products in the catalog only (the engine leaves out deleted products; in a
-- generated shop every other line's product is in the catalog).
CREATE OR REPLACE TEMP TABLE pair_core AS
WITH baskets AS (
    SELECT DISTINCT order_id, product_id FROM valid_lines
    WHERE product_id IN (SELECT product_id FROM read_parquet('{main}/products.parquet'))
)
SELECT a.product_id AS product_id_a, b.product_id AS product_id_b, count(*) AS co_purchase_count
FROM baskets a JOIN baskets b ON a.order_id = b.order_id AND a.product_id < b.product_id
GROUP BY a.product_id, b.product_id;
