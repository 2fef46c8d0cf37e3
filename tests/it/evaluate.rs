//! `shopfeat evaluate`: the metrics against hand-computed values, the split and
//! the popularity baseline against an independent reference on the sample, and
//! point in time (nothing after `T` moves what the sources know).

use polars::prelude::*;
use shopfeat::evaluate::metrics::{estimate, scores};
use shopfeat::evaluate::sources::Source;
use shopfeat::evaluate::{self, EvaluateOptions};
use shopfeat::storage::DataRoot;
use std::collections::{BTreeMap, BTreeSet};

const DAY: i64 = 86_400_000_000;

fn sample_root() -> (tempfile::TempDir, DataRoot) {
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::open(&dir.path().display().to_string()).unwrap();
    shopfeat::pipeline::ingest(&root, "s", &[std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")]).unwrap();
    (dir, root)
}

#[test]
fn hit_rate_recall_and_ndcg_as_computed_by_hand() {
    // Top 2 of [5, 3, 9] holds one of the two relevant items, at place 2.
    let s = scores(&[5, 3, 9], &[3, 7], 2);
    assert_eq!((s.hit, s.recall), (1.0, 0.5));
    let ndcg = (1.0 / 3f64.log2()) / (1.0 + 1.0 / 3f64.log2());
    assert!((s.ndcg - ndcg).abs() < 1e-12, "{} vs {ndcg}", s.ndcg);
    // At k = 1 nothing is found; all found at the top is 1.
    assert_eq!(scores(&[5, 3, 9], &[3, 7], 1), shopfeat::evaluate::metrics::Scores { hit: 0.0, recall: 0.0, ndcg: 0.0 });
    assert_eq!(scores(&[7, 3], &[3, 7], 10).ndcg, 1.0);
    assert!(scores(&[1, 2], &[9], 10).ndcg.is_sign_positive(), "no -0.0");
    // Three resamples of two customers: means 0, 1 and 0.5.
    let e = estimate(&[0.0, 1.0], &[vec![0, 0], vec![1, 1], vec![0, 1]]);
    assert_eq!((e.mean, e.low, e.high), (0.5, 0.0, 1.0));
}

/// (product_id → (purchases 30d, all time, active)) and each customer's valid
/// purchases (customer → [(created_at, product)]), read from the normalized
/// tables with plain loops: the reference's own view of the shop.
fn purchases_by_hand(root: &DataRoot, at: i64) -> BTreeMap<i64, Vec<(i64, i64)>> {
    let main = shopfeat::pipeline::normalize(root, "s", Some(at)).unwrap();
    let frames = shopfeat::normalize::collect_all(vec![main.orders.clone(), main.line_items.clone()]).unwrap();
    let (orders, lines) = (&frames[0], &frames[1]);
    let ts = |c: &Column| c.cast(&DataType::Int64).unwrap().i64().unwrap().iter().collect::<Vec<_>>();
    let (ids, customers, created, cancelled) = (ts(orders.column("order_id").unwrap()), ts(orders.column("customer_id").unwrap()), ts(orders.column("created_at").unwrap()), ts(orders.column("cancelled_at").unwrap()));
    let test: Vec<Option<bool>> = orders.column("test").unwrap().bool().unwrap().iter().collect();
    let mut valid: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for i in 0..ids.len() {
        let (Some(id), Some(c), Some(t)) = (ids[i], customers[i], created[i]) else { continue };
        let cancelled_by = cancelled[i].is_some_and(|x| x <= at);
        if t <= at && test[i] != Some(true) && !cancelled_by {
            valid.insert(id, (c, t));
        }
    }
    let mut by_customer: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for (order, product) in ts(lines.column("order_id").unwrap()).into_iter().zip(ts(lines.column("product_id").unwrap())) {
        if let (Some(order), Some(product)) = (order, product) {
            if let Some((c, t)) = valid.get(&order) {
                by_customer.entry(*c).or_default().push((*t, product));
            }
        }
    }
    by_customer
}

#[test]
fn the_split_and_the_popularity_baseline_match_an_independent_reference() {
    let (_dir, root) = sample_root();
    let t = shopfeat::time::parse_time("2025-11-10").unwrap();
    let options = EvaluateOptions { resamples: 200, ..EvaluateOptions::at(t) };
    let evaluation = evaluate::evaluate(&root, "s", &options).unwrap();

    // The reference: who bought before T, what they bought in (T, T + 14 d] that
    // was new to them and on sale at T, and the 10 most popular products on sale.
    let history = purchases_by_hand(&root, t);
    let later = purchases_by_hand(&root, t + 14 * DAY);
    let products = shopfeat::pipeline::compute(&root, "s", &shopfeat::pipeline::ComputeOptions::at(t)).unwrap();
    let products = products.tables.iter().find(|(n, _)| *n == "product_features").unwrap().1.clone();
    let column = |name: &str| products.column(name).unwrap().cast(&DataType::Int64).unwrap().i64().unwrap().iter().map(|v| v.unwrap_or(0)).collect::<Vec<_>>();
    let (ids, recent, all) = (column("product_id"), column("purchase_count_30d"), column("total_purchases"));
    let active: Vec<bool> = products.column("is_active").unwrap().bool().unwrap().iter().map(|a| a == Some(true)).collect();
    let mut on_sale: Vec<(i64, i64, i64)> = (0..ids.len()).filter(|&i| active[i]).map(|i| (-recent[i], -all[i], ids[i])).collect();
    on_sale.sort();
    let sale: BTreeSet<i64> = on_sale.iter().map(|p| p.2).collect();
    let (mut tested, mut hits, mut to_find) = (0, 0, 0);
    for (customer, before) in &history {
        let before: BTreeSet<i64> = before.iter().map(|(_, p)| *p).collect();
        let new: BTreeSet<i64> = later.get(customer).into_iter().flatten().filter(|(at, p)| *at > t && sale.contains(p) && !before.contains(p)).map(|(_, p)| *p).collect();
        if new.is_empty() {
            continue;
        }
        tested += 1;
        to_find += new.len();
        let top: Vec<i64> = on_sale.iter().map(|p| p.2).filter(|p| !before.contains(p)).take(10).collect();
        hits += usize::from(top.iter().any(|p| new.contains(p)));
    }
    assert!(tested >= 5, "the sample has customers to test: {tested}");
    assert_eq!((evaluation.customers, evaluation.test_purchases, evaluation.catalog), (tested, to_find, sale.len()));
    let popularity = evaluation.sources.iter().find(|s| s.source == "popularity_30d").unwrap();
    assert!((popularity.hit_rate.mean - hits as f64 / tested as f64).abs() < 1e-12, "{} vs {hits}/{tested}", popularity.hit_rate.mean);
    assert!(popularity.hit_rate.low <= popularity.hit_rate.mean && popularity.hit_rate.mean <= popularity.hit_rate.high);
    assert_eq!(evaluation.sources.len(), Source::ALL.len());

    // The same shop and T: the same numbers (when and how long aside).
    let again = evaluate::evaluate(&root, "s", &options).unwrap();
    let strip = |e: &evaluate::Evaluation| serde_json::to_value(evaluate::Evaluation { seconds: 0.0, evaluated_at: String::new(), ..e.clone() }).unwrap();
    assert_eq!(strip(&again), strip(&evaluation));
}

#[test]
fn orders_and_events_after_t_change_nothing_the_sources_know() {
    let (_dir, root) = sample_root();
    let t = shopfeat::time::parse_time("2025-11-10").unwrap();
    let before = evaluate::knowledge_at(&root, "s", t, Default::default()).unwrap();
    // After T: an order of every customer who bought before, of the most popular
    // product, and a view of it by the same browsers' customers.
    let dir = tempfile::tempdir().unwrap();
    let popular = before.popular[0];
    let at = shopfeat::time::rfc3339(t + DAY);
    let customers: Vec<i64> = before.bought.keys().copied().collect();
    std::fs::create_dir_all(dir.path().join("webhooks")).unwrap();
    let mut events = String::new();
    for (n, customer) in customers.iter().enumerate() {
        let order = serde_json::json!({"id": 990_000_000 + n as i64, "name": format!("#L{n}"), "created_at": at, "updated_at": at, "test": false, "currency": "USD", "total_price": "10.00",
            "customer": {"id": customer}, "line_items": [{"id": 9_900_000_000i64 + n as i64, "product_id": popular, "quantity": 1, "price": "10.00"}]});
        std::fs::write(dir.path().join(format!("webhooks/orders_create-{n}.json")), serde_json::to_vec(&order).unwrap()).unwrap();
        events.push_str(&serde_json::json!({"id": format!("late-{n}"), "name": "product_viewed", "clientId": format!("late-browser-{n}"), "customerId": customer, "timestamp": at,
            "data": {"productVariant": {"id": 1, "product": {"id": popular}}}}).to_string());
        events.push('\n');
    }
    std::fs::write(dir.path().join("events-late.jsonl"), events).unwrap();
    let landed = shopfeat::pipeline::ingest(&root, "s", &[dir.path().to_path_buf()]).unwrap();
    assert!(landed.landed.skipped.values().all(|n| *n == 0), "{:?}", landed.landed.skipped);
    let after = evaluate::knowledge_at(&root, "s", t, Default::default()).unwrap();
    assert_eq!(after.popular, before.popular);
    assert_eq!(after.bought, before.bought);
    for source in Source::ALL {
        for customer in &customers {
            assert_eq!(after.rank(source, *customer, 10), before.rank(source, *customer, 10), "{} for {customer}", source.name());
        }
    }
    // While a split after them sees them.
    let later = evaluate::purchases_between(&root, "s", t, t + 2 * DAY).unwrap();
    assert!(customers.iter().all(|c| later.get(c).is_some_and(|p| p.contains(&popular))));
}

#[test]
fn the_command_prints_json_writes_parquet_and_splits_before_the_last_order_by_default() {
    let (dir, root) = sample_root();
    let out = dir.path().join("evaluation.parquet");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_shopfeat"))
        .args(["--root", dir.path().to_str().unwrap(), "--shop", "s", "evaluate", "--json", "--resamples", "50", "--out", out.to_str().unwrap()])
        .env_remove("SHOPFEAT_CONFIG")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(printed["sources"].as_array().unwrap().len(), Source::ALL.len());
    assert!(String::from_utf8_lossy(&run.stderr).contains("hit rate@10"), "the table goes to stderr with --json");
    // T = the last valid order minus the 14-day horizon.
    let last = evaluate::last_order_at(&root, "s").unwrap();
    assert_eq!(printed["as_of"], shopfeat::time::rfc3339(last - 14 * DAY));
    let written = ParquetReader::new(std::fs::File::open(&out).unwrap()).finish().unwrap();
    assert_eq!(written.height(), Source::ALL.len());
    let hit: Vec<f64> = written.column("hit_rate").unwrap().f64().unwrap().into_no_null_iter().collect();
    let printed_hit: Vec<f64> = printed["sources"].as_array().unwrap().iter().map(|s| s["hit_rate"]["mean"].as_f64().unwrap()).collect();
    // (JSON parsing may round the last bit.)
    assert!(hit.iter().zip(&printed_hit).all(|(a, b)| (a - b).abs() < 1e-12), "{hit:?} vs {printed_hit:?}");

    // The report shows the last evaluation, and says so when there is none.
    let report = |page: &std::path::Path| {
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_shopfeat")).args(["--root", dir.path().to_str().unwrap(), "--shop", "s", "report", "--out", page.to_str().unwrap()]).env_remove("SHOPFEAT_CONFIG").output().unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        std::fs::read_to_string(page).unwrap()
    };
    let page = report(&dir.path().join("page.html"));
    let blend = printed["sources"].as_array().unwrap().iter().find(|s| s["source"] == "blend").unwrap();
    let shown = format!("<tr class=\"source\" data-source=\"blend\"><td>blend</td><td class=\"num hit-rate\">{:.3} [", blend["hit_rate"]["mean"].as_f64().unwrap());
    assert!(page.contains(&shown), "the report shows the blend's hit rate ({shown})");
    std::fs::remove_file(dir.path().join("s/evaluation.json")).unwrap();
    assert!(report(&dir.path().join("again.html")).contains("not evaluated yet"));
}

#[test]
fn similar_lists_a_products_partners_as_the_pair_table_ranks_them_and_finds_the_planted_bundles() {
    let (dir, root) = sample_root();
    let t = shopfeat::time::parse_time("2025-11-30T23:59:59Z").unwrap();
    crate::common::compute(&root, "s", t, Default::default()).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample/manifest.json")).unwrap()).unwrap();
    let similar = |product: i64| -> serde_json::Value {
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_shopfeat"))
            .args(["--root", dir.path().to_str().unwrap(), "--shop", "s", "similar", &product.to_string(), "--k", "3", "--json"])
            .env_remove("SHOPFEAT_CONFIG")
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        serde_json::from_slice(&run.stdout).unwrap()
    };
    // The reference: the product's rows of the pair table, by confidence from it.
    let pairs = ParquetReader::new(std::fs::File::open(crate::common::feature_file(&root, "s", "product_pair_features")).unwrap()).finish().unwrap();
    let column = |name: &str| pairs.column(name).unwrap().cast(&DataType::Float64).unwrap().f64().unwrap().iter().map(|v| v.unwrap_or(0.0)).collect::<Vec<_>>();
    let (a, b) = (column("product_id_a"), column("product_id_b"));
    let (to_b, to_a) = (column("confidence_a_to_b"), column("confidence_b_to_a"));
    for bundle in manifest["bundles"].as_array().unwrap() {
        let (x, y) = (bundle["product_id_a"].as_i64().unwrap(), bundle["product_id_b"].as_i64().unwrap());
        let printed = similar(x);
        let ids = |source: &str| printed["sources"][source].as_array().unwrap().iter().map(|n| n["product_id"].as_i64().unwrap()).collect::<Vec<_>>();
        assert!(ids("pairs_confidence").contains(&y), "{x}'s bundle partner {y} in its top 3 by confidence: {printed}");
        let mut partners: Vec<(f64, i64)> = (0..a.len())
            .filter_map(|i| match (a[i] as i64, b[i] as i64) {
                (p, q) if p == x => Some((to_b[i], q)),
                (p, q) if q == x => Some((to_a[i], p)),
                _ => None,
            })
            .collect();
        partners.sort_by(|l, r| r.0.total_cmp(&l.0));
        let best = printed["sources"]["pairs_confidence"][0]["score"].as_f64().unwrap();
        assert_eq!(best, partners[0].0, "the best confidence is the pair table's");
    }
    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_shopfeat")).args(["--root", dir.path().to_str().unwrap(), "--shop", "s", "similar", "12345"]).env_remove("SHOPFEAT_CONFIG").output().unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("product 12345 is not in the current feature tables"));
}

/// The mean, over customers with at least `min_lines` lines, of the share of
/// their lines — and of the products they viewed in visits that bought nothing
/// (no `checkout_completed` from their browser within the hour) — in their two
/// most bought product types.
fn taste_concentration(shop: &std::path::Path, min_lines: usize) -> (f64, f64) {
    let landed = crate::common::land(&[shop.to_path_buf()]);
    let tables = landed.tables(None);
    let (orders, lines, products) = (&tables["orders"].0, &tables["line_items"].0, &tables["products"].0);
    let ids = |frame: &DataFrame, c: &str| frame.column(c).unwrap().i64().unwrap().iter().collect::<Vec<_>>();
    let owner: BTreeMap<i64, i64> = ids(orders, "order_id").into_iter().zip(ids(orders, "customer_id")).filter_map(|(o, c)| Some((o?, c?))).collect();
    let kinds: BTreeMap<i64, String> = ids(products, "product_id").into_iter().zip(products.column("product_type").unwrap().str().unwrap().iter()).filter_map(|(p, t)| Some((p?, t?.to_string()))).collect();
    let mut bought: BTreeMap<i64, BTreeMap<String, usize>> = BTreeMap::new();
    for (order, product) in ids(lines, "order_id").into_iter().zip(ids(lines, "product_id")) {
        if let (Some(c), Some(t)) = (order.and_then(|o| owner.get(&o)), product.and_then(|p| kinds.get(&p))) {
            *bought.entry(*c).or_default().entry(t.clone()).or_default() += 1;
        }
    }
    let top_two = |types: &BTreeMap<String, usize>| {
        let mut counts: Vec<(usize, &String)> = types.iter().map(|(t, n)| (*n, t)).collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        counts.iter().take(2).map(|(_, t)| (*t).clone()).collect::<Vec<_>>()
    };
    let shares: Vec<f64> = bought
        .values()
        .filter_map(|types| {
            let total: usize = types.values().sum();
            let mut counts: Vec<usize> = types.values().copied().collect();
            counts.sort_unstable_by(|a, b| b.cmp(a));
            (total >= min_lines).then(|| counts.iter().take(2).sum::<usize>() as f64 / total as f64)
        })
        .collect();
    // Views in visits without a checkout, of customers with enough lines.
    let events = &tables["events"].0;
    let text = |c: &str| events.column(c).unwrap().str().unwrap().iter().map(|s| s.map(str::to_string)).collect::<Vec<_>>();
    let (names, clients) = (text("name"), text("client_id"));
    let (customers, products) = (ids(events, "customer_id"), ids(events, "product_id"));
    let times: Vec<i64> = events.column("timestamp").unwrap().cast(&DataType::Int64).unwrap().i64().unwrap().into_no_null_iter().collect();
    let mut checkouts: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for i in 0..names.len() {
        if names[i].as_deref() == Some("checkout_completed") {
            checkouts.entry(clients[i].clone().unwrap()).or_default().push(times[i]);
        }
    }
    let (mut in_taste, mut views) = (0usize, 0usize);
    for i in 0..names.len() {
        let (Some(c), Some(p)) = (customers[i], products[i]) else { continue };
        let buying = checkouts.get(clients[i].as_ref().unwrap()).is_some_and(|ts| ts.iter().any(|t| (t - times[i]).abs() < 3_600_000_000));
        let Some(types) = bought.get(&c).filter(|t| t.values().sum::<usize>() >= min_lines) else { continue };
        if names[i].as_deref() == Some("product_viewed") && !buying {
            views += 1;
            in_taste += kinds.get(&p).is_some_and(|t| top_two(types).contains(t)) as usize;
        }
    }
    (shares.iter().sum::<f64>() / shares.len() as f64, in_taste as f64 / views.max(1) as f64)
}

#[test]
fn generated_tastes_keep_customers_to_their_types_and_leave_the_presets_alone() {
    let (plain, tasted) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let hidden = shopfeat::progress::Progress::hidden();
    let m = shopfeat::generate::generate(shopfeat::generate::PresetName::Sample, 42, plain.path(), false, &hidden).unwrap();
    let t = shopfeat::generate::generate_with(shopfeat::generate::PresetName::Sample, 42, Some(Default::default()), tasted.path(), false, &hidden).unwrap();
    assert!(m.tastes.is_none() && !std::fs::read_to_string(plain.path().join("manifest.json")).unwrap().contains("tastes"), "a preset's manifest is unchanged");
    assert_eq!(t.tastes, Some(shopfeat::generate::Tastes { strength: 0.7, repeat: 0.3 }));
    let (without, with) = (taste_concentration(plain.path(), 4), taste_concentration(tasted.path(), 4));
    assert!(with.0 > without.0 + 0.15, "two types hold {:.2} of a customer's lines with tastes, {:.2} without", with.0, without.0);
    assert!(with.1 > without.1 + 0.15, "and {:.2} of what they view in visits that buy nothing, {:.2} without", with.1, without.1);
}

#[test]
fn a_peers_lists_are_scored_on_the_same_split_with_the_same_metrics() {
    let (dir, root) = sample_root();
    let t = shopfeat::time::parse_time("2025-11-10").unwrap();
    let split = dir.path().join("split");
    let mut options = EvaluateOptions { resamples: 100, write_split: Some(split.clone()), ..EvaluateOptions::at(t) };
    let plain = evaluate::evaluate(&root, "s", &options).unwrap();
    let read = |name: &str| ParquetReader::new(std::fs::File::open(split.join(format!("{name}.parquet"))).unwrap()).finish().unwrap();
    let customers: Vec<i64> = read("customers").column("customer_id").unwrap().i64().unwrap().into_no_null_iter().collect();
    assert_eq!(customers.len(), plain.customers);
    assert_eq!(read("catalog").height(), plain.catalog);
    let knowledge = evaluate::knowledge_at(&root, "s", t, Default::default()).unwrap();
    assert_eq!(read("train").height(), knowledge.bought.values().map(Vec::len).sum::<usize>(), "every purchase before T");
    // A peer that ranks as popularity does scores as popularity; one that
    // ranks nothing scores zero.
    let (mut model, mut customer, mut rank, mut product) = (vec![], vec![], vec![], vec![]);
    for c in &customers {
        for (r, p) in knowledge.rank(Source::Popularity, *c, 10).into_iter().enumerate() {
            (model.push("copy"), customer.push(*c), rank.push(r as i64 + 1), product.push(p));
        }
    }
    (model.push("lost"), customer.push(-1), rank.push(1), product.push(-1));
    let lists = df!("model" => model, "customer_id" => customer, "rank" => rank, "product_id" => product).unwrap();
    (options.write_split, options.peer_lists) = (None, Some(lists));
    let with_peer = evaluate::evaluate(&root, "s", &options).unwrap();
    let find = |name: &str| with_peer.sources.iter().find(|s| s.source == name).unwrap_or_else(|| panic!("{name}")).clone();
    let (copy, popularity, lost) = (find("peer:copy"), find("popularity_30d"), find("peer:lost"));
    assert_eq!((copy.hit_rate.mean, copy.hit_rate.low, copy.hit_rate.high), (popularity.hit_rate.mean, popularity.hit_rate.low, popularity.hit_rate.high));
    assert_eq!((copy.ndcg.mean, copy.recall.mean, copy.coverage), (popularity.ndcg.mean, popularity.recall.mean, popularity.coverage));
    assert!(copy.hit_rate.mean > 0.0);
    assert_eq!((lost.hit_rate.mean, lost.coverage), (0.0, 0.0));
}
