//! One file per subcommand: parse its arguments, call the [`pipeline`](crate::pipeline),
//! print its report.

pub mod compact;
pub mod compute;
pub mod evaluate;
pub mod export;
pub mod features;
pub mod fetch;
pub mod generate;
pub mod ingest;
pub mod normalize;
pub mod privacy;
pub mod report;
pub mod run;
pub mod serve;
pub mod similar;
pub mod status;
pub mod trainset;

use crate::cli::{Cli, Command};
use anyhow::Result;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use anyhow::Context;

/// What a command asks the process to exit with.
pub enum Outcome {
    Success,
    /// Finished, but with a condition the user asked to fail on (e.g. `--strict`).
    Failed(String),
    /// Finished with this exit code and reason (`status`: 1 warn, 2 fail).
    Exit(i32, String),
}

pub fn run(cli: Cli) -> Result<Outcome> {
    // Process-wide settings from the config file (a bad file is reported by the
    // command that reads it).
    if let Ok(config) = crate::config::Config::load(cli.global.config.as_deref()) {
        if let Some(bytes) = config.storage.cache_bytes {
            crate::storage::set_cache_limit(bytes);
        }
    }
    match cli.command {
        Command::Generate(args) => generate::run(&cli.global, args),
        Command::Ingest(args) => ingest::run(&cli.global, args),
        Command::Normalize(args) => normalize::run(&cli.global, args),
        Command::Compute(args) => compute::run(&cli.global, args),
        Command::Compact(args) => compact::run(&cli.global, args),
        Command::Features(args) => features::run(&cli.global, args),
        Command::Run(args) => run::run(&cli.global, args),
        Command::Export(args) => export::run(&cli.global, args),
        Command::Fetch(args) => fetch::run(&cli.global, args),
        Command::Status(args) => status::run(&cli.global, args),
        Command::Privacy(args) => privacy::run(&cli.global, args),
        Command::Report(args) => report::run(&cli.global, args),
        Command::Serve(args) => serve::run(&cli.global, args),
        Command::Evaluate(args) => evaluate::run(&cli.global, args),
        Command::Similar(args) => similar::run(&cli.global, args),
        Command::Trainset(args) => trainset::run(&cli.global, args),
    }
}

/// Says how many records a landing could not land (they are kept in the
/// snapshot's rejected file), and under `--strict` fails the command for it.
pub fn skipped_records(landed: &crate::land::LandReport, strict: bool) -> Outcome {
    let skipped = landed.skipped_total() + landed.unattached_total();
    if skipped == 0 {
        return Outcome::Success;
    }
    tracing::warn!(
        "{skipped} records were not landed or not attached (see the warnings above; kept in <shop>/raw/_rejected/{}.parquet): \
         a fetch's watermarks moved past them, so fix the cause and fetch with --mode historical to land them",
        landed.snapshot
    );
    if strict {
        Outcome::Failed(format!("{skipped} records skipped or unattached (--strict)"))
    } else {
        Outcome::Success
    }
}

/// Prints a command's result: the human summary on stdout; with `--json`, the
/// report as one JSON object on stdout and the summary on stderr, so a cron job
/// reads the one and a person the other.
pub fn print_report<R: Serialize>(json: bool, report: &R, summary: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    if json {
        summary(&mut std::io::stderr().lock())?;
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, report)?;
        writeln!(out)?;
    } else {
        summary(&mut std::io::stdout().lock())?;
    }
    Ok(())
}

/// A reader never sees half a file: write beside, then rename over. (Created
/// with `File::create`, so the file gets the umask's permissions, not a
/// temporary file's 0600.)
pub(crate) fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let mut beside = path.as_os_str().to_owned();
    beside.push(format!(".{}.tmp", std::process::id()));
    let beside = PathBuf::from(beside);
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&beside)?;
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
        std::fs::rename(&beside, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&beside);
    }
    written.with_context(|| format!("writing {}", path.display()))
}
