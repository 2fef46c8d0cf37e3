//! Sending a planned export: batches upserted a few requests at a time, then
//! deletions, each acknowledgement recorded and saved every few seconds.

use super::checkpoint::Delivered;
use super::mapping::Source;
use super::plan::{batches, Plan};
use super::{client, Options, Report};
use crate::progress::Progress;
use crate::storage::DataRoot;
use anyhow::Result;
use futures::StreamExt;
use std::time::{Duration, Instant};

/// Sends planned batches and deletions, records what Gorse acknowledged, and saves
/// it every `checkpoint_every`.
pub(super) struct Sender<'a> {
    options: &'a Options,
    client: client::Client,
    runtime: tokio::runtime::Runtime,
    pub progress: Progress,
    checkpoints: Checkpoints<'a>,
}

/// Saves the acknowledged rows at most every `every`.
struct Checkpoints<'a> {
    root: &'a DataRoot,
    rows_file: &'a str,
    every: Duration,
    last_save: Instant,
}

impl Checkpoints<'_> {
    fn maybe_save(&mut self, delivered: &mut Delivered) -> Result<()> {
        if self.last_save.elapsed() >= self.every {
            delivered.save(self.root, self.rows_file)?;
            self.last_save = Instant::now();
        }
        Ok(())
    }
}

impl<'a> Sender<'a> {
    pub fn new(root: &'a DataRoot, rows_file: &'a str, options: &'a Options, plans: &[Plan]) -> Result<Sender<'a>> {
        let total = plans.iter().map(|p| (p.changed.len() + p.removed.len()) as u64).sum();
        Ok(Sender {
            options,
            client: client::Client::new(&options.url, options.key.clone(), options.timeout, options.retry.clone())?,
            runtime: tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?,
            progress: Progress::new(total, "gorse export", false),
            checkpoints: Checkpoints { root, rows_file, every: options.checkpoint_every, last_save: Instant::now() },
        })
    }

    /// Upserts first (items, users, then feedback, so feedback never creates a bare
    /// item or user), then deletions in the reverse order.
    pub fn send_all(&mut self, sources: &[Source], plans: &[Plan], delivered: &mut Delivered, report: &mut Report) -> Result<()> {
        for (source, plan) in sources.iter().zip(plans) {
            self.upsert(source, plan, delivered, report)?;
        }
        for plan in plans.iter().rev() {
            self.delete(plan, delivered, report)?;
        }
        Ok(())
    }

    fn upsert(&mut self, source: &Source, plan: &Plan, delivered: &mut Delivered, report: &mut Report) -> Result<()> {
        let (method, endpoint) = source.kind.upsert();
        let client = &self.client;
        let mut in_flight = futures::stream::iter(batches(source, plan, self.options.batch_size))
            .map(|batch| async move {
                let batch = batch?;
                let sent = client.send(method, endpoint, Some(batch.body)).await?;
                anyhow::Ok((batch.rows, sent.retries))
            })
            .buffer_unordered(self.options.in_flight.max(1));
        while let Some(done) = self.runtime.block_on(in_flight.next()) {
            let (rows, retries) = done?;
            report.requests += 1;
            report.retries += u64::from(retries);
            report.upserted[source.kind.index()] += rows.len() as u64;
            self.progress.inc(rows.len() as u64);
            for (id, hash) in &rows {
                delivered.record(source.kind, id, *hash);
            }
            self.checkpoints.maybe_save(delivered)?;
        }
        Ok(())
    }

    fn delete(&mut self, plan: &Plan, delivered: &mut Delivered, report: &mut Report) -> Result<()> {
        let client = &self.client;
        let mut in_flight = futures::stream::iter(plan.removed.iter())
            .map(|id| async move { client.send("DELETE", &plan.kind.delete_path(id), None).await.map(|sent| (id, sent.retries)) })
            .buffer_unordered(self.options.in_flight.max(1));
        while let Some(done) = self.runtime.block_on(in_flight.next()) {
            let (id, retries) = done?;
            report.requests += 1;
            report.retries += u64::from(retries);
            report.deleted[plan.kind.index()] += 1;
            self.progress.inc(1);
            delivered.forget(plan.kind, id);
            self.checkpoints.maybe_save(delivered)?;
        }
        Ok(())
    }
}
