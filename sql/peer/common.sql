-- The benchmark's peer: the heavy feature work as plain SQL over the normalized
-- main tables ({main}/<table>.parquet) at T ({t}, µs since the epoch). This file
-- defines views only (nothing runs until a table's query reads them), so each
-- table file — product_core.sql, user_core.sql, … — is timed with all the work it
-- needs. Same definitions as the engine (the README's catalog): valid orders are
-- not test, created by T and not cancelled by T; line revenue = quantity ·
-- unit_price − discount; refunds count when created by T on a valid order; a
-- session is one browser's events with gaps of at most 30 minutes.

CREATE OR REPLACE TEMP VIEW valid_orders AS
SELECT order_id, customer_id, total_price
FROM read_parquet('{main}/orders.parquet')
WHERE test = false
  AND epoch_us(created_at) <= {t}
  AND NOT coalesce(epoch_us(cancelled_at) <= {t}, false);

CREATE OR REPLACE TEMP VIEW valid_lines AS
SELECT l.order_id, o.customer_id, l.product_id, l.quantity, l.quantity * l.unit_price - l.discount AS revenue
FROM read_parquet('{main}/line_items.parquet') l
JOIN valid_orders o USING (order_id);

CREATE OR REPLACE TEMP VIEW valid_refunds AS
SELECT r.order_id, r.product_id, r.quantity, r.subtotal
FROM read_parquet('{main}/refund_line_items.parquet') r
WHERE epoch_us(r.created_at) <= {t}
  AND r.order_id IN (SELECT order_id FROM valid_orders);

-- Events at or before T, in landing order within a timestamp (the file's row
-- order: normalization writes them sorted by browser, time and landing).
CREATE OR REPLACE TEMP VIEW events_at_t AS
SELECT file_row_number AS rn, event_id, name, client_id, customer_id, epoch_us("timestamp") AS ts,
       product_id, collection_id
FROM read_parquet('{main}/events.parquet', file_row_number = true)
WHERE epoch_us("timestamp") <= {t};

-- Sessions: a browser's event starts one when it comes first or more than 30
-- minutes after the previous one; `session` numbers them within the browser.
CREATE OR REPLACE TEMP VIEW sessionized AS
WITH starts AS (
    SELECT *, coalesce(ts - lag(ts) OVER (PARTITION BY client_id ORDER BY ts, rn) > 1800000000, true) AS starts_session
    FROM events_at_t
)
SELECT *, sum(starts_session::INTEGER) OVER (PARTITION BY client_id ORDER BY ts, rn ROWS UNBOUNDED PRECEDING) AS session
FROM starts;

-- Member products of each collection, among the products at T.
CREATE OR REPLACE TEMP VIEW members AS
SELECT cp.collection_id, cp.product_id
FROM read_parquet('{main}/collection_products.parquet') cp
WHERE cp.product_id IN (SELECT product_id FROM read_parquet('{main}/products.parquet'));
