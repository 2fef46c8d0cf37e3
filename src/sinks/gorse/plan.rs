//! What an export sends: per kind, the rows whose hash Gorse does not have and the
//! ids it has that are gone; the batches they go in; a dry run's JSONL of them.

use super::checkpoint::Delivered;
use super::fingerprint::Fingerprint;
use super::mapping::{Kind, Source};
use super::{Options, Report};
use anyhow::{Context, Result};
use polars::prelude::PlHashSet;
use std::io::Write;

/// The rows of one source that Gorse does not have yet, and the ids it has that
/// are gone.
pub(super) struct Plan {
    pub kind: Kind,
    /// (candidate index, row hash)
    pub changed: Vec<(usize, u64)>,
    pub removed: Vec<String>,
    pub unchanged: u64,
}

/// What to send of a source of `kind` whose rows have `fingerprints`.
pub(super) fn plan(kind: Kind, fingerprints: Vec<Fingerprint>, delivered: &Delivered, full: bool) -> Plan {
    let mut plan = Plan { kind, changed: vec![], removed: vec![], unchanged: 0 };
    // Gorse's rows that are still here; when that is all of them, none is removed.
    let mut still_here = 0;
    for (i, key, hash) in &fingerprints {
        let had = delivered.hash(kind, key);
        still_here += usize::from(had.is_some());
        match had {
            Some(had) if had == *hash && !full => plan.unchanged += 1,
            _ => plan.changed.push((*i, *hash)),
        }
    }
    if still_here < delivered.count(kind) {
        let present: PlHashSet<&str> = fingerprints.iter().map(|(_, key, _)| key.as_str()).collect();
        plan.removed = delivered.ids(kind).into_iter().filter(|id| !present.contains(id.as_str())).collect();
    }
    plan
}

/// One request's worth of rows: the JSON array and the (id, hash) it delivers.
pub(super) struct Batch {
    pub body: bytes::Bytes,
    pub rows: Vec<(String, u64)>,
}

pub(super) fn batches<'a>(source: &'a Source, plan: &'a Plan, size: usize) -> impl Iterator<Item = Result<Batch>> + 'a {
    plan.changed.chunks(size.max(1)).map(move |chunk| {
        let mut body = Vec::with_capacity(chunk.len() * 256);
        let mut rows = Vec::with_capacity(chunk.len());
        body.push(b'[');
        for (n, (i, hash)) in chunk.iter().enumerate() {
            let (id, object) = source.object(*i)?.context("a planned row has no object")?;
            if n > 0 {
                body.push(b',');
            }
            serde_json::to_writer(&mut body, &object)?;
            rows.push((id, *hash));
        }
        body.push(b']');
        Ok(Batch { body: body.into(), rows })
    })
}

pub(super) fn write_dry_run(path: &std::path::Path, sources: &[Source], plans: &[Plan], options: &Options, report: &mut Report) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let mut out = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
    {
        let mut w = std::io::BufWriter::new(out.as_file_mut());
        for (source, plan) in sources.iter().zip(plans) {
            let (method, endpoint) = source.kind.upsert();
            for batch in batches(source, plan, options.batch_size) {
                let batch = batch?;
                // The body is already JSON: written as it would go on the wire.
                write!(w, "{{\"method\":\"{method}\",\"path\":\"{endpoint}\",\"body\":")?;
                w.write_all(&batch.body)?;
                w.write_all(b"}\n")?;
                report.requests += 1;
                report.upserted[source.kind.index()] += batch.rows.len() as u64;
            }
        }
        for plan in plans.iter().rev() {
            for id in &plan.removed {
                serde_json::to_writer(&mut w, &serde_json::json!({ "method": "DELETE", "path": plan.kind.delete_path(id) }))?;
                w.write_all(b"\n")?;
                report.requests += 1;
                report.deleted[plan.kind.index()] += 1;
            }
        }
        w.flush()?;
    }
    out.persist(path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
