//! One file per subcommand: parse its arguments, call the stage, report.

pub mod compute;
pub mod export;
pub mod features;
pub mod fetch;
pub mod generate;
pub mod ingest;
pub mod normalize;
pub mod run;

use crate::cli::{Cli, Command};
use anyhow::Result;

/// What a command asks the process to exit with.
pub enum Outcome {
    Success,
    /// Finished, but with a condition the user asked to fail on (e.g. `--strict`).
    Failed(String),
}

pub fn run(cli: Cli) -> Result<Outcome> {
    match cli.command {
        Command::Generate(args) => generate::run(&cli.global, args),
        Command::Ingest(args) => ingest::run(&cli.global, args),
        Command::Normalize(args) => normalize::run(&cli.global, args),
        Command::Compute(args) => compute::run(&cli.global, args),
        Command::Features(args) => features::run(&cli.global, args),
        Command::Run(args) => run::run(&cli.global, args),
        Command::Export(args) => export::run(&cli.global, args),
        Command::Fetch(args) => fetch::run(&cli.global, args),
    }
}

/// Parses an RFC 3339 time (`2025-06-01T00:00:00Z`) or a date (`2025-06-01`, at
/// midnight UTC) into µs since the epoch.
pub fn parse_time(s: &str) -> std::result::Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_micros())
        .map_err(|_| format!("{s:?} is neither an RFC 3339 time (2025-06-01T00:00:00Z) nor a date (2025-06-01)"))
}
