//! The fast lane alone, on a landed shop with a current generation (e.g. the
//! `large` root a `pipeline` run leaves, or any `--root`): a copy of its
//! directory tree made of hard links (raw snapshots and generations are never
//! rewritten, so the original is untouched), then a `products/update` and an
//! `orders/create` (a customer who bought before, a product new to them) through
//! `pipeline::fast_cycle` three times each, without Gorse, each cycle's stages
//! printed.
//!
//! `SHOPFEAT_BENCH=fast SHOPFEAT_FAST_ROOT=DIR [SHOPFEAT_FAST_SHOP=bench] cargo bench --bench pipeline`

use polars::prelude::{ParquetReader, SerReader};
use serde_json::json;
use shopfeat::land::inbox::Inbox;
use shopfeat::pipeline::{fast_cycle, FastOptions, FastReport};
use shopfeat::storage::DataRoot;
use std::path::Path;
use std::time::Instant;

/// `from`'s tree again at `to`, every file a hard link.
fn link_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            link_tree(&entry.path(), &target);
        } else {
            std::fs::hard_link(entry.path(), &target).expect("hard link (same file system)");
        }
    }
}

fn stages(report: &FastReport) -> String {
    report.land.stages.iter().chain(&report.stages).map(|s| format!("{} {:.3}", s.stage, s.seconds)).collect::<Vec<_>>().join(", ")
}

pub fn run() {
    let original = std::path::PathBuf::from(std::env::var("SHOPFEAT_FAST_ROOT").expect("SHOPFEAT_FAST_ROOT: a landed root with a current generation"));
    let shop = std::env::var("SHOPFEAT_FAST_SHOP").unwrap_or_else(|_| "bench".into());
    let scratch = tempfile::tempdir_in(original.parent().expect("parent")).expect("tempdir");
    link_tree(&original.join(&shop), &scratch.path().join(&shop));
    let root = DataRoot::open(&scratch.path().display().to_string()).expect("root");
    let current = |table: &str| {
        let rel = shopfeat::sinks::parquet::current_table_path(&root, &shop, table).expect("current");
        ParquetReader::new(std::io::Cursor::new(root.get(&rel).expect("get").expect("a current generation"))).finish().expect("parquet")
    };
    let first_id = |table: &str, column: &str, filter: &str| -> i64 {
        let frame = current(table);
        let ok = frame.column(filter).expect("column").i64().expect("i64").clone();
        let ids = frame.column(column).expect("column").i64().expect("i64").clone();
        let found = ids.iter().zip(ok.iter()).find(|(_, n)| n.is_some_and(|n| n > 0)).and_then(|(id, _)| id);
        found.expect("an id")
    };
    let product = first_id("product_features", "product_id", "variant_count");
    let customer = first_id("user_features", "customer_id", "total_purchases");
    let inbox = Inbox::new(scratch.path().join("inbox"));
    let options = FastOptions::default();
    for round in 0..3 {
        let now = shopfeat::time::now_rfc3339();
        let payload = json!({"id": product, "title": format!("fast bench {round}"), "status": "active", "updated_at": now, "created_at": "2025-01-01T00:00:00Z", "variants": [], "images": []});
        inbox.write_webhook("products/update", &format!("p-{round}"), &serde_json::to_vec(&payload).expect("JSON")).expect("inbox");
        let started = Instant::now();
        let report = fast_cycle(&root, &shop, &inbox, &options).expect("fast cycle").expect("a delivery");
        println!("products/update: {:.3} s ({})", started.elapsed().as_secs_f64(), stages(&report));
    }
    for round in 0..3 {
        let id = 7_000_000 + round;
        let now = shopfeat::time::now_rfc3339();
        let payload = json!({"id": id, "name": format!("#F{id}"), "created_at": now, "updated_at": now, "test": false, "currency": "USD", "total_price": "10.00",
            "customer": {"id": customer}, "line_items": [{"id": id * 10, "product_id": product, "quantity": 1, "price": "10.00"}]});
        inbox.write_webhook("orders/create", &format!("o-{round}"), &serde_json::to_vec(&payload).expect("JSON")).expect("inbox");
        let started = Instant::now();
        let report = fast_cycle(&root, &shop, &inbox, &options).expect("fast cycle").expect("a delivery");
        println!("orders/create: {:.3} s ({}); rows: {:?}", started.elapsed().as_secs_f64(), stages(&report), report.tables.iter().map(|t| (t.table, t.rows)).collect::<Vec<_>>());
    }
}
