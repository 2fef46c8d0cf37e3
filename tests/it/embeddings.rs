//! product_embeddings: each step against a reference written from its
//! definition (co-occurrence by brute force, SPPMI in its directed form, the
//! eigendecomposition against a matrix whose spectrum is known by
//! construction), the table's support against contexts counted by hand, the
//! planted bundles, determinism, point in time, the bfloat16 round trip Gorse
//! makes, and the Gorse label.

use crate::common::*;
use polars::prelude::*;
use shopfeat::features::embeddings::{co_occurrence, embed, sppmi, truncated_eigen, unit_rows, EmbeddingOptions, Eigen, Sets, SparseRows};
use shopfeat::features::pairs::PairOptions;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const SAMPLE_AS_OF: &str = "2025-11-30T23:59:59Z";

fn dense(m: &SparseRows) -> Vec<Vec<f64>> {
    let mut out = vec![vec![0.0; m.n()]; m.n()];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, v) in m.row(i) {
            row[j] = v;
        }
    }
    out
}

#[test]
fn co_occurrence_and_sppmi_match_their_definitions() {
    // Two tight pairs, a bridge and a basket of all but 0: some PMIs are cut.
    let contexts: Vec<Vec<u32>> = vec![vec![0, 1], vec![0, 1], vec![0, 1], vec![2, 3], vec![2, 3], vec![2, 3], vec![0, 2], vec![1, 2, 3, 4]];
    let mut sets = Sets::default();
    for c in &contexts {
        sets.push(c.iter().copied());
    }
    let n = 5;
    // Brute force: every ordered pair of distinct members of every context.
    let mut counts = vec![vec![0.0; n]; n];
    for c in &contexts {
        for &a in c {
            for &b in c {
                if a != b {
                    counts[a as usize][b as usize] += 1.0;
                }
            }
        }
    }
    let c = co_occurrence(&sets, n);
    assert_eq!(dense(&c), counts);
    assert_eq!(counts[0][1], 3.0, "three contexts hold 0 and 1");

    // PMI(i→j) = ln(P(i,j) / (P(i)·P_α(j))), the matrix the mean of both
    // directions, cut at 0.
    let total: Vec<f64> = counts.iter().map(|r| r.iter().sum()).collect();
    let d: f64 = total.iter().sum();
    let z: f64 = total.iter().map(|t| t.powf(0.75)).sum();
    let directed = |i: usize, j: usize| ((counts[i][j] / d) / ((total[i] / d) * (total[j].powf(0.75) / z))).ln();
    let m = dense(&sppmi(&c));
    let (mut positive, mut cut) = (0, 0);
    for i in 0..n {
        for j in 0..n {
            let mean = if counts[i][j] > 0.0 { 0.5 * (directed(i, j) + directed(j, i)) } else { 0.0 };
            assert!((m[i][j] - mean.max(0.0)).abs() < 1e-12, "M[{i}][{j}] = {} vs {mean}", m[i][j]);
            positive += (mean > 0.0) as usize;
            cut += (counts[i][j] > 0.0 && mean <= 0.0) as usize;
        }
    }
    assert_eq!((positive, cut), (10, 6), "some entries kept, some cut");
}

/// `H·diag(λ)·H` with the Householder reflection `H = I − 2vvᵀ/vᵀv`: its
/// eigenvalues are `λ` and its eigenvectors `H`'s columns.
fn known_spectrum(values: &[f64]) -> (SparseRows, Vec<Vec<f64>>) {
    let n = values.len();
    let v: Vec<f64> = (0..n).map(|i| ((i * 7 + 3) % 11) as f64 - 5.0).collect();
    let vv: f64 = v.iter().map(|x| x * x).sum();
    let h: Vec<Vec<f64>> = (0..n).map(|i| (0..n).map(|j| (i == j) as u8 as f64 - 2.0 * v[i] * v[j] / vv).collect()).collect();
    let rows = (0..n).map(|i| (0..n).map(|j| (j as u32, (0..n).map(|k| h[i][k] * values[k] * h[k][j]).sum::<f64>())).collect()).collect();
    (SparseRows::from_rows(rows), h)
}

#[test]
fn the_truncated_eigendecomposition_finds_the_largest_magnitudes_of_a_known_spectrum() {
    // Randomized subspace iteration (n well above d + oversampling): a negative
    // eigenvalue of large magnitude is among the leading ones.
    let mut values: Vec<f64> = (0..120).map(|i| 1.0 - 0.005 * i as f64).collect();
    values[17] = 50.0;
    values[60] = -40.0;
    values[3] = 30.0;
    values[99] = 25.0;
    let (m, h) = known_spectrum(&values);
    let Eigen { values: found, vectors } = truncated_eigen(&m, 4);
    let expected = [50.0, -40.0, 30.0, 25.0];
    for (f, e) in found.iter().zip(expected) {
        assert!((f - e).abs() < 1e-8, "{found:?}");
    }
    for (e, column) in [17, 60, 3, 99].into_iter().enumerate() {
        let dot: f64 = (0..120).map(|i| vectors[i * 4 + e] * h[i][column]).sum();
        assert!((dot.abs() - 1.0).abs() < 1e-8, "eigenvector {e} is H's column {column} up to sign: {dot}");
    }
    // A small matrix is decomposed whole: every eigenvalue, largest magnitude first.
    let (small, _) = known_spectrum(&[3.0, -7.0, 0.5, 2.0, -1.0]);
    let all = truncated_eigen(&small, 32);
    let expected = [-7.0, 3.0, 2.0, -1.0, 0.5];
    assert_eq!(all.values.len(), 5);
    for (f, e) in all.values.iter().zip(expected) {
        assert!((f - e).abs() < 1e-10, "{:?}", all.values);
    }
}

#[test]
fn rows_are_unit_vectors_of_the_dimension_or_none() {
    // Two eigenpairs of three rows; the third row is zero.
    let eigen = Eigen { values: vec![4.0, -1.0], vectors: vec![0.6, 0.0, 0.8, 1.0, 0.0, 0.0] };
    let rows = unit_rows(&eigen, 5);
    assert_eq!(rows[2], None);
    for row in rows.iter().take(2) {
        let row = row.as_ref().unwrap();
        assert_eq!(row.len(), 5, "padded to the dimension: Gorse compares vectors of one length");
        assert!((row.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() - 1.0).abs() < 1e-6);
    }
    // W = U·|Λ|^½ before normalising: row 0 is (0.6·2, 0) → (1, 0); row 1 (0.8·2, 1·1).
    assert_eq!(rows[0].as_ref().unwrap()[..2], [1.0, 0.0]);
    let norm = (1.6f64.powi(2) + 1.0).sqrt();
    assert!((f64::from(rows[1].as_ref().unwrap()[0]) - 1.6 / norm).abs() < 1e-6);
}

/// The sample landed and computed at its `as_of` with `pairs`.
fn sample_embeddings(pairs: PairOptions) -> (Landed, DataFrame) {
    let landed = land(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")]);
    compute(&landed.root, "test", ts(SAMPLE_AS_OF), pairs).unwrap();
    let frame = ParquetReader::new(std::fs::File::open(feature_file(&landed.root, "test", "product_embeddings")).unwrap()).finish().unwrap();
    (landed, frame)
}

/// product → vector (rows that have one).
fn vectors(frame: &DataFrame) -> BTreeMap<i64, Vec<f32>> {
    let ids = frame.column("product_id").unwrap().i64().unwrap().clone();
    let lists = frame.column("embedding").unwrap().list().unwrap().clone();
    (0..frame.height()).filter_map(|i| Some((ids.get(i)?, lists.get_as_series(i)?.f32().unwrap().into_no_null_iter().collect()))).collect()
}

/// The contexts at `T` gathered with plain loops over the normalized tables:
/// valid orders' distinct products, and sessions (a browser's events with gaps
/// of at most 30 minutes) of product views and cart adds, those with two
/// products or more.
fn contexts_by_hand(landed: &Landed, t: i64) -> Vec<BTreeSet<i64>> {
    let tables = landed.tables(Some(t));
    let catalog: BTreeSet<i64> = tables["products"].ids("product_id").into_iter().collect();
    let orders = &tables["orders"].0;
    let int = |f: &DataFrame, c: &str| f.column(c).unwrap().cast(&DataType::Int64).unwrap().i64().unwrap().iter().collect::<Vec<_>>();
    let (ids, created, cancelled) = (int(orders, "order_id"), int(orders, "created_at"), int(orders, "cancelled_at"));
    let test: Vec<Option<bool>> = orders.column("test").unwrap().bool().unwrap().iter().collect();
    let valid: BTreeSet<i64> = (0..ids.len()).filter(|&i| test[i] != Some(true) && created[i].unwrap() <= t && !cancelled[i].is_some_and(|c| c <= t)).map(|i| ids[i].unwrap()).collect();
    let mut contexts: BTreeMap<(u8, i64), BTreeSet<i64>> = BTreeMap::new();
    let lines = &tables["line_items"].0;
    for (order, product) in int(lines, "order_id").into_iter().zip(int(lines, "product_id")) {
        if let (Some(o), Some(p)) = (order, product) {
            if valid.contains(&o) && catalog.contains(&p) {
                contexts.entry((0, o)).or_default().insert(p);
            }
        }
    }
    let events = &tables["events"].0;
    let text = |c: &str| events.column(c).unwrap().str().unwrap().iter().map(|s| s.map(str::to_string)).collect::<Vec<_>>();
    let (browsers, times, names, products) = (text("client_id"), int(events, "timestamp"), text("name"), int(events, "product_id"));
    let mut order: Vec<usize> = (0..browsers.len()).filter(|&i| times[i].unwrap() <= t).collect();
    order.sort_by_key(|&i| (browsers[i].clone(), times[i]));
    let mut session = 0;
    let browsed = ["product_viewed", "product_added_to_cart"];
    for (k, &i) in order.iter().enumerate() {
        if k > 0 {
            let previous = order[k - 1];
            if browsers[previous] != browsers[i] || times[i].unwrap() - times[previous].unwrap() > 30 * 60 * 1_000_000 {
                session += 1;
            }
        }
        if let (true, Some(p)) = (browsed.contains(&names[i].as_deref().unwrap()), products[i]) {
            if catalog.contains(&p) {
                contexts.entry((1, session)).or_default().insert(p);
            }
        }
    }
    contexts.into_values().filter(|c| c.len() >= 2).collect()
}

/// Each product's contexts at `T` ([`contexts_by_hand`]).
fn support_by_hand(landed: &Landed, t: i64) -> BTreeMap<i64, i64> {
    let mut support = BTreeMap::new();
    for products in contexts_by_hand(landed, t) {
        for p in products {
            *support.entry(p).or_insert(0) += 1;
        }
    }
    support
}

#[test]
fn the_table_holds_the_vectors_of_the_contexts_gathered_by_hand() {
    // The steps after the contexts are tested against their definitions
    // above; this checks what reaches them: the same contexts give the same
    // bits as the table.
    let (landed, frame) = sample_embeddings(PairOptions::default());
    let contexts = contexts_by_hand(&landed, ts(SAMPLE_AS_OF));
    let ids: Vec<i64> = contexts.iter().flatten().copied().collect::<BTreeSet<_>>().into_iter().collect();
    let mut sets = Sets::default();
    let mut support = vec![0u32; ids.len()];
    for context in &contexts {
        let numbers: Vec<u32> = context.iter().map(|p| ids.binary_search(p).unwrap() as u32).collect();
        for n in &numbers {
            support[*n as usize] += 1;
        }
        sets.push(numbers);
    }
    let expected = embed(&sets, &support, EmbeddingOptions::default());
    let table = vectors(&frame);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut compared = 0;
    for (id, want) in ids.iter().zip(&expected) {
        assert_eq!(table.get(id).map(|v| bits(v)), want.as_ref().map(|v| bits(v)), "{id}");
        compared += want.is_some() as usize;
    }
    assert_eq!(compared, table.len(), "every vector of the table");
}

#[test]
fn the_sample_has_a_unit_vector_per_supported_product_and_support_counted_by_hand() {
    let (landed, frame) = sample_embeddings(PairOptions::default());
    let t = ts(SAMPLE_AS_OF);
    let products = landed.tables(Some(t))["products"].height();
    assert_eq!(frame.height(), products, "one row per product in the catalog at T");
    let by_hand = support_by_hand(&landed, t);
    let ids = frame.column("product_id").unwrap().i64().unwrap().clone();
    let support = frame.column("support").unwrap().i64().unwrap().clone();
    let vectors = vectors(&frame);
    let (mut under, mut supported_without) = (0, 0);
    for i in 0..frame.height() {
        let id = ids.get(i).unwrap();
        let s = support.get(i).unwrap();
        assert_eq!(s, by_hand.get(&id).copied().unwrap_or(0), "support of {id}");
        if s < 3 {
            assert!(!vectors.contains_key(&id), "{id} under the minimum support has no vector");
            under += 1;
        } else if !vectors.contains_key(&id) {
            // Only with products under the support, or with an SPPMI of 0 only.
            supported_without += 1;
        }
    }
    assert!(under > 0 && vectors.len() > 100, "{under} under the support, {} with a vector", vectors.len());
    assert!(supported_without * 10 < vectors.len(), "{supported_without} with the support but no vector");
    for (id, v) in &vectors {
        assert_eq!(v.len(), 32, "{id}");
        assert!((v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() - 1.0).abs() < 1e-5, "{id} is a unit vector");
    }
    // The options shape it: another dimension, every product with support.
    let options = PairOptions { embeddings: EmbeddingOptions { dimension: 8, min_support: 1 }, ..Default::default() };
    let (_, small) = sample_embeddings(options);
    let small = self::vectors(&small);
    assert!(small.values().all(|v| v.len() == 8));
    assert!(small.len() > vectors.len(), "{} with min support 1 vs {}", small.len(), vectors.len());
}

/// The `k` nearest products (cosine; ties by id) to `id` among `vectors`.
fn nearest(vectors: &BTreeMap<i64, Vec<f32>>, id: i64, k: usize) -> Vec<i64> {
    let v = &vectors[&id];
    let mut scored: Vec<(f64, i64)> = vectors.iter().filter(|(q, _)| **q != id).map(|(q, w)| (v.iter().zip(w).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum(), *q)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, q)| q).collect()
}

#[test]
fn the_planted_bundles_are_mutual_top_3_neighbours_and_vectors_repeat_bit_for_bit() {
    let (_landed, frame) = sample_embeddings(PairOptions::default());
    let vectors = vectors(&frame);
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample/manifest.json")).unwrap()).unwrap();
    let bundles = manifest["bundles"].as_array().unwrap();
    assert!(!bundles.is_empty());
    for bundle in bundles {
        let (a, b) = (bundle["product_id_a"].as_i64().unwrap(), bundle["product_id_b"].as_i64().unwrap());
        assert!(nearest(&vectors, a, 3).contains(&b), "{b} in {a}'s top 3: {:?}", nearest(&vectors, a, 3));
        assert!(nearest(&vectors, b, 3).contains(&a), "{a} in {b}'s top 3: {:?}", nearest(&vectors, b, 3));
    }
    let (_, again) = sample_embeddings(PairOptions::default());
    let bits = |v: &BTreeMap<i64, Vec<f32>>| v.iter().map(|(k, v)| (*k, v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())).collect::<BTreeMap<_, _>>();
    assert_eq!(bits(&self::vectors(&again)), bits(&vectors), "the same shop and T give the same bits");
}

#[test]
fn orders_and_events_after_t_leave_the_embeddings_unchanged() {
    let landed = land(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")]);
    let t = ts("2025-11-10T00:00:00Z");
    let at_t = |landed: &Landed| -> DataFrame {
        compute(&landed.root, "test", t, Default::default()).unwrap();
        ParquetReader::new(std::fs::File::open(feature_file(&landed.root, "test", "product_embeddings")).unwrap()).finish().unwrap()
    };
    let before = at_t(&landed);
    let vectors_before = vectors(&before);
    assert!(vectors_before.len() > 50);
    // After T: every pair of embedded products bought together and viewed in
    // one session, many times over — enough to move every vector if it counted.
    let ids: Vec<i64> = vectors_before.keys().copied().take(40).collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("webhooks")).unwrap();
    let late = shopfeat::time::rfc3339(t + 86_400_000_000);
    let mut events = String::new();
    for (n, pair) in ids.windows(2).enumerate() {
        let lines: Vec<serde_json::Value> = pair.iter().enumerate().map(|(k, p)| serde_json::json!({"id": 9_800_000_000i64 + 2 * n as i64 + k as i64, "product_id": p, "quantity": 1, "price": "10.00"})).collect();
        let order = serde_json::json!({"id": 980_000_000 + n as i64, "name": format!("#L{n}"), "created_at": late, "updated_at": late, "test": false, "currency": "USD", "total_price": "20.00", "line_items": lines});
        std::fs::write(dir.path().join(format!("webhooks/orders_create-{n}.json")), serde_json::to_vec(&order).unwrap()).unwrap();
        for (k, p) in pair.iter().enumerate() {
            events.push_str(&serde_json::json!({"id": format!("late-{n}-{k}"), "name": "product_viewed", "clientId": format!("late-browser-{n}"), "timestamp": late,
                "data": {"productVariant": {"id": 1, "product": {"id": p}}}}).to_string());
            events.push('\n');
        }
    }
    std::fs::write(dir.path().join("events-late.jsonl"), events).unwrap();
    let report = shopfeat::pipeline::ingest(&landed.root, "test", &[dir.path().to_path_buf()]).unwrap();
    assert!(report.landed.skipped.values().all(|n| *n == 0), "{:?}", report.landed.skipped);
    let after = at_t(&landed);
    assert!(after.equals_missing(&before), "the same rows, support and bits at T");
    // … while a later T sees them.
    compute(&landed.root, "test", t + 2 * 86_400_000_000, Default::default()).unwrap();
    let later = ParquetReader::new(std::fs::File::open(feature_file(&landed.root, "test", "product_embeddings")).unwrap()).finish().unwrap();
    let support = |f: &DataFrame, id: i64| f.clone().lazy().filter(col("product_id").eq(lit(id))).collect().unwrap().column("support").unwrap().i64().unwrap().get(0);
    assert!(support(&later, ids[1]) > support(&before, ids[1]), "the late orders count after them");
}

/// Gorse's conversion (common/bfloats): a float32's top 16 bits.
fn bfloat16(x: f32) -> f32 {
    f32::from_bits(x.to_bits() & 0xffff_0000)
}

#[test]
fn what_gorse_keeps_of_the_vectors_keeps_their_neighbours() {
    let (landed, frame) = sample_embeddings(PairOptions::default());
    let vectors = vectors(&frame);
    // The labels as a dry-run export writes them, read back as Gorse reads them.
    let out = landed.root.local_dir().unwrap().join("requests.jsonl");
    let mut options = shopfeat::sinks::gorse::Options::new("http://127.0.0.1:1");
    options.dry_run = Some(out.clone());
    shopfeat::sinks::gorse::export(&landed.root, "test", &options).unwrap();
    let mut sent: BTreeMap<i64, Vec<f32>> = BTreeMap::new();
    let mut items = 0;
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let request: serde_json::Value = serde_json::from_str(line).unwrap();
        if request["path"] != "/api/items" {
            continue;
        }
        for item in request["body"].as_array().unwrap() {
            items += 1;
            let id: i64 = item["ItemId"].as_str().unwrap().parse().unwrap();
            match item["Labels"].get("embedding") {
                Some(v) => {
                    sent.insert(id, v.as_array().unwrap().iter().map(|x| bfloat16(x.as_f64().unwrap() as f32)).collect());
                }
                None => assert!(!vectors.contains_key(&id), "{id} has a vector but no label"),
            }
        }
    }
    assert_eq!(items, frame.height());
    assert_eq!(sent.keys().collect::<Vec<_>>(), vectors.keys().collect::<Vec<_>>(), "a label for each vector");
    assert!(sent.values().all(|v| v.len() == 32), "one dimension for every item");
    let kept: Vec<f64> = vectors
        .keys()
        .map(|&id| {
            let (exact, rounded) = (nearest(&vectors, id, 10), nearest(&sent, id, 10));
            exact.iter().filter(|p| rounded.contains(p)).count() as f64 / exact.len() as f64
        })
        .collect();
    let mean = kept.iter().sum::<f64>() / kept.len() as f64;
    assert!(mean >= 0.95, "the bfloat16 vectors keep {mean:.3} of the top-10 neighbours");
}
