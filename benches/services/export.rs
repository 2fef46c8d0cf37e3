//! Gorse export throughput: a computed shop into the in-process Gorse stand-in
//! (the tests' `gorse_standin.rs`), then an unchanged re-export, then one that
//! sends 1,000 items again (their recorded hashes changed: what a `serve` cycle
//! after a few changes sends), its rows file read and saved as such a cycle does.
//! `SHOPFEAT_BENCH=export SHOPFEAT_EXPORT_ROOT=/tmp/med SHOPFEAT_EXPORT_SHOP=medium cargo bench --bench pipeline`

use crate::gorse_standin::Gorse;
use shopfeat::config::Secret;
use shopfeat::pipeline;
use shopfeat::sinks::gorse::checkpoint;
use shopfeat::sinks::gorse::mapping::Kind;
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
    let rows_file = checkpoint::rows_file(&shop);
    let mut delivered = checkpoint::Delivered::load(&root, &rows_file).expect("the rows Gorse holds");
    for id in delivered.ids(Kind::Item).iter().take(1000) {
        delivered.record(Kind::Item, id, 0);
    }
    delivered.save(&root, &rows_file).expect("saved");
    let few = pipeline::export_gorse(&root, &shop, &options).expect("a re-export of a few rows").gorse;
    println!("re-export of a few changed rows: {} rows sent, {} unchanged, {:.2} s", few.rows_sent(), few.unchanged, few.seconds);
    assert_eq!(gorse.store().items.len() as u64, first.upserted[0], "the stand-in holds every item sent");
}
