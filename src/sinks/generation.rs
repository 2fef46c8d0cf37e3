//! Generations: the outputs of one run, written under their own directory and
//! made current by one small pointer written last, so readers see a run's tables
//! whole or not at all — never a mix of two runs.
//!
//! ```text
//! <base>/<generation>/<file>     one run's files (base: <shop>/features, <shop>/main)
//! <base>/CURRENT                 {"generation": "…", …}: which one is current
//! ```
//!
//! Writing a generation: stage and commit its files (invisible to readers, who
//! only follow `CURRENT`), then [`Generation::make_current`] puts `CURRENT` in one
//! step (a rename locally, a single put on an object store) and removes the
//! generations beyond the ones kept. A run killed at any point leaves `CURRENT`
//! naming the previous generation, complete; its partial directory, never made
//! current, is removed by the next run's pruning.
//!
//! Under `serve` a generation may be replaced every few seconds, so generations
//! are kept by age as well as by count: one that was current within
//! [`KEEP_CURRENT_WITHIN`] stays, so an analyst's query, `status` or `report`
//! reading it is not cut off (and readers that follow `CURRENT` read again once
//! when the generation vanished under them: [`retry_if_moved`]).
//!
//! Publishing is fenced ([`crate::lock::ensure_held`]): a run that may have lost
//! its shop's lock writes no `CURRENT`; on an object store `CURRENT` is written
//! only if it is still the version the run read when it started its generation,
//! and pruning never removes a generation started after the one it publishes.

use crate::storage::DataRoot;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Generations kept by default: the current one and the two before it.
pub const KEEP: usize = 3;

/// … and every generation that was current this recently, whatever their count.
pub const KEEP_CURRENT_WITHIN: Duration = Duration::from_secs(600);

/// What `CURRENT` says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pointer {
    pub generation: String,
    /// When it was made current.
    pub published_at: String,
    /// The point in time its tables are for, when they have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    /// The files of the generation.
    pub files: Vec<String>,
    /// The generations that were current before, newest first, kept on disk.
    #[serde(default)]
    pub previous: Vec<String>,
    /// When each generation of `previous` stopped being current (RFC 3339).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retired_at: BTreeMap<String, String>,
}

/// A generation being written under `base`.
pub struct Generation {
    base: String,
    pub id: String,
    /// The version of `CURRENT` when this generation was started (object
    /// stores): it is replaced only if nobody replaced it meanwhile.
    read: Option<Option<object_store::UpdateVersion>>,
}

impl Generation {
    /// A new generation of `base`; ids sort by the time they were started.
    pub fn new(root: &DataRoot, base: &str) -> Result<Generation> {
        let read = match root.local_dir() {
            Some(_) => None,
            None => Some(root.get_versioned(&pointer_path(base))?.map(|(_, version)| version)),
        };
        Ok(Generation { base: base.to_string(), id: crate::land::new_snapshot_id(chrono::Utc::now()), read })
    }

    /// The shop whose generation this is (`base` is `<shop>/…`).
    fn shop(&self) -> &str {
        self.base.split('/').next().unwrap_or(&self.base)
    }

    /// Where `file` of this generation goes.
    pub fn path(&self, file: &str) -> String {
        format!("{}/{}/{file}", self.base, self.id)
    }

    /// Removes this generation's directory when nothing was committed into it:
    /// a run that failed while its files were being staged leaves no empty
    /// directory behind (object stores have none to remove).
    pub fn abandon(&self, root: &DataRoot) {
        if let Some(dir) = root.local_dir() {
            // Fails, harmlessly, when the directory is not empty or not there.
            let _ = std::fs::remove_dir(dir.join(&self.base).join(&self.id));
        }
    }

    /// Makes this generation current (its files must all be committed), then
    /// removes every older generation but the `keep - 1` that were current before
    /// it and those current within [`KEEP_CURRENT_WITHIN`] — so the directories of
    /// interrupted runs, never current, go too.
    ///
    /// Fails, writing nothing, when this run may no longer hold the shop's lock
    /// or (object stores) `CURRENT` changed since this generation was started.
    pub fn make_current(&self, root: &DataRoot, files: &[String], as_of: Option<String>, keep: usize) -> Result<Pointer> {
        crate::failpoint::hit("publish")?;
        crate::lock::ensure_held(root, self.shop())?;
        let (previous, retired_at) = retire(current(root, &self.base)?, keep, chrono::Utc::now());
        let pointer = Pointer { generation: self.id.clone(), published_at: crate::time::now_rfc3339(), as_of, files: files.to_vec(), previous, retired_at };
        let bytes = serde_json::to_vec_pretty(&pointer)?;
        match &self.read {
            None => root.put(&pointer_path(&self.base), &bytes)?,
            Some(version) => {
                if root.put_if(&pointer_path(&self.base), &bytes, version.as_ref())?.is_none() {
                    bail!("{}/{}: another run published while this one ran (it was started as generation {}); not replaced", root.describe(), pointer_path(&self.base), self.id);
                }
            }
        }
        prune(root, &self.base, &pointer)?;
        Ok(pointer)
    }
}

/// What a new pointer keeps of the one it replaces (`previous`, `retired_at`):
/// the `keep - 1` generations current most recently, and every generation that
/// stopped being current less than [`KEEP_CURRENT_WITHIN`] before `now`.
fn retire(old: Option<Pointer>, keep: usize, now: chrono::DateTime<chrono::Utc>) -> (Vec<String>, BTreeMap<String, String>) {
    let Some(old) = old else { return Default::default() };
    let mut retired_at = old.retired_at;
    retired_at.insert(old.generation.clone(), now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let recent = |generation: &str| {
        retired_at.get(generation).and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).is_some_and(|t| (now - t.with_timezone(&chrono::Utc)).to_std().unwrap_or_default() < KEEP_CURRENT_WITHIN)
    };
    let previous: Vec<String> = std::iter::once(old.generation).chain(old.previous).enumerate().filter(|(i, g)| *i + 1 < keep || recent(g)).map(|(_, g)| g).collect();
    retired_at.retain(|g, _| previous.contains(g));
    (previous, retired_at)
}

/// Forgets every generation of `base` but the current one and removes them
/// now, retention window or not: what an erasure needs (older generations hold
/// the erased person's rows). How many it removed.
pub fn drop_previous(root: &DataRoot, base: &str) -> Result<usize> {
    let Some(mut pointer) = current(root, base)? else { return Ok(0) };
    crate::lock::ensure_held(root, base.split('/').next().unwrap_or(base))?;
    pointer.previous.clear();
    pointer.retired_at.clear();
    root.put(&pointer_path(base), &serde_json::to_vec_pretty(&pointer)?)?;
    let before = root.subdirs(base)?.len();
    prune(root, base, &pointer)?;
    Ok(before - root.subdirs(base)?.len())
}

/// Runs `read` (something that follows `CURRENT` of `base`); when it fails and
/// `CURRENT` moved on meanwhile — a newer run published and pruned the
/// generation being read — runs it once more, against the new one.
pub fn retry_if_moved<T>(root: &DataRoot, base: &str, mut read: impl FnMut() -> Result<T>) -> Result<T> {
    let before = current(root, base).ok().flatten().map(|p| p.generation);
    match read() {
        Ok(value) => Ok(value),
        Err(e) => {
            let after = current(root, base).ok().flatten().map(|p| p.generation);
            if after == before {
                return Err(e);
            }
            tracing::info!("{base}: generation {} was replaced while being read ({e:#}); reading {} instead", before.unwrap_or_default(), after.unwrap_or_default());
            read()
        }
    }
}

fn pointer_path(base: &str) -> String {
    format!("{base}/CURRENT")
}

/// The current generation of `base`, when one was published.
pub fn current(root: &DataRoot, base: &str) -> Result<Option<Pointer>> {
    match root.get(&pointer_path(base))? {
        None => Ok(None),
        Some(bytes) => {
            let pointer: Pointer = serde_json::from_slice(&bytes).with_context(|| format!("{}/{} is not a generation pointer", root.describe(), pointer_path(base)))?;
            crate::storage::shop_id(&pointer.generation).map_err(|e| anyhow::anyhow!("{}/{}: {e}", root.describe(), pointer_path(base)))?;
            Ok(Some(pointer))
        }
    }
}

/// Where `file` of the current generation of `base` is: `<base>/<current>/<file>`,
/// or `<base>/<file>` for outputs written before generations existed.
pub fn current_path(root: &DataRoot, base: &str, file: &str) -> Result<String> {
    Ok(match current(root, base)? {
        Some(p) => format!("{base}/{}/{file}", p.generation),
        None => format!("{base}/{file}"),
    })
}

/// Removes the generations of `base` that `pointer` neither names as current nor
/// keeps as previous, and that were started before it (a later one is another
/// run's, being written).
fn prune(root: &DataRoot, base: &str, pointer: &Pointer) -> Result<()> {
    for generation in root.subdirs(base)? {
        if generation < pointer.generation && !pointer.previous.contains(&generation) {
            tracing::debug!("removing generation {base}/{generation}");
            root.delete_dir(&format!("{base}/{generation}"))?;
        }
    }
    Ok(())
}
