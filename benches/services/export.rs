//! Gorse export throughput: a computed shop into the in-process Gorse stand-in
//! (the tests' `gorse_standin.rs`), then an unchanged re-export.
//! `SHOPFEAT_BENCH=export SHOPFEAT_EXPORT_ROOT=/tmp/med SHOPFEAT_EXPORT_SHOP=medium cargo bench --bench pipeline`

use crate::gorse_standin::Gorse;
use shopfeat::config::Secret;
use shopfeat::pipeline;
use shopfeat::sinks::gorse::Options;
use shopfeat::storage::DataRoot;

pub fn run() {
    let root = std::env::var("SHOPFEAT_EXPORT_ROOT").expect("SHOPFEAT_EXPORT_ROOT: a root with computed features");
    let shop = std::env::var("SHOPFEAT_EXPORT_SHOP").unwrap_or_else(|_| "medium".into());
    let root = DataRoot::open(&root).expect("root");
    let key = "bench-key";
    let gorse = Gorse::start(Some(key));
    let mut options = Options::new(&gorse.url);
    options.key = Some(Secret::new(key));
    let first = pipeline::export_gorse(&root, &shop, &options).expect("export").gorse;
    let again = pipeline::export_gorse(&root, &shop, &options).expect("re-export").gorse;
    println!("first export: {:?} rows in {:.2} s = {:.0} rows/s, {} requests", first.upserted, first.seconds, first.rows_sent() as f64 / first.seconds, first.requests);
    println!("unchanged re-export: {} rows sent, {} unchanged, {:.2} s", again.rows_sent(), again.unchanged, again.seconds);
    assert_eq!(gorse.store().items.len() as u64, first.upserted[0], "the stand-in holds every item sent");
}
