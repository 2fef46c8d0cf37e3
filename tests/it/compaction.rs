//! Compaction (issue 24): every main table and every feature table, at several
//! `--as-of` values, is identical with and without compaction.
//!
//! Each scenario keeps twin roots: every landing goes to both, only one is
//! compacted. Landing into both in the same order keeps what normalization
//! compares (the order of snapshots, times of receipt against a full fetch's
//! start) the same in both, while snapshot ids differ, which the feature tables
//! never show.

use crate::common::{copy_dir, fixture, ts};
use polars::prelude::*;
use shopfeat::land::{self, compact};
use shopfeat::normalize::{self, RawTables};
use shopfeat::pipeline::{compute, ComputeOptions};
use shopfeat::progress::Progress;
use shopfeat::storage::DataRoot;
use std::path::{Path, PathBuf};

const SHOP: &str = "s";

struct Twins {
    _dir: tempfile::TempDir,
    compacted: DataRoot,
    plain: DataRoot,
    inputs: PathBuf,
    landings: usize,
}

impl Twins {
    fn new() -> Twins {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| DataRoot::open(dir.path().join(name).to_str().unwrap()).unwrap();
        let (compacted, plain) = (open("compacted"), open("plain"));
        let inputs = dir.path().join("inputs");
        Twins { _dir: dir, compacted, plain, inputs, landings: 0 }
    }

    fn roots(&self) -> [&DataRoot; 2] {
        [&self.compacted, &self.plain]
    }

    /// Lands `paths` as one snapshot of each root (full since `full_since`, when given).
    fn land_paths(&mut self, paths: &[PathBuf], full_since: Option<chrono::DateTime<chrono::Utc>>) {
        let files = land::collect_inputs(paths).unwrap();
        for root in self.roots() {
            land::land_snapshot(root, SHOP, &files, &Progress::hidden(), full_since).unwrap();
        }
        self.landings += 1;
    }

    /// Lands one file named `name` holding `body` as its own snapshot.
    fn land(&mut self, name: &str, body: &str) {
        let dir = self.inputs.join(format!("{:03}", self.landings));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), body).unwrap();
        self.land_paths(&[dir.join(name)], None);
    }

    fn compact(&self) -> compact::CompactReport {
        let report = compact::compact(&self.compacted, SHOP, &compact::Policy::default()).unwrap();
        assert!(!report.merged.is_empty(), "something to merge: {report:?}");
        report
    }

    fn snapshots(&self, root: &DataRoot) -> Vec<land::SnapshotManifest> {
        land::snapshots(root, SHOP).unwrap()
    }

    /// Main tables (latest and at each time) and feature tables (at each time)
    /// are equal in both roots.
    fn assert_same(&self, times: &[&str]) {
        assert_same_main(&self.compacted, &self.plain, None);
        for t in times {
            assert_same_main(&self.compacted, &self.plain, Some(ts(t)));
            let features = |root: &DataRoot| compute(root, SHOP, &ComputeOptions::at(ts(t))).unwrap().tables;
            for ((name, a), (_, b)) in features(&self.compacted).into_iter().zip(features(&self.plain)) {
                let (a, b) = (sorted(a), sorted(b));
                let differing = differing_columns(&a, &b);
                assert!(differing.is_empty(), "{name} at {t} differs after compaction in {differing:?}:\n{a}\n{b}");
            }
        }
    }
}

/// The main tables at `as_of`, each sorted by its columns (row order is no
/// contract; rows are).
pub(crate) fn main_tables(root: &DataRoot, shop: &str, as_of: Option<i64>) -> Vec<(&'static str, DataFrame)> {
    let raw = RawTables::open(root, shop).unwrap();
    let named = normalize::normalize(&raw, as_of).unwrap().named();
    let frames = normalize::collect_all(named.iter().map(|(_, lf)| lf.clone()).collect()).unwrap();
    named.into_iter().map(|(n, _)| n).zip(frames).map(|(n, f)| (n, sorted(f))).collect()
}

/// `frame` sorted by its columns but lists and floats (which a sum in another
/// order may change in the last bits).
pub(crate) fn sorted(frame: DataFrame) -> DataFrame {
    let sortable: Vec<PlSmallStr> = frame.columns().iter().filter(|c| !matches!(c.dtype(), DataType::List(_) | DataType::Float64 | DataType::Float32)).map(|c| c.name().clone()).collect();
    frame.sort(sortable.clone(), SortMultipleOptions::default().with_order_descending_multi(vec![false; sortable.len()]).with_maintain_order(true)).unwrap()
}

/// The columns of `a` and `b` that differ: exactly, but floats, which may differ
/// by a sum's order (rows are combined in another physical order after
/// compaction, as they may be by the parallel group-by itself): by 1e-12 of
/// their size.
pub(crate) fn differing_columns(a: &DataFrame, b: &DataFrame) -> Vec<String> {
    if a.shape() != b.shape() {
        return vec![format!("shapes {:?} and {:?}", a.shape(), b.shape())];
    }
    let same = |x: &Series, y: &Series| match x.dtype() {
        DataType::Float64 => x.f64().unwrap().iter().zip(y.f64().unwrap().iter()).all(|pair| match pair {
            (Some(p), Some(q)) => p == q || (p - q).abs() <= 1e-12 * p.abs().max(q.abs()).max(1.0) || (p.is_nan() && q.is_nan()),
            (p, q) => p.is_none() && q.is_none(),
        }),
        _ => x.equals_missing(y),
    };
    a.columns()
        .iter()
        .zip(b.columns())
        .map(|(x, y)| (x.as_materialized_series(), y.as_materialized_series()))
        .filter(|(x, y)| x.name() != y.name() || !same(x, y))
        .map(|(x, y)| format!("{}: {x:?} vs {y:?}", x.name()))
        .collect()
}

fn assert_same_main(a: &DataRoot, b: &DataRoot, as_of: Option<i64>) {
    assert_same_tables(&main_tables(a, SHOP, as_of), &main_tables(b, SHOP, as_of), &format!("at {as_of:?}"));
}

pub(crate) fn assert_same_tables(a: &[(&'static str, DataFrame)], b: &[(&'static str, DataFrame)], what: &str) {
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(b) {
        let differing = differing_columns(x, y);
        assert!(differing.is_empty(), "{what}: main table {name} differs after compaction in {differing:?}");
    }
}

/// A webhook payload from the fixture shop's, with fields replaced.
fn payload(file: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut value: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture("shop/webhooks").join(file)).unwrap()).unwrap();
    edit(&mut value);
    value.to_string()
}

fn product_update(updated_at: &str, title: &str, price: &str) -> String {
    payload("products_update-1.json", |p| {
        p["updated_at"] = updated_at.into();
        p["title"] = title.into();
        for v in p["variants"].as_array_mut().unwrap() {
            v["price"] = price.into();
        }
    })
}

/// A storefront event (the fixture shop's browser `c1` viewing a product).
fn event(id: &str, client: &str, at: &str, product: u64) -> String {
    serde_json::json!({
        "id": id, "name": "product_viewed", "clientId": client, "timestamp": at, "type": "standard",
        "context": {"document": {"location": {"href": "https://shop.example/products/p", "pathname": "/products/p"}, "referrer": ""}, "navigator": {"userAgent": "Mozilla/5.0"}},
        "data": {"productVariant": {"id": "gid://shopify/ProductVariant/11", "price": {"amount": 10.0, "currencyCode": "USD"}, "product": {"id": format!("gid://shopify/Product/{product}"), "title": "P"}}}
    })
    .to_string()
}

/// The fixture shop, then webhooks and events one snapshot each: versions out
/// of order, a tie at one `updated_at` (the later snapshot wins), a deletion,
/// an order update and a refund, duplicated events (the first landed wins),
/// and records that do not land (kept in `_rejected`).
fn land_history(twins: &mut Twins) {
    twins.land_paths(&[fixture("shop")], None);
    twins.land("products_update-1.json", &product_update("2025-04-05T00:00:00Z", "Mug v2", "21.00"));
    twins.land("products_update-1.json", &product_update("2025-03-20T00:00:00Z", "Mug late", "19.00"));
    twins.land("products_update-1.json", &product_update("2025-04-05T00:00:00Z", "Mug tie", "22.00"));
    twins.land("products_delete-1.json", &payload("products_delete-1.json", |_| {}));
    twins.land("orders_updated-1.json", &payload("orders_updated-1.json", |o| o["updated_at"] = "2025-03-02T00:00:00Z".into()));
    twins.land("refunds_create-1.json", &payload("refunds_create-1.json", |r| r["created_at"] = "2025-03-03T00:00:00Z".into()));
    twins.land("customers_update-1.json", &payload("customers_update-1.json", |c| c["first_name"] = "Kay".into()));
    let events = [event("e1", "c9", "2025-02-10T11:00:00Z", 2), event("x1", "c1", "2025-03-04T10:00:00Z", 2), event("x2", "c1", "2025-03-04T10:05:00Z", 3)];
    twins.land("events-1.jsonl", &events.join("\n"));
    twins.land("events-2.jsonl", &[event("x1", "c2", "2025-03-05T00:00:00Z", 3), "{not json".to_string()].join("\n"));
    twins.land("products_update-2.json", "{\"id\": 2, \"title\": ");
}

/// Before the first version, between versions, exactly at the tied
/// `updated_at`, after an event, and after everything.
const TIMES: [&str; 5] = ["2025-01-01T00:00:00Z", "2025-03-25T00:00:00Z", "2025-04-05T00:00:00Z", "2025-03-04T10:00:00Z", "2025-12-01T00:00:00Z"];

#[test]
fn compaction_keeps_every_table_at_every_as_of_and_holds_one_snapshot() {
    let mut twins = Twins::new();
    land_history(&mut twins);
    let before = twins.snapshots(&twins.compacted).len();
    assert_eq!(before, 11);
    let report = twins.compact();
    assert_eq!((report.snapshots_before, report.snapshots_after), (11, 1), "{report:?}");
    twins.assert_same(&TIMES);

    // One manifest, its files and nothing else: the replaced files are gone.
    let raw = twins.compacted.local_dir().unwrap().join(SHOP).join("raw");
    let manifests = std::fs::read_dir(raw.join("_snapshots")).unwrap().count();
    assert_eq!(manifests, 1);
    for entity in ["products", "events", "orders"] {
        assert_eq!(std::fs::read_dir(raw.join(entity)).unwrap().count(), 1, "{entity}: one file");
    }
    assert!(!raw.join("_rewrite.json").exists());

    // The rejected records, every one of them, in one file.
    let rejected_rows = |root: &DataRoot| -> usize {
        twins.snapshots(root).iter().filter_map(|m| m.rejected.as_ref()).map(|rel| {
            let file = std::fs::File::open(root.local_dir().unwrap().join(rel)).unwrap();
            ParquetReader::new(file).finish().unwrap().height()
        }).sum()
    };
    assert_eq!(rejected_rows(&twins.compacted), 2);
    assert_eq!(rejected_rows(&twins.plain), 2);

    // Compacted files are sorted by id in row groups a reader can skip.
    let products = twins.snapshots(&twins.compacted)[0].files["products"].clone();
    let frame = ParquetReader::new(std::fs::File::open(twins.compacted.local_dir().unwrap().join(products)).unwrap()).finish().unwrap();
    let ids: Vec<i64> = frame.column("product_id").unwrap().i64().unwrap().into_no_null_iter().collect();
    assert!(ids.windows(2).all(|w| w[0] <= w[1]), "sorted by product id: {ids:?}");

    // A second compaction has nothing left to merge; landing more and compacting again keeps the tables.
    assert!(compact::compact(&twins.compacted, SHOP, &compact::Policy::default()).unwrap().merged.is_empty());
    twins.land("products_update-1.json", &product_update("2025-04-06T00:00:00Z", "Mug v3", "23.00"));
    twins.land("events-3.jsonl", &event("x3", "c1", "2025-04-06T00:00:00Z", 2));
    let report = twins.compact();
    assert_eq!((report.snapshots_before, report.snapshots_after), (3, 1));
    twins.assert_same(&TIMES);
}

/// A historical fetch landed while webhooks arrived: those received after the
/// fetch started still count, the rest of what came before is replaced. With a
/// compacted snapshot that spans the fetch's start, that is decided row by row.
#[test]
fn a_full_fetch_landed_after_a_compaction_that_spans_its_start_replaces_exactly_what_it_should() {
    let mut twins = Twins::new();
    land_history(&mut twins);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let fetch_started = chrono::Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(5));
    // Received while the fetch ran: newer than what it will hold.
    twins.land("products_update-1.json", &product_update("2025-06-01T00:00:00Z", "Mug during fetch", "30.00"));
    twins.land("customers_update-1.json", &payload("customers_update-1.json", |c| {
        c["first_name"] = "Kai during fetch".into();
        c["updated_at"] = "2025-06-01T00:00:00Z".into();
    }));
    twins.compact();
    let spanning = twins.snapshots(&twins.compacted);
    assert_eq!(spanning.len(), 1);

    // The fetch: the fixture's bulk files only (product 4, deleted by a webhook
    // before the fetch started, is in it again: the fetch says it exists).
    let bulk: Vec<PathBuf> = ["products.jsonl", "collections.jsonl", "customers.jsonl", "orders.jsonl"].iter().map(|f| fixture("shop").join(f)).collect();
    twins.land_paths(&bulk, Some(fetch_started));
    twins.land("products_update-1.json", &product_update("2025-07-01T00:00:00Z", "Mug after fetch", "31.00"));
    let counts = twins.snapshots(&twins.compacted).iter().map(|m| {
        let full = land::FullMark { snapshot: twins.snapshots(&twins.compacted)[1].snapshot.clone(), started_at: Some(fetch_started.to_rfc3339()) };
        m.counts_after(&full)
    }).collect::<Vec<_>>();
    assert!(matches!(counts[0], land::Counts::Rows(_)), "the compacted snapshot spans the fetch's start: {counts:?}");
    let times = ["2025-03-25T00:00:00Z", "2025-06-15T00:00:00Z", "2025-12-01T00:00:00Z"];
    twins.assert_same(&times);

    // The webhook received during the fetch still wins where it is newer.
    let products = &main_tables(&twins.compacted, SHOP, None)[0].1;
    let titles: Vec<String> = products.column("title").unwrap().str().unwrap().iter().flatten().map(String::from).collect();
    assert!(titles.contains(&"Mug after fetch".to_string()), "{titles:?}");
    let customers = &main_tables(&twins.compacted, SHOP, None)[5].1;
    let names: Vec<String> = customers.column("first_name").unwrap().str().unwrap().iter().flatten().map(String::from).collect();
    assert!(names.contains(&"Kai during fetch".to_string()), "{names:?}");

    // Compacting the full snapshot in with the rest keeps it all too.
    let report = twins.compact();
    assert_eq!(report.snapshots_after, 1);
    twins.assert_same(&times);
}

/// The sample shop and a stream of small snapshots (as `serve` cycles land
/// them), compacted by the run that finds more than `compact_after` of them.
#[test]
fn runs_compact_the_sample_on_their_own_once_small_snapshots_pile_up() {
    let dir = tempfile::tempdir().unwrap();
    let sample = dir.path().join("sample");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample"), &sample);
    let mut twins = Twins::new();
    twins.land_paths(&[sample.clone()], None);
    for i in 0..12u32 {
        let body = payload("products_update-1.json", |p| {
            p["id"] = (7_100_000_000u64 + u64::from(i % 4)).into();
            p["updated_at"] = format!("2025-11-{:02}T00:00:00Z", 10 + i).into();
            p["title"] = format!("Sample product, version {i}").into();
        });
        twins.land("products_update-1.json", &body);
    }
    let root = &twins.compacted;
    let options = |after: usize| shopfeat::pipeline::RunOptions {
        source: shopfeat::pipeline::Source::Files(vec![sample.clone()]),
        as_of: Some(ts("2025-11-30T23:59:59Z")),
        pairs: Default::default(),
        keep_generations: 2,
        gorse: None,
        compaction: compact::Policy { after, history_days: None },
        kept: None,
    };
    let ran = shopfeat::pipeline::run(root, SHOP, &options(20)).unwrap();
    assert!(ran.compaction.is_none(), "13 small snapshots, 20 allowed");
    let ran = shopfeat::pipeline::run(root, SHOP, &options(8)).unwrap();
    let compaction = ran.compaction.expect("13 small snapshots, 8 allowed: compacted");
    assert_eq!((compaction.snapshots_before, compaction.snapshots_after), (13, 1));
    twins.assert_same(&["2025-11-15T12:00:00Z", "2025-11-30T23:59:59Z"]);
    // The run's inputs were landed before: compaction keeps their fingerprint.
    let again = shopfeat::pipeline::ingest_once(root, SHOP, &[sample]).unwrap();
    assert!(again.already_landed);
}

/// `[retention] history_days`: compaction drops versions superseded before the
/// horizon (with the children that travel with them), keeps deletions, ties and
/// the latest bulk lists, and every table at or after the horizon stays exact;
/// an earlier `--as-of` is refused, naming the horizon.
#[test]
fn history_days_drops_superseded_versions_and_refuses_an_as_of_before_the_horizon() {
    let mut twins = Twins::new();
    land_history(&mut twins);
    // A later bulk export lists product 2 in no collection (so it is no longer
    // in collection 500, whose list is older); webhook versions supersede that
    // line, which must stay all the same: it holds the product's latest list.
    let bulk = [
        r#"{"id":"gid://shopify/Product/2","title":"Blue Mug","handle":"blue-mug","status":"ACTIVE","createdAt":"2025-01-05T00:00:00Z","updatedAt":"2025-03-10T00:00:00Z","tags":[],"options":[]}"#,
        r#"{"id":"gid://shopify/ProductVariant/21","title":"Default Title","price":"8.50","inventoryQuantity":3,"__parentId":"gid://shopify/Product/2"}"#,
    ];
    twins.land("products-late.jsonl", &bulk.join("\n"));
    twins.land("products_update-1.json", &product_update("2025-04-06T00:00:00Z", "Mug v3", "23.00"));
    let memberships = |root: &DataRoot| main_tables(root, SHOP, None)[4].1.clone();
    let members: Vec<i64> = memberships(&twins.plain).column("product_id").unwrap().i64().unwrap().into_no_null_iter().collect();
    assert!(!members.is_empty() && !members.contains(&2), "product 2 left collection 500: {members:?}");
    let policy = compact::Policy { after: 64, history_days: Some(30) };
    compact::compact(&twins.compacted, SHOP, &policy).unwrap();
    let rows = |root: &DataRoot, entity: &str| -> u64 { twins.snapshots(root).iter().filter_map(|m| m.rows.get(entity)).sum() };
    for entity in ["products", "variants"] {
        assert!(rows(&twins.compacted, entity) < rows(&twins.plain, entity), "{entity}: superseded versions dropped ({} of {})", rows(&twins.compacted, entity), rows(&twins.plain, entity));
    }
    assert_eq!(rows(&twins.compacted, "events"), rows(&twins.plain, "events"), "events are never dropped");
    assert_eq!(rows(&twins.compacted, "refund_line_items"), rows(&twins.plain, "refund_line_items"));
    let now = chrono::Utc::now().to_rfc3339();
    twins.assert_same(&[now.as_str()]);

    let before = compute(&twins.compacted, SHOP, &ComputeOptions::at(ts("2025-03-25T00:00:00Z"))).map(|_| ()).unwrap_err();
    let message = format!("{before:#}");
    assert!(message.contains("history_days") && message.contains("is before"), "{message}");
    // The horizon survives a later compaction that drops nothing.
    twins.land("products_update-1.json", &product_update("2025-04-07T00:00:00Z", "Mug v4", "24.00"));
    compact::compact(&twins.compacted, SHOP, &compact::Policy::default()).unwrap();
    assert!(compute(&twins.compacted, SHOP, &ComputeOptions::at(ts("2025-03-25T00:00:00Z"))).is_err());
    twins.assert_same(&[now.as_str()]);
}
