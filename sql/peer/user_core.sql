-- Customer order and refund totals (user_features).
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
