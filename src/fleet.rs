//! The shops of the config file (`[[shops]]`), resolved into what a run of each
//! needs: its source (a Shopify shop to fetch, or local exports), its Gorse, its
//! pair bounds. `serve` and `run --all` both start from here.

use crate::config::{self, Config, ShopEntry};
use crate::features::{embeddings::EmbeddingOptions, pairs::PairOptions};
use crate::pipeline::Source;
use crate::shopify::{self, FetchOptions, Mode};
use crate::sinks::gorse;
use anyhow::{bail, Context, Result};

/// A configured shop, ready to run.
#[derive(Debug, Clone)]
pub struct FleetShop {
    pub id: String,
    /// `NAME.myshopify.com`, when the shop is fetched from Shopify by its domain.
    pub domain: Option<String>,
    /// Where its data comes from; `None` when the entry names neither a shop nor
    /// inputs (its data then only arrives through `serve`'s inbox).
    pub source: Option<Source>,
    pub gorse: Option<gorse::Options>,
    pub pairs: PairOptions,
    pub entry: ShopEntry,
}

/// Resolves `entry` against the rest of `config` (the shared `[gorse]` and
/// `[shopify]` sections fill what the entry leaves out). A Shopify source
/// fetches in `mode`.
pub fn resolve(entry: &ShopEntry, config: &Config, mode: Mode) -> Result<FleetShop> {
    let context = || format!("shop {}", entry.id);
    let api_url = match (&entry.api_url, &entry.shop_domain) {
        (Some(url), _) => Some(url.clone()),
        (None, Some(domain)) => Some(shopify::shop_url(domain).with_context(context)?),
        (None, None) => None,
    };
    let source = match api_url {
        Some(url) => {
            let var = entry.token_env.as_deref().unwrap_or("SHOPIFY_ACCESS_TOKEN");
            let Some(token) = config::secret_from_env(var) else {
                bail!("shop {}: no Admin API token: set the environment variable {var} (its token_env)", entry.id);
            };
            let mut options = FetchOptions::new(&url, token, mode);
            if let Some(v) = entry.api_version.clone().or(config.shopify.api_version.clone()) {
                options.api_version = v;
            }
            Some(Source::Shopify(options))
        }
        None if !entry.inputs.is_empty() => Some(Source::Files(entry.inputs.clone())),
        None => None,
    };
    let gorse = entry.gorse_url.clone().or_else(|| config.gorse_url()).map(|url| {
        let mut options = gorse::Options::from_config(&url, config);
        if let Some(prefix) = &entry.gorse_prefix {
            options.prefix = prefix.clone();
        }
        options
    });
    let defaults = PairOptions::default();
    let pairs = PairOptions {
        min_co_purchases: entry.min_co_purchases.unwrap_or(defaults.min_co_purchases).max(1),
        max_pairs_per_product: entry.max_pairs_per_product.or(defaults.max_pairs_per_product),
        embeddings: EmbeddingOptions {
            dimension: entry.embedding_dimension.map_or(defaults.embeddings.dimension, |d| d.clamp(1, 1024) as usize),
            min_support: entry.embedding_min_support.unwrap_or(defaults.embeddings.min_support).max(1),
        },
    };
    Ok(FleetShop { id: entry.id.clone(), domain: entry.shop_domain.clone(), source, gorse, pairs, entry: entry.clone() })
}

/// One of `count` slices of the fleet: the shops whose stable hash (FNV-1a of
/// the id, the same on every machine and release) modulo `count` is `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn holds(&self, shop: &str) -> bool {
        crate::hash::fnv1a(shop.as_bytes()) % u64::from(self.count) == u64::from(self.index)
    }

    /// Kubernetes Indexed Jobs: `JOB_COMPLETION_INDEX` (set by Kubernetes) of
    /// `SHOPFEAT_SHARDS` (set in the manifest to the Job's `completions`).
    pub fn from_env() -> Result<Option<Shard>> {
        match (std::env::var("JOB_COMPLETION_INDEX"), std::env::var("SHOPFEAT_SHARDS")) {
            (Ok(index), Ok(count)) => Ok(Some(format!("{index}/{count}").parse().map_err(|e: String| anyhow::anyhow!("JOB_COMPLETION_INDEX / SHOPFEAT_SHARDS: {e}"))?)),
            (Ok(_), Err(_)) => bail!("JOB_COMPLETION_INDEX is set but SHOPFEAT_SHARDS is not: set it to the Job's completions"),
            _ => Ok(None),
        }
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `I/N`, 0 ≤ I < N.
    fn from_str(s: &str) -> Result<Shard, String> {
        let (i, n) = s.split_once('/').ok_or_else(|| format!("{s:?} is not a shard: give I/N, e.g. 0/4"))?;
        let index: u32 = i.trim().parse().map_err(|_| format!("{s:?}: {i:?} is not a shard index"))?;
        let count: u32 = n.trim().parse().map_err(|_| format!("{s:?}: {n:?} is not a shard count"))?;
        if count == 0 || index >= count {
            return Err(format!("{s:?}: the index must be below the count (0/{count} … {}/{count})", count.saturating_sub(1)));
        }
        Ok(Shard { index, count })
    }
}

/// How one shop's run went under `run --all`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShopRun {
    pub shop: String,
    /// `ok`, `failed`, `locked` (another worker runs it now) or `done` (its cycle
    /// was completed before).
    pub outcome: &'static str,
    /// Feature rows written, all tables together.
    pub rows: Option<u64>,
    pub seconds: f64,
    /// The run's peak resident memory (its process's high-water mark).
    pub peak_rss_bytes: Option<u64>,
    pub error: Option<String>,
}

/// Exit code of `run` when the shop's lock is held by another process.
pub const EXIT_LOCKED: i32 = 3;
/// Exit code of `run --cycle KEY` when the shop already completed that cycle.
pub const EXIT_DONE: i32 = 4;

/// Runs every shop of `shops`, at most `jobs` at once, each as its own
/// `shopfeat run` process made by `command` (so one shop's crash or
/// out-of-memory kill never touches another, and each one's peak memory is its
/// own). Their log lines are passed on with `shop=<id>` in front.
pub fn run_all(shops: &[String], jobs: usize, command: &(dyn Fn(&str) -> std::process::Command + Sync)) -> Vec<ShopRun> {
    let queue = std::sync::Mutex::new(shops.iter().cloned().collect::<std::collections::VecDeque<_>>());
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(shops.len().max(1)) {
            scope.spawn(|| loop {
                let Some(shop) = queue.lock().expect("queue").pop_front() else { break };
                let run = run_child(&shop, command(&shop));
                results.lock().expect("results").push(run);
            });
        }
    });
    let mut results = results.into_inner().expect("results");
    results.sort_by(|a, b| a.shop.cmp(&b.shop));
    results
}

fn run_child(shop: &str, mut command: std::process::Command) -> ShopRun {
    use std::io::{BufRead, Read};
    let started = std::time::Instant::now();
    let failed = |why: String| ShopRun { shop: shop.to_string(), outcome: "failed", rows: None, seconds: started.elapsed().as_secs_f64(), peak_rss_bytes: None, error: Some(why) };
    command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).stdin(std::process::Stdio::null());
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot start shopfeat: {e}")),
    };
    let stderr = child.stderr.take().expect("piped");
    let prefix = format!("shop={shop} ");
    let relay = std::thread::spawn(move || {
        // The child's last line says why it ended (`error: …`, or the reason of
        // a locked or done shop).
        let mut last_line = None;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{prefix}{line}");
            if !line.trim().is_empty() {
                last_line = Some(line.strip_prefix("error: ").unwrap_or(&line).to_string());
            }
        }
        last_line
    });
    let mut stdout = String::new();
    let _ = child.stdout.take().expect("piped").read_to_string(&mut stdout);
    let (code, peak) = wait_with_peak(&mut child);
    let last_error = relay.join().ok().flatten();
    let rows = serde_json::from_str::<serde_json::Value>(&stdout).ok().and_then(|report| {
        report["compute"]["tables"].as_array().map(|tables| tables.iter().filter_map(|t| t["rows"].as_u64()).sum())
    });
    let outcome = match code {
        Some(0) => "ok",
        Some(EXIT_LOCKED) => "locked",
        Some(EXIT_DONE) => "done",
        _ => "failed",
    };
    let error = match (outcome, code) {
        ("ok", _) => None,
        (_, None) => Some("killed by a signal (out of memory?)".to_string()),
        (_, Some(c)) => Some(last_error.unwrap_or_else(|| format!("exit code {c}"))),
    };
    ShopRun { shop: shop.to_string(), outcome, rows, seconds: started.elapsed().as_secs_f64(), peak_rss_bytes: peak, error }
}

/// Waits for `child`; its exit code (`None` when a signal ended it) and its peak
/// resident memory (`wait4`'s `ru_maxrss`, which `std` does not expose).
pub fn wait_with_peak(child: &mut std::process::Child) -> (Option<i32>, Option<u64>) {
    let mut status = 0;
    // SAFETY: plain FFI on our own child, whose status no one else reaps (std's
    // `Child::wait` is never called on it); the out-parameters are ours.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    if pid <= 0 {
        let code = child.wait().ok().and_then(|s| s.code());
        return (code, None);
    }
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, Some(usage.ru_maxrss as u64 * 1024))
}

/// The peak resident memory of `shop`'s last successful run, from its run
/// history (the largest `peak_rss_bytes` of its stages).
pub fn last_peak(root: &crate::storage::DataRoot, shop: &str) -> Option<u64> {
    fn largest(v: &serde_json::Value) -> Option<u64> {
        match v {
            serde_json::Value::Object(map) => map.iter().filter_map(|(k, v)| if k == "peak_rss_bytes" { v.as_u64() } else { largest(v) }).max(),
            serde_json::Value::Array(items) => items.iter().filter_map(largest).max(),
            _ => None,
        }
    }
    let records = crate::history::load_last(root, shop, 5).ok()?;
    let report = records.iter().rev().find(|r| r.outcome == "ok" && r.report.is_some())?.report.as_deref()?;
    largest(&serde_json::from_str(report).ok()?)
}

/// How many shops may run at once by default: as many as fit in 80% of the
/// memory available now at the largest last peak among them, at most one per
/// core; one per core when no shop has a history yet.
pub fn default_jobs(root: &crate::storage::DataRoot, shops: &[String]) -> usize {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let peak = shops.iter().filter_map(|s| last_peak(root, s)).max();
    match (peak, memory_available()) {
        (Some(peak), Some(available)) if peak > 0 => ((available as f64 * 0.8 / peak as f64) as usize).clamp(1, cores),
        _ => cores,
    }
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn memory_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.trim_start_matches("MemAvailable:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}
