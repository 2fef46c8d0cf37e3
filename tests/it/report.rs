//! `shopfeat report` as a person sees it: headless Chromium (Debian's `chromium`;
//! `.ci/run` installs it and sets SHOPFEAT_CHROMIUM) loads the page, takes a
//! screenshot, and the DOM it dumps must hold every section and chart with the
//! numbers of the sample's feature tables — read here from their Parquet, not
//! from the report's code. The page must need nothing from outside.

use polars::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn shopfeat(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shopfeat")).current_dir(env!("CARGO_MANIFEST_DIR")).args(["--root", root.to_str().unwrap()]).args(args).env_remove("RUST_LOG").env_remove("GORSE_URL").output().unwrap()
}

/// Chromium, or `None` outside CI when it is not installed.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SHOPFEAT_CHROMIUM") {
        return Some(path.into());
    }
    let found = std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("chromium")).find(|p| p.is_file()));
    if found.is_none() && std::env::var_os("CI").is_some() {
        panic!("chromium is not installed: .ci/run installs it and sets SHOPFEAT_CHROMIUM");
    }
    found
}

/// Runs headless Chromium on `page` with every host name unresolvable, so
/// nothing could be fetched even if the page asked.
fn browse(chromium: &Path, page: &Path, extra: &[&str]) -> Output {
    let profile = tempfile::tempdir().unwrap();
    Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1400,3000"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap()
}

fn table(root: &Path, name: &str) -> DataFrame {
    let features = root.join("sample/features");
    let pointer: serde_json::Value = serde_json::from_slice(&std::fs::read(features.join("CURRENT")).unwrap()).unwrap();
    let file = std::fs::File::open(features.join(pointer["generation"].as_str().unwrap()).join(format!("{name}.parquet"))).unwrap();
    ParquetReader::new(file).finish().unwrap()
}

/// Rows per value of a text column.
fn counts(frame: &DataFrame, column: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for v in frame.column(column).unwrap().str().unwrap().iter() {
        *counts.entry(v.unwrap_or("(none)").to_string()).or_insert(0) += 1;
    }
    counts
}

/// The text of the first cell with `class` after `marker` in `dom`.
fn cell_after(dom: &str, marker: &str, class: &str) -> String {
    let at = dom.find(marker).unwrap_or_else(|| panic!("no {marker} in the page"));
    let rest = &dom[at..];
    let open = format!("class=\"{class}\">");
    let start = rest.find(&open).unwrap_or_else(|| panic!("no {class} after {marker}")) + open.len();
    rest[start..rest[start..].find('<').unwrap() + start].to_string()
}

#[test]
fn the_report_shows_every_section_with_the_sample_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    assert!(shopfeat(&root, &["-q", "run"]).status.success());
    // `run` wrote the page beside the features.
    let beside = std::fs::read_to_string(root.join("sample/features/report.html")).unwrap();
    assert!(beside.contains("shopfeat report — sample"));
    // Three months earlier: a second run in the history, and drift to show.
    assert!(shopfeat(&root, &["-q", "compute", "--as-of", "2025-09-01T00:00:00Z"]).status.success());
    let page = dir.path().join("report.html");
    let out = shopfeat(&root, &["report", "--out", page.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    for outside in ["<script", "<link", "<img", "src=", "href=", "url(", "@import", "@font-face"] {
        assert!(!html.contains(outside), "the page refers outside itself: {outside}");
    }

    let dom = match chromium() {
        Some(chromium) => {
            let shot = dir.path().join("report.png");
            let taken = browse(&chromium, &page, &[&format!("--screenshot={}", shot.display())]);
            assert!(taken.status.success(), "{}", String::from_utf8_lossy(&taken.stderr));
            let png = std::fs::read(&shot).unwrap();
            assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "screenshot of {} bytes", png.len());
            let dumped = browse(&chromium, &page, &["--dump-dom"]);
            assert!(dumped.status.success(), "{}", String::from_utf8_lossy(&dumped.stderr));
            String::from_utf8(dumped.stdout).unwrap()
        }
        None => {
            eprintln!("chromium is not installed: checking the HTML file instead of the browser's DOM");
            html
        }
    };

    for section in ["checks", "runs", "tables", "distributions", "quality", "top-products", "top-pairs", "segments", "sessions", "drift"] {
        assert!(dom.contains(&format!("<section id=\"{section}\">")), "no section {section}");
    }
    // Charts: time and memory per run, eight histograms, three share charts.
    assert!(dom.matches("<svg").count() >= 13, "{} charts", dom.matches("<svg").count());
    for feature in ["product_features.total_revenue", "user_features.total_spent", "session_features.duration_seconds", "product_pair_features.lift"] {
        assert!(dom.contains(&format!("data-feature=\"{feature}\"><svg")), "no histogram of {feature}");
    }
    // The checks of `status`, with their levels.
    assert_eq!(cell_after(&dom, "data-check=\"successful_run\"", "ok"), "ok");
    assert_eq!(cell_after(&dom, "data-check=\"newest_order_age\"", "warn"), "warn");
    // Both runs, newest first.
    assert_eq!(dom.matches("<tr class=\"run\">").count(), 2);
    let first_run = &dom[dom.find("<tr class=\"run\">").unwrap()..];
    assert!(first_run.starts_with("<tr class=\"run\"><td>") && first_run[..200].contains("<td>compute</td>"), "{}", &first_run[..200]);
    // Rows per table, as the Parquet has them.
    for name in ["product_features", "user_features", "session_features", "product_pair_features"] {
        assert_eq!(cell_after(&dom, &format!("<tr data-table=\"{name}\">"), "num rows"), table(&root, name).height().to_string(), "{name}");
    }
    // The top product by revenue.
    let products = table(&root, "product_features");
    let revenue = products.column("total_revenue").unwrap().f64().unwrap();
    let best = (0..products.height()).max_by(|a, b| revenue.get(*a).unwrap_or(f64::MIN).total_cmp(&revenue.get(*b).unwrap_or(f64::MIN))).unwrap();
    let best_revenue = format!("{:.2}", revenue.get(best).unwrap());
    assert_eq!(cell_after(&dom, "<tr class=\"product\">", "num revenue"), best_revenue);
    // The top pair by lift among those bought together at least twice.
    let pairs = table(&root, "product_pair_features");
    let (lift, together) = (pairs.column("lift").unwrap().f64().unwrap(), pairs.column("co_purchase_count").unwrap().i64().unwrap());
    let best_lift = (0..pairs.height()).filter(|i| together.get(*i).unwrap() >= 2).filter_map(|i| lift.get(i)).fold(f64::MIN, f64::max);
    assert!(best_lift > 1.0, "the sample has pairs bought together twice");
    assert_eq!(cell_after(&dom, "<tr class=\"pair\">", "num lift"), format!("{best_lift:.2}"));
    // Customers per RFM segment, sessions per source and device.
    for (segment, n) in counts(&table(&root, "user_features"), "rfm_segment") {
        assert_eq!(cell_after(&dom, &format!("data-segment=\"{segment}\""), "num count"), n.to_string(), "segment {segment}");
    }
    let sessions = table(&root, "session_features");
    for (source, n) in counts(&sessions, "traffic_source") {
        assert_eq!(cell_after(&dom, &format!("data-source=\"{source}\""), "num count"), n.to_string(), "source {source}");
    }
    for (device, n) in counts(&sessions, "device_type") {
        assert_eq!(cell_after(&dom, &format!("data-device=\"{device}\""), "num count"), n.to_string(), "device {device}");
    }
    // Nulls and zeros of every table, and what moved three months back.
    assert_eq!(dom.matches("<details data-table=").count(), 10);
    assert_eq!(dom.matches("<tr class=\"drifted\">").count(), 15);
    assert!(!cell_after(&dom, "<tr class=\"drifted\">", "num").starts_with("0.000"), "the largest drift is zero");
}

#[test]
fn a_shop_that_never_ran_gets_a_page_that_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("empty.html");
    let out = shopfeat(dir.path(), &["report", "--out", page.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("no runs recorded") && html.contains("no features computed") && html.contains("no earlier generation"));
    assert!(html.contains("data-check=\"successful_run\"><td class=\"fail\">fail</td>"));
}
