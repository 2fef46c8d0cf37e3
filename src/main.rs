use clap::Parser;
use shopfeat::cli::Cli;
use shopfeat::commands::{self, Outcome};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// See Cargo.toml: freed memory goes back to the kernel between stages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    init_logging(cli.global.verbose, cli.global.quiet);
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
