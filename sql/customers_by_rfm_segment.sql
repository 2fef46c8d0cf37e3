-- Customers by RFM segment: how many, what they spend, how often they buy.
CREATE OR REPLACE VIEW customers_by_rfm_segment AS
SELECT
    rfm_segment,
    count(*) AS customers,
    round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS share_pct,
    round(avg(total_spent), 2) AS avg_total_spent,
    round(avg(total_purchases), 2) AS avg_orders,
    round(avg(days_since_last_order), 1) AS avg_days_since_last_order,
    round(sum(net_lifetime_value), 2) AS net_lifetime_value
FROM user_features
GROUP BY rfm_segment
ORDER BY customers DESC, rfm_segment;
