//! Keeping every shop fresh: one worker per shop waits for deliveries (a
//! [`Cycles::wake`]) or its scheduled full cycle, and runs one cycle at a time:
//!
//! - incremental: after the shop's deliveries pause for `debounce` (at most
//!   `max_delay` after the first), land its inbox → compute → publish → export
//!   what changed to Gorse;
//! - full: at the times of its cron schedule, the same with the shop's full
//!   source (a historical fetch that also lands the inbox, or its local exports).
//!   A time that falls while the shop is busy (debouncing, waiting for a slot,
//!   in a cycle, locked by another process) is not skipped: the full cycle runs
//!   as soon as the shop is free, before any incremental one, and missed times
//!   collapse into that one run.
//!
//! - fast (the fast lane, [`pipeline::fast_cycle`]): catalog, order and refund
//!   deliveries skip the debounce — the rows they touch go to Gorse at once —
//!   and a full recompute (an incremental cycle, whatever the inbox holds) follows
//!   `fast_catch_up` after the first fast cycle since the last recompute.
//!
//! At most `jobs` shops run a cycle at once (a semaphore); each cycle holds the
//! shop's lock, so a `shopfeat run` started by hand or by a cron job never
//! overlaps it — a cycle that finds the shop locked waits and tries again.

use super::{AppState, ShopSpec};
use crate::history::Recorder;
use crate::lock::ShopLock;
use crate::pipeline::{self, RunOptions, RunReport, Source};
use crate::storage::DataRoot;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;

/// How long a cycle that found the shop locked waits to try again; a failed
/// cycle waits this long, then twice as long after each further failure, up to
/// [`MAX_RETRY_AFTER`] (a persistent fault should not fill the run history).
const RETRY_AFTER: Duration = Duration::from_secs(5);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// How long landed inbox files are kept (a week of look-back).
const LANDED_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Incremental,
    Full,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Incremental => "incremental",
            Kind::Full => "full",
        }
    }
}

/// The workers' shared controls.
pub struct Cycles {
    slots: Arc<Semaphore>,
    wakers: HashMap<String, Arc<Notify>>,
    stop: watch::Sender<bool>,
}

impl Cycles {
    pub fn new<'a>(jobs: usize, shops: impl Iterator<Item = &'a String>) -> Cycles {
        Cycles {
            slots: Arc::new(Semaphore::new(jobs.max(1))),
            wakers: shops.map(|s| (s.clone(), Arc::new(Notify::new()))).collect(),
            stop: watch::channel(false).0,
        }
    }

    /// New data waits in `shop`'s inbox.
    pub fn wake(&self, shop: &str) {
        if let Some(w) = self.wakers.get(shop) {
            w.notify_one();
        }
    }

    /// No new cycle starts after this; running ones finish.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }
}

/// Starts one worker per shop.
pub(crate) fn start(state: Arc<AppState>) -> Vec<tokio::task::JoinHandle<()>> {
    state.shops.keys().map(|shop| tokio::spawn(worker(state.clone(), shop.clone()))).collect()
}

async fn worker(state: Arc<AppState>, shop: String) {
    let spec = &state.shops[&shop];
    let waker = state.cycles.wakers[&shop].clone();
    let mut stop = state.cycles.stop.subscribe();
    // Deliveries accepted before a restart and not landed yet.
    if spec.inbox.depth() > 0 {
        waker.notify_one();
    }
    let mut after_failure = RETRY_AFTER;
    // After a failed cycle the next one runs even with an empty inbox: the
    // failed one may have landed the data and then failed to publish or export.
    let mut redo = false;
    // Kept across loops (not recomputed from "now"), so a time that passed while
    // the shop was busy is still due.
    let next_after_now = || spec.schedule.as_ref().and_then(|cron| cron.find_next_occurrence(&chrono::Utc::now(), false).ok());
    let mut next_full = next_after_now();
    // The recompute due after fast cycles (the first since the last recompute
    // sets it).
    let mut catch_up: Option<Instant> = None;
    remember_publication(&state, &shop).await;
    loop {
        // A due full cycle goes first: deliveries arriving back to back would
        // otherwise always win (a waiting delivery is ready at once, a timer
        // only at its next tick).
        let due = next_full.is_some_and(|t| t <= chrono::Utc::now());
        let mut recompute = false;
        let kind = if due && !*stop.borrow() {
            Kind::Full
        } else {
            let until_full = next_full.map(|t| (t - chrono::Utc::now()).to_std().unwrap_or_default());
            let until_catch_up = catch_up.map(|t| t.saturating_duration_since(Instant::now()));
            tokio::select! {
                _ = stop.changed() => return,
                _ = sleep_or_never(until_full) => Kind::Full,
                _ = sleep_or_never(until_catch_up) => {
                    recompute = true;
                    Kind::Incremental
                }
                _ = waker.notified() => Kind::Incremental,
            }
        };
        if kind == Kind::Incremental && !recompute && state.options.fast_catch_up.is_some() && has_fast_deliveries(spec) {
            match run_fast(&state, &shop).await {
                Outcome::Ran => catch_up = catch_up.or_else(|| state.options.fast_catch_up.map(|after| Instant::now() + after)),
                // It may have landed deliveries that never reached Gorse: a
                // recompute soon exports them.
                Outcome::Failed(_) => {
                    let soon = Instant::now() + RETRY_AFTER;
                    catch_up = Some(catch_up.map_or(soon, |t| t.min(soon)));
                }
                Outcome::Busy(_) | Outcome::Nothing => {}
            }
            if spec.inbox.depth() == 0 {
                continue;
            }
            // Other deliveries wait too: they take the debounced cycle.
        }
        // The catch-up recompute is due now: deliveries meanwhile do not delay it.
        if kind == Kind::Incremental && !recompute && !debounce(&waker, &mut stop, state.options.debounce, state.options.max_delay).await {
            return;
        }
        let queued = state.metrics.queued.get_or_create(&super::metrics::ShopLabels { shop: shop.clone() }).clone();
        queued.set(1);
        let permit = tokio::select! {
            p = state.cycles.slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = stop.changed() => return,
        };
        queued.set(0);
        let started = std::time::Instant::now();
        let runner = state.clone();
        let cycle_shop = shop.clone();
        // A panicking cycle is a failed one.
        let forced = redo || recompute;
        let outcome = tokio::task::spawn_blocking(move || run_cycle(&runner, &runner.shops[&cycle_shop], kind, forced)).await.unwrap_or_else(|e| Outcome::Failed(format!("panicked: {e}")));
        drop(permit);
        if matches!(outcome, Outcome::Ran) {
            // A whole recompute holds every fast cycle's changes.
            catch_up = None;
        }
        if kind == Kind::Full {
            // Missed times collapse into the cycle that just ran (or failed); a
            // locked-out one stays due and is tried again shortly.
            next_full = match &outcome {
                Outcome::Busy(_) => Some(chrono::Utc::now() + chrono::Duration::from_std(RETRY_AFTER).unwrap_or_default()),
                _ => next_after_now(),
            };
        }
        let seconds = started.elapsed().as_secs_f64();
        let (label, retry) = match &outcome {
            Outcome::Ran => {
                after_failure = RETRY_AFTER;
                redo = false;
                ("ok", None)
            }
            Outcome::Nothing => continue,
            Outcome::Busy(why) if kind == Kind::Full => {
                tracing::info!("shop {shop}: {why}; the full cycle stays due and is tried again in {RETRY_AFTER:?}");
                ("busy", None)
            }
            Outcome::Busy(why) => {
                tracing::info!("shop {shop}: {why}; trying again in {RETRY_AFTER:?}");
                ("busy", Some(RETRY_AFTER))
            }
            Outcome::Failed(why) => {
                if kind == Kind::Full {
                    // Its schedule tries again; the inbox has its own cycles.
                    tracing::error!("shop {shop}: full cycle failed: {why}; the next one runs on schedule");
                    ("failed", None)
                } else {
                    tracing::error!("shop {shop}: incremental cycle failed: {why}; trying again in {after_failure:?}");
                    let wait = after_failure;
                    after_failure = (after_failure * 2).min(MAX_RETRY_AFTER);
                    redo = true;
                    ("failed", Some(wait))
                }
            }
        };
        state.metrics.cycle(&shop, kind.name(), label, seconds);
        if let Some(wait) = retry {
            // Its data still waits: try again later (a new delivery wakes it sooner).
            let waker = waker.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                waker.notify_one();
            });
        }
    }
}

/// Whether deliveries for the fast lane wait in the shop's inbox.
fn has_fast_deliveries(spec: &ShopSpec) -> bool {
    spec.inbox.pending_of(&pipeline::fast_topics()).is_ok_and(|files| !files.is_empty())
}

/// Runs a fast cycle of `shop` (no slot needed: it is small and must not wait
/// behind other shops' full cycles). One that finds the shop locked leaves the
/// deliveries to the debounced cycle.
async fn run_fast(state: &Arc<AppState>, shop: &str) -> Outcome {
    let started = std::time::Instant::now();
    let (runner, cycle_shop) = (state.clone(), shop.to_string());
    let outcome = tokio::task::spawn_blocking(move || run_fast_cycle(&runner, &runner.shops[&cycle_shop])).await.unwrap_or_else(|e| Outcome::Failed(format!("panicked: {e}")));
    let label = match &outcome {
        Outcome::Ran => "ok",
        Outcome::Nothing => return outcome,
        Outcome::Busy(_) => "busy",
        Outcome::Failed(why) => {
            tracing::error!("shop {shop}: fast cycle failed: {why}; a recompute follows in {RETRY_AFTER:?}");
            "failed"
        }
    };
    state.metrics.cycle(shop, "fast", label, started.elapsed().as_secs_f64());
    outcome
}

/// The data root, and `spec`'s lock on it for a cycle; else why not (another
/// process holds the lock: busy).
fn locked_root(state: &AppState, spec: &ShopSpec) -> Result<(DataRoot, ShopLock), Outcome> {
    let root = DataRoot::open(&state.options.root).map_err(|e| Outcome::Failed(format!("{e:#}")))?;
    let lock = match ShopLock::acquire(&root, &spec.id) {
        Ok(l) => l,
        Err(e) if e.downcast_ref::<crate::lock::Locked>().is_some() => return Err(Outcome::Busy(format!("{e:#}"))),
        Err(e) => return Err(Outcome::Failed(format!("{e:#}"))),
    };
    Ok((root, lock))
}

/// One fast cycle of `spec`, recorded in its run history as `serve fast`.
fn run_fast_cycle(state: &AppState, spec: &ShopSpec) -> Outcome {
    let _span = tracing::info_span!("cycle", shop = %spec.id, kind = "fast").entered();
    let (root, _lock) = match locked_root(state, spec) {
        Ok(held) => held,
        Err(outcome) => return outcome,
    };
    // Landed meanwhile by a cycle of another process: nothing to record.
    if !has_fast_deliveries(spec) {
        return Outcome::Nothing;
    }
    let recorder = match Recorder::start(&root, &spec.id, "serve fast") {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("{e:#}")),
    };
    let options = pipeline::FastOptions { as_of: state.options.as_of, gorse: spec.gorse.clone() };
    let result = pipeline::fast_cycle(&root, &spec.id, &spec.inbox, &options);
    state.set_usage(&spec.id, spec.inbox.usage());
    let why = result.as_ref().err().map(|e| format!("{e:#}"));
    match &result {
        Ok(None) => {}
        Ok(Some(report)) => {
            let rows: Vec<String> = report.tables.iter().map(|t| format!("{} {}", t.rows, t.table)).collect();
            let seconds = report.stages.iter().chain(&report.land.stages).map(|s| s.seconds).sum::<f64>();
            tracing::info!("shop {}: fast cycle done in {seconds:.2} s: rows {}; {} products gone", spec.id, rows.join(", "), report.gone.len());
        }
        Err(_) => {}
    }
    if let Err(e) = recorder.end(why.clone(), result.as_ref().ok().and_then(|r| r.as_ref())) {
        tracing::warn!("shop {}: the run history was not written: {e:#}", spec.id);
    }
    match why {
        Some(why) => Outcome::Failed(why),
        None => Outcome::Ran,
    }
}

/// Reads when `shop`'s current generation was published (once, at start; each
/// cycle then says so itself), for `/metrics`.
async fn remember_publication(state: &Arc<AppState>, shop: &str) {
    let (reader, shop) = (state.clone(), shop.to_string());
    let _ = tokio::task::spawn_blocking(move || {
        let root = DataRoot::open(&reader.options.root).ok()?;
        let pointer = crate::sinks::generation::current(&root, &crate::sinks::parquet::features_dir(&shop)).ok()??;
        let at = chrono::DateTime::parse_from_rfc3339(&pointer.published_at).ok()?;
        reader.published.lock().expect("published").insert(shop, at.with_timezone(&chrono::Utc));
        Some(())
    })
    .await;
}

async fn sleep_or_never(duration: Option<Duration>) {
    match duration {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Waits until deliveries pause for `quiet`, or `max_delay` after the first;
/// false when told to stop meanwhile.
async fn debounce(waker: &Notify, stop: &mut watch::Receiver<bool>, quiet: Duration, max_delay: Duration) -> bool {
    let first = Instant::now();
    loop {
        let deadline = (Instant::now() + quiet).min(first + max_delay);
        tokio::select! {
            _ = waker.notified() => continue,
            _ = tokio::time::sleep_until(deadline) => return true,
            _ = stop.changed() => return false,
        }
    }
}

enum Outcome {
    Ran,
    /// An incremental cycle found the inbox empty (an earlier cycle landed it).
    Nothing,
    /// Another process holds the shop's lock.
    Busy(String),
    Failed(String),
}

/// Drops what `spec`'s cycles kept of its normalization.
fn forget_kept(state: &AppState, spec: &ShopSpec) {
    *state.kept[&spec.id].lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Default::default();
}

/// One cycle of `spec`, recorded in its run history like any run; an
/// incremental one with an empty inbox only when `redo` (the last one failed).
fn run_cycle(state: &AppState, spec: &ShopSpec, kind: Kind, redo: bool) -> Outcome {
    // Every line the cycle logs names its shop (shops' cycles interleave).
    let _span = tracing::info_span!("cycle", shop = %spec.id, kind = kind.name()).entered();
    // Compliance requests waiting make a cycle too: they are done by the next one.
    let requests = spec.inbox.privacy_pending().unwrap_or_default();
    let privacy = !requests.is_empty();
    let source = match kind {
        Kind::Incremental if spec.inbox.depth() == 0 && !redo && !privacy => return Outcome::Nothing,
        Kind::Incremental => Source::Inbox(spec.inbox.clone()),
        // An uninstalled app's token no longer works: no fetch until deliveries resume.
        Kind::Full if spec.inbox.uninstalled() && !privacy => {
            tracing::info!("shop {}: the app was uninstalled; its scheduled fetch is skipped", spec.id);
            return Outcome::Nothing;
        }
        Kind::Full if spec.inbox.uninstalled() => Source::Inbox(spec.inbox.clone()),
        Kind::Full => match &spec.full_source {
            Some(source) => source.clone(),
            None => return Outcome::Nothing,
        },
    };
    let (root, _lock) = match locked_root(state, spec) {
        Ok(held) => held,
        Err(outcome) => return outcome,
    };
    let kept = state.options.keep_normalized.then(|| state.kept[&spec.id].clone());
    let options = RunOptions { source, as_of: state.options.as_of, pairs: spec.pairs, keep_generations: crate::sinks::generation::KEEP, gorse: spec.gorse.clone(), compaction: state.options.compaction, kept };
    let recorder = match Recorder::start(&root, &spec.id, &format!("serve {}", kind.name())) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("{e:#}")),
    };
    // Another shop exporting to the same Gorse makes an unprefixed shop's ids ambiguous.
    let shares_gorse = spec.gorse.as_ref().is_some_and(|g| state.shops.values().any(|other| other.id != spec.id && other.gorse.as_ref().is_some_and(|o| o.url == g.url)));
    if requests.iter().any(|(_, topic, _, _)| topic == "shop/redact") {
        // The app was uninstalled: nothing to fetch or compute, only to forget.
        forget_kept(state, spec);
        return match crate::privacy::carry_out_pending(&root, &spec.id, &spec.inbox, spec.gorse.as_ref(), spec.pairs, shares_gorse) {
            Ok(_) => Outcome::Ran,
            Err(e) => Outcome::Failed(format!("{e:#}")),
        };
    }
    let mut result = pipeline::run(&root, &spec.id, &options);
    if privacy && result.is_ok() {
        // After the landing, so a late delivery naming the customer is erased too.
        if let Err(e) = crate::privacy::carry_out_pending(&root, &spec.id, &spec.inbox, spec.gorse.as_ref(), spec.pairs, shares_gorse) {
            result = Err(e.context("carrying out the shop's privacy requests"));
        }
        // What was kept holds what the requests erased: the next cycle makes
        // it again from the store as the erasure left it.
        forget_kept(state, spec);
    }
    // What waits in the inbox now (one listing), and when the features were
    // published, for `/metrics` — said before the run history says "done".
    state.set_usage(&spec.id, spec.inbox.usage());
    if result.as_ref().is_ok_and(|r| r.compute.generation.is_some()) {
        state.published.lock().expect("published").insert(spec.id.clone(), chrono::Utc::now());
    }
    let why = match &result {
        Ok(report) => report.failed.clone(),
        Err(e) => Some(format!("{e:#}")),
    };
    if let Err(e) = recorder.end::<RunReport>(why.clone(), result.as_ref().ok()) {
        tracing::warn!("shop {}: the run history was not written: {e:#}", spec.id);
    }
    match (why, result) {
        (Some(why), _) => Outcome::Failed(why),
        (None, Ok(report)) => {
            if let Err(e) = spec.inbox.prune_landed(LANDED_KEPT) {
                tracing::warn!("shop {}: cannot prune landed inbox files: {e:#}", spec.id);
            }
            let exported = report.export.as_ref().map(|e| format!(", Gorse: {} rows sent", e.gorse.upserted.iter().chain(&e.gorse.deleted).sum::<u64>())).unwrap_or_default();
            tracing::info!("shop {}: {} cycle done in {:.2} s{exported}", spec.id, kind.name(), report.stages().iter().map(|s| s.seconds).sum::<f64>());
            Outcome::Ran
        }
        (None, Err(_)) => unreachable!("an error always has a why"),
    }
}
