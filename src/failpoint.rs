//! Failpoints: named places where a test makes this process pause, fail or stop,
//! to reproduce what production does to it (a slow disk, a write that fails, a
//! whole process frozen by the scheduler or a network partition) without timing
//! races. Inert unless `SHOPFEAT_FAILPOINTS` is set, as TiKV's fail-rs does it.
//!
//! ```text
//! SHOPFEAT_FAILPOINTS="inbox-write=1*sleep(1500)+fail;publish=stop"
//! ```
//!
//! Each entry is `name=[N*]step+step…`; a step is `sleep(MS)`, `fail` (the place
//! returns an error) or `stop` (the process sends itself SIGSTOP: every thread
//! freezes until a SIGCONT); `N*` limits the entry to its first N hits.
//!
//! Places: `inbox-write` (a delivery or a pixel batch written to the inbox),
//! `feature-table` (after each feature table is made, while the earlier ones
//! are being written), `publish` (before a generation's `CURRENT` is written), `compact-publish`
//! (before a compacted snapshot's manifest is written), `compact-remove` (before
//! each replaced snapshot is deleted), `gorse-rows-whole` (between removing the
//! Gorse export's journal and writing its rows file whole).

use anyhow::{bail, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

#[derive(Debug)]
enum Step {
    Sleep(Duration),
    Fail,
    Stop,
}

#[derive(Debug)]
struct Entry {
    name: String,
    /// Hits that trigger the steps; `None`: every hit.
    times: Option<u64>,
    hits: AtomicU64,
    steps: Vec<Step>,
}

fn entries() -> &'static [Entry] {
    static ENTRIES: OnceLock<Vec<Entry>> = OnceLock::new();
    ENTRIES.get_or_init(|| std::env::var("SHOPFEAT_FAILPOINTS").map(|spec| parse(&spec)).unwrap_or_default())
}

/// The entries of a `SHOPFEAT_FAILPOINTS` value; an entry that does not parse is
/// ignored with a warning (a typo must not fail a production process).
fn parse(spec: &str) -> Vec<Entry> {
    spec.split(';').filter(|e| !e.trim().is_empty()).filter_map(|entry| match parse_entry(entry.trim()) {
        Some(e) => Some(e),
        None => {
            tracing::warn!("SHOPFEAT_FAILPOINTS: cannot read {entry:?} (name=[N*]sleep(MS)|fail|stop[+…])");
            None
        }
    }).collect()
}

fn parse_entry(entry: &str) -> Option<Entry> {
    let (name, actions) = entry.split_once('=')?;
    let (times, actions) = match actions.split_once('*') {
        Some((n, rest)) => (Some(n.trim().parse().ok()?), rest),
        None => (None, actions),
    };
    let steps = actions
        .split('+')
        .map(|step| match step.trim() {
            "fail" => Some(Step::Fail),
            "stop" => Some(Step::Stop),
            s => s.strip_prefix("sleep(")?.strip_suffix(')')?.parse().ok().map(|ms| Step::Sleep(Duration::from_millis(ms))),
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Entry { name: name.trim().to_string(), times, hits: AtomicU64::new(0), steps })
}

/// Passes through the failpoint `name`: does what `SHOPFEAT_FAILPOINTS` says for
/// it (nothing when it names it not). Blocking: call it off async workers.
pub fn hit(name: &str) -> Result<()> {
    for entry in entries().iter().filter(|e| e.name == name) {
        let hit = entry.hits.fetch_add(1, Ordering::Relaxed);
        if entry.times.is_some_and(|n| hit >= n) {
            continue;
        }
        for step in &entry.steps {
            match step {
                Step::Sleep(d) => std::thread::sleep(*d),
                Step::Fail => bail!("failpoint {name}: failing as SHOPFEAT_FAILPOINTS says"),
                Step::Stop => {
                    tracing::warn!("failpoint {name}: stopping this process (SIGSTOP) as SHOPFEAT_FAILPOINTS says");
                    // SAFETY: raise only sends a signal to this process.
                    unsafe { libc::raise(libc::SIGSTOP) };
                }
            }
        }
    }
    Ok(())
}
