//! Run history: every run/compute/fetch/export leaves one record, written when it
//! starts and replaced whole when it ends — ok with its report, failed with its
//! error, or, when killed, still `running` and read as `killed` once its process
//! is gone; analysts query it as `run_history` in features.duckdb.

use shopfeat::history;
use shopfeat::storage::DataRoot;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn shopfeat(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shopfeat"));
    c.current_dir(env!("CARGO_MANIFEST_DIR")).args(["--root", root.to_str().unwrap(), "--shop", "h", "-q"]).args(args).env_remove("RUST_LOG").env_remove("GORSE_URL");
    c
}

#[test]
fn every_run_leaves_a_record_ok_failed_or_killed() {
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::open(dir.path().to_str().unwrap()).unwrap();
    assert!(shopfeat(dir.path(), &["run"]).stdout(Stdio::null()).status().unwrap().success());
    let records = history::load(&root, "h").unwrap();
    assert_eq!(records.len(), 1);
    let run = &records[0];
    assert_eq!((run.command.as_str(), run.outcome.as_str(), run.error.as_deref()), ("run", "ok", None));
    let report: serde_json::Value = serde_json::from_str(run.report.as_deref().unwrap()).unwrap();
    assert_eq!(report["compute"]["tables"][0]["rows"], 350);
    assert!(report["compute"]["stages"].as_array().unwrap().iter().all(|s| s["seconds"].is_number() && s["peak_rss_bytes"].is_number()));
    assert!(report["compute"]["generation"].is_string());
    assert!(run.seconds.unwrap() > 0.0 && run.ended_at.is_some());

    // A compute that fails: the record says why.
    let orders = dir.path().join("h/raw/orders");
    let file = std::fs::read_dir(&orders).unwrap().next().unwrap().unwrap().path();
    let good = std::fs::read(&file).unwrap();
    std::fs::write(&file, b"PAR1 not parquet").unwrap();
    assert_eq!(shopfeat(dir.path(), &["compute"]).stderr(Stdio::null()).status().unwrap().code(), Some(1));
    let failed = history::load(&root, "h").unwrap().pop().unwrap();
    assert_eq!((failed.command.as_str(), failed.outcome.as_str()), ("compute", "failed"));
    assert!(failed.error.as_deref().unwrap().contains("parquet"), "{:?}", failed.error);
    std::fs::write(&file, good).unwrap();

    // A compute killed mid-run keeps its `running` record, read as killed.
    let mut child = shopfeat(dir.path(), &["compute", "--as-of", "2025-11-30T23:59:59Z"]).stderr(Stdio::null()).spawn().unwrap();
    let started = std::time::Instant::now();
    while history::load(&root, "h").unwrap().len() < 3 {
        assert!(started.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = history::load(&root, "h").unwrap().pop().unwrap();
    assert_eq!((killed.outcome.as_str(), killed.outcome_now()), ("running", "killed"), "killed right after it started");

    // The next run publishes the history into the analysts' database.
    assert!(shopfeat(dir.path(), &["compute", "--as-of", "2025-11-30T23:59:59Z"]).status().unwrap().success());
    let db = duckdb::Connection::open(dir.path().join("h/features.duckdb")).unwrap();
    let outcomes: Vec<(String, String)> = db.prepare("SELECT command, outcome FROM run_history ORDER BY run_id").unwrap().query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    assert_eq!(outcomes[..2], [("run".to_string(), "ok".to_string()), ("compute".to_string(), "failed".to_string())]);
    assert_eq!(outcomes[2], ("compute".to_string(), "killed".to_string()));
    assert_eq!(outcomes[3], ("compute".to_string(), "running".to_string()), "the publishing run itself, still running then");
}
