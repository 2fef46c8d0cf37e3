//! Bad input never stops a run and never disappears silently.

use crate::common::*;
use polars::prelude::*;
use shopfeat::land::{self, Problem};
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const ORDER: &str = r#"{"id":"gid://shopify/Order/1","createdAt":"2025-01-01T00:00:00Z","updatedAt":"2025-01-01T00:00:00Z","test":false,"customer":null,"totalPriceSet":{"shopMoney":{"amount":"10.00"}},"refunds":[]}"#;
const LINE: &str = r#"{"id":"gid://shopify/LineItem/11","quantity":1,"product":{"id":"gid://shopify/Product/5"},"originalUnitPriceSet":{"shopMoney":{"amount":"10.00"}},"__parentId":"gid://shopify/Order/1"}"#;

fn bad_shop(dir: &Path) {
    let orders = [
        ORDER,
        LINE,
        r##"{"id":"gid://shopify/Order/2","name":"#1002","##,
        r#"{"id":"gid://shopify/LineItem/12","quantity":"three","__parentId":"gid://shopify/Order/1"}"#,
        r#"{"id":"gid://shopify/LineItem/13","quantity":1,"__parentId":"gid://shopify/Order/99"}"#,
        r#"{"name":"no id"}"#,
        "",
        r#"{"id":"gid://shopify/Order/3","createdAt":"2025-01-02T00:00:00Z","customer":{"id":true},"refunds":[]}"#,
    ];
    write(dir, "orders.jsonl", &(orders.join("\n") + "\n"));
    let events = [
        r#"{"id":"e1","name":"page_viewed","clientId":"c1","timestamp":"2025-01-01T00:00:00Z","data":{}}"#,
        r#"{"id":"e2","name":"page_viewed","clientId":"c1","timestamp":1735689600,"data":{}}"#,
        r#"{"id":"e3","name":"page_viewed","timestamp":"2025-01-01T00:00:00Z","data":{}}"#,
    ];
    write(dir, "events.jsonl", &events.join("\n"));
    write(dir, "products.jsonl", "");
}

fn problem(problems: &[Problem], line: u64) -> &Problem {
    problems.iter().find(|p| p.line == line && !p.file.ends_with("events.jsonl")).unwrap_or_else(|| panic!("no problem on line {line}: {problems:?}"))
}

#[test]
fn each_bad_record_is_reported_with_file_line_and_reason_and_the_rest_lands() {
    let dir = tempfile::tempdir().unwrap();
    bad_shop(dir.path());
    let landed = land(&[dir.path().to_path_buf()]);
    let r = &landed.report;
    let p = &r.problems;
    assert_eq!(p.len(), 7, "{p:#?}");
    assert!(problem(p, 3).problem.starts_with("malformed JSON"), "{p:?}");
    assert!(problem(p, 3).file.ends_with("orders.jsonl"));
    assert_eq!(problem(p, 4).entity, "line_items");
    assert_eq!(problem(p, 4).problem, r#"quantity: expected an integer, got "three""#);
    // A child whose parent is not in the file lands (nothing is lost) and is reported.
    assert_eq!(problem(p, 5).entity, "line_items");
    assert!(problem(p, 5).problem.contains("gid://shopify/Order/99 is not in this file") && problem(p, 5).landed, "{p:?}");
    assert_eq!(problem(p, 6).problem, "id: missing");
    assert_eq!(problem(p, 8).entity, "orders");
    assert_eq!(problem(p, 8).problem, "customer.id: expected an id, got a boolean");
    let event_problems: Vec<_> = p.iter().filter(|p| p.file.ends_with("events.jsonl")).map(|p| (p.line, p.problem.as_str())).collect();
    assert_eq!(event_problems, vec![(2, "timestamp: expected a timestamp string, got a number"), (3, "clientId: missing")]);

    assert_eq!(r.landed.get("orders"), Some(&1));
    assert_eq!(r.landed.get("line_items"), Some(&2));
    assert_eq!(r.unattached.get("line_items"), Some(&1));
    assert_eq!(r.landed.get("events"), Some(&1));
    assert_eq!(r.landed.get("products"), None, "an empty file lands nothing");
    assert_eq!(r.skipped.get("unknown"), Some(&2));
    assert_eq!(r.skipped.get("line_items"), Some(&1));
    assert_eq!(r.skipped.get("orders"), Some(&1));
    assert_eq!(r.skipped.get("events"), Some(&2));

    // Every skipped record is kept whole, with file, line and reason.
    let manifest = &land::snapshots(&landed.root, "test").unwrap()[0];
    let rejected_rel = manifest.rejected.as_ref().expect("a rejected file");
    let rejected = polars::prelude::ParquetReader::new(std::fs::File::open(landed.root.local_dir().unwrap().join(rejected_rel)).unwrap()).finish().unwrap();
    assert_eq!(rejected.height() as u64, r.skipped_total());
    let line4 = rejected.clone().lazy().filter(col("line").eq(lit(4i64)).and(col("file").str().ends_with(lit("orders.jsonl")))).collect().unwrap();
    assert_eq!(line4.column("entity").unwrap().str().unwrap().get(0), Some("line_items"));
    assert!(line4.column("record").unwrap().str().unwrap().get(0).unwrap().contains(r#""quantity":"three""#));

    let t = landed.tables(None);
    assert_eq!(t["orders"].ids("order_id"), vec![1]);
    assert_eq!(t["line_items"].ids("line_item_id"), vec![11]);
    assert_eq!(t["events"].height(), 1);
    assert_eq!(t["products"].height(), 0);
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let err = land::collect_inputs(&[Path::new("/no/such/shop").to_path_buf()]).unwrap_err();
    assert!(format!("{err:#}").contains("cannot read /no/such/shop"), "{err:#}");
}

#[test]
fn a_failed_ingest_leaves_no_snapshot_behind() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a_orders.jsonl", &format!("{ORDER}\n{LINE}\n"));
    write(dir.path(), "b_events.jsonl", "");
    let root_dir = tempfile::tempdir().unwrap();
    let root = shopfeat::storage::DataRoot::open(root_dir.path().to_str().unwrap()).unwrap();
    let files = land::collect_inputs(&[dir.path().to_path_buf()]).unwrap();
    // The second file vanishes: the ingest fails part-way through.
    std::fs::remove_file(dir.path().join("b_events.jsonl")).unwrap();
    assert!(land::land(&root, "test", &files, &shopfeat::progress::Progress::hidden()).is_err());
    assert!(land::snapshots(&root, "test").unwrap().is_empty());
    let leftovers: Vec<_> = walk(root_dir.path()).into_iter().filter(|p| p.extension().is_some_and(|e| e == "parquet" || e == "json")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_corrupt_gzip_file_is_reported_and_the_rest_lands() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a_orders.jsonl", &format!("{ORDER}\n{LINE}\n"));
    // Gzip magic and then garbage; then a gzip stream cut in the middle.
    std::fs::write(dir.path().join("b_events.jsonl.gz"), b"\x1f\x8b\x08\x00garbage-garbage-garbage").unwrap();
    let whole = {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(vec![], flate2::Compression::default());
        for i in 0..2000 {
            writeln!(gz, r#"{{"id":"e{i}","name":"page_viewed","clientId":"c1","timestamp":"2025-02-01T00:00:00Z","context":{{}},"data":{{}}}}"#).unwrap();
        }
        gz.finish().unwrap()
    };
    std::fs::write(dir.path().join("c_events.jsonl.gz"), &whole[..whole.len() / 2]).unwrap();
    let landed = land(&[dir.path().to_path_buf()]);
    let r = &landed.report;
    assert_eq!(r.broken_files.len(), 2, "{:?}", r.problems);
    assert!(r.problems.iter().any(|p| p.file.ends_with("c_events.jsonl.gz") && p.problem.contains("the rest of the file is skipped")), "{:?}", r.problems);
    assert_eq!(r.landed.get("orders"), Some(&1), "the good file landed");
    let events = r.landed.get("events").copied().unwrap_or(0);
    assert!(events > 100 && events < 2000, "what was read before the cut landed: {events}");
}

#[test]
fn a_line_longer_than_the_limit_is_reported_without_being_held() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!(r#"{{"id":"gid://shopify/Order/5","note":"{}"}}"#, "x".repeat(65 << 20));
    write(dir.path(), "orders.jsonl", &format!("{ORDER}\n{LINE}\n{long}\n{ORDER}\n"));
    let landed = land(&[dir.path().to_path_buf()]);
    let p = &landed.report.problems;
    assert_eq!(p.len(), 1, "{:?}", p.iter().map(|p| (&p.line, &p.problem)).collect::<Vec<_>>());
    assert_eq!((p[0].line, p[0].problem.as_str()), (3, "a line longer than 64 MB"));
    assert_eq!(landed.report.landed.get("orders"), Some(&2), "the lines after it land");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
