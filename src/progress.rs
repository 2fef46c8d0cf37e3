//! Progress of long work: a bar on a terminal; otherwise (cron, CI, a pipe) a log
//! line every 10 seconds, so a log shows the work moving.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Read};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LOG_EVERY: Duration = Duration::from_secs(10);

/// A progress counter; clones share it.
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
    what: &'static str,
    bytes: bool,
    /// When the last log line was written; `None` on a terminal (the bar shows it).
    last_log: Option<Arc<Mutex<Instant>>>,
}

impl Progress {
    /// Progress of `what` out of `total` (bytes or items; 0 when not known yet).
    pub fn new(total: u64, what: &'static str, bytes: bool) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let template = if bytes {
            "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{msg:>10} [{bar:30}] {pos}/{len} eta {eta}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        let last_log = (!std::io::stderr().is_terminal()).then(|| Arc::new(Mutex::new(Instant::now())));
        Progress { bar, what, bytes, last_log }
    }

    /// Progress that shows nothing (tests, nested work).
    pub fn hidden() -> Progress {
        Progress { bar: ProgressBar::hidden(), what: "", bytes: false, last_log: None }
    }

    pub fn set_total(&self, total: u64) {
        self.bar.set_length(total);
    }

    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        let Some(last_log) = &self.last_log else { return };
        let Ok(mut last) = last_log.lock() else { return };
        if last.elapsed() >= LOG_EVERY {
            *last = Instant::now();
            let (done, total) = (self.bar.position(), self.bar.length().unwrap_or(0));
            if self.bytes {
                tracing::info!("{}: {:.1}/{:.1} MB", self.what, done as f64 / 1e6, total as f64 / 1e6);
            } else {
                tracing::info!("{}: {done}/{total}", self.what);
            }
        }
    }

    /// `reader`, counting the bytes read from it.
    pub fn wrap_read<R: Read>(&self, reader: R) -> CountedRead<R> {
        CountedRead { reader, progress: self.clone() }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A reader whose bytes count as progress.
pub struct CountedRead<R> {
    reader: R,
    progress: Progress,
}

impl<R: Read> Read for CountedRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.reader.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}
