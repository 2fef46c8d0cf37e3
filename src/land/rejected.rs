//! The records a landing could not land, kept whole: `<shop>/raw/_rejected/<snapshot>.parquet`
//! (`file, line, entity, reason, record`), so that a later version, or a person,
//! can land them without fetching them again. Normalization never reads it.

use crate::storage::{DataRoot, StagedFile};
use anyhow::Result;
use polars::prelude::*;

type ParquetBatches = polars::io::parquet::write::BatchedWriter<std::fs::File>;

#[derive(Default)]
pub(super) struct Rejected {
    file: Vec<String>,
    line: Vec<i64>,
    entity: Vec<String>,
    reason: Vec<String>,
    record: Vec<String>,
    record_bytes: usize,
    writer: Option<(StagedFile, ParquetBatches)>,
}

pub fn rejected_path(shop: &str, snapshot: &str) -> String {
    format!("{}/_rejected/{snapshot}.parquet", super::raw_dir(shop))
}

impl Rejected {
    pub(super) fn push(&mut self, file: &str, line: u64, entity: &str, reason: &str, record: String) {
        self.file.push(file.to_string());
        self.line.push(line as i64);
        self.entity.push(entity.to_string());
        self.reason.push(reason.to_string());
        self.record_bytes += record.len();
        self.record.push(record);
    }

    pub(super) fn len(&self) -> usize {
        self.record.len()
    }

    pub(super) fn bytes(&self) -> usize {
        self.record_bytes
    }

    /// Writes the buffered records as a row group of the staged file.
    pub(super) fn flush(&mut self, root: &DataRoot, shop: &str, snapshot: &str) -> Result<()> {
        if self.record.is_empty() {
            return Ok(());
        }
        self.record_bytes = 0;
        let frame = DataFrame::new_infer_height(vec![
            Column::new("file".into(), std::mem::take(&mut self.file)),
            Column::new("line".into(), std::mem::take(&mut self.line)),
            Column::new("entity".into(), std::mem::take(&mut self.entity)),
            Column::new("reason".into(), std::mem::take(&mut self.reason)),
            Column::new("record".into(), std::mem::take(&mut self.record)),
        ])?;
        if self.writer.is_none() {
            let mut staged = root.stage(&rejected_path(shop, snapshot))?;
            let file = staged.writer().try_clone()?;
            let writer = ParquetWriter::new(file).with_compression(ParquetCompression::Zstd(None)).batched(frame.schema())?;
            self.writer = Some((staged, writer));
        }
        let (_, writer) = self.writer.as_mut().expect("writer just made");
        writer.write_batch(&frame).map_err(|e| anyhow::anyhow!("cannot write the rejected records: {e}"))?;
        Ok(())
    }

    /// Commits the file (before the snapshot's manifest names it); its path, when
    /// anything was rejected.
    pub(super) fn finish(mut self, root: &DataRoot, shop: &str, snapshot: &str) -> Result<Option<String>> {
        self.flush(root, shop, snapshot)?;
        let Some((staged, writer)) = self.writer.take() else { return Ok(None) };
        writer.finish()?;
        root.commit(staged)?;
        Ok(Some(rejected_path(shop, snapshot)))
    }
}
