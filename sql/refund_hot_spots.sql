-- Products whose refunds cost the most, with how often they are refunded.
CREATE OR REPLACE VIEW refund_hot_spots AS
SELECT
    product_id,
    title,
    vendor,
    product_type,
    total_units_sold,
    refunded_units,
    round(refund_rate, 4) AS refund_rate,
    total_refunded_amount,
    refund_risk_score
FROM product_features
WHERE refunded_units > 0
ORDER BY total_refunded_amount DESC, refund_rate DESC, product_id;
