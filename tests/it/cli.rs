//! The binary as a user meets it: help, exit codes, one-line errors.

use crate::common::fixture;
use std::process::{Command, Output};

fn shopfeat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shopfeat")).args(args).env_remove("RUST_LOG").output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_command_explains_itself() {
    let top = shopfeat(&["--help"]);
    assert!(top.status.success());
    let text = String::from_utf8_lossy(&top.stdout);
    for command in ["generate", "ingest", "normalize"] {
        assert!(text.contains(command), "{text}");
        let help = shopfeat(&[command, "--help"]);
        assert!(help.status.success(), "{command}");
        assert!(String::from_utf8_lossy(&help.stdout).len() > 200, "{command} --help is too thin");
    }
}

#[test]
fn a_missing_input_is_one_error_line_and_exit_1() {
    let out = shopfeat(&["ingest", "/no/such/dir"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: cannot read /no/such/dir"), "{err}");
}

#[test]
fn normalize_without_snapshots_says_what_to_do() {
    let root = tempfile::tempdir().unwrap();
    let out = shopfeat(&["--root", root.path().to_str().unwrap(), "normalize"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("run `shopfeat ingest` first"), "{}", stderr(&out));
}

#[test]
fn strict_ingest_fails_on_skipped_records_and_lenient_ingest_does_not() {
    let input = tempfile::tempdir().unwrap();
    std::fs::write(input.path().join("events.jsonl"), "{\"id\":\"e1\",\"name\":\"page_viewed\"\n").unwrap();
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_str().unwrap();
    let i = input.path().to_str().unwrap();
    let lenient = shopfeat(&["-q", "--root", r, "ingest", i]);
    assert_eq!(lenient.status.code(), Some(0), "{}", stderr(&lenient));
    assert!(String::from_utf8_lossy(&lenient.stdout).contains("events"), "summary lists the entity");
    let strict = shopfeat(&["-q", "--root", r, "ingest", "--strict", i]);
    assert_eq!(strict.status.code(), Some(2));
    assert!(stderr(&strict).contains("1 records skipped"), "{}", stderr(&strict));
}

#[test]
fn ingest_then_normalize_writes_the_main_tables() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_str().unwrap();
    let shop = fixture("shop");
    assert!(shopfeat(&["-q", "--root", r, "--shop", "s1", "ingest", shop.to_str().unwrap()]).status.success());
    let out = shopfeat(&["-q", "--root", r, "--shop", "s1", "normalize", "--as-of", "2025-02-15"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for table in ["products", "variants", "product_media", "collections", "collection_products", "customers", "orders", "line_items", "refund_line_items", "events"] {
        let current = shopfeat::sinks::generation::current_path(&shopfeat::storage::DataRoot::open(r).unwrap(), "s1/main", &format!("{table}.parquet")).unwrap();
        assert!(current.starts_with("s1/main/") && current.matches('/').count() == 3, "{current}");
        assert!(root.path().join(current).is_file(), "{table}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["products", "3"]), "{stdout}");
}

#[test]
fn the_catalog_prints_as_json_from_the_registry() {
    let out = shopfeat(&["features", "--json"]);
    assert!(out.status.success());
    let catalog: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let product = &catalog[0];
    assert_eq!(product["table"], "product_features");
    assert_eq!(product["key"], serde_json::json!(["product_id"]));
    let columns = product["columns"].as_array().unwrap();
    assert_eq!(columns.len(), shopfeat::features::product::table().features.len());
    assert!(columns.iter().any(|c| c["name"] == "trending_score" && c["type"] == "f64"));
}

#[test]
fn run_lands_the_sample_once_and_computes_every_table() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_str().unwrap();
    let first = shopfeat(&["-q", "--root", r, "run"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let summary = String::from_utf8_lossy(&first.stdout).into_owned();
    for line in ["product_features 350 350", "user_features 381 381", "collection_features 6 6"] {
        assert!(summary.lines().any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == line), "{line} in\n{summary}");
    }
    assert!(summary.contains("at 2025-11-30T23:59:59Z"), "the sample's clock: {summary}");
    assert!(root.path().join("sample/features.duckdb").is_file());
    let second = shopfeat(&["-q", "--root", r, "run"]);
    assert!(String::from_utf8_lossy(&second.stdout).contains("already landed"));
    let snapshots = std::fs::read_dir(root.path().join("sample/raw/_snapshots")).unwrap().count();
    assert_eq!(snapshots, 1, "the same inputs are landed once");
    // The repeat is told while landing (the fingerprint is hashed beside it):
    // what the second run had written is gone, committed nowhere.
    let files = |dir: &str| -> Vec<String> {
        let mut found = vec![];
        let mut todo = vec![root.path().join(dir)];
        while let Some(d) = todo.pop() {
            for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if entry.path().is_dir() { todo.push(entry.path()) } else { found.push(entry.path().display().to_string()) }
            }
        }
        found
    };
    let raw = files("sample/raw");
    assert_eq!(raw.len(), 1 + 10, "one manifest and the ten raw tables' files: {raw:?}");
    assert!(files("sample/.staging").is_empty(), "nothing left staged: {:?}", files("sample/.staging"));
}

#[test]
fn the_readme_catalog_is_what_shopfeat_features_prints() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("<!-- catalog:start -->\n").unwrap() + "<!-- catalog:start -->\n".len();
    let end = readme.find("<!-- catalog:end -->").unwrap();
    let printed = String::from_utf8(shopfeat(&["features"]).stdout).unwrap();
    assert_eq!(readme[start..end].trim_end(), printed.trim_end(), "refresh the README: shopfeat features");
}

#[test]
fn one_plan_reads_the_raw_data_for_all_feature_tables() {
    let landed = crate::common::land(&[fixture("features")]);
    let plan = shopfeat::pipeline::explain(&landed.root, "test", crate::common::ts("2025-03-01T00:00:00Z")).unwrap();
    let mut scans: Vec<&str> = plan
        .lines()
        .filter_map(|l| l.split("Parquet SCAN [").nth(1))
        .map(|path| path.split("/raw/").nth(1).unwrap().split('/').next().unwrap())
        .collect();
    scans.sort();
    // Events twice: their rows, and the landing columns of the few that link a
    // browser to a customer (a filtered scan; the long strings are read later,
    // for the sessions' first and last events only).
    let mut entities: Vec<&str> = shopfeat::vocabulary::RawEntity::ALL.iter().map(|e| e.name()).chain(["events"]).collect();
    entities.sort();
    assert_eq!(scans, entities, "{plan}");
    // …and the feature tables read only those in-memory results: no plan of theirs
    // scans a file.
    let as_of = crate::common::ts("2025-03-01T00:00:00Z");
    let main = shopfeat::pipeline::normalize(&landed.root, "test", Some(as_of)).unwrap().for_features().materialize().unwrap();
    let inputs = shopfeat::features::Inputs::new(main, "test", as_of, Default::default()).unwrap();
    let plans = shopfeat::features::plans(&inputs).unwrap();
    assert_eq!(plans.len(), 10);
    for (name, plan) in plans {
        let text = plan.explain(true).unwrap();
        assert!(!text.contains("SCAN") || !text.contains(".parquet"), "{name} reads files:\n{text}");
        assert!(text.contains("DF ["), "{name} reads in-memory frames:\n{text}");
    }
}

#[test]
fn a_failed_compute_leaves_the_previous_outputs_intact() {
    // A raw snapshot damaged on disk: the next compute fails while reading.
    a_failed_compute_changes_nothing(&[], |root| {
        let orders = root.join("sample/raw/orders");
        let file = std::fs::read_dir(&orders).unwrap().next().unwrap().unwrap().path();
        std::fs::write(&file, b"PAR1 not parquet").unwrap();
    });
}

#[test]
fn a_compute_failing_while_its_first_tables_are_written_leaves_the_previous_outputs_intact() {
    // The first table is handed to the writer, then the run fails before the
    // second: the first one's staged file must go, and the generation's
    // directory with it.
    a_failed_compute_changes_nothing(&[("SHOPFEAT_FAILPOINTS", "feature-table=fail")], |_| {});
}

/// Runs the sample, damages its root with `damage`, then checks that a compute
/// with `env` fails and leaves every output, staging area and generation as the
/// run left them.
fn a_failed_compute_changes_nothing(env: &[(&str, &str)], damage: impl FnOnce(&std::path::Path)) {
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_str().unwrap();
    assert!(shopfeat(&["-q", "--root", r, "run"]).status.success());
    let current = std::fs::read_to_string(root.path().join("sample/features/CURRENT")).unwrap();
    let generation = serde_json::from_str::<serde_json::Value>(&current).unwrap()["generation"].as_str().unwrap().to_string();
    let outputs = ["product_features.parquet", "user_features.parquet", "collection_features.parquet", "features.duckdb"].map(|f| format!("sample/features/{generation}/{f}"));
    let mut outputs = outputs.to_vec();
    outputs.extend(["sample/features.duckdb".to_string(), "sample/features/CURRENT".to_string()]);
    let before: Vec<Vec<u8>> = outputs.iter().map(|o| std::fs::read(root.path().join(o)).unwrap()).collect();
    damage(root.path());
    let failed = Command::new(env!("CARGO_BIN_EXE_shopfeat"))
        .args(["-q", "--root", r, "compute", "--as-of", "2025-11-30T23:59:59Z"])
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    for (o, bytes) in outputs.iter().zip(before) {
        assert!(std::fs::read(root.path().join(o)).unwrap() == bytes, "{o} changed");
    }
    let leftovers: Vec<_> = std::fs::read_dir(root.path().join("sample/.staging")).unwrap().flatten().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let generations: Vec<_> = std::fs::read_dir(root.path().join("sample/features")).unwrap().flatten().filter(|e| e.path().is_dir()).collect();
    assert_eq!(generations.len(), 1, "the failed run left no generation: {generations:?}");
}

#[test]
fn a_shop_without_events_gets_empty_event_tables_and_succeeds() {
    let shop = tempfile::tempdir().unwrap();
    for name in ["products.jsonl", "collections.jsonl", "customers.jsonl", "orders.jsonl"] {
        std::fs::copy(fixture("features").join(name), shop.path().join(name)).unwrap();
    }
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_str().unwrap();
    let out = shopfeat(&["--root", r, "run", shop.path().to_str().unwrap(), "--as-of", "2025-03-01"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let warnings: Vec<String> = stderr(&out).lines().filter(|l| l.contains("WARN")).map(str::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("session_features") && warnings[0].contains("customer_behavior_features") && warnings[0].contains("search_product_features"));
    let db = duckdb::Connection::open(root.path().join("sample/features.duckdb")).unwrap();
    for (table, rows) in [("session_features", 0), ("customer_behavior_features", 0), ("search_product_features", 0), ("product_features", 3)] {
        let n: i64 = db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap();
        assert_eq!(n, rows, "{table}");
    }
    // Full schema even with no rows.
    let columns: i64 = db.query_row("SELECT count(*) FROM information_schema.columns WHERE table_name = 'session_features'", [], |r| r.get(0)).unwrap();
    assert_eq!(columns as usize, shopfeat::features::session::table().schema().len());
}
