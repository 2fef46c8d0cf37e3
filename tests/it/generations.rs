//! A run's outputs are one generation, made current by one pointer written last:
//! readers (the Gorse export, the stable DuckDB path) see one run's tables whole,
//! older generations are kept up to a count, and what interrupted runs left is
//! removed by the next one.

use crate::common::*;
use polars::prelude::{ParquetReader, SerReader};
use shopfeat::pipeline::{self, ComputeOptions};
use shopfeat::sinks::generation;
use std::path::Path;

fn generations(dir: &Path) -> Vec<String> {
    let mut g: Vec<String> = std::fs::read_dir(dir.join("test/features")).unwrap().flatten().filter(|e| e.path().is_dir()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    g.sort();
    g
}

#[test]
fn each_run_is_a_generation_made_current_last_and_old_ones_are_pruned() {
    let landed = land(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")]);
    let dir = landed.root.local_dir().unwrap().to_path_buf();
    let mut published = vec![];
    for day in ["2025-11-27", "2025-11-28", "2025-11-29", "2025-11-30"] {
        let options = ComputeOptions { keep_generations: 2, ..ComputeOptions::at(ts(day)) };
        let computed = pipeline::compute_and_publish(&landed.root, "test", &options).unwrap();
        published.push(computed.generation.clone().unwrap());
        let current = generation::current(&landed.root, "test/features").unwrap().unwrap();
        assert_eq!(current.generation, *published.last().unwrap());
        assert_eq!(current.as_of.as_deref(), Some(format!("{day}T00:00:00Z").as_str()));
        // The generation's database and Parquet agree, and the stable path is its copy.
        let gen_dir = dir.join("test/features").join(&current.generation);
        assert_eq!(std::fs::read(gen_dir.join("features.duckdb")).unwrap(), std::fs::read(dir.join("test/features.duckdb")).unwrap());
        let db = duckdb::Connection::open(gen_dir.join("features.duckdb")).unwrap();
        for table in &computed.tables {
            let name = table.table;
            let rows: i64 = db.query_row(&format!("SELECT count(*) FROM {name}"), [], |r| r.get(0)).unwrap();
            assert_eq!(rows as usize, table.rows, "{name}");
            let file = ParquetReader::new(std::fs::File::open(gen_dir.join(format!("{name}.parquet"))).unwrap()).finish().unwrap();
            assert_eq!(file.height(), table.rows, "{name}");
        }
    }
    // Every one of them was current within the last ten minutes: an analyst may
    // still be reading it, so none went yet.
    assert_eq!(generations(&dir), published, "generations current within ten minutes are kept");
    let current = generation::current(&landed.root, "test/features").unwrap().unwrap();
    assert_eq!(current.previous, published[..3].iter().rev().cloned().collect::<Vec<_>>(), "newest first");
    assert_eq!(current.retired_at.len(), 3);

    // An hour later they are old: the next run keeps the current one and one before it.
    let mut aged = current.clone();
    for t in aged.retired_at.values_mut() {
        *t = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    }
    std::fs::write(dir.join("test/features/CURRENT"), serde_json::to_vec(&aged).unwrap()).unwrap();
    let options = ComputeOptions { keep_generations: 2, ..ComputeOptions::at(ts("2025-12-01")) };
    let fifth = pipeline::compute_and_publish(&landed.root, "test", &options).unwrap().generation.unwrap();
    assert_eq!(generations(&dir), vec![published[3].clone(), fifth], "the current one and one before it are kept");
}

#[test]
fn an_interrupted_run_leaves_the_previous_generation_current_and_its_litter_goes_next_time() {
    let landed = land(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")]);
    let dir = landed.root.local_dir().unwrap().to_path_buf();
    let first = compute(&landed.root, "test", ts("2025-11-30T23:59:59Z"), Default::default()).unwrap().report.generation.unwrap();
    // A run killed after writing some files of its generation, and mid-write elsewhere.
    let orphan = dir.join("test/features/20200101T000000000000000-00000001");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("product_features.parquet"), b"half").unwrap();
    std::fs::create_dir_all(dir.join("test/.staging")).unwrap();
    std::fs::write(dir.join("test/.staging/.staging-abc123"), b"partial").unwrap();
    std::fs::write(dir.join("test/.staging/.staging-def456"), b"partial").unwrap();
    // Readers still see the complete generation.
    assert_eq!(shopfeat::sinks::parquet::current_table_path(&landed.root, "test", "product_features").unwrap(), format!("test/features/{first}/product_features.parquet"));
    // The next run (under the shop's lock) removes what the killed one left.
    let lock = shopfeat::lock::ShopLock::acquire(&landed.root, "test").unwrap();
    assert!(std::fs::read_dir(dir.join("test/.staging")).unwrap().next().is_none(), "staging litter removed once the lock is held");
    let second = compute(&landed.root, "test", ts("2025-11-30T23:59:59Z"), Default::default()).unwrap().report.generation.unwrap();
    drop(lock);
    assert_eq!(generations(&dir), vec![first, second], "the never-current directory is gone");
}

#[test]
fn a_reader_whose_generation_vanished_under_it_reads_the_new_one_once() {
    let landed = land(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")]);
    let dir = landed.root.local_dir().unwrap().to_path_buf();
    compute(&landed.root, "test", ts("2025-11-30T23:59:59Z"), Default::default()).unwrap();
    let mut calls = 0;
    let mut published = None;
    let read = generation::retry_if_moved(&landed.root, "test/features", || {
        calls += 1;
        let pointer = generation::current(&landed.root, "test/features")?.unwrap();
        if calls == 1 {
            // Meanwhile a newer run publishes, and the generation being read goes.
            published = compute(&landed.root, "test", ts("2025-11-30T23:59:59Z"), Default::default()).unwrap().report.generation;
            std::fs::remove_dir_all(dir.join("test/features").join(&pointer.generation)).unwrap();
        }
        let table = dir.join("test/features").join(&pointer.generation).join("product_features.parquet");
        std::fs::metadata(&table).map(|_| pointer.generation).map_err(anyhow::Error::from)
    })
    .unwrap();
    assert_eq!(calls, 2, "read again once");
    assert_eq!(Some(read), published, "the second read is of the new generation");

    // When CURRENT did not move, the failure is the reader's own: no second try.
    let mut calls = 0;
    let failed = generation::retry_if_moved(&landed.root, "test/features", || -> anyhow::Result<()> {
        calls += 1;
        anyhow::bail!("a broken reader")
    });
    assert!(failed.is_err());
    assert_eq!(calls, 1);
}
