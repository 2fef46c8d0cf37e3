-- Pairs bought together (product_pair_features): orders containing both, and
-- sessions that viewed both. Products in the catalog only (the engine leaves out
-- deleted products; in a generated shop every other line's product is in the
-- catalog).
CREATE OR REPLACE TEMP TABLE pair_core AS
WITH baskets AS (
    SELECT DISTINCT order_id, product_id FROM valid_lines
    WHERE product_id IN (SELECT product_id FROM read_parquet('{main}/products.parquet'))
),
pairs AS (
    SELECT a.product_id AS product_id_a, b.product_id AS product_id_b, count(*) AS co_purchase_count
    FROM baskets a JOIN baskets b ON a.order_id = b.order_id AND a.product_id < b.product_id
    GROUP BY ALL
),
viewed AS (
    SELECT DISTINCT client_id, session, product_id FROM sessionized
    WHERE name = 'product_viewed' AND product_id IS NOT NULL
),
co_views AS (
    SELECT a.product_id AS product_id_a, b.product_id AS product_id_b, count(*) AS co_view_count
    FROM viewed a
    JOIN viewed b ON a.client_id = b.client_id AND a.session = b.session AND a.product_id < b.product_id
    -- Only the bought-together pairs (one row each) are counted.
    JOIN pairs p ON p.product_id_a = a.product_id AND p.product_id_b = b.product_id
    GROUP BY ALL
)
SELECT product_id_a, product_id_b, co_purchase_count, coalesce(co_view_count, 0) AS co_view_count
FROM pairs LEFT JOIN co_views USING (product_id_a, product_id_b);
