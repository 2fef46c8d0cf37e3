//! Export to the Gorse recommender: items from product_features, users from
//! user_features, feedback from interaction_features (see [`mapping`]).
//!
//! Rows go from the Parquet files to the wire in batches, a few requests in
//! flight. Only rows whose hash differs from what Gorse acknowledged before are
//! sent, rows that disappeared are deleted, and the acknowledged hashes are saved
//! every few seconds, so an interrupted export resumes where it stopped.

pub mod checkpoint;
pub mod client;
mod fingerprint;
pub mod mapping;
mod plan;
mod sender;

use crate::config::{self, Config, Secret};
use crate::http::without_credentials;
use crate::sinks::parquet::{read_current, read_current_required};
use crate::state::{GorseExportState, ShopState};
use crate::storage::DataRoot;
use anyhow::Result;
use checkpoint::Delivered;
use mapping::Kind;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use plan::{plan, write_dry_run};
use sender::Sender;

pub use client::Retry;

#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub key: Option<Secret>,
    /// Prepended to every item and user id (one Gorse for several shops).
    pub prefix: String,
    pub batch_size: usize,
    pub in_flight: usize,
    /// Send every row, changed or not.
    pub full: bool,
    /// Write the requests here as JSONL instead of sending them.
    pub dry_run: Option<PathBuf>,
    pub timeout: Duration,
    pub retry: Retry,
    /// How often the acknowledged rows are saved while sending.
    pub checkpoint_every: Duration,
    /// The largest share of what Gorse holds one export may delete (0..1); more
    /// is refused unless `allow_mass_delete`.
    pub max_delete_share: f64,
    pub allow_mass_delete: bool,
}

impl Options {
    pub fn new(url: &str) -> Options {
        Options {
            url: url.to_string(),
            key: None,
            prefix: String::new(),
            batch_size: 1000,
            in_flight: 4,
            full: false,
            dry_run: None,
            timeout: Duration::from_secs(30),
            retry: Retry::default(),
            checkpoint_every: Duration::from_secs(5),
            max_delete_share: 0.2,
            allow_mass_delete: false,
        }
    }
}

impl Options {
    /// Export settings from the config file (and GORSE_API_KEY), for `url`.
    pub fn from_config(url: &str, config: &Config) -> Options {
        let mut options = Options::new(url);
        options.key = config::secret("GORSE_API_KEY", config.gorse.api_key.as_ref());
        options.prefix = config.gorse.prefix.clone().unwrap_or_default();
        options.batch_size = config.gorse.batch_size.unwrap_or(options.batch_size);
        options.in_flight = config.gorse.in_flight.unwrap_or(options.in_flight);
        options.max_delete_share = config.gorse.max_delete_share.unwrap_or(options.max_delete_share);
        options
    }
}

/// The Gorse an export goes to, as written down: URL without credentials, prefix.
/// Row hashes only mean something for the same target.
pub fn target(options: &Options) -> String {
    format!("{} prefix={:?}", without_credentials(&options.url), options.prefix)
}

/// What an export did, per kind in [`Kind::ALL`] order.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    #[serde(serialize_with = "per_kind")]
    pub upserted: [u64; 3],
    #[serde(serialize_with = "per_kind")]
    pub deleted: [u64; 3],
    pub unchanged: u64,
    pub requests: u64,
    pub retries: u64,
    pub seconds: f64,
}

/// `[items, users, feedback]` as `{"items": …, "users": …, "feedback": …}`.
fn per_kind<S: serde::Serializer>(counts: &[u64; 3], serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(3))?;
    for (kind, n) in Kind::ALL.iter().zip(counts) {
        map.serialize_entry(kind.name(), n)?;
    }
    map.end()
}

impl Report {
    pub fn rows_sent(&self) -> u64 {
        self.upserted.iter().sum::<u64>() + self.deleted.iter().sum::<u64>()
    }
}

/// What the next export to the last target would do with the current tables:
/// (rows to send, rows to delete); `None` when the shop was never exported.
pub fn pending(root: &DataRoot, shop: &str) -> Result<Option<(u64, u64)>> {
    let Some(last) = ShopState::load(root, shop)?.gorse else { return Ok(None) };
    let (_, _, plans) = planned(root, shop, &last.prefix, true, false)?;
    Ok(Some((plans.iter().map(|p| p.changed.len() as u64).sum(), plans.iter().map(|p| p.removed.len() as u64).sum())))
}

/// Exports the shop's current feature tables to Gorse (or to a dry-run file).
pub fn export(root: &DataRoot, shop: &str, options: &Options) -> Result<Report> {
    let started = Instant::now();
    mapping::check_prefix(&options.prefix)?;
    let mut state = ShopState::load(root, shop)?;
    let target = target(options);
    let rows_file = checkpoint::rows_file(shop);
    let same_target = state.gorse.as_ref().is_some_and(|g| g.target == target);
    if !same_target && options.dry_run.is_none() {
        tracing::info!("first export to {}: every row is sent", without_credentials(&options.url));
    }
    let (sources, mut delivered, plans) = planned(root, shop, &options.prefix, same_target, options.full)?;
    if !options.allow_mass_delete {
        refuse_mass_deletion(&plans, delivered.len(), options.max_delete_share)?;
    }
    let mut report = Report { unchanged: plans.iter().map(|p| p.unchanged).sum(), ..Report::default() };

    if let Some(path) = &options.dry_run {
        write_dry_run(path, &sources, &plans, options, &mut report)?;
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }

    // The rows file must describe this target before the state names it.
    if !same_target {
        delivered.save(root, &rows_file)?;
    }
    state.gorse = Some(GorseExportState { target, started_at: crate::time::now_rfc3339(), finished_at: None, rows_delivered: delivered.len() as u64, prefix: options.prefix.clone() });
    state.save(root, shop)?;

    let mut sender = Sender::new(root, &rows_file, options, &plans)?;
    let outcome = sender.send_all(&sources, &plans, &mut delivered, &mut report);
    // Whatever happened, what Gorse acknowledged is kept (an export that sent
    // nothing changed nothing to keep).
    if report.rows_sent() > 0 {
        delivered.save(root, &rows_file)?;
    }
    sender.progress.finish();
    outcome?;
    let mut state = ShopState::load(root, shop)?;
    if let Some(g) = state.gorse.as_mut() {
        g.finished_at = Some(crate::time::now_rfc3339());
        g.rows_delivered = delivered.len() as u64;
    }
    state.save(root, shop)?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The fast lane's export: upserts the objects of `sources` in batches (in
/// their order: items and users before the feedback naming them) and deletes the
/// items of `gone`, without reading the delivered rows (millions of lines on a
/// large shop, seconds to load). What the last full export recorded stays as it
/// was, so the next full export sends these rows once more — harmless, and it
/// leaves Gorse equal to a clean export.
pub fn send_fast(options: &Options, sources: &[mapping::Source], gone: &[i64]) -> Result<Report> {
    let started = Instant::now();
    mapping::check_prefix(&options.prefix)?;
    let client = client::Client::new(&options.url, options.key.clone(), options.timeout, options.retry.clone())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut report = Report::default();
    for source in sources {
        let objects = (0..source.len()).map(|i| source.object(i)).collect::<Result<Vec<_>>>()?;
        let objects: Vec<serde_json::Value> = objects.into_iter().flatten().map(|(_, object)| object).collect();
        for chunk in objects.chunks(options.batch_size.max(1)) {
            let (method, endpoint) = source.kind.upsert();
            let sent = runtime.block_on(client.send(method, endpoint, Some(serde_json::to_vec(chunk)?.into())))?;
            report.requests += 1;
            report.retries += u64::from(sent.retries);
            report.upserted[source.kind.index()] += chunk.len() as u64;
        }
    }
    for id in gone {
        let sent = runtime.block_on(client.send("DELETE", &Kind::Item.delete_path(&format!("{}{id}", options.prefix)), None))?;
        report.requests += 1;
        report.retries += u64::from(sent.retries);
        report.deleted[Kind::Item.index()] += 1;
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The shop's sources and their plans against what Gorse holds (the rows
/// delivered to this target before, when `same_target`). The rows file loads on
/// another core while the feature tables are read and fingerprinted.
fn planned(root: &DataRoot, shop: &str, prefix: &str, same_target: bool, full: bool) -> Result<(Vec<mapping::Source>, Delivered, Vec<plan::Plan>)> {
    std::thread::scope(|scope| {
        let loading = scope.spawn(|| if same_target { Delivered::load(root, &checkpoint::rows_file(shop)) } else { Ok(Delivered::default()) });
        // Every table from the same (current) generation: never a mix of two runs.
        let read = |table: &str| read_current_required(root, shop, table);
        // Generations computed before customer_lifetime_features existed lack it …
        // … and customer_lifetime_features or product_embeddings.
        let lifetime = read_current(root, shop, "customer_lifetime_features")?;
        let embeddings = read_current(root, shop, "product_embeddings")?;
        let sources = mapping::sources(read("product_features")?, embeddings, read("user_features")?, read("interaction_features")?, lifetime, prefix)?;
        let fingerprints = sources.iter().map(fingerprint::fingerprints).collect::<Result<Vec<_>>>()?;
        let delivered = loading.join().map_err(|_| anyhow::anyhow!("reading the delivered rows failed"))??;
        let plans = sources.iter().zip(fingerprints).map(|(source, rows)| plan(source.kind, rows, &delivered, full)).collect();
        Ok((sources, delivered, plans))
    })
}

/// Tables that lost most of their rows (a broken fetch, a wrong shop) would
/// delete valid items, users and feedback: an export deleting more than `share` of
/// what Gorse holds stops instead.
fn refuse_mass_deletion(plans: &[plan::Plan], held: usize, share: f64) -> Result<()> {
    let deleting: usize = plans.iter().map(|p| p.removed.len()).sum();
    if held > 0 && deleting as f64 > share * held as f64 {
        let per_kind: Vec<String> = plans.iter().map(|p| format!("{} {}s", p.removed.len(), p.kind.name())).collect();
        anyhow::bail!(
            "refusing to delete {deleting} of the {held} rows Gorse holds ({:.0}%, more than the {:.0}% allowed: {}); \
             check the feature tables, or pass --allow-mass-delete (or raise [gorse] max_delete_share)",
            100.0 * deleting as f64 / held as f64,
            100.0 * share,
            per_kind.join(", ")
        );
    }
    Ok(())
}

