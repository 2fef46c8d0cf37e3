//! product_pair_features: by hand on the fixture shop, against a deliberately naive
//! reference on random baskets, with its bounds, and on the sample's planted bundles.

use crate::common::*;
use polars::prelude::*;
use shopfeat::features::pairs::{self, PairOptions};
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn the_one_pair_of_the_fixture_shop() {
    // Valid orders at T: O1 (product 1 twice, a custom line), O2 (1), O3 (1), O6 (1 and 4),
    // O8 (a custom line only): 5 orders; product 1 in 4 of them, product 4 in 1.
    let t = features_fixture("2025-03-01T00:00:00Z", pairs::build);
    assert_eq!(t.height(), 1);
    assert_eq!((t.int("product_id_a", 1, "product_id_b"), t.int("product_id_a", 1, "co_purchase_count")), (Some(4), Some(1)));
    // No session viewed or carted both.
    assert_eq!((t.int("product_id_a", 1, "co_view_count"), t.int("product_id_a", 1, "co_cart_count")), (Some(0), Some(0)));
    close(t.float("product_id_a", 1, "support"), 0.2); // 1 / 5
    close(t.float("product_id_a", 1, "confidence_a_to_b"), 0.25); // 1 / 4
    close(t.float("product_id_a", 1, "confidence_b_to_a"), 1.0); // 1 / 1
    close(t.float("product_id_a", 1, "lift"), 1.25); // 0.2 / (0.8 · 0.2)
    assert_eq!(t.int("product_id_a", 1, "first_co_purchase_at"), Some(ts("2025-02-26T12:00:00Z")));
    assert_eq!(t.int("product_id_a", 1, "last_co_purchase_at"), Some(ts("2025-02-26T12:00:00Z")));
}

/// Random baskets: (order id, test, cancelled, products of its lines, duplicates included).
fn random_baskets(n: usize) -> Vec<(i64, bool, bool, Vec<i64>)> {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move |m: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % m
    };
    (0..n)
        .map(|i| {
            let lines = 1 + next(5) as usize;
            // Skewed: low ids are popular.
            let products = (0..lines).map(|_| (next(40) * next(40) / 40) as i64 + 1).collect();
            (i as i64 + 1, next(50) == 0, next(25) == 0, products)
        })
        .collect()
}

fn inputs_for(baskets: &[(i64, bool, bool, Vec<i64>)]) -> (tempfile::TempDir, shopfeat::features::Inputs) {
    let dir = tempfile::tempdir().unwrap();
    let root = shopfeat::storage::DataRoot::open(dir.path().to_str().unwrap()).unwrap();
    let raw = shopfeat::normalize::RawTables::open(&root, "empty").unwrap();
    let mut main = shopfeat::normalize::normalize(&raw, None).unwrap();
    let t0 = ts("2025-01-01T00:00:00Z");
    let utc = DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC));
    let ids: Vec<i64> = baskets.iter().map(|b| b.0).collect();
    let created: Vec<i64> = ids.iter().map(|i| t0 + i * 60_000_000).collect();
    let cancelled: Vec<Option<i64>> = baskets.iter().zip(&created).map(|(b, c)| b.2.then_some(c + 1)).collect();
    let test: Vec<bool> = baskets.iter().map(|b| b.1).collect();
    let totals = vec![1.0; baskets.len()];
    main.orders = df!("order_id" => ids, "created_at" => created, "cancelled_at" => cancelled, "test" => test, "customer_id" => vec![None::<i64>; baskets.len()], "total_price" => totals)
        .unwrap()
        .lazy()
        .with_columns([col("created_at").cast(utc.clone()), col("cancelled_at").cast(utc)]);
    let (mut order_ids, mut products) = (vec![], vec![]);
    for (id, _, _, ps) in baskets {
        for p in ps {
            order_ids.push(*id);
            products.push(*p);
        }
    }
    let n = order_ids.len();
    main.line_items = df!("order_id" => order_ids, "product_id" => products, "quantity" => vec![1i64; n], "unit_price" => vec![1.0; n], "discount" => vec![0.0; n]).unwrap().lazy();
    main.events = browsing(baskets, t0);
    let as_of = ts("2026-01-01T00:00:00Z");
    (dir, shopfeat::features::Inputs::new(main, "s", as_of, PairOptions::default()).unwrap())
}

/// Every third order's products were viewed, every fifth order's added to cart, by a
/// browser of its own within a minute (one session each).
fn browsing(baskets: &[(i64, bool, bool, Vec<i64>)], t0: i64) -> LazyFrame {
    let (mut ids, mut names, mut clients, mut times, mut products) = (vec![], vec![], vec![], vec![], vec![]);
    for (id, _, _, ps) in baskets {
        for (name, every) in [("product_viewed", 3), ("product_added_to_cart", 5)] {
            if id % every == 0 {
                for (k, p) in ps.iter().enumerate() {
                    ids.push(format!("{name}-{id}-{k}"));
                    names.push(name);
                    clients.push(format!("c{id}"));
                    times.push(t0 + id * 3_600_000_000 + k as i64 * 1_000_000);
                    products.push(*p);
                }
            }
        }
    }
    let n = ids.len();
    df!("event_id" => ids, "name" => names, "client_id" => clients, "timestamp" => times, "customer_id" => vec![None::<i64>; n], "product_id" => products)
        .unwrap()
        .lazy()
        .with_column(col("timestamp").cast(DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))))
        // The rest of the main events table's columns, empty.
        .with_columns(
            [("collection_id", DataType::Int64), ("order_id", DataType::Int64), ("product_ids", DataType::List(Box::new(DataType::Int64)))]
                .into_iter()
                .chain(["search_query", "url", "path", "referrer", "user_agent"].map(|c| (c, DataType::String)))
                .map(|(c, t)| lit(NULL).cast(t).alias(c))
                .collect::<Vec<_>>(),
        )
}

/// Naive co-session counts: browsers (one session each) whose `every`-th order held both.
fn naive_co_sessions(baskets: &[(i64, bool, bool, Vec<i64>)], every: i64, a: i64, b: i64) -> i64 {
    baskets.iter().filter(|(id, _, _, ps)| id % every == 0 && ps.contains(&a) && ps.contains(&b)).count() as i64
}

#[test]
fn pairs_equal_a_naive_reference_on_random_baskets() {
    let baskets = random_baskets(3000);
    // The reference: nested loops over valid orders, each product once per order.
    let valid: Vec<BTreeSet<i64>> = baskets.iter().filter(|b| !b.1 && !b.2).map(|b| b.3.iter().copied().collect()).collect();
    let n = valid.len() as f64;
    let mut orders_with: BTreeMap<i64, f64> = BTreeMap::new();
    let mut together: BTreeMap<(i64, i64), f64> = BTreeMap::new();
    for basket in &valid {
        for &a in basket {
            *orders_with.entry(a).or_default() += 1.0;
            for &b in basket {
                if a < b {
                    *together.entry((a, b)).or_default() += 1.0;
                }
            }
        }
    }
    let (_dir, inputs) = inputs_for(&baskets);
    let t = Table(pairs::build(&inputs).unwrap().collect().unwrap());
    assert_eq!(t.height(), together.len());
    let (a, b) = (t.i64s("product_id_a"), t.i64s("product_id_b"));
    let f = |c: &str| t.0.column(c).unwrap().f64().unwrap().iter().collect::<Vec<_>>();
    let (support, conf_ab, conf_ba, lift) = (f("support"), f("confidence_a_to_b"), f("confidence_b_to_a"), f("lift"));
    let co = t.i64s("co_purchase_count");
    let (views, carts) = (t.i64s("co_view_count"), t.i64s("co_cart_count"));
    let mut nonzero = 0;
    for i in 0..t.height() {
        let (pa, pb) = (a[i].unwrap(), b[i].unwrap());
        let c = together[&(pa, pb)];
        let (na, nb) = (orders_with[&pa], orders_with[&pb]);
        assert_eq!(co[i], Some(c as i64), "({pa}, {pb})");
        close(support[i], c / n);
        close(conf_ab[i], c / na);
        close(conf_ba[i], c / nb);
        close(lift[i], (c / n) / ((na / n) * (nb / n)));
        assert_eq!(views[i], Some(naive_co_sessions(&baskets, 3, pa, pb)), "co_view ({pa}, {pb})");
        assert_eq!(carts[i], Some(naive_co_sessions(&baskets, 5, pa, pb)), "co_cart ({pa}, {pb})");
        nonzero += usize::from(views[i] > Some(0));
    }
    assert!(nonzero > 100, "{nonzero} pairs co-viewed");
}

#[test]
fn bounds_keep_frequent_pairs_and_each_products_best_partners() {
    let baskets = random_baskets(3000);
    let (_dir, mut inputs) = inputs_for(&baskets);
    let mut pairs_within = |options: PairOptions| {
        inputs.pairs = options;
        pairs::build(&inputs).unwrap().collect().unwrap()
    };
    let all = pairs_within(PairOptions::default());
    let frequent = pairs_within(PairOptions { min_co_purchases: 5, max_pairs_per_product: None, ..Default::default() });
    let expected = all.column("co_purchase_count").unwrap().i64().unwrap().iter().flatten().filter(|c| *c >= 5).count();
    assert_eq!(frequent.height(), expected);
    let k = 3;
    let bounded = pairs_within(PairOptions { min_co_purchases: 1, max_pairs_per_product: Some(k), ..Default::default() });
    let mut partners: BTreeMap<i64, usize> = BTreeMap::new();
    let (a, b) = (bounded.column("product_id_a").unwrap().i64().unwrap(), bounded.column("product_id_b").unwrap().i64().unwrap());
    for (x, y) in a.iter().zip(b.iter()) {
        *partners.entry(x.unwrap()).or_default() += 1;
        *partners.entry(y.unwrap()).or_default() += 1;
    }
    assert!(!partners.is_empty());
    assert!(partners.values().all(|&n| n <= k as usize), "{partners:?}");
    // The single best pair of the shop (highest lift, then count) is each side's best: kept.
    let best = all.clone().lazy()
        .sort(["lift", "co_purchase_count"], SortMultipleOptions::default().with_order_descending_multi([true, true]))
        .first().collect().unwrap();
    let key = (best.column("product_id_a").unwrap().i64().unwrap().get(0), best.column("product_id_b").unwrap().i64().unwrap().get(0));
    assert!(a.iter().zip(b.iter()).any(|p| p == key), "{key:?}");
}

#[test]
fn the_samples_planted_bundles_are_among_the_highest_lift_pairs() {
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(sample.join("manifest.json")).unwrap()).unwrap();
    let landed = land(&[sample]);
    let as_of = ts(manifest["as_of"].as_str().unwrap());
    let options = PairOptions { min_co_purchases: 3, max_pairs_per_product: None, ..Default::default() };
    let tables = crate::common::compute(&landed.root, "test", as_of, options).unwrap().tables;
    let pairs = &tables.iter().find(|(n, _)| *n == "product_pair_features").unwrap().1;
    let ranked = pairs.clone().lazy()
        .sort(["lift", "co_purchase_count"], SortMultipleOptions::default().with_order_descending_multi([true, true]))
        .collect().unwrap();
    let a: Vec<i64> = ranked.column("product_id_a").unwrap().i64().unwrap().iter().flatten().collect();
    let b: Vec<i64> = ranked.column("product_id_b").unwrap().i64().unwrap().iter().flatten().collect();
    let bundles = manifest["bundles"].as_array().unwrap();
    for bundle in bundles {
        let key = (bundle["product_id_a"].as_i64().unwrap(), bundle["product_id_b"].as_i64().unwrap());
        let rank = a.iter().zip(&b).position(|(x, y)| (*x, *y) == key);
        assert!(rank.is_some_and(|r| r < 2 * bundles.len()), "bundle {key:?} ranks {rank:?} of {}", a.len());
    }
}
