//! What a pipeline step reports: the time and peak memory of each stage it ran,
//! and the rows it produced against the rows it had to produce. Every report
//! serializes to the JSON that `--json` prints.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One stage's cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageReport {
    pub stage: &'static str,
    pub seconds: f64,
    /// The process's peak resident memory during the stage, in bytes: the largest
    /// of its resident size sampled every [`SAMPLE_EVERY`] while the stage ran
    /// (Linux); `None` where the system does not tell.
    pub peak_rss_bytes: Option<u64>,
}

/// A stage being measured. Stages do not nest: starting one restarts the
/// largest sample the previous one was read from.
pub struct Stage {
    name: &'static str,
    started: Instant,
}

impl Stage {
    pub fn start(name: &'static str) -> Stage {
        RUNNING.fetch_add(1, Ordering::Relaxed);
        STAGE_PEAK.store(resident_bytes().unwrap_or(0), Ordering::Relaxed);
        start_sampler();
        Stage { name, started: Instant::now() }
    }

    pub fn finish(self) -> StageReport {
        let seconds = self.started.elapsed().as_secs_f64();
        tracing::debug!(stage = self.name, seconds = format!("{seconds:.2}"), "stage done");
        let now = resident_bytes();
        let peak = now.map(|now| STAGE_PEAK.load(Ordering::Relaxed).max(now));
        StageReport { stage: self.name, seconds, peak_rss_bytes: peak }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::Relaxed);
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

/// How often the resident size is sampled while a stage runs.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// The largest resident size sampled since the current stage started.
static STAGE_PEAK: AtomicU64 = AtomicU64::new(0);

/// Stages running now: between stages (a `serve` process waiting for
/// deliveries) the sampler looks ten times less often.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Starts (once per process) the thread that samples the resident size.
///
/// Why a sampler: the kernel's high-water mark (`VmHWM`) can only be reset for
/// the whole process (`clear_refs`), and resetting it per stage made every
/// outside measurement of the process — `wait4`'s `ru_maxrss`, `/usr/bin/time`,
/// `run --all`'s per-shop peak — report only the last stage's peak. Nothing
/// resets it now: the process's own peak stays whole, and a stage's is sampled.
fn start_sampler() {
    static SAMPLER: std::sync::OnceLock<Option<std::thread::Thread>> = std::sync::OnceLock::new();
    let sampler = SAMPLER.get_or_init(|| {
        let spawned = std::thread::Builder::new().name("rss-sampler".into()).spawn(|| loop {
            if let Some(now) = resident_bytes() {
                STAGE_PEAK.fetch_max(now, Ordering::Relaxed);
            }
            let idle = RUNNING.load(Ordering::Relaxed) == 0;
            std::thread::park_timeout(if idle { SAMPLE_EVERY * 10 } else { SAMPLE_EVERY });
        });
        match spawned {
            Ok(handle) => Some(handle.thread().clone()),
            Err(e) => {
                tracing::debug!("no memory sampler ({e}): stage peaks are read at their ends only");
                None
            }
        }
    });
    // A stage starting wakes an idle sampler.
    if let Some(thread) = sampler {
        thread.unpark();
    }
}

/// The process's resident size now (`/proc/self/statm`), in bytes.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn high_water_mark() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let kib: u64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap();
        kib * 1024
    }

    /// A stage's peak is its own, and measuring stages never lowers the
    /// process's high-water mark (what `ru_maxrss` and `/usr/bin/time` read).
    #[test]
    fn stage_peaks_are_sampled_and_the_process_peak_is_left_whole() {
        const BIG: usize = 512 << 20;
        let big = Stage::start("big");
        let mut block = vec![0u8; BIG];
        // Touch every page, so it is resident, and keep it there a few samples long.
        for i in (0..BIG).step_by(4096) {
            block[i] = 1;
        }
        std::thread::sleep(SAMPLE_EVERY * 4);
        assert_eq!(std::hint::black_box(&block)[BIG - 4096], 1);
        drop(block);
        let big = big.finish();
        let small = Stage::start("small");
        std::thread::sleep(SAMPLE_EVERY * 4);
        let small = small.finish();
        let (big, small) = (big.peak_rss_bytes.unwrap(), small.peak_rss_bytes.unwrap());
        assert!(big >= BIG as u64, "the big stage's peak {big} holds its block");
        assert!(small < big - (BIG as u64) / 2, "the small stage's peak {small} is its own, not the big one's");
        // (The kernel's counters lag its sampled size by a few pages; a reset
        // would take the block's half a gigabyte off.)
        let mark = high_water_mark();
        assert!(mark + (8 << 20) >= big, "the process's high-water mark was lowered: {mark} < {big}");
    }
}
