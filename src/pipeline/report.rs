//! What a pipeline step reports: the time and peak memory of each stage it ran,
//! and the rows it produced against the rows it had to produce. Every report
//! serializes to the JSON that `--json` prints.

use serde::Serialize;
use std::time::Instant;

/// One stage's cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageReport {
    pub stage: &'static str,
    pub seconds: f64,
    /// The process's peak resident memory during the stage, in bytes (Linux: the
    /// high-water mark is reset when the stage starts); `None` where the system
    /// does not tell.
    pub peak_rss_bytes: Option<u64>,
}

/// A stage being measured. Stages do not nest: starting one resets the
/// high-water mark the previous one was read from.
pub struct Stage {
    name: &'static str,
    started: Instant,
}

impl Stage {
    pub fn start(name: &'static str) -> Stage {
        reset_peak_rss();
        Stage { name, started: Instant::now() }
    }

    pub fn finish(self) -> StageReport {
        let seconds = self.started.elapsed().as_secs_f64();
        tracing::debug!(stage = self.name, seconds = format!("{seconds:.2}"), "stage done");
        StageReport { stage: self.name, seconds, peak_rss_bytes: peak_rss() }
    }
}

/// Rows of one output table, and the rows it must have (one per entity at `T`)
/// where the catalog fixes that number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableRows {
    pub table: &'static str,
    pub rows: usize,
    pub expected: Option<usize>,
}

impl TableRows {
    pub fn matches(&self) -> bool {
        self.expected.is_none_or(|e| e == self.rows)
    }
}

/// Writing "5" to `clear_refs` resets the peak RSS to the current RSS (Linux ≥ 4.0).
fn reset_peak_rss() {
    #[cfg(target_os = "linux")]
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// `VmHWM` of `/proc/self/status`, in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}
