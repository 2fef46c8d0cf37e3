//! Sessions: one browser's (`client_id`) events ordered by time; a gap of more than
//! 30 minutes starts a new session (exactly 30:00 continues it). `session_id` =
//! `client_id:<start in ms>`, stable across reruns.

use polars::prelude::*;

const SESSION_GAP_US: i64 = 30 * 60 * 1_000_000;

/// `events` with `session_id`, `_row` (their order) and `is_last_in_session`.
pub fn sessionized(events: LazyFrame) -> PolarsResult<LazyFrame> {
    let ts = || col("timestamp").cast(DataType::Int64);
    let gap = ts() - ts().shift(lit(1)).over([col("client_id")])?;
    let session = [col("client_id"), col("_session_no")];
    let session_no = gap.gt(lit(SESSION_GAP_US)).fill_null(lit(true)).cast(DataType::Int64).cum_sum(false).over([col("client_id")])?;
    let start_ms = ts().min().over(session.clone())?.floor_div(lit(1000i64));
    let is_last = col("_row").eq(col("_row").max().over(session)?);
    Ok(events
        .sort_by_exprs([col("client_id"), col("timestamp")], SortMultipleOptions::default().with_maintain_order(true))
        .with_row_index("_row", None)
        .with_column(session_no.alias("_session_no"))
        .with_columns([
            (col("client_id") + lit(":") + start_ms.cast(DataType::String)).alias("session_id"),
            is_last.alias("is_last_in_session"),
        ])
        .drop(cols(["_session_no"])))
}
