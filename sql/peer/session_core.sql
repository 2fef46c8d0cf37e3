-- Sessionization and per-session facts (session_features).
CREATE OR REPLACE TEMP TABLE session_core AS
SELECT client_id || ':' || (min(ts) // 1000) AS session_id,
       count(*) AS event_count,
       count(*) FILTER (WHERE name = 'page_viewed') AS page_view_count,
       count(*) FILTER (WHERE name = 'product_viewed') AS product_view_count,
       count(*) FILTER (WHERE name = 'product_added_to_cart') AS cart_add_count,
       count(DISTINCT product_id) FILTER (WHERE name = 'product_viewed') AS unique_products_viewed,
       bool_or(name = 'checkout_completed') AS checkout_completed,
       (max(ts) - min(ts)) // 1000000 AS duration_seconds
FROM sessionized
GROUP BY client_id, session;
