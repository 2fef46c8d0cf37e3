use clap::Parser;
use shopfeat::cli::Cli;
use shopfeat::commands::{self, Outcome};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// See Cargo.toml: freed memory goes back to the kernel between stages; with
/// its `override` feature mimalloc serves the C libraries (DuckDB, zstd) too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    init_logging(cli.global.verbose, cli.global.quiet);
    if matches!(cli.command, shopfeat::cli::Command::Trainset(_) | shopfeat::cli::Command::Ingest(_)) {
        keep_freed_memory();
        no_huge_pages();
    }
    match commands::run(cli) {
        Ok(Outcome::Success) => {}
        Ok(Outcome::Failed(why)) => {
            eprintln!("error: {why}");
            std::process::exit(2);
        }
        Ok(Outcome::Exit(code, why)) => {
            eprintln!("{why}");
            std::process::exit(code);
        }
        Err(e) => {
            // One line: the cause chain, no backtrace.
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

// mimalloc's option setter, linked with the allocator (declared here rather
// than through `libmimalloc-sys`'s `extended` feature, which needs a crate the
// build does not otherwise have).
extern "C" {
    fn mi_option_set(option: i32, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` (the same in mimalloc v2 and v3).
const MI_OPTION_PURGE_DELAY: i32 = 15;

/// Freed memory stays with the process instead of going back to the kernel.
/// A training set allocates and frees a part's columns hundreds of times;
/// handing the pages back and faulting them in again took a tenth of its time
/// (3 late cut-offs of `medium`: 32.7 s and 31.6 s with 15 s and 10 s of
/// system time; 27.7 s and 28.7 s with 5 s and 6 s without; peak +0.1 GB).
/// Ingest parses and frees batch after batch of lines: `medium` 8.7 s with
/// 2.3 s of system time against 7.8 s and 0.9 s, peak +11 MB.
/// Not for `compute`, whose stages hand memory back so the next one has it.
fn keep_freed_memory() {
    // SAFETY: a plain store into mimalloc's option table, before the work
    // starts; the option is read when memory is freed.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// Ordinary 4 KiB pages instead of transparent huge pages. A training set's
/// many short-lived columns, and ingest's batches, touch a little of many 2 MiB
/// pages, each of which the kernel zeroes whole: 26 cut-offs of `medium` took
/// 24.7-25.4 s and 1.33-1.40 GB without them against 25.5-25.7 s and
/// 1.46-1.49 GB with (system time 0.9-1.2 s against 3.2-3.8 s; three runs
/// each, alternated); ingest of `medium` 7.1-7.5 s and 634-657 MB against
/// 7.3-7.7 s and 670-707 MB (six runs each, alternated). Not for `compute`, whose large stages fill their
/// pages: `large` 47.5 and 49.9 s without them against 41.7 and 40.8 s.
fn no_huge_pages() {
    // SAFETY: prctl with plain integer arguments; it only sets a flag of this
    // process that later page faults read. A kernel without the call refuses
    // it, which changes nothing.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

fn init_logging(verbose: u8, quiet: u8) {
    let level = match (verbose, quiet) {
        (0, 0) => "info",
        (1, _) => "debug",
        (v, _) if v >= 2 => "trace",
        (_, 1) => "warn",
        _ => "error",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("shopfeat={level},warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
