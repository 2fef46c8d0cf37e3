//! Bulk JSONL in any order (Shopify's output is ungrouped since API 2026-01, and
//! other tools write it either way): a child belongs to its parent in its file,
//! wherever it stands; a parent listed twice has its children unioned by child id;
//! a child whose parent is not in the file is landed and reported, never dropped
//! in silence.

use crate::common::*;
use polars::prelude::*;
use std::path::Path;

/// Rows in the order of their scalar columns (row order is not part of a table).
fn in_key_order(frame: &DataFrame) -> DataFrame {
    let keys: Vec<PlSmallStr> = frame.columns().iter().filter(|c| !matches!(c.dtype(), DataType::List(_) | DataType::Struct(_))).map(|c| c.name().clone()).collect();
    frame.sort(keys, SortMultipleOptions::default().with_nulls_last(true)).unwrap()
}

/// Copies the fixture shop `name` into `dir`, each bulk parent's child lines moved
/// before it (roots keep their order, which decides ties between versions).
fn reversed_copy(name: &str, dir: &Path) {
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let sub = dir.join(path.file_name().unwrap());
            std::fs::create_dir_all(&sub).unwrap();
            for hook in std::fs::read_dir(&path).unwrap() {
                let hook = hook.unwrap().path();
                std::fs::copy(&hook, sub.join(hook.file_name().unwrap())).unwrap();
            }
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let is_bulk = !path.file_name().unwrap().to_str().unwrap().starts_with("events");
        let lines: Vec<&str> = if is_bulk { children_first(&text) } else { text.lines().collect() };
        std::fs::write(dir.join(path.file_name().unwrap()), lines.join("\n") + "\n").unwrap();
    }
}

/// The lines of a grouped bulk file with each group's children before its root.
fn children_first(text: &str) -> Vec<&str> {
    let mut out = vec![];
    let mut group: Vec<&str> = vec![];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if !line.contains("__parentId") && !group.is_empty() {
            out.extend(group[1..].iter().chain(&group[..1]));
            group.clear();
        }
        group.push(line);
    }
    if !group.is_empty() {
        out.extend(group[1..].iter().chain(&group[..1]));
    }
    out
}

#[test]
fn children_before_their_parents_land_as_in_a_grouped_file() {
    for shop in ["shop", "features"] {
        let dir = tempfile::tempdir().unwrap();
        reversed_copy(shop, dir.path());
        let grouped = land(&[fixture(shop)]);
        let reversed = land(&[dir.path().to_path_buf()]);
        assert!(reversed.report.unattached.is_empty(), "{:?}", reversed.report.problems);
        assert_eq!(reversed.report.landed, grouped.report.landed);
        let (a, b) = (grouped.tables(None), reversed.tables(None));
        for (name, table) in &a {
            let (x, y) = (in_key_order(&table.0), in_key_order(&b[name].0));
            assert!(x.equals_missing(&y), "{shop}: {name}\n{x}\n{y}");
        }
        assert!(a["variants"].height() > 0 && a["line_items"].height() > 0 && a["collection_products"].height() > 0);
    }
}

#[test]
fn a_parent_listed_twice_has_its_children_unioned() {
    // The newer version first, an older one later, the media after both: the
    // media belong to the product, whichever version wins.
    let dir = tempfile::tempdir().unwrap();
    let product = |updated: &str, title: &str| format!(r#"{{"id":"gid://shopify/Product/7","title":"{title}","handle":"p7","status":"ACTIVE","tags":[],"createdAt":"2025-01-01T00:00:00Z","updatedAt":"{updated}"}}"#);
    let lines = [
        r#"{"id":"gid://shopify/ProductVariant/71","title":"S","price":"10.00","__parentId":"gid://shopify/Product/7"}"#.to_string(),
        product("2025-03-01T00:00:00Z", "New"),
        product("2025-02-01T00:00:00Z", "Old"),
        r#"{"id":"gid://shopify/MediaImage/701","mediaContentType":"IMAGE","__parentId":"gid://shopify/Product/7"}"#.to_string(),
        r#"{"id":"gid://shopify/MediaImage/702","mediaContentType":"IMAGE","__parentId":"gid://shopify/Product/7"}"#.to_string(),
        r#"{"id":"gid://shopify/ProductVariant/71","title":"S","price":"12.00","__parentId":"gid://shopify/Product/7"}"#.to_string(),
    ];
    std::fs::write(dir.path().join("products.jsonl"), lines.join("\n")).unwrap();
    let landed = land(&[dir.path().to_path_buf()]);
    assert!(landed.report.problems.is_empty(), "{:?}", landed.report.problems);
    let t = landed.tables(None);
    assert_eq!(t["products"].str("product_id", 7, "title").as_deref(), Some("New"));
    assert_eq!(t["product_media"].ids("media_id"), vec![701, 702]);
    // One variant 71: the later of its two lines.
    assert_eq!(t["variants"].ids("variant_id"), vec![71]);
    assert_eq!(t["variants"].float("variant_id", 71, "price"), Some(12.0));
}

#[test]
fn children_of_an_unknown_parent_are_landed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"id":"gid://shopify/ProductVariant/81","title":"S","price":"10.00","__parentId":"gid://shopify/Product/8"}"#,
        r#"{"id":"gid://shopify/Product/8","title":"Eight","handle":"p8","status":"ACTIVE","tags":[],"createdAt":"2025-01-01T00:00:00Z","updatedAt":"2025-01-01T00:00:00Z"}"#,
        r#"{"id":"gid://shopify/ProductVariant/91","title":"S","price":"10.00","__parentId":"gid://shopify/Product/9"}"#,
        r#"{"id":"gid://shopify/LineItem/92","quantity":1,"__parentId":"gid://shopify/Order/9"}"#,
    ];
    std::fs::write(dir.path().join("products.jsonl"), lines.join("\n")).unwrap();
    let landed = land(&[dir.path().to_path_buf()]);
    let r = &landed.report;
    assert_eq!(r.landed.get("variants"), Some(&2), "both variants are kept in raw");
    assert_eq!(r.unattached.get("variants"), Some(&1));
    assert_eq!(r.unattached.get("line_items"), Some(&1));
    let lines_reported: Vec<(u64, &str, bool)> = r.problems.iter().map(|p| (p.line, p.entity.as_str(), p.landed)).collect();
    assert_eq!(lines_reported, vec![(3, "variants", true), (4, "line_items", true)]);
    assert!(r.problems[0].problem.contains("gid://shopify/Product/9 is not in this file"), "{:?}", r.problems);
    assert!(r.problems[0].file.ends_with("products.jsonl"));
    let t = landed.tables(None);
    assert_eq!(t["variants"].ids("variant_id"), vec![81], "the child of the product in the file is attached; the other is not");

    // `ingest --strict` fails on it; without --strict the summary says so.
    let root = tempfile::tempdir().unwrap();
    let run = |strict: bool| {
        let mut args = vec!["--root", root.path().to_str().unwrap(), "-q", "ingest", dir.path().to_str().unwrap()];
        if strict {
            args.push("--strict");
        }
        std::process::Command::new(env!("CARGO_BIN_EXE_shopfeat")).args(args).env_remove("RUST_LOG").output().unwrap()
    };
    let lenient = run(false);
    assert!(lenient.status.success());
    let summary = String::from_utf8_lossy(&lenient.stdout).into_owned();
    assert!(summary.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["variants", "2", "0", "1"]), "{summary}");
    assert_eq!(run(true).status.code(), Some(2));
}
