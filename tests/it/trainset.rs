//! `shopfeat trainset`: every row's features equal a separate compute at its
//! cut-off (cut-offs exactly at an order and at an event among them), labels
//! against orders read by hand with the window's edges, late data moving labels
//! only, the same content hash twice, the DuckDB view, and clear errors.

use crate::common::*;
use polars::prelude::*;
use shopfeat::trainset::{self, Candidates, Label, Layout, Rows, TrainsetOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const DAY: i64 = 86_400_000_000;

fn sample() -> Landed {
    land(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")])
}

fn options(cutoffs: Vec<i64>, horizon: i64, rows: Rows) -> TrainsetOptions {
    TrainsetOptions { cutoffs, horizon, label: Label::Purchase, rows, active_days: 90, pairs: Default::default(), layout: Layout::Flat }
}

fn default_candidates() -> Rows {
    Rows::Candidates(Candidates::parse_list("pairs:20,popular:20,repurchase:10,embedding:20").unwrap())
}

fn read(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap()
}

/// The rows of `frame` whose `key` columns match `row`'s, as one row.
fn feature_row(frame: &DataFrame, key: &[(&str, i64)]) -> Option<DataFrame> {
    let mut filter = lit(true);
    for (c, v) in key {
        filter = filter.and(col(*c).eq(lit(*v)));
    }
    let found = frame.clone().lazy().filter(filter).collect().unwrap();
    assert!(found.height() <= 1);
    (found.height() == 1).then_some(found)
}

/// Every row's `prefix__` columns equal `table`'s row for its key (all nulls
/// when the table has none).
fn assert_features_match(rows: &DataFrame, table: &DataFrame, prefix: &str, key: &[&str]) {
    let columns: Vec<String> = table.get_column_names().iter().map(|c| c.to_string()).filter(|c| !key.contains(&c.as_str()) && c != "shop_id" && c != "computed_at").collect();
    assert!(!columns.is_empty());
    let mut checked = 0;
    for i in 0..rows.height() {
        let id = |c: &str| rows.column(c).unwrap().i64().unwrap().get(i).unwrap();
        let keys: Vec<(&str, i64)> = key.iter().map(|k| (*k, id(k))).collect();
        let expected = feature_row(table, &keys);
        for c in &columns {
            let got = rows.column(&format!("{prefix}__{c}")).unwrap().get(i).unwrap().into_static();
            let want = match &expected {
                Some(f) => f.column(c).unwrap().get(0).unwrap().into_static(),
                None => AnyValue::Null,
            };
            assert!(got == want || (got.is_null() && want.is_null()), "{prefix}__{c} of {keys:?}: {got:?} vs {want:?}");
        }
        checked += expected.is_some() as usize;
    }
    assert!(checked > 0, "some rows have a {prefix} row");
}

/// Valid orders' (customer, product, created_at, cancelled_at), read by hand
/// from the normalized tables as the shop stands at `at`.
fn order_lines(landed: &Landed, at: i64) -> Vec<(i64, i64, i64, Option<i64>)> {
    let tables = landed.tables(Some(at));
    let orders = &tables["orders"].0;
    let int = |f: &DataFrame, c: &str| f.column(c).unwrap().cast(&DataType::Int64).unwrap().i64().unwrap().iter().collect::<Vec<_>>();
    let test: Vec<Option<bool>> = orders.column("test").unwrap().bool().unwrap().iter().collect();
    let (ids, customers, created, cancelled) = (int(orders, "order_id"), int(orders, "customer_id"), int(orders, "created_at"), int(orders, "cancelled_at"));
    let mut by_id = BTreeMap::new();
    for i in 0..ids.len() {
        if let (Some(id), Some(c), false) = (ids[i], customers[i], test[i] == Some(true)) {
            by_id.insert(id, (c, created[i].unwrap(), cancelled[i]));
        }
    }
    let lines = &tables["line_items"].0;
    int(lines, "order_id")
        .into_iter()
        .zip(int(lines, "product_id"))
        .filter_map(|(o, p)| {
            let (c, at, cancelled) = *by_id.get(&o?)?;
            Some((c, p?, at, cancelled))
        })
        .collect()
}

#[test]
fn every_row_equals_a_compute_at_its_cutoff_and_labels_take_the_window_edges() {
    let landed = sample();
    let lines = order_lines(&landed, ts("2025-12-31T00:00:00Z"));
    let horizon = 7 * DAY;
    // A cut-off exactly at an order (which is then a feature, not a label), one
    // whose window ends exactly at another order (a label), and one exactly at
    // a product view of a linked customer.
    let mut sorted = lines.clone();
    sorted.retain(|l| l.3.is_none());
    sorted.sort_by_key(|l| l.2);
    let at_order = sorted[sorted.len() / 2];
    let ending_at = sorted[sorted.len() / 3];
    let tables = landed.tables(Some(ts("2025-12-31T00:00:00Z")));
    let events = &tables["events"].0;
    let viewed = events
        .clone()
        .lazy()
        .filter(col("name").eq(lit("product_viewed")).and(col("customer_id").is_not_null()).and(col("product_id").is_not_null()))
        .select([col("customer_id"), col("product_id"), col("timestamp").cast(DataType::Int64)])
        .sort(["timestamp"], Default::default())
        .collect()
        .unwrap();
    let v = viewed.height() / 2;
    let at_event = (viewed.column("customer_id").unwrap().i64().unwrap().get(v).unwrap(), viewed.column("product_id").unwrap().i64().unwrap().get(v).unwrap(), viewed.column("timestamp").unwrap().i64().unwrap().get(v).unwrap());
    let spine_rows = [(at_order.0, at_order.1, at_order.2), (ending_at.0, ending_at.1, ending_at.2 - horizon), (at_event.0, at_event.1, at_event.2)];
    let spine = DataFrame::new_infer_height(vec![
        Column::new("customer_id".into(), spine_rows.iter().map(|r| r.0).collect::<Vec<_>>()),
        Column::new("product_id".into(), spine_rows.iter().map(|r| r.1).collect::<Vec<_>>()),
        Column::new("cutoff".into(), spine_rows.iter().map(|r| r.2).collect::<Vec<_>>()).cast(&DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))).unwrap(),
    ])
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest = trainset::build(&landed.root, "test", &options(vec![], horizon, Rows::Spine(spine)), &dir.path().join("spine")).unwrap();
    assert_eq!(manifest.cutoffs.len(), 3);
    assert_eq!(manifest.rows, 3);

    // Candidates at a plain date too.
    let plain = ts("2025-10-15T00:00:00Z");
    let built = trainset::build(&landed.root, "test", &options(vec![plain], horizon, default_candidates()), &dir.path().join("candidates")).unwrap();
    assert!(built.rows > 1000 && built.positives > 0, "{} rows, {} positives", built.rows, built.positives);

    for (set, cutoffs) in [("spine", spine_rows.iter().map(|r| r.2).collect::<Vec<_>>()), ("candidates", vec![plain])] {
        for t in cutoffs {
            let rows = read(&dir.path().join(set).join(trainset::partition(t)).join("part-0.parquet"));
            compute(&landed.root, "test", t, Default::default()).unwrap();
            let table = |name: &str| read(&feature_file(&landed.root, "test", name));
            assert_features_match(&rows, &table("user_features"), "user", &["customer_id"]);
            assert_features_match(&rows, &table("product_features"), "product", &["product_id"]);
            assert_features_match(&rows, &table("interaction_features"), "interaction", &["customer_id", "product_id"]);
            // Labels by hand: a valid order (not cancelled by T + h) in (T, T + h].
            let (customers, products) = (rows.column("customer_id").unwrap().i64().unwrap().clone(), rows.column("product_id").unwrap().i64().unwrap().clone());
            let labels = rows.column("label_at").unwrap().cast(&DataType::Int64).unwrap();
            for i in 0..rows.height() {
                let (c, p) = (customers.get(i).unwrap(), products.get(i).unwrap());
                let first = lines.iter().filter(|l| l.0 == c && l.1 == p && l.2 > t && l.2 <= t + horizon && l.3.is_none_or(|x| x > t + horizon)).map(|l| l.2).min();
                assert_eq!(labels.i64().unwrap().get(i), first, "label of ({c}, {p}) at {t}");
            }
        }
    }
    // The edges: the order at the cut-off is a feature, not a label; the one at
    // T + h is a label.
    let row = |t: i64| read(&dir.path().join("spine").join(trainset::partition(t)).join("part-0.parquet"));
    let at = row(at_order.2);
    assert!(at.column("interaction__purchase_count").unwrap().i64().unwrap().get(0).unwrap() >= 1, "the order at T counts as a feature");
    let edge = row(ending_at.2 - horizon);
    assert_eq!(edge.column("label").unwrap().bool().unwrap().get(0), Some(true), "the order at T + h is a label");
    assert_eq!(edge.column("label_at").unwrap().cast(&DataType::Int64).unwrap().i64().unwrap().get(0), Some(ending_at.2));
    let seen = row(at_event.2);
    assert!(seen.column("interaction__view_count").unwrap().i64().unwrap().get(0).unwrap() >= 1, "the view at T counts");

    // Pairs: the partner among the customer's purchases of highest confidence.
    let rows = read(&dir.path().join("candidates").join(trainset::partition(plain)).join("part-0.parquet"));
    compute(&landed.root, "test", plain, Default::default()).unwrap();
    let pairs = read(&feature_file(&landed.root, "test", "product_pair_features"));
    let interactions = read(&feature_file(&landed.root, "test", "interaction_features"));
    let bought: BTreeSet<(i64, i64)> = (0..interactions.height())
        .filter(|&i| interactions.column("purchase_count").unwrap().i64().unwrap().get(i).unwrap() > 0)
        .map(|i| (interactions.column("customer_id").unwrap().i64().unwrap().get(i).unwrap(), interactions.column("product_id").unwrap().i64().unwrap().get(i).unwrap()))
        .collect();
    let f = |c: &str| pairs.column(c).unwrap().cast(&DataType::Float64).unwrap().f64().unwrap().iter().map(|v| v.unwrap_or(f64::NAN)).collect::<Vec<_>>();
    let (a, b, ab, ba) = (f("product_id_a"), f("product_id_b"), f("confidence_a_to_b"), f("confidence_b_to_a"));
    let mut with_pair = 0;
    for i in 0..rows.height() {
        let (c, p) = (rows.column("customer_id").unwrap().i64().unwrap().get(i).unwrap(), rows.column("product_id").unwrap().i64().unwrap().get(i).unwrap());
        let best = (0..a.len())
            .filter_map(|j| match (a[j] as i64, b[j] as i64) {
                (x, y) if y == p && bought.contains(&(c, x)) => Some(ab[j]),
                (x, y) if x == p && bought.contains(&(c, y)) => Some(ba[j]),
                _ => None,
            })
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        assert_eq!(rows.column("pair__confidence").unwrap().f64().unwrap().get(i), best, "pair of ({c}, {p})");
        with_pair += best.is_some() as usize;
    }
    assert!(with_pair > 0);

    // The view over the partitions.
    let db = duckdb::Connection::open(dir.path().join("candidates/trainset.duckdb")).unwrap();
    let n: i64 = db.query_row("SELECT count(*) FROM trainset", [], |r| r.get(0)).unwrap();
    assert_eq!(n as usize, built.rows);
    // The same inputs, the same content.
    let again = trainset::build(&landed.root, "test", &options(vec![plain], horizon, default_candidates()), &dir.path().join("again")).unwrap();
    assert_eq!(again.content_hash, built.content_hash);
    // Never over another set.
    let err = trainset::build(&landed.root, "test", &options(vec![plain], horizon, default_candidates()), &dir.path().join("again")).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
}

#[test]
fn orders_after_the_cutoff_move_labels_never_features() {
    let landed = sample();
    let t = ts("2025-10-01T00:00:00Z");
    let dir = tempfile::tempdir().unwrap();
    let before = trainset::build(&landed.root, "test", &options(vec![t], 7 * DAY, default_candidates()), &dir.path().join("before")).unwrap();
    let rows_before = read(&dir.path().join("before").join(trainset::partition(t)).join("part-0.parquet"));
    // After T: each customer with rows buys their first candidate.
    let customers = rows_before.column("customer_id").unwrap().i64().unwrap().clone();
    let products = rows_before.column("product_id").unwrap().i64().unwrap().clone();
    let mut first: BTreeMap<i64, i64> = BTreeMap::new();
    for i in 0..rows_before.height() {
        first.entry(customers.get(i).unwrap()).or_insert(products.get(i).unwrap());
    }
    let late = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(late.path().join("webhooks")).unwrap();
    let at = shopfeat::time::rfc3339(t + DAY);
    for (n, (customer, product)) in first.iter().enumerate() {
        let order = serde_json::json!({"id": 970_000_000 + n as i64, "name": format!("#T{n}"), "created_at": at, "updated_at": at, "test": false, "currency": "USD", "total_price": "10.00",
            "customer": {"id": customer}, "line_items": [{"id": 9_700_000_000i64 + n as i64, "product_id": product, "quantity": 1, "price": "10.00"}]});
        std::fs::write(late.path().join(format!("webhooks/orders_create-{n}.json")), serde_json::to_vec(&order).unwrap()).unwrap();
    }
    shopfeat::pipeline::ingest(&landed.root, "test", &[late.path().to_path_buf()]).unwrap();
    let after = trainset::build(&landed.root, "test", &options(vec![t], 7 * DAY, default_candidates()), &dir.path().join("after")).unwrap();
    let rows_after = read(&dir.path().join("after").join(trainset::partition(t)).join("part-0.parquet"));
    let features: Vec<String> = rows_before.get_column_names().iter().map(|c| c.to_string()).filter(|c| c != "label" && c != "label_at").collect();
    assert!(rows_after.select(features.clone()).unwrap().equals_missing(&rows_before.select(features).unwrap()), "features unchanged");
    assert!(after.positives >= before.positives + first.len() - 5, "{} positives after, {} before, {} late orders", after.positives, before.positives, first.len());
    assert_ne!(after.content_hash, before.content_hash);
}

#[test]
fn bad_arguments_are_clear_errors() {
    let landed = sample();
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_shopfeat")).args(["--root", &landed.root.describe(), "--shop", "test", "trainset"]).args(args).env_remove("SHOPFEAT_CONFIG").output().unwrap()
    };
    let out = dir.path().join("set");
    let bad = run(&["--cutoffs", "2025-10-01..2025-09-01/7d", "--out", out.to_str().unwrap()]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("the end is before the start"));
    let bad = run(&["--cutoffs", "2025-10-01", "--candidates", "pairs:10,nearby:5", "--out", out.to_str().unwrap()]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("\"nearby\" is not a candidate source"));
    let spine = dir.path().join("spine.parquet");
    let mut frame = df!("customer_id" => [1i64], "product_id" => [2i64]).unwrap();
    ParquetWriter::new(std::fs::File::create(&spine).unwrap()).finish(&mut frame).unwrap();
    let bad = run(&["--spine", spine.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("no column cutoff"), "{}", String::from_utf8_lossy(&bad.stderr));
    assert!(!out.exists(), "nothing written");
    let good = run(&["--cutoffs", "2025-10-01,2025-10-08", "--horizon", "3d", "--candidates", "popular:5", "--out", out.to_str().unwrap(), "--json"]);
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    let manifest: serde_json::Value = serde_json::from_slice(&good.stdout).unwrap();
    assert_eq!(manifest["horizon_seconds"], 3 * 86_400);
    assert_eq!(manifest["cutoffs"].as_array().unwrap().len(), 2);
    assert_eq!(manifest, serde_json::from_slice::<serde_json::Value>(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap());
}

#[test]
fn add_to_cart_labels_are_the_first_cart_add_in_the_window() {
    let landed = sample();
    let t = ts("2025-10-01T00:00:00Z");
    let horizon = 14 * DAY;
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(vec![t], horizon, Rows::Candidates(Candidates::parse_list("popular:20,viewed:10").unwrap()));
    o.label = Label::AddToCart;
    let manifest = trainset::build(&landed.root, "test", &o, &dir.path().join("carts")).unwrap();
    let rows = read(&dir.path().join("carts").join(trainset::partition(t)).join("part-0.parquet"));
    // By hand: cart adds of a linked customer in (T, T + h].
    let tables = landed.tables(Some(t + horizon));
    let events = &tables["events"].0;
    let name: Vec<Option<String>> = events.column("name").unwrap().str().unwrap().iter().map(|s| s.map(str::to_string)).collect();
    let int = |c: &str| events.column(c).unwrap().cast(&DataType::Int64).unwrap().i64().unwrap().iter().collect::<Vec<_>>();
    let (customers, products, times) = (int("customer_id"), int("product_id"), int("timestamp"));
    let mut first: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for i in 0..name.len() {
        if let (Some("product_added_to_cart"), Some(c), Some(p), Some(at)) = (name[i].as_deref(), customers[i], products[i], times[i]) {
            if at > t && at <= t + horizon {
                let e = first.entry((c, p)).or_insert(at);
                *e = (*e).min(at);
            }
        }
    }
    let labels = rows.column("label_at").unwrap().cast(&DataType::Int64).unwrap();
    for i in 0..rows.height() {
        let key = (rows.column("customer_id").unwrap().i64().unwrap().get(i).unwrap(), rows.column("product_id").unwrap().i64().unwrap().get(i).unwrap());
        assert_eq!(labels.i64().unwrap().get(i), first.get(&key).copied(), "{key:?}");
    }
    assert!(manifest.positives > 0, "some candidates were added to cart after T");
    assert_eq!(rows.get_column_names()[..7], ["cutoff", "customer_id", "product_id", "source__popular", "source__viewed", "label", "label_at"], "a flag per source, in the order named");
}

/// Each row's `source__*` flags say which sources proposed it: the lists
/// `evaluate` ranks with at `T` (from a separate compute's tables), and for
/// `popular` and `repurchase` lists read by hand from product_features and
/// interaction_features; every proposed product is a row, every row proposed.
#[test]
fn each_rows_source_flags_name_the_sources_that_proposed_it() {
    use shopfeat::evaluate::sources::{Knowledge, Source};
    let landed = sample();
    let t = ts("2025-10-15T00:00:00Z");
    let dir = tempfile::tempdir().unwrap();
    let o = options(vec![t], 7 * DAY, Rows::Candidates(Candidates::parse_list("popular:7,repurchase:3,pairs:5,embedding:4,co_view:3,viewed:2").unwrap()));
    trainset::build(&landed.root, "test", &o, &dir.path().join("set")).unwrap();
    let rows = read(&dir.path().join("set").join(trainset::partition(t)).join("part-0.parquet"));
    compute(&landed.root, "test", t, Default::default()).unwrap();
    let [products, pairs, embeddings, interactions, users] = ["product_features", "product_pair_features", "product_embeddings", "interaction_features", "user_features"].map(|table| read(&feature_file(&landed.root, "test", table)));
    let knowledge = Knowledge::at_t(&products, &pairs, &embeddings, &interactions, &users).unwrap();

    let ints = |frame: &DataFrame, c: &str| -> Vec<i64> { frame.column(c).unwrap().cast(&DataType::Int64).unwrap().i64().unwrap().iter().map(|v| v.unwrap_or(0)).collect() };
    // By hand: what each customer bought (most bought first, then the latest,
    // then the id), and the products on sale by purchases in 30 days, then in all.
    let (ic, ip, count, last) = (ints(&interactions, "customer_id"), ints(&interactions, "product_id"), ints(&interactions, "purchase_count"), ints(&interactions, "last_purchase_at"));
    let mut bought: BTreeMap<i64, Vec<(i64, i64, i64)>> = BTreeMap::new();
    for i in (0..ic.len()).filter(|&i| count[i] > 0) {
        bought.entry(ic[i]).or_default().push((-count[i], -last[i], ip[i]));
    }
    bought.values_mut().for_each(|l| l.sort());
    let active = products.column("is_active").unwrap().bool().unwrap().clone();
    let (id, recent, all) = (ints(&products, "product_id"), ints(&products, "purchase_count_30d"), ints(&products, "total_purchases"));
    let mut popular: Vec<(i64, i64, i64)> = (0..id.len()).filter(|&i| active.get(i) == Some(true)).map(|i| (-recent[i], -all[i], id[i])).collect();
    popular.sort();

    let customers = ints(&rows, "customer_id");
    let products_of_rows = ints(&rows, "product_id");
    let flag = |c: &str| rows.column(c).unwrap().bool().unwrap().iter().map(|v| v.unwrap()).collect::<Vec<_>>();
    let sources = ["popular", "repurchase", "pairs", "embedding", "co_view", "viewed"];
    let flags: Vec<Vec<bool>> = sources.iter().map(|s| flag(&format!("source__{s}"))).collect();
    let mut by_customer: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, c) in customers.iter().enumerate() {
        by_customer.entry(*c).or_default().push(i);
    }
    assert!(by_customer.len() > 20, "{} customers", by_customer.len());
    let mut proposed = [0usize; 6];
    for (&customer, row_ids) in &by_customer {
        let theirs = bought.get(&customer).cloned().unwrap_or_default();
        let expected: [BTreeSet<i64>; 6] = [
            popular.iter().map(|p| p.2).filter(|p| !theirs.iter().any(|b| b.2 == *p)).take(7).collect(),
            theirs.iter().map(|b| b.2).take(3).collect(),
            knowledge.scored(Source::PairsConfidence, customer, 5).into_iter().collect(),
            knowledge.scored(Source::Embedding, customer, 4).into_iter().collect(),
            knowledge.scored(Source::CoView, customer, 3).into_iter().collect(),
            knowledge.scored(Source::Viewed, customer, 2).into_iter().collect(),
        ];
        let in_rows: BTreeSet<i64> = row_ids.iter().map(|&i| products_of_rows[i]).collect();
        assert_eq!(in_rows.len(), row_ids.len(), "each product once a customer");
        assert_eq!(in_rows, expected.iter().flatten().copied().collect(), "customer {customer}: the rows are the products proposed");
        for &i in row_ids {
            for (s, source) in sources.iter().enumerate() {
                assert_eq!(flags[s][i], expected[s].contains(&products_of_rows[i]), "source__{source} of ({customer}, {})", products_of_rows[i]);
                proposed[s] += flags[s][i] as usize;
            }
        }
    }
    assert!(proposed.iter().all(|&n| n > 0), "every source proposed some rows: {proposed:?}");
}

/// The main tables normalized with the events and the order tables read once
/// equal a normalization at each time: before every event, exactly at events
/// (the first, a linking one, the last) and after everything.
#[test]
fn normalizing_with_the_events_and_orders_read_once_equals_normalizing_at_each_time() {
    use shopfeat::normalize::{self, RawTables, Shared};
    let landed = sample();
    let raw = RawTables::open(&landed.root, "test").unwrap();
    let whole = normalize::collect_all(vec![normalize::normalize(&raw, None).unwrap().events]).unwrap().remove(0);
    let times: Vec<i64> = whole.column("timestamp").unwrap().cast(&DataType::Int64).unwrap().i64().unwrap().into_no_null_iter().collect();
    let linking: Vec<i64> = whole.clone().lazy().filter(col("event_customer_id").is_not_null()).select([col("timestamp").cast(DataType::Int64)]).collect().unwrap().column("timestamp").unwrap().i64().unwrap().into_no_null_iter().collect();
    let (first, last) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
    let in_memory = raw.in_memory().unwrap();
    let shared = Shared::of(&in_memory).unwrap();
    for t in [first - 1, first, linking[linking.len() / 2], (first + last) / 2, last, last + DAY] {
        let direct = normalize::normalize(&raw, Some(t)).unwrap();
        let once = normalize::normalize_shared(&in_memory, t, &shared).unwrap();
        let tables = |main: normalize::MainTables| {
            let mut plans: Vec<LazyFrame> = main.named().into_iter().map(|(_, lf)| lf).collect();
            plans.extend([main.deleted_products.clone(), main.deleted_customers.clone()]);
            let features = main.for_features();
            plans.push(features.events.clone());
            normalize::collect_all(plans).unwrap()
        };
        let (direct, once) = (tables(direct), tables(once));
        // As sets of rows (joins do not keep an order), but the events' rows
        // part, which is sorted.
        let rows = |frame: &DataFrame, i: usize| {
            let keys: Vec<PlSmallStr> = frame.columns().iter().filter(|c| !matches!(c.dtype(), DataType::List(_))).map(|c| c.name().clone()).collect();
            if i == 12 { frame.clone() } else { frame.sort(keys, SortMultipleOptions::default().with_nulls_last(true)).unwrap() }
        };
        for (i, (a, b)) in direct.iter().zip(&once).enumerate() {
            let (a, b) = (rows(a, i), rows(b, i));
            assert!(a.equals_missing(&b), "table {i} at {t}: {a} != {b}");
        }
        assert!(direct[9].height() > 0 || t < first);
    }
}

/// What sessions browsed, from the sessions of every event the store holds
/// ([`BrowseTimes::of_every_event`], what a training set reads at each
/// cut-off), gives the pairs' co-view and co-cart counts and the product
/// embeddings (their contexts) that the sessions at `T` give (what `compute
/// --as-of` reads), at times that cut sessions between two of their views
/// and cart adds — just before the second, exactly at it — and after everything.
#[test]
fn browse_times_from_every_event_give_the_tables_at_each_time() {
    use shopfeat::features::sessions::BrowseTimes;
    use shopfeat::normalize::{self, RawTables, Shared};
    let landed = sample();
    let raw = RawTables::open(&landed.root, "test").unwrap();
    // Views and cart adds that follow one of the same kind in their session
    // (same browser, under 30 minutes before): a time just before one cuts
    // its session between the two.
    let whole = normalize::collect_all(vec![normalize::normalize(&raw, None).unwrap().events]).unwrap().remove(0);
    let browsed = col("name").eq(lit("product_viewed")).or(col("name").eq(lit("product_added_to_cart")));
    let seconds = whole
        .lazy()
        .filter(browsed.and(col("product_id").is_not_null()))
        .select([col("client_id"), col("name"), col("timestamp").cast(DataType::Int64).alias("t")])
        .sort(["client_id", "name", "t"], SortMultipleOptions::default())
        .filter(col("client_id").eq(col("client_id").shift(lit(1))).and(col("name").eq(col("name").shift(lit(1)))).and((col("t") - col("t").shift(lit(1))).lt_eq(lit(30 * 60 * 1_000_000i64))))
        .collect()
        .unwrap();
    let seconds: Vec<i64> = seconds.column("t").unwrap().i64().unwrap().into_no_null_iter().collect();
    assert!(seconds.len() > 20, "the sample has sessions with several views");
    let mut times: Vec<i64> = seconds.iter().step_by(seconds.len() / 8).flat_map(|&t| [t - 1, t]).collect();
    times.push(*seconds.iter().max().unwrap() + DAY);
    let in_memory = raw.in_memory().unwrap();
    let shared = Shared::of(&in_memory).unwrap();
    let store = BrowseTimes::of_every_event(&shared).unwrap();
    let sorted = |frame: &DataFrame, key: &[&str]| frame.sort(key.to_vec(), SortMultipleOptions::default()).unwrap();
    for t in times {
        let at_t = shopfeat::evaluate::tables_of(normalize::normalize(&raw, Some(t)).unwrap(), "test", t, Default::default(), true, None).unwrap();
        let from_store = shopfeat::evaluate::tables_of(normalize::normalize_shared(&in_memory, t, &shared).unwrap(), "test", t, Default::default(), true, Some(&store)).unwrap();
        let pairs = ["product_id_a", "product_id_b"];
        let (a, b) = (sorted(&at_t.pairs, &pairs), sorted(&from_store.pairs, &pairs));
        assert!(a.height() > 0 && a.column("co_view_count").unwrap().i64().unwrap().sum().unwrap() > 0);
        assert!(a.equals_missing(&b), "pairs at {t}: {a} != {b}");
        let (a, b) = (sorted(&at_t.embeddings, &["product_id"]), sorted(&from_store.embeddings, &["product_id"]));
        assert!(a.column("embedding").unwrap().null_count() < a.height());
        assert!(a.equals_missing(&b), "embeddings at {t}: {a} != {b}");
    }
}

/// The star layout (rows, and the user, product, interaction and pair columns
/// once per entity and cut-off) joined back is the flat layout, row for row
/// and column for column, in Polars and through the DuckDB view (also read by
/// DuckDB 1.4); a cut-off before anyone was active (no rows) among them.
#[test]
fn the_star_layout_joined_is_the_flat_layout() {
    let landed = sample();
    let cutoffs = vec![ts("2020-01-01T00:00:00Z"), ts("2025-10-01T00:00:00Z"), ts("2025-10-15T00:00:00Z")];
    let dir = tempfile::tempdir().unwrap();
    let flat = trainset::build(&landed.root, "test", &options(cutoffs.clone(), 7 * DAY, default_candidates()), &dir.path().join("flat")).unwrap();
    let mut o = options(cutoffs.clone(), 7 * DAY, default_candidates());
    o.layout = Layout::Star;
    let star = trainset::build(&landed.root, "test", &o, &dir.path().join("star")).unwrap();
    assert_eq!(star.columns, flat.columns, "the manifest names the flat columns");
    assert_eq!((star.rows, star.positives, star.label_events), (flat.rows, flat.positives, flat.label_events));
    assert_eq!(flat.cutoffs[0].rows, 0);
    assert!(flat.cutoffs[2].rows > 1000);
    assert_ne!(star.content_hash, flat.content_hash);

    for (t, summary) in cutoffs.iter().zip(&star.cutoffs) {
        let part = dir.path().join("star").join(trainset::partition(*t));
        let rows = read(&part.join("rows-0.parquet"));
        let [users, products, interactions, pairs] = ["users", "products", "interactions", "pairs"].map(|name| read(&part.join(format!("{name}.parquet"))));
        let files = summary.star.as_ref().expect("the star layout's files");
        assert_eq!(files.pairs_file, format!("{}/pairs.parquet", trainset::partition(*t)));
        assert_eq!(users.height(), summary.customers, "one users row a customer with rows");
        assert_eq!(rows.get_column_names(), ["cutoff", "customer_id", "product_id", "source__pairs", "source__popular", "source__repurchase", "source__embedding", "label", "label_at", "pair__partner_id"]);
        // Written once each: an interaction is a row's, a pair many rows'.
        assert!(interactions.height() <= rows.height() && pairs.height() <= rows.height());
        assert_eq!(pairs.select(["product_id", "pair__partner_id"]).unwrap().unique::<String, String>(None, UniqueKeepStrategy::Any, None).unwrap().height(), pairs.height());
        let joined = rows
            .lazy()
            .join(users.lazy(), [col("cutoff"), col("customer_id")], [col("cutoff"), col("customer_id")], JoinArgs::new(JoinType::Left))
            .join(products.lazy(), [col("cutoff"), col("product_id")], [col("cutoff"), col("product_id")], JoinArgs::new(JoinType::Left))
            .join(interactions.lazy(), [col("cutoff"), col("customer_id"), col("product_id")], [col("cutoff"), col("customer_id"), col("product_id")], JoinArgs::new(JoinType::Left))
            .join(pairs.lazy(), [col("cutoff"), col("product_id"), col("pair__partner_id")], [col("cutoff"), col("product_id"), col("pair__partner_id")], JoinArgs::new(JoinType::Left))
            .select(flat.columns.iter().map(|c| col(c.as_str())).collect::<Vec<_>>())
            .sort(["customer_id", "product_id"], Default::default())
            .collect()
            .unwrap();
        let expected = read(&dir.path().join("flat").join(trainset::partition(*t)).join("part-0.parquet"));
        assert_eq!(joined.height(), summary.rows);
        assert!(joined.equals_missing(&expected), "cut-off {t}: {joined} != {expected}");
    }

    // The view: the same columns in the same order, the same rows.
    let db = duckdb::Connection::open_in_memory().unwrap();
    for set in ["flat", "star"] {
        db.execute_batch(&format!("ATTACH '{}' AS {set} (READ_ONLY);", dir.path().join(set).join("trainset.duckdb").display())).unwrap();
    }
    let names = |set: &str| -> Vec<String> {
        let mut statement = db.prepare(&format!("SELECT column_name FROM (DESCRIBE {set}.trainset)")).unwrap();
        statement.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(names("star"), flat.columns);
    assert_eq!(names("flat"), flat.columns);
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM star.trainset") as usize, flat.rows);
    assert_eq!(count("SELECT count(*) FROM (SELECT * FROM star.trainset EXCEPT ALL SELECT * FROM flat.trainset)"), 0);
    assert_eq!(count("SELECT count(*) FROM (SELECT * FROM flat.trainset EXCEPT ALL SELECT * FROM star.trainset)"), 0);
    assert!(count("SELECT count(*) FROM star.trainset WHERE product__view_count_30d IS NOT NULL AND user__customer_state IS NOT NULL") > 0, "the joins found the entities");
    assert!(count("SELECT count(*) FROM star.trainset WHERE interaction__view_count IS NOT NULL AND pair__lift IS NOT NULL") > 0, "the joins found the interactions and pairs");

    // DuckDB 1.4, the long-term-support line analysts may have, opens both
    // files and reads the same rows through their views.
    let digest = "SELECT count(*), count(interaction__view_count), count(pair__lift), sum(user__total_purchases), sum(product__view_count_30d) FROM trainset";
    let expected: Vec<String> = ["flat", "star"].iter().map(|set| db.query_row(&digest.replace("trainset", &format!("{set}.trainset")), [], |r| Ok(format!("{:?}", (r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i128>(3)?, r.get::<_, i128>(4)?)))).unwrap()).collect();
    drop(db);
    let Some(python) = crate::duckdb_views::lts_python() else {
        eprintln!("DuckDB 1.4 not tried: set SHOPFEAT_DUCKDB_LTS_PYTHON (as .ci/run does)");
        return;
    };
    for (set, expected) in ["flat", "star"].iter().zip(expected) {
        let script = format!("import duckdb, sys\nrow = duckdb.connect(sys.argv[1], read_only=True).execute({digest:?}).fetchone()\nprint('(' + ', '.join(str(int(v)) for v in row) + ')')");
        let path = dir.path().join(set).join("trainset.duckdb");
        let output = std::process::Command::new(&python).arg("-c").arg(&script).arg(&path).output().unwrap();
        assert!(output.status.success(), "DuckDB 1.4 could not read {}: {}", path.display(), String::from_utf8_lossy(&output.stderr));
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), expected, "{set}");
    }
}
