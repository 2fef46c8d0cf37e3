//! The data root through object_store: the same ingest and normalization on a
//! non-local store, and staged writes that stay invisible until committed.

use crate::common::*;
use shopfeat::land;
use shopfeat::normalize::{self, RawTables};
use shopfeat::storage::DataRoot;
use std::io::Write;

#[test]
fn an_object_store_root_lands_and_normalizes_like_a_local_one() {
    let root = DataRoot::open("memory:///shops-land").unwrap();
    assert!(root.local_dir().is_none());
    let files = land::collect_inputs(&[fixture("shop")]).unwrap();
    let report = land::land(&root, "remote", &files, &shopfeat::progress::Progress::hidden()).unwrap();
    assert!(report.problems.is_empty());
    assert_eq!(land::snapshots(&root, "remote").unwrap().len(), 1);
    let raw = RawTables::open(&root, "remote").unwrap();
    let main = normalize::normalize(&raw, None).unwrap();
    let frames = normalize::collect_all(vec![main.products, main.events]).unwrap();
    assert_eq!(frames[0].height(), 4);
    assert_eq!(frames[1].height(), 11);
}

#[test]
fn a_staged_file_is_invisible_until_committed() {
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::open(dir.path().to_str().unwrap()).unwrap();
    let mut staged = root.stage("shop/main/t.parquet").unwrap();
    staged.writer().write_all(b"half").unwrap();
    assert_eq!(root.list("shop/main").unwrap(), Vec::<String>::new());
    assert_eq!(root.get("shop/main/t.parquet").unwrap(), None);
    root.commit(staged).unwrap();
    assert_eq!(root.list("shop/main").unwrap(), vec!["t.parquet"]);
    assert_eq!(root.get("shop/main/t.parquet").unwrap().as_deref(), Some(&b"half"[..]));
}

#[test]
fn a_dropped_staged_file_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::open(dir.path().to_str().unwrap()).unwrap();
    {
        let mut staged = root.stage("shop/raw/x.parquet").unwrap();
        staged.writer().write_all(b"partial").unwrap();
    }
    assert_eq!(std::fs::read_dir(dir.path().join("shop/raw")).unwrap().count(), 0);
}

#[test]
fn file_urls_are_local_roots() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let root = DataRoot::open(&url).unwrap();
    assert_eq!(root.local_dir(), Some(dir.path()));
}

#[test]
fn features_are_computed_and_written_through_an_object_store_root() {
    let root = DataRoot::open("memory:///shops-compute").unwrap();
    let files = land::collect_inputs(&[fixture("features")]).unwrap();
    land::land(&root, "remote", &files, &shopfeat::progress::Progress::hidden()).unwrap();
    let computed = crate::common::compute(&root, "remote", crate::common::ts("2025-03-01"), Default::default()).unwrap();
    assert_eq!(computed.tables[0].1.height(), 3);
    let generation = computed.report.generation.clone().unwrap();
    let names = root.list(&format!("remote/features/{generation}")).unwrap();
    assert_eq!(names.len(), computed.tables.len() + 1, "the tables and their database: {names:?}");
    let parquet = root.get(&shopfeat::sinks::parquet::current_table_path(&root, "remote", "product_features").unwrap()).unwrap().unwrap();
    assert_eq!(&parquet[..4], b"PAR1");
    assert!(root.get("remote/features.duckdb").unwrap().is_some_and(|db| db.len() > 4096));
}
