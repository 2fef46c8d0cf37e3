//! Time as the engine holds it: µs since the epoch, UTC; read from and written as
//! RFC 3339.

/// One day in µs.
pub const DAY_US: i64 = 86_400_000_000;

/// Parses an RFC 3339 time (`2025-06-01T00:00:00Z`) or a date (`2025-06-01`, at
/// midnight UTC) into µs since the epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_micros())
        .map_err(|_| format!("{s:?} is neither an RFC 3339 time (2025-06-01T00:00:00Z) nor a date (2025-06-01)"))
}

/// µs since the epoch as RFC 3339, UTC, whole seconds (`2025-06-01T00:00:00Z`).
pub fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Now, as RFC 3339.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Now, µs since the epoch.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
