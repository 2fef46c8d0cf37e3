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

#[test]
fn the_history_cache_serves_ended_records_and_rereads_running_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::open(dir.path().to_str().unwrap()).unwrap();
    let cache = dir.path().join("h/runs/_cache.parquet");
    let first = history::Recorder::start(&root, "h", "run").unwrap();
    let seen = history::load_last(&root, "h", 10).unwrap();
    assert_eq!(seen.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>(), ["running"]);
    assert!(cache.exists(), "the records read are cached");
    first.end(None, Some(&serde_json::json!({"rows": 1}))).unwrap();
    // The cached record said `running`: it is read again, and now it has ended.
    let seen = history::load_last(&root, "h", 10).unwrap();
    assert_eq!(seen.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>(), ["ok"]);
    assert_eq!(seen[0].report.as_deref(), Some("{\"rows\":1}"));
    std::thread::sleep(Duration::from_millis(5));
    history::Recorder::start(&root, "h", "compute").unwrap().end::<()>(Some("boom".into()), None).unwrap();

    // Served from the cache, or from the files alone: the same records.
    let cached = history::load_last(&root, "h", 10).unwrap();
    std::fs::remove_file(&cache).unwrap();
    let from_files = history::load_last(&root, "h", 10).unwrap();
    assert_eq!(cached, from_files);
    assert_eq!(cached.iter().map(|r| (r.command.as_str(), r.outcome.as_str())).collect::<Vec<_>>(), [("run", "ok"), ("compute", "failed")]);
    assert_eq!(history::load_last(&root, "h", 1).unwrap(), from_files[1..]);
    // A cache that cannot be read is read around (and written anew).
    std::fs::write(&cache, b"not parquet").unwrap();
    assert_eq!(history::load_last(&root, "h", 10).unwrap(), from_files);
    // An ended record is taken from the cache: a changed file behind it is not read.
    std::fs::write(&cache, b"not parquet").unwrap();
    history::load_last(&root, "h", 10).unwrap();
    let run_file = std::fs::read_dir(dir.path().join("h/runs")).unwrap().flatten().map(|e| e.path()).filter(|p| !p.ends_with("_cache.parquet")).min().unwrap();
    std::fs::write(&run_file, b"unreadable now").unwrap();
    assert_eq!(history::load_last(&root, "h", 10).unwrap(), from_files, "served from the cache");
}

/// The run history keeps the newest records; the oldest go (with compaction),
/// and a reader whose cache or listing still names them reads around them.
#[test]
fn the_run_history_is_trimmed_to_its_newest_records() {
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::open(dir.path().to_str().unwrap()).unwrap();
    for i in 0..5 {
        history::Recorder::start(&root, "h", &format!("run {i}")).unwrap().end::<()>(None, None).unwrap();
    }
    // The cache knows all five before the trim.
    assert_eq!(history::load_last(&root, "h", 100).unwrap().len(), 5);
    assert_eq!(history::prune_to(&root, "h", 3).unwrap(), 2);
    let commands: Vec<String> = history::load_last(&root, "h", 100).unwrap().into_iter().map(|r| r.command).collect();
    assert_eq!(commands, ["run 2", "run 3", "run 4"]);
    assert_eq!(history::prune_to(&root, "h", 3).unwrap(), 0);
}
