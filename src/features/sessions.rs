//! Sessions: one browser's (`client_id`) events ordered by time; a gap of more than
//! 30 minutes starts a new session (exactly 30:00 continues it). Inside the engine
//! a session is an integer (`session`, its rank in browser and time order), which
//! group-bys and joins hash cheaply; session_features names it `session_id` =
//! `client_id:<start in ms>`, stable across reruns.

use polars::prelude::*;

const SESSION_GAP_US: i64 = 30 * 60 * 1_000_000;

/// `events` with `browser` (a number per `client_id`), `session`, `_row` (their
/// order) and `is_last_in_session`. The events come sorted by browser, time and
/// landing order, as normalization leaves them.
///
/// In that order, a session starts where the browser changes or the
/// gap to the previous event exceeds 30 minutes, so every step is a shift or a
/// running sum over the sorted rows — no per-browser window (a hash of string
/// ids) is needed.
pub fn sessionized(events: LazyFrame) -> PolarsResult<LazyFrame> {
    let ts = || col("timestamp").cast(DataType::Int64);
    let new_browser = || col("client_id").neq_missing(col("client_id").shift(lit(1)));
    let long_gap = (ts() - ts().shift(lit(1))).gt(lit(SESSION_GAP_US));
    let starts = new_browser().or(long_gap).fill_null(lit(true));
    // The last event of a session is followed by a start (or by nothing).
    let is_last = col("_starts").shift(lit(-1)).fill_null(lit(true));
    Ok(events
        .with_row_index("_row", None)
        .with_columns([starts.alias("_starts"), new_browser().fill_null(lit(true)).cast(DataType::Int64).cum_sum(false).alias("browser")])
        .with_columns([
            col("_starts").cast(DataType::Int64).cum_sum(false).alias("session"),
            is_last.alias("is_last_in_session"),
        ])
        .drop(cols(["_starts"])))
}
