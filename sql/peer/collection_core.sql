-- Collection views, viewers and clicks in 30 days (collection_features). A view is
-- clicked when, later in its session and before the next collection view or
-- search, a member product is viewed: each collection view or search opens a
-- segment of the session, and the click is a product view in the same segment.
CREATE OR REPLACE TEMP TABLE collection_core AS
WITH segmented AS (
    SELECT *, sum((name IN ('collection_viewed', 'search_submitted'))::INTEGER)
                  OVER (PARTITION BY client_id, session ORDER BY ts, rn ROWS UNBOUNDED PRECEDING) AS segment
    FROM sessionized
),
views AS (
    SELECT * FROM segmented
    WHERE name = 'collection_viewed' AND collection_id IS NOT NULL AND ts > {t} - 30 * 86400000000
),
clicked AS (
    SELECT DISTINCT v.event_id
    FROM views v
    JOIN segmented p ON p.client_id = v.client_id AND p.session = v.session AND p.segment = v.segment AND p.name = 'product_viewed'
    JOIN members m ON m.collection_id = v.collection_id AND m.product_id = p.product_id
)
SELECT c.collection_id,
       count(v.event_id) AS view_count_30d,
       count(DISTINCT coalesce(v.customer_id::VARCHAR, 'browser:' || v.client_id)) AS unique_viewers_30d,
       count(k.event_id) AS product_click_count_30d
FROM read_parquet('{main}/collections.parquet') c
LEFT JOIN views v USING (collection_id)
LEFT JOIN clicked k ON k.event_id = v.event_id
GROUP BY c.collection_id;
