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

use crate::storage::DataRoot;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Generations kept by default: the current one and the two before it.
pub const KEEP: usize = 3;

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
}

/// A generation being written under `base`.
pub struct Generation {
    base: String,
    pub id: String,
}

impl Generation {
    /// A new generation of `base`; ids sort by the time they were started.
    pub fn new(base: &str) -> Generation {
        Generation { base: base.to_string(), id: crate::land::new_snapshot_id(chrono::Utc::now()) }
    }

    /// Where `file` of this generation goes.
    pub fn path(&self, file: &str) -> String {
        format!("{}/{}/{file}", self.base, self.id)
    }

    /// Makes this generation current (its files must all be committed), then
    /// removes every generation but the current one and the `keep - 1` that were
    /// current before it — so the directories of interrupted runs, never current,
    /// go too.
    pub fn make_current(&self, root: &DataRoot, files: &[String], as_of: Option<String>, keep: usize) -> Result<Pointer> {
        let mut previous: Vec<String> = match current(root, &self.base)? {
            Some(old) => std::iter::once(old.generation).chain(old.previous).collect(),
            None => vec![],
        };
        previous.truncate(keep.saturating_sub(1));
        let pointer = Pointer { generation: self.id.clone(), published_at: crate::time::now_rfc3339(), as_of, files: files.to_vec(), previous };
        root.put(&pointer_path(&self.base), &serde_json::to_vec_pretty(&pointer)?)?;
        prune(root, &self.base, &pointer)?;
        Ok(pointer)
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
/// keeps as previous.
fn prune(root: &DataRoot, base: &str, pointer: &Pointer) -> Result<()> {
    for generation in root.subdirs(base)? {
        if generation != pointer.generation && !pointer.previous.contains(&generation) {
            tracing::debug!("removing generation {base}/{generation}");
            root.delete_dir(&format!("{base}/{generation}"))?;
        }
    }
    Ok(())
}
