//! The Parquet files of one snapshot, one per raw entity, written on a thread
//! of their own: a batch of rows is turned into columns, encoded and
//! compressed while the next lines are read and parsed. (Written in between,
//! one core did that work while the others waited: ingest used 1.2 of 2 cores.)

use super::raw::RawBuffer;
use crate::storage::{DataRoot, StagedFile};
use crate::vocabulary::RawEntity;
use anyhow::{anyhow, Result};
use polars::prelude::*;
use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

type ParquetBatches = polars::io::parquet::write::BatchedWriter<std::fs::File>;

/// Batches waiting for the writer: one, so that memory stays bounded (a batch
/// holds at most `FLUSH_BYTES` of record text) while parsing runs ahead.
const QUEUED_BATCHES: usize = 1;

/// The files being written; [`SnapshotFiles::finish`] hands them over staged.
pub(super) struct SnapshotFiles<'scope> {
    batches: SyncSender<Box<dyn RawBuffer + Send>>,
    writer: ScopedJoinHandle<'scope, Result<Vec<(RawEntity, StagedFile)>>>,
}

impl<'scope> SnapshotFiles<'scope> {
    /// Starts the writer of `<dir>/<entity>/<snapshot>.parquet` files.
    pub fn start<'env>(scope: &'scope Scope<'scope, 'env>, root: &'env DataRoot, dir: String, snapshot: String) -> Self {
        let (batches, received) = sync_channel(QUEUED_BATCHES);
        let writer = scope.spawn(move || write_batches(root, &dir, &snapshot, received));
        SnapshotFiles { batches, writer }
    }

    /// Queues a batch of rows. An error means the writer stopped: [`finish`]
    /// says why.
    ///
    /// [`finish`]: SnapshotFiles::finish
    pub fn write(&self, batch: Box<dyn RawBuffer + Send>) -> Result<()> {
        self.batches.send(batch).map_err(|_| anyhow!("the snapshot's writer stopped"))
    }

    /// Waits for every queued batch to be written and closes the files.
    pub fn finish(self) -> Result<Vec<(RawEntity, StagedFile)>> {
        drop(self.batches);
        self.writer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

fn write_batches(root: &DataRoot, dir: &str, snapshot: &str, batches: Receiver<Box<dyn RawBuffer + Send>>) -> Result<Vec<(RawEntity, StagedFile)>> {
    let mut files: HashMap<RawEntity, (StagedFile, ParquetBatches)> = HashMap::new();
    for mut batch in batches {
        let entity = batch.entity();
        let frame = batch.take_frame()?;
        if !files.contains_key(&entity) {
            let mut staged = root.stage(&format!("{dir}/{entity}/{snapshot}.parquet"))?;
            let file = staged.writer().try_clone()?;
            let writer = ParquetWriter::new(file).with_compression(ParquetCompression::Zstd(None)).batched(frame.schema())?;
            files.insert(entity, (staged, writer));
        }
        let (_, writer) = files.get_mut(&entity).expect("writer just inserted");
        writer.write_batch(&frame).map_err(|e| anyhow!("cannot write the {entity} snapshot: {e}"))?;
    }
    files
        .into_iter()
        .map(|(entity, (staged, writer))| {
            writer.finish().map_err(|e| anyhow!("cannot finish the {entity} snapshot: {e}"))?;
            Ok((entity, staged))
        })
        .collect()
}
