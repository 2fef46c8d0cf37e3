//! A shop's inbox: a local folder of webhook payloads and web-pixel event files
//! waiting to land. `shopfeat serve` writes it ([`Inbox::write_webhook`],
//! [`Inbox::write_events`]); a run lands what it holds ([`Inbox::pending`]) and
//! then files each landed file away ([`Inbox::file_away`]).
//!
//! ```text
//! <inbox>/webhooks/<arrival>.<resource>+<action>.<webhook id>.json   one delivery each
//! <inbox>/events-<arrival>.jsonl                          one pixel batch each
//! <inbox>/landed/<snapshot>/…                             landed by that snapshot
//! <inbox>/rejected/<snapshot>/…                           unreadable, with <name>.reason
//! <inbox>/privacy/<arrival>.<topic>.<webhook id>.json     a compliance request, until carried out
//! <inbox>/privacy/done/<webhook id>                       one carried out (its id only: no personal data)
//! ```
//!
//! Every file appears whole or not at all: it is written under `.incoming/`,
//! fsynced, renamed into place and its folder fsynced, so a file in the inbox is
//! durable and complete, and a crash leaves at most litter in `.incoming/`. The
//! arrival stamp (microseconds since the epoch, strictly increasing within a
//! process) makes the name order the arrival order, which is the landing's
//! tie-break between versions with the same `updated_at`.

use super::{collect_inputs, InputFile, InputKind, LandReport};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Where files are written before they are renamed into the inbox.
const INCOMING: &str = ".incoming";

#[derive(Debug, Clone)]
pub struct Inbox {
    dir: PathBuf,
}

/// The last arrival stamp handed out in this process.
static LAST_ARRIVAL: AtomicI64 = AtomicI64::new(0);

/// Microseconds since the epoch, strictly increasing across calls (two arrivals
/// in one microsecond get consecutive stamps).
fn arrival_stamp() -> i64 {
    let now = crate::time::now_us();
    let mut last = LAST_ARRIVAL.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST_ARRIVAL.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// Keeps only the characters safe in a file name: Shopify's webhook ids are
/// UUIDs, but the header comes from the network.
fn file_safe(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(64).collect()
}

/// A topic as a file name part: `customers/data_request` → `customers+data_request`.
/// Both halves may hold underscores (`orders/partially_fulfilled`,
/// `custom_collections/update`), so the slash becomes a `+`, which no topic
/// holds, and the name reads back exactly.
pub fn topic_in_name(topic: &str) -> Result<String> {
    let valid = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    match topic.split_once('/') {
        Some((resource, action)) if valid(resource) && valid(action) => Ok(format!("{resource}+{action}")),
        _ => bail!("{topic:?} is not a webhook topic"),
    }
}

impl Inbox {
    pub fn new(dir: impl Into<PathBuf>) -> Inbox {
        Inbox { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes one webhook delivery durably; returns its file.
    /// `topic` is Shopify's (`orders/updated`); `webhook_id` its
    /// `X-Shopify-Webhook-Id`, kept in the name so a restarted server still
    /// recognises a replay ([`Inbox::seen_webhook_ids`]).
    pub fn write_webhook(&self, topic: &str, webhook_id: &str, body: &[u8]) -> Result<PathBuf> {
        let topic = topic_in_name(topic)?;
        let name = format!("{:017}.{topic}.{}.json", arrival_stamp(), file_safe(webhook_id));
        self.write_durably(&self.dir.join("webhooks"), &name, body)
    }

    /// Writes one compliance request (`customers/redact`, …) durably, apart from
    /// the data: it is carried out, never landed.
    pub fn write_privacy(&self, topic: &str, webhook_id: &str, body: &[u8]) -> Result<PathBuf> {
        let topic = topic_in_name(topic)?;
        let name = format!("{:017}.{topic}.{}.json", arrival_stamp(), file_safe(webhook_id));
        self.write_durably(&self.dir.join("privacy"), &name, body)
    }

    /// The compliance requests waiting, oldest first: (file, topic, webhook id,
    /// received at µs).
    pub fn privacy_pending(&self) -> Result<Vec<(PathBuf, String, String, i64)>> {
        let mut pending = vec![];
        for entry in std::fs::read_dir(self.dir.join("privacy")).into_iter().flatten() {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
            if let [arrival, topic, id, "json"] = name.split('.').collect::<Vec<_>>().as_slice() {
                let topic = topic.replacen('+', "/", 1);
                pending.push((path.clone(), topic, id.to_string(), arrival.parse().unwrap_or(0)));
            }
        }
        pending.sort();
        Ok(pending)
    }

    /// A compliance request carried out: its file (which holds the customer's
    /// email) removed, its webhook id remembered.
    pub fn privacy_done(&self, file: &Path, webhook_id: &str) -> Result<()> {
        let done = self.dir.join("privacy/done");
        std::fs::create_dir_all(&done)?;
        std::fs::File::create(done.join(file_safe(webhook_id)))?.sync_all()?;
        sync_dir(&done)?;
        std::fs::remove_file(file).with_context(|| format!("cannot remove {}", file.display()))?;
        sync_dir(&self.dir.join("privacy"))
    }

    /// Marks the shop's app as uninstalled (`app/uninstalled`): scheduled
    /// fetches stop until a delivery shows it is installed again.
    pub fn mark_uninstalled(&self, uninstalled: bool) -> Result<()> {
        let marker = self.dir.join("uninstalled");
        match uninstalled {
            true => self.write_durably(&self.dir, "uninstalled", b"").map(|_| ()),
            false => match std::fs::remove_file(&marker) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            },
        }
    }

    /// Whether the shop's app was uninstalled (and not installed since).
    pub fn uninstalled(&self) -> bool {
        self.dir.join("uninstalled").exists()
    }

    /// Writes one batch of web-pixel events (NDJSON, one event per line) durably.
    pub fn write_events(&self, ndjson: &[u8]) -> Result<PathBuf> {
        let name = format!("events-{:017}.jsonl", arrival_stamp());
        self.write_durably(&self.dir, &name, ndjson)
    }

    /// Writes `bytes` as `dir/name`: all of it or nothing, on disk before this
    /// returns.
    fn write_durably(&self, dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        crate::failpoint::hit("inbox-write")?;
        let incoming = self.dir.join(INCOMING);
        std::fs::create_dir_all(&incoming).with_context(|| format!("cannot create {}", incoming.display()))?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let staged = incoming.join(name);
        let mut file = std::fs::File::create(&staged).with_context(|| format!("cannot create {}", staged.display()))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        let target = dir.join(name);
        std::fs::rename(&staged, &target).with_context(|| format!("cannot move {} into the inbox", staged.display()))?;
        sync_dir(dir)?;
        Ok(target)
    }

    /// Removes what a killed writer left half-written (never in the inbox proper).
    pub fn remove_litter(&self) -> Result<usize> {
        let incoming = self.dir.join(INCOMING);
        let mut removed = 0;
        if let Ok(entries) = std::fs::read_dir(&incoming) {
            for entry in entries {
                std::fs::remove_file(entry?.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Webhook ids already received: pending and landed deliveries alike.
    pub fn seen_webhook_ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut folders = vec![self.dir.join("webhooks"), self.dir.join("privacy")];
        for entry in std::fs::read_dir(self.dir.join("privacy/done")).into_iter().flatten().flatten() {
            ids.push(entry.file_name().to_string_lossy().into_owned());
        }
        for done in ["landed", "rejected"] {
            if let Ok(snapshots) = std::fs::read_dir(self.dir.join(done)) {
                for s in snapshots {
                    folders.push(s?.path().join("webhooks"));
                }
            }
        }
        for folder in folders {
            let Ok(entries) = std::fs::read_dir(&folder) else { continue };
            for entry in entries {
                let name = entry?.file_name();
                let parts: Vec<&str> = name.to_str().unwrap_or("").split('.').collect();
                if let [_, _, id, "json"] = parts.as_slice() {
                    ids.push(id.to_string());
                }
            }
        }
        Ok(ids)
    }

    /// Files waiting to land: `*.jsonl[.gz]` / `*.ndjson[.gz]` (events) at the top
    /// level, `*.json[.gz]` payloads at the top level or under `webhooks/`, in
    /// name order (webhooks: arrival order). Files changed more recently than
    /// `settle` may still be being written by something else: they wait.
    pub fn pending(&self, settle: Duration) -> Result<Vec<InputFile>> {
        if !self.dir.is_dir() {
            bail!("inbox {} is not a directory", self.dir.display());
        }
        let mut files = collect_inputs(std::slice::from_ref(&self.dir))?;
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_file() && (name.ends_with(".json") || name.ends_with(".json.gz")) {
                files.push(InputFile { kind: InputKind::Payload, path });
            }
        }
        files.sort();
        files.dedup();
        let settled = |f: &InputFile| std::fs::metadata(&f.path).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age >= settle);
        let (ready, fresh): (Vec<InputFile>, Vec<InputFile>) = files.into_iter().partition(|f| settle.is_zero() || settled(f));
        if !fresh.is_empty() {
            tracing::info!("{} inbox files changed in the last {:?} are left for the next run", fresh.len(), settle);
        }
        Ok(ready)
    }

    /// The webhook deliveries waiting whose topic is one of `topics` (in the
    /// inbox's `resource/action` form), in arrival order: what a fast cycle lands
    /// apart from the rest.
    pub fn pending_of(&self, topics: &[&str]) -> Result<Vec<InputFile>> {
        if !self.dir.is_dir() {
            return Ok(vec![]);
        }
        let named: Vec<String> = topics.iter().map(|t| topic_in_name(t)).collect::<Result<_>>()?;
        let topic_of = |f: &InputFile| f.path.file_name().and_then(|n| n.to_str()).and_then(|n| n.split('.').nth(1)).map(str::to_string);
        Ok(self
            .pending(Duration::ZERO)?
            .into_iter()
            .filter(|f| f.path.parent().is_some_and(|p| p.ends_with("webhooks")) && topic_of(f).is_some_and(|t| named.contains(&t)))
            .collect())
    }

    /// What waits to land, by kind (one listing of the inbox).
    pub fn usage(&self) -> Usage {
        let mut usage = Usage::default();
        if !self.dir.is_dir() {
            return usage;
        }
        for file in self.pending(Duration::ZERO).unwrap_or_default() {
            let bytes = std::fs::metadata(&file.path).map(|m| m.len()).unwrap_or(0);
            match file.kind {
                InputKind::Lines => usage.pixel.add(1, bytes),
                InputKind::Payload => usage.webhooks.add(1, bytes),
            }
        }
        usage
    }

    /// How many files wait to land (a listing without the sizes [`Inbox::usage`]
    /// reads: a cycle asks before it starts).
    pub fn depth(&self) -> usize {
        if !self.dir.is_dir() {
            return 0;
        }
        self.pending(Duration::ZERO).map(|f| f.len()).unwrap_or(0)
    }

    /// Removes `landed/<snapshot>/` folders older than `keep`: their records are
    /// in the raw snapshots (text included), so the copies are only for a look
    /// back. Returns how many folders went.
    pub fn prune_landed(&self, keep: Duration) -> Result<usize> {
        let mut removed = 0;
        let Ok(entries) = std::fs::read_dir(self.dir.join("landed")) else { return Ok(0) };
        for entry in entries {
            let path = entry?.path();
            let old = std::fs::metadata(&path).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age > keep);
            if old {
                std::fs::remove_dir_all(&path).with_context(|| format!("cannot remove {}", path.display()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Moves landed files to `<inbox>/landed/<snapshot>/` so the next run does
    /// not land them again. (Landing one twice would be harmless: normalization
    /// deduplicates.)
    ///
    /// A file that could not be read to its end (truncated, corrupt) goes to
    /// `<inbox>/rejected/<snapshot>/` instead, with `<name>.reason` beside it, so
    /// it neither fails nor repeats in every later run.
    pub fn file_away(&self, files: &[InputFile], landed: &LandReport) -> Result<()> {
        for file in files {
            let name = file.path.display().to_string();
            let broken = landed.broken_files.contains(&name);
            let target = self.dir.join(if broken { "rejected" } else { "landed" }).join(&landed.snapshot);
            let rel = file.path.strip_prefix(&self.dir).unwrap_or(&file.path);
            let dest = target.join(rel);
            std::fs::create_dir_all(dest.parent().context("no parent")?)?;
            std::fs::rename(&file.path, &dest).with_context(|| format!("cannot move {} to {}", file.path.display(), dest.display()))?;
            if broken {
                let reasons: Vec<String> = landed.problems.iter().filter(|p| p.file == name).map(|p| p.to_string()).collect();
                let mut reason = dest.into_os_string();
                reason.push(".reason");
                std::fs::write(&reason, reasons.join("\n") + "\n")?;
                tracing::warn!("{name} could not be read to its end: moved to {}", target.display());
            }
        }
        Ok(())
    }
}

/// Files and bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Amount {
    pub files: u64,
    pub bytes: u64,
}

impl Amount {
    pub fn add(&mut self, files: u64, bytes: u64) {
        self.files += files;
        self.bytes += bytes;
    }
}

/// What waits in an inbox: webhook deliveries and pixel batches apart (each has
/// its own quota under `serve`, so a pixel flood never crowds out webhooks).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub webhooks: Amount,
    pub pixel: Amount,
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("cannot sync {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_reads_back_exactly_from_its_inbox_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::new(dir.path());
        for topic in ["customers/data_request", "orders/partially_fulfilled", "custom_collections/update", "shop/redact", "products/update"] {
            let file = inbox.write_webhook(topic, "3f1c-9", b"{}").unwrap();
            assert_eq!(super::super::webhooks::topic_of(&file).as_deref(), Some(topic), "{}", file.display());
        }
        for bad in ["", "orders", "orders/", "/create", "Orders/create", "orders/create/x", "orders/cre.ate"] {
            assert!(inbox.write_webhook(bad, "1", b"{}").is_err(), "{bad:?}");
        }
        // A person's file names keep their underscore form.
        assert_eq!(super::super::webhooks::topic_of(Path::new("orders_create-1.json")).as_deref(), Some("orders/create"));
    }
}
