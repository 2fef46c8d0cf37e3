//! Candidate sources: each ranks the whole catalog on sale at `T` for one
//! customer from what the feature tables at `T` know — nothing after `T`.

use anyhow::Result;
use polars::prelude::*;
use rayon::prelude::*;
use std::collections::HashMap;

/// The sources `evaluate` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Purchases in the 30 days before `T` (the same list for everyone).
    Popularity,
    /// Products bought with the customer's purchases, by the best lift.
    PairsLift,
    /// … by the best confidence (purchase → partner).
    PairsConfidence,
    /// Products viewed in the same sessions as the customer's purchases and
    /// views (among pairs bought together), by the summed co-view count.
    CoView,
    /// Products in the collections of the customer's purchases, by how many of
    /// those purchases share one.
    SameCollection,
    /// Products of the customer's `preferred_category` (user_features: the
    /// product type they bought most units of), by popularity.
    PreferredCategory,
    /// The nearest products (product_embeddings, cosine) of each product the
    /// customer bought or viewed, by the summed similarity.
    Embedding,
    /// Products the customer viewed (interaction_features) and has not
    /// bought, the more popular first: "recently viewed".
    Viewed,
    /// Up to 5 products viewed and not bought, then weighted reciprocal-rank
    /// fusion of pairs by confidence, co-view, embeddings, preferred category
    /// and popularity ([`BLEND`]).
    Blend,
}

impl Source {
    pub const ALL: [Source; 9] = [Source::Popularity, Source::PairsLift, Source::PairsConfidence, Source::CoView, Source::SameCollection, Source::PreferredCategory, Source::Embedding, Source::Viewed, Source::Blend];

    pub fn name(self) -> &'static str {
        match self {
            Source::Popularity => "popularity_30d",
            Source::PairsLift => "pairs_lift",
            Source::PairsConfidence => "pairs_confidence",
            Source::CoView => "co_view",
            Source::SameCollection => "same_collection",
            Source::PreferredCategory => "preferred_category",
            Source::Embedding => "embedding",
            Source::Viewed => "viewed",
            Source::Blend => "blend",
        }
    }

    /// Whether it ranks per customer (popularity does not).
    pub fn personalised(self) -> bool {
        self != Source::Popularity
    }
}

/// A product's partner in product_pair_features.
#[derive(Debug, Clone, Copy)]
struct Partner {
    /// Its popularity rank when it is on sale.
    rank: Option<usize>,
    lift: f64,
    confidence: f64,
    co_views: f64,
}

/// What the sources know at `T`.
pub struct Knowledge {
    /// Products on sale at `T`, most popular first (purchases in 30 days, then
    /// all time, then id).
    pub popular: Vec<i64>,
    popularity_rank: PlHashMap<i64, usize>,
    partners: HashMap<i64, Vec<Partner>>,
    /// Each product's partners on sale with a positive confidence (lift), as
    /// (value, popularity rank), the best first ([`Knowledge::best_partners`]).
    by_confidence: PlHashMap<i64, Vec<(f64, usize)>>,
    by_lift: PlHashMap<i64, Vec<(f64, usize)>>,
    collections: HashMap<i64, Vec<String>>,
    members: HashMap<String, Vec<i64>>,
    /// Each product's type.
    product_type: HashMap<i64, String>,
    /// Per customer, their preferred category (user_features) …
    preferred: HashMap<i64, String>,
    /// … and the products bought and viewed before `T`.
    pub bought: HashMap<i64, Vec<i64>>,
    viewed: HashMap<i64, Vec<i64>>,
    /// Each product's vector (product_embeddings), …
    vectors: PlHashMap<i64, Vec<f32>>,
    /// … the products on sale that have one, …
    embedded_on_sale: OnSale,
    /// … and the nearest of those to each product some customer bought or
    /// viewed: (popularity rank, cosine).
    near: PlHashMap<i64, Vec<(usize, f64)>>,
}

/// Neighbours by embedding kept per product a customer bought or viewed.
const NEAREST: usize = 50;

/// Products whose cosines with every product on sale are computed together
/// ([`OnSale::cosines_of_many`]).
const NEAREST_AT_ONCE: usize = 8;

/// The blend's first places that go to products the customer viewed and has
/// not bought. On `medium` and its taste-aware twin split at 2025-10-31, 3, 5
/// and 10 gave the same hit rate@10 within 0.003 (0.462–0.464 and 0.563), up
/// from 0.417 and 0.526 without.
const VIEWED_FIRST: usize = 5;

/// Reciprocal-rank fusion's damping (the usual 60).
const FUSION_K: f64 = 60.0;

/// The blend's sources and weights. Chosen on `medium` and its taste-aware twin
/// (`generate --tastes`), split at 2025-10-31: popularity weighs most (alone it
/// is the best on a shop without tastes), co-view and the embeddings next
/// (the embeddings at 1.0 lifted the taste-aware hit rate@10 from 0.407 to
/// 0.425; 2.0 and more lowered both shops'); equal weights fell further below
/// popularity there.
const BLEND: [(Source, f64); 5] = [(Source::PairsConfidence, 0.5), (Source::CoView, 1.0), (Source::Embedding, 1.0), (Source::PreferredCategory, 0.5), (Source::Popularity, 1.5)];

fn i64s(frame: &DataFrame, column: &str) -> Result<Vec<Option<i64>>> {
    Ok(frame.column(column)?.cast(&DataType::Int64)?.i64()?.iter().collect())
}

fn f64s(frame: &DataFrame, column: &str) -> Result<Vec<f64>> {
    Ok(frame.column(column)?.cast(&DataType::Float64)?.f64()?.iter().map(|v| v.unwrap_or(0.0)).collect())
}

impl Knowledge {
    /// From the feature tables at `T` ([`super::tables_at`]).
    pub fn of(tables: &super::TablesAt) -> Result<Knowledge> {
        Knowledge::at_t(&tables.products, &tables.pairs, &tables.embeddings, &tables.interactions, &tables.users)
    }

    /// From product_features, product_pair_features, product_embeddings,
    /// interaction_features and user_features at `T`.
    pub fn at_t(products: &DataFrame, pairs: &DataFrame, embeddings: &DataFrame, interactions: &DataFrame, users: &DataFrame) -> Result<Knowledge> {
        let mut knowledge = Knowledge::of_catalog(products, pairs, Some(embeddings))?;
        knowledge.add_customers(interactions)?;
        let history: PlHashSet<i64> = knowledge.bought.values().chain(knowledge.viewed.values()).flatten().copied().collect();
        let mut history: Vec<i64> = history.into_iter().filter(|p| knowledge.vectors.contains_key(p)).collect();
        history.sort_unstable();
        // A few products at a time: each product on sale's values are read
        // once for all of them (one at a time, this scan was 0.3 s of the
        // function's 0.36 s at a late cut-off of `medium`; tiled 0.31 s in
        // all, with the sums in registers 0.26 s).
        let near: Vec<Vec<(usize, f64)>> = history
            .par_chunks(NEAREST_AT_ONCE)
            .flat_map_iter(|block| {
                let vectors: Vec<&[f32]> = block.iter().map(|p| knowledge.vectors[p].as_slice()).collect();
                let cosines = knowledge.embedded_on_sale.cosines_of_many(&vectors);
                block.iter().zip(cosines).map(|(&p, cosines)| knowledge.embedded_on_sale.nearest(p, &cosines, NEAREST).into_iter().map(|(q, s)| (knowledge.popularity_rank[&q], s)).collect()).collect::<Vec<_>>()
            })
            .collect();
        knowledge.near = history.into_iter().zip(near).collect();
        let customers = i64s(users, "customer_id")?;
        let categories = users.column("preferred_category")?.str()?.clone();
        knowledge.preferred = customers.iter().zip(categories.iter()).filter_map(|(c, t)| Some((c.as_ref().copied()?, t?.to_string()))).collect();
        Ok(knowledge)
    }

    /// What product_features, product_pair_features and product_embeddings
    /// (absent in generations computed before it existed) know: no customer.
    pub fn of_catalog(products: &DataFrame, pairs: &DataFrame, embeddings: Option<&DataFrame>) -> Result<Knowledge> {
        let ids = i64s(products, "product_id")?;
        let active: Vec<bool> = products.column("is_active")?.bool()?.iter().map(|a| a.unwrap_or(false)).collect();
        let (recent, all) = (i64s(products, "purchase_count_30d")?, i64s(products, "total_purchases")?);
        let mut on_sale: Vec<(i64, i64, i64)> = (0..ids.len()).filter(|&i| active[i]).filter_map(|i| Some((ids[i]?, recent[i].unwrap_or(0), all[i].unwrap_or(0)))).collect();
        on_sale.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
        let popular: Vec<i64> = on_sale.iter().map(|p| p.0).collect();
        let popularity_rank: PlHashMap<i64, usize> = popular.iter().enumerate().map(|(r, p)| (*p, r)).collect();

        let mut collections: HashMap<i64, Vec<String>> = HashMap::new();
        let mut members: HashMap<String, Vec<i64>> = HashMap::new();
        let handles = products.column("collection_handles")?.list()?.clone();
        for (row, id) in ids.iter().enumerate() {
            let (Some(id), Some(list)) = (id, handles.get_as_series(row)) else { continue };
            let list: Vec<String> = list.str()?.iter().flatten().map(str::to_string).collect();
            for handle in &list {
                members.entry(handle.clone()).or_default().push(*id);
            }
            collections.insert(*id, list);
        }

        let mut partners: HashMap<i64, Vec<Partner>> = HashMap::new();
        let (a, b) = (i64s(pairs, "product_id_a")?, i64s(pairs, "product_id_b")?);
        let (lift, a_to_b, b_to_a, views) = (f64s(pairs, "lift")?, f64s(pairs, "confidence_a_to_b")?, f64s(pairs, "confidence_b_to_a")?, f64s(pairs, "co_view_count")?);
        for i in 0..a.len() {
            let (Some(x), Some(y)) = (a[i], b[i]) else { continue };
            let rank = |p: i64| popularity_rank.get(&p).copied();
            partners.entry(x).or_default().push(Partner { rank: rank(y), lift: lift[i], confidence: a_to_b[i], co_views: views[i] });
            partners.entry(y).or_default().push(Partner { rank: rank(x), lift: lift[i], confidence: b_to_a[i], co_views: views[i] });
        }
        let types = products.column("product_type")?.str()?.clone();
        let product_type = ids.iter().zip(types.iter()).filter_map(|(p, t)| Some(((*p)?, t?.to_string()))).collect();
        let vectors = match embeddings {
            Some(frame) => vectors_of(frame)?,
            None => PlHashMap::new(),
        };
        let embedded_on_sale = OnSale::of(&popular, &vectors);
        Ok(Knowledge {
            popular,
            popularity_rank,
            by_confidence: ranked_partners(&partners, |p| p.confidence),
            by_lift: ranked_partners(&partners, |p| p.lift),
            partners,
            collections,
            members,
            product_type,
            preferred: HashMap::new(),
            bought: HashMap::new(),
            viewed: HashMap::new(),
            vectors,
            embedded_on_sale,
            near: PlHashMap::new(),
        })
    }

    /// Each customer's purchases and views before `T`, from interaction_features.
    fn add_customers(&mut self, interactions: &DataFrame) -> Result<()> {
        let (customers, items) = (i64s(interactions, "customer_id")?, i64s(interactions, "product_id")?);
        let (purchases, views) = (i64s(interactions, "purchase_count")?, i64s(interactions, "view_count")?);
        let (mut bought, mut viewed): (HashMap<i64, Vec<i64>>, HashMap<i64, Vec<i64>>) = Default::default();
        for i in 0..customers.len() {
            let (Some(c), Some(p)) = (customers[i], items[i]) else { continue };
            if purchases[i].unwrap_or(0) > 0 {
                bought.entry(c).or_default().push(p);
            }
            if views[i].unwrap_or(0) > 0 {
                viewed.entry(c).or_default().push(p);
            }
        }
        for list in bought.values_mut().chain(viewed.values_mut()) {
            list.sort_unstable();
        }
        (self.bought, self.viewed) = (bought, viewed);
        Ok(())
    }

    /// The `k` products on sale with a vector nearest to `product`'s (cosine,
    /// best first; ties: the more popular); none without a vector.
    fn nearest(&self, product: i64, k: usize) -> Vec<(i64, f64)> {
        let Some(v) = self.vectors.get(&product) else { return vec![] };
        self.embedded_on_sale.nearest(product, &self.embedded_on_sale.cosines(v), k)
    }

    /// The `k` products on sale most similar to `product` by `source` (one of
    /// the pair, collection and embedding sources), best first, with their scores.
    pub fn neighbours(&self, source: Source, product: i64, k: usize) -> Vec<(i64, f64)> {
        if source == Source::Embedding {
            return self.nearest(product, k);
        }
        let mut scored: Vec<(f64, usize, i64)> = self
            .scores_from(source, &[product], &[])
            .into_iter()
            .map(|(r, s)| (s, r, self.popular[r]))
            .filter(|(s, _, p)| *p != product && *s > 0.0)
            .collect();
        best(&mut scored, k).iter().map(|(s, _, p)| (*p, *s)).collect()
    }

    /// Whether `product` is on sale at `T`.
    pub fn on_sale(&self, product: i64) -> bool {
        self.popularity_rank.contains_key(&product)
    }

    /// The first `depth` products `source` recommends to `customer`: those it
    /// scores, best first (ties: the more popular), then the rest by popularity;
    /// never one they bought before `T`, never one not on sale.
    pub fn rank(&self, source: Source, customer: i64, depth: usize) -> Vec<i64> {
        if source == Source::Blend {
            return self.blend(customer, depth);
        }
        let bought = self.bought.get(&customer).map(Vec::as_slice).unwrap_or(&[]);
        let mut ranked = self.scored(source, customer, depth);
        let taken: PlHashSet<i64> = ranked.iter().copied().collect();
        let rest = self.popular.iter().copied().filter(|p| !taken.contains(p) && bought.binary_search(p).is_err());
        ranked.extend(rest.take(depth - ranked.len()));
        ranked
    }

    /// The first `depth` products `source` scores for `customer` (best first;
    /// ties: the more popular), without the popularity fill of [`Knowledge::rank`]
    /// (for popularity: the most popular); never one they bought before `T`,
    /// never one not on sale. (The blend scores nothing of its own.)
    pub fn scored(&self, source: Source, customer: i64, depth: usize) -> Vec<i64> {
        let bought = self.bought.get(&customer).map(Vec::as_slice).unwrap_or(&[]);
        match source {
            Source::Popularity => return self.popular.iter().copied().filter(|p| bought.binary_search(p).is_err()).take(depth).collect(),
            Source::PairsConfidence => return self.best_partners(&self.by_confidence, bought, depth),
            Source::PairsLift => return self.best_partners(&self.by_lift, bought, depth),
            _ => {}
        }
        // (score, popularity rank, product) of the scored products one may recommend.
        let mut scored: Vec<(f64, usize, i64)> = self
            .scores(source, customer, bought)
            .into_iter()
            .map(|(r, s)| (s, r, self.popular[r]))
            .filter(|(s, _, p)| *s > 0.0 && bought.binary_search(p).is_err())
            .collect();
        best(&mut scored, depth).iter().map(|(_, _, p)| *p).collect()
    }

    /// The first `depth` products on sale by their best value (confidence or
    /// lift: `lists`) from a product of `bought`, not bought (ties: the more
    /// popular): what scoring every partner and sorting gives ([`Knowledge::
    /// scores_from`]; tested against it), by merging the products' lists,
    /// best first, until `depth` are found. The pair sources are most of the
    /// candidates' time otherwise: a popular product has thousands of partners.
    fn best_partners(&self, lists: &PlHashMap<i64, Vec<(f64, usize)>>, bought: &[i64], depth: usize) -> Vec<i64> {
        use std::cmp::Reverse;
        let lists: Vec<&[(f64, usize)]> = bought.iter().filter_map(|b| lists.get(b)).map(Vec::as_slice).collect();
        // (value, the more popular, list, place): the heap's largest is next.
        let entry = |list: usize, at: usize| lists[list].get(at).map(|&(v, r)| (Value(v), Reverse(r), list, at));
        let mut heap: std::collections::BinaryHeap<_> = (0..lists.len()).filter_map(|l| entry(l, 0)).collect();
        let (mut found, mut seen) = (Vec::with_capacity(depth), PlHashSet::new());
        while let Some((_, Reverse(rank), list, at)) = heap.pop() {
            if found.len() == depth {
                break;
            }
            // A product's first appearance carries its best value.
            let product = self.popular[rank];
            if seen.insert(rank) && bought.binary_search(&product).is_err() {
                found.push(product);
            }
            heap.extend(entry(list, at + 1));
        }
        found
    }

    /// The scores for `customer` under `source` of the products on sale it
    /// scores: (popularity rank, score).
    fn scores(&self, source: Source, customer: i64, bought: &[i64]) -> Vec<(usize, f64)> {
        if source == Source::PreferredCategory {
            // Every product of the category scores the same: popularity orders them.
            let Some(category) = self.preferred.get(&customer) else { return vec![] };
            return self.popular.iter().enumerate().filter(|(_, p)| self.product_type.get(p) == Some(category)).map(|(r, _)| (r, 1.0)).collect();
        }
        self.scores_from(source, bought, self.viewed.get(&customer).map(Vec::as_slice).unwrap_or(&[]))
    }

    /// The scores under `source`, for someone who bought `bought` and viewed
    /// `viewed` (both sorted), of the products on sale it scores: (popularity
    /// rank, score). Accumulated in an array by rank (no hashing: this runs
    /// for every customer and source), summing in product order, so a score
    /// is the same in every run.
    fn scores_from(&self, source: Source, bought: &[i64], viewed: &[i64]) -> Vec<(usize, f64)> {
        SCRATCH.with(|scratch| {
            let mut scores = scratch.borrow_mut();
            scores.begin(self.popular.len());
            let partners_of = |p: &i64| self.partners.get(p).into_iter().flatten().filter_map(|partner| Some((partner.rank?, partner)));
            match source {
                Source::Popularity | Source::Blend | Source::PreferredCategory => {}
                Source::PairsLift | Source::PairsConfidence => {
                    for (rank, partner) in bought.iter().flat_map(partners_of) {
                        let value = if source == Source::PairsLift { partner.lift } else { partner.confidence };
                        let best = scores.at(rank);
                        *best = best.max(value);
                    }
                }
                Source::CoView => {
                    for (rank, partner) in sorted_union(bought, viewed).iter().flat_map(partners_of) {
                        *scores.at(rank) += partner.co_views;
                    }
                }
                Source::Viewed => {
                    for rank in viewed.iter().filter_map(|p| self.popularity_rank.get(p)) {
                        *scores.at(*rank) = 1.0;
                    }
                }
                Source::Embedding => {
                    for (rank, similarity) in sorted_union(bought, viewed).iter().filter_map(|p| self.near.get(p)).flatten() {
                        *scores.at(*rank) += similarity.max(0.0);
                    }
                }
                Source::SameCollection => {
                    for p in bought {
                        let shared: PlHashSet<i64> = self.collections.get(p).into_iter().flatten().flat_map(|h| self.members[h].iter().copied()).collect();
                        for rank in shared.iter().filter_map(|q| self.popularity_rank.get(q)) {
                            *scores.at(*rank) += 1.0;
                        }
                    }
                }
            }
            scores.take()
        })
    }

    /// Up to [`VIEWED_FIRST`] products the customer viewed and has not bought,
    /// then weighted reciprocal-rank fusion: each product's Σ weight / (60 +
    /// rank) over the fused sources' rankings (ties: the more popular).
    fn blend(&self, customer: i64, depth: usize) -> Vec<i64> {
        let deep = depth.max(100);
        let mut fused: PlHashMap<i64, f64> = PlHashMap::new();
        for (source, weight) in BLEND {
            for (rank, p) in self.rank(source, customer, deep).into_iter().enumerate() {
                *fused.entry(p).or_insert(0.0) += weight / (FUSION_K + rank as f64 + 1.0);
            }
        }
        let mut fused: Vec<(f64, usize, i64)> = fused.into_iter().map(|(p, s)| (s, self.popularity_rank[&p], p)).collect();
        let fused: Vec<i64> = best(&mut fused, depth).iter().map(|(_, _, p)| *p).collect();
        // What they viewed and did not buy comes first ("recently viewed"),
        // then the fused ranking.
        let mut ranked = self.scored(Source::Viewed, customer, VIEWED_FIRST.min(depth));
        for p in fused {
            if ranked.len() == depth {
                break;
            }
            if !ranked.contains(&p) {
                ranked.push(p);
            }
        }
        ranked
    }
}

/// The products on sale that have a vector, most popular first, with their
/// popularity ranks and their vectors side by side (the nearest-neighbour scan
/// reads every one for each product: no hash lookup in that loop).
struct OnSale {
    ids: Vec<i64>,
    ranks: Vec<usize>,
    /// The vectors dimension by dimension (`[d * len + i]`: product i's d-th
    /// value, as f64), so one product's cosines with all are computed side by
    /// side.
    by_dimension: Vec<f64>,
    dimension: usize,
}

impl OnSale {
    fn of(popular: &[i64], vectors: &PlHashMap<i64, Vec<f32>>) -> OnSale {
        let dimension = vectors.values().next().map_or(0, Vec::len);
        let (mut ids, mut ranks, mut rows) = (vec![], vec![], vec![]);
        for (rank, p) in popular.iter().enumerate() {
            // (A vector of another length than the first's is no vector.)
            if let Some(v) = vectors.get(p).filter(|v| v.len() == dimension) {
                ids.push(*p);
                ranks.push(rank);
                rows.push(v.as_slice());
            }
        }
        let by_dimension = (0..dimension).flat_map(|d| rows.iter().map(move |v| f64::from(v[d]))).collect();
        OnSale { ids, ranks, by_dimension, dimension }
    }

    /// The dot product of `v` with every product's vector, in their order: each
    /// sum taken in the same order from the same start (−0.0) as an iterator's
    /// `sum` of the products, so equal to the bit to one pair at a time
    /// (tested), but many products' sums side by side instead of one long
    /// chain of dependent additions at a time.
    fn cosines(&self, v: &[f32]) -> Vec<f64> {
        let len = self.ids.len();
        let mut sums = vec![-0.0f64; len];
        for (d, x) in v.iter().enumerate().take(self.dimension) {
            let x = f64::from(*x);
            for (sum, y) in sums.iter_mut().zip(&self.by_dimension[d * len..(d + 1) * len]) {
                *sum += x * y;
            }
        }
        sums
    }

    /// [`OnSale::cosines`] of each of `vectors`, to the bit: with the wider
    /// vector instructions of the CPU when it has them (the build targets any
    /// x86-64: two numbers per instruction, AVX2 four, AVX-512 eight), a block
    /// of [`NEAREST_AT_ONCE`] vectors with a few products at a time, their sums
    /// in registers; otherwise (and for other blocks) a tile of products at a
    /// time, each tile's values read from cache for every vector instead of
    /// from memory once per vector (the values of 10,000 products of 32
    /// dimensions do not fit a core's cache).
    fn cosines_of_many(&self, vectors: &[&[f32]]) -> Vec<Vec<f64>> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F, checked just above.
                return unsafe { self.cosines_of_many_avx512(vectors) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, checked just above.
                return unsafe { self.cosines_of_many_avx2(vectors) };
            }
        }
        self.cosines_tiled(vectors)
    }

    /// [`NEAREST_AT_ONCE`] vectors' cosines with 16 products at a time, their
    /// sums held in registers through every dimension (each product's values
    /// read once for all the vectors, no sum loaded and stored per
    /// dimension): [`OnSale::cosines_tiled`] to the bit, each sum still a
    /// multiplication then an addition per dimension, in order.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn cosines_of_many_avx512(&self, vectors: &[&[f32]]) -> Vec<Vec<f64>> {
        use std::arch::x86_64::*;
        const LANES: usize = 16;
        let Some(xs) = self.blockable(vectors) else { return self.cosines_tiled(vectors) };
        let len = self.ids.len();
        let mut sums = vec![vec![-0.0f64; len]; NEAREST_AT_ONCE];
        let blocked = len - len % LANES;
        for start in (0..blocked).step_by(LANES) {
            let mut acc = [_mm512_set1_pd(-0.0); 2 * NEAREST_AT_ONCE];
            for (d, x) in xs.iter().enumerate() {
                let ys = &self.by_dimension[d * len + start..][..LANES];
                // SAFETY: `ys` holds 16 values, two loads of 8.
                let (low, high) = unsafe { (_mm512_loadu_pd(ys.as_ptr()), _mm512_loadu_pd(ys.as_ptr().add(8))) };
                for (v, &x) in x.iter().enumerate() {
                    let x = _mm512_set1_pd(x);
                    acc[2 * v] = _mm512_add_pd(acc[2 * v], _mm512_mul_pd(x, low));
                    acc[2 * v + 1] = _mm512_add_pd(acc[2 * v + 1], _mm512_mul_pd(x, high));
                }
            }
            for (v, sums) in sums.iter_mut().enumerate() {
                let out = &mut sums[start..][..LANES];
                // SAFETY: `out` holds 16 values, two stores of 8.
                unsafe {
                    _mm512_storeu_pd(out.as_mut_ptr(), acc[2 * v]);
                    _mm512_storeu_pd(out.as_mut_ptr().add(8), acc[2 * v + 1]);
                }
            }
        }
        self.cosines_one_by_one(&xs, &mut sums, blocked);
        sums
    }

    /// [`OnSale::cosines_of_many_avx512`] with AVX2's registers: 4 products at a time.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn cosines_of_many_avx2(&self, vectors: &[&[f32]]) -> Vec<Vec<f64>> {
        use std::arch::x86_64::*;
        const LANES: usize = 4;
        let Some(xs) = self.blockable(vectors) else { return self.cosines_tiled(vectors) };
        let len = self.ids.len();
        let mut sums = vec![vec![-0.0f64; len]; NEAREST_AT_ONCE];
        let blocked = len - len % LANES;
        for start in (0..blocked).step_by(LANES) {
            let mut acc = [_mm256_set1_pd(-0.0); NEAREST_AT_ONCE];
            for (d, x) in xs.iter().enumerate() {
                let ys = &self.by_dimension[d * len + start..][..LANES];
                // SAFETY: `ys` holds 4 values.
                let y = unsafe { _mm256_loadu_pd(ys.as_ptr()) };
                for (acc, &x) in acc.iter_mut().zip(x) {
                    *acc = _mm256_add_pd(*acc, _mm256_mul_pd(_mm256_set1_pd(x), y));
                }
            }
            for (sums, acc) in sums.iter_mut().zip(acc) {
                let out = &mut sums[start..][..LANES];
                // SAFETY: `out` holds 4 values.
                unsafe { _mm256_storeu_pd(out.as_mut_ptr(), acc) };
            }
        }
        self.cosines_one_by_one(&xs, &mut sums, blocked);
        sums
    }

    /// The values of [`NEAREST_AT_ONCE`] vectors dimension by dimension, as
    /// f64, when the block is that many vectors at least as long as the
    /// products' (other blocks go through the tiles).
    #[cfg(target_arch = "x86_64")]
    fn blockable(&self, vectors: &[&[f32]]) -> Option<Vec<[f64; NEAREST_AT_ONCE]>> {
        (vectors.len() == NEAREST_AT_ONCE && vectors.iter().all(|v| v.len() >= self.dimension))
            .then(|| (0..self.dimension).map(|d| std::array::from_fn(|v| f64::from(vectors[v][d]))).collect())
    }

    /// The sums of `xs` (see [`OnSale::blockable`]) with the products from
    /// `from` on, one at a time.
    #[cfg(target_arch = "x86_64")]
    fn cosines_one_by_one(&self, xs: &[[f64; NEAREST_AT_ONCE]], sums: &mut [Vec<f64>], from: usize) {
        let len = self.ids.len();
        for i in from..len {
            for (v, sums) in sums.iter_mut().enumerate() {
                sums[i] = xs.iter().enumerate().fold(-0.0, |sum, (d, x)| sum + x[v] * self.by_dimension[d * len + i]);
            }
        }
    }

    /// [`OnSale::cosines_of_many`] a tile at a time, compiled into each of its
    /// versions (each product's sum still a multiplication then an addition
    /// per dimension, in order: no fused multiply-add, the same bits).
    #[inline(always)]
    fn cosines_tiled(&self, vectors: &[&[f32]]) -> Vec<Vec<f64>> {
        const TILE: usize = 256;
        let len = self.ids.len();
        let mut sums = vec![vec![-0.0f64; len]; vectors.len()];
        for start in (0..len).step_by(TILE) {
            let end = (start + TILE).min(len);
            for d in 0..self.dimension {
                let ys = &self.by_dimension[d * len + start..d * len + end];
                for (v, sums) in vectors.iter().zip(sums.iter_mut()) {
                    let Some(x) = v.get(d).map(|x| f64::from(*x)) else { continue };
                    for (sum, y) in sums[start..end].iter_mut().zip(ys) {
                        *sum += x * y;
                    }
                }
            }
        }
        sums
    }

    /// The `k` products on sale nearest to `product` by `cosines` (its cosine
    /// with each, in their order), best first; ties: the more popular.
    fn nearest(&self, product: i64, cosines: &[f64], k: usize) -> Vec<(i64, f64)> {
        if k == 0 {
            return vec![];
        }
        let others = || (0..self.ids.len()).filter(|&i| self.ids[i] != product);
        // Only products at least as near as the k-th nearest can be among the
        // k: the ranking's sort sees those, not all 10,000.
        let mut keys: Vec<i64> = cosines.iter().map(|&c| total_order(c)).collect();
        if let Some(me) = self.ids.iter().position(|&id| id == product) {
            // (The k-th largest does not depend on the keys' order.)
            keys.swap_remove(me);
        }
        let threshold = kth_largest(&keys, k);
        let near_enough = |i: &usize| threshold.is_none_or(|t| total_order(cosines[*i]) >= t);
        let mut scored: Vec<(f64, usize, i64)> = others().filter(near_enough).map(|i| (cosines[i], self.ranks[i], self.ids[i])).collect();
        best(&mut scored, k).iter().map(|(s, _, p)| (*p, *s)).collect()
    }
}

/// `x` as an integer in `f64::total_cmp`'s order (its own definition).
fn total_order(x: f64) -> i64 {
    let bits = x.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// The `k`-th largest of `keys`, when there are more than `k` (and k ≥ 1).
/// The `k` largest so far are kept in a heap whose least most keys fail to
/// beat: a block of 16 keys is tested against it at once and skipped when
/// none does, where a selection over a copy of all of them took twice as long
/// as the cosines themselves (10,000 products on sale, k = 50).
fn kth_largest(keys: &[i64], k: usize) -> Option<i64> {
    use std::cmp::Reverse;
    if k == 0 || keys.len() <= k {
        return None;
    }
    let (first, rest) = keys.split_at(k);
    let mut largest: std::collections::BinaryHeap<Reverse<i64>> = first.iter().map(|&key| Reverse(key)).collect();
    for block in rest.chunks(16) {
        let least = largest.peek().expect("k keys").0;
        // No short circuit: the block's comparisons run side by side.
        if !block.iter().fold(false, |any, &key| any | (key > least)) {
            continue;
        }
        for &key in block {
            let mut least = largest.peek_mut().expect("k keys");
            if key > least.0 {
                *least = Reverse(key);
            }
        }
    }
    Some(largest.peek().expect("k keys").0)
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Scores by popularity rank, reused from one customer to the next (on each
/// thread): only the entries touched are read and reset.
#[derive(Default)]
struct Scratch {
    score: Vec<f64>,
    touched: Vec<bool>,
    ranks: Vec<usize>,
}

impl Scratch {
    fn begin(&mut self, catalog: usize) {
        if self.score.len() < catalog {
            self.score.resize(catalog, 0.0);
            self.touched.resize(catalog, false);
        }
    }

    /// The score of the product at `rank` (0 until set).
    fn at(&mut self, rank: usize) -> &mut f64 {
        if !self.touched[rank] {
            self.touched[rank] = true;
            self.ranks.push(rank);
        }
        &mut self.score[rank]
    }

    /// The scores set, and the scratch reset.
    fn take(&mut self) -> Vec<(usize, f64)> {
        let scores = self.ranks.iter().map(|&r| (r, self.score[r])).collect();
        for &r in &self.ranks {
            (self.score[r], self.touched[r]) = (0.0, false);
        }
        self.ranks.clear();
        scores
    }
}

/// A score ordered by `total_cmp` (the order [`best`] sorts by).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Value(f64);

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Per product, its partners on sale whose `value` is positive, as (value,
/// popularity rank), the best value first, then the more popular.
fn ranked_partners(partners: &HashMap<i64, Vec<Partner>>, value: fn(&Partner) -> f64) -> PlHashMap<i64, Vec<(f64, usize)>> {
    partners
        .iter()
        .map(|(product, list)| {
            let mut ranked: Vec<(f64, usize)> = list.iter().filter_map(|p| Some((value(p), p.rank?))).filter(|(v, _)| *v > 0.0).collect();
            ranked.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            (*product, ranked)
        })
        .collect()
}

/// The products in either sorted list, once each, sorted.
fn sorted_union(a: &[i64], b: &[i64]) -> Vec<i64> {
    let mut all: Vec<i64> = a.iter().chain(b).copied().collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// (product, vector) of product_embeddings' rows that have one.
fn vectors_of(frame: &DataFrame) -> Result<PlHashMap<i64, Vec<f32>>> {
    let ids = i64s(frame, "product_id")?;
    let lists = frame.column("embedding")?.list()?.clone();
    let mut vectors = PlHashMap::new();
    for (id, list) in ids.into_iter().zip(lists.amortized_iter()) {
        if let (Some(id), Some(list)) = (id, list) {
            vectors.insert(id, list.as_ref().f32()?.into_no_null_iter().collect());
        }
    }
    Ok(vectors)
}

/// The cosine of two unit vectors (their dot product).
#[cfg(test)]
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}

/// The first `depth` of `scored` by score, then popularity rank (the rest are
/// left unsorted: a whole-catalog sort per customer is most of the time).
fn best(scored: &mut Vec<(f64, usize, i64)>, depth: usize) -> &[(f64, usize, i64)] {
    let order = |a: &(f64, usize, i64), b: &(f64, usize, i64)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if scored.len() > depth {
        scored.select_nth_unstable_by(depth, order);
        scored.truncate(depth);
    }
    scored.sort_unstable_by(order);
    scored
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A catalog of 60 products (every fifth not on sale) and pairs with
    /// random confidences and lifts, ties and zeros among them.
    fn knowledge() -> Knowledge {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let ids: Vec<i64> = (1..=60).collect();
        let handles: Vec<Series> = ids.iter().map(|_| Series::new_empty("".into(), &DataType::String)).collect();
        let products = df!(
            "product_id" => &ids,
            "is_active" => ids.iter().map(|i| i % 5 != 0).collect::<Vec<_>>(),
            "purchase_count_30d" => ids.iter().map(|i| (i * 7) % 11).collect::<Vec<_>>(),
            "total_purchases" => ids.iter().map(|i| (i * 3) % 13).collect::<Vec<_>>(),
            "collection_handles" => handles,
            "product_type" => ids.iter().map(|i| format!("t{}", i % 3)).collect::<Vec<_>>(),
        )
        .unwrap();
        let mut pairs: BTreeMap<(i64, i64), [f64; 3]> = BTreeMap::new();
        for _ in 0..700 {
            let (a, b) = (1 + next(60) as i64, 1 + next(60) as i64);
            if a < b {
                // Values from a small set: ties are common; some are zero.
                pairs.insert((a, b), [next(5) as f64 / 4.0, next(5) as f64 / 4.0, next(9) as f64 / 2.0]);
            }
        }
        let column = |f: &dyn Fn(&((i64, i64), [f64; 3])) -> f64| pairs.iter().map(|(k, v)| f(&(*k, *v))).collect::<Vec<f64>>();
        let pairs_frame = df!(
            "product_id_a" => pairs.keys().map(|k| k.0).collect::<Vec<_>>(),
            "product_id_b" => pairs.keys().map(|k| k.1).collect::<Vec<_>>(),
            "confidence_a_to_b" => column(&|(_, v)| v[0]),
            "confidence_b_to_a" => column(&|(_, v)| v[1]),
            "lift" => column(&|(_, v)| v[2]),
            "co_view_count" => column(&|_| 1.0),
        )
        .unwrap();
        let mut knowledge = Knowledge::of_catalog(&products, &pairs_frame, None).unwrap();
        for customer in 0..200 {
            let mut bought: Vec<i64> = (0..1 + next(8)).map(|_| 1 + next(60) as i64).collect();
            bought.sort_unstable();
            bought.dedup();
            knowledge.bought.insert(customer, bought);
        }
        knowledge
    }

    /// The cosines of one vector with all, side by side, are those of one pair
    /// at a time to the bit (zeros of both signs among the values, an all −0.0
    /// vector and an all-positive one among the vectors).
    #[test]
    fn cosines_side_by_side_equal_one_pair_at_a_time_to_the_bit() {
        use rand_chacha::rand_core::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x9e37_79b9);
        let mut next = move || {
            let bits = rng.next_u64();
            match bits % 7 {
                0 => 0.0f32,
                1 => -0.0,
                _ => (bits >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0,
            }
        };
        let dimension = 32;
        let mut vectors: PlHashMap<i64, Vec<f32>> = (0..298).map(|p| (p, (0..dimension).map(|_| next()).collect())).collect();
        // All positive (with a −0.0 vector its sum is −0.0), and all −0.0.
        vectors.insert(298, vec![0.5; dimension]);
        vectors.insert(299, vec![-0.0; dimension]);
        let popular: Vec<i64> = (0..320).rev().collect();
        let on_sale = OnSale::of(&popular, &vectors);
        assert_eq!(on_sale.ids.len(), 300);
        let mut compared = 0;
        for (p, v) in &vectors {
            let cosines = on_sale.cosines(v);
            for (i, q) in on_sale.ids.iter().enumerate() {
                assert_eq!(cosines[i].to_bits(), cosine(v, &vectors[q]).to_bits(), "{p} with {q}");
                compared += 1;
            }
        }
        let zeros = vec![-0.0f32; dimension];
        assert!(on_sale.cosines(&zeros).iter().zip(&on_sale.ids).all(|(c, q)| c.to_bits() == cosine(&zeros, &vectors[q]).to_bits()));
        assert_eq!(compared, 90_000);
        // Many at once (blocks of 1, 7, 8 — the blocked versions' — and all
        // 301 with the zeros; 300 products span a tile and a part of one, and
        // leave 12 after blocks of 16) equal one at a time, to the bit.
        let mut all: Vec<&[f32]> = vectors.values().map(Vec::as_slice).collect();
        all.push(&zeros);
        for size in [1, 7, NEAREST_AT_ONCE, all.len()] {
            for block in all.chunks(size) {
                // The version this CPU runs, and each of the others (any
                // x86-64 runs them: they differ in speed).
                let mut versions = vec![on_sale.cosines_of_many(block), on_sale.cosines_tiled(block)];
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2.
                    versions.push(unsafe { on_sale.cosines_of_many_avx2(block) });
                }
                for many in versions {
                    for (v, many) in block.iter().zip(many) {
                        assert!(many.iter().zip(on_sale.cosines(v)).all(|(a, b)| a.to_bits() == b.to_bits()));
                    }
                }
            }
        }
    }

    /// The nearest `k` (only those at least as near as the k-th sorted) are
    /// the first `k` of every other product sorted by cosine, then
    /// popularity: with ties at the k-th place, `k` of 0, 1 and more than
    /// there are, and products off the on-sale list.
    #[test]
    fn the_nearest_are_the_first_of_all_sorted() {
        // 40 products, 2 dimensions: angles from a small set, so that many
        // cosines tie exactly; every seventh product not on sale.
        let angles = [0.0f32, 0.5, 1.0, 1.5, 3.0];
        let vectors: PlHashMap<i64, Vec<f32>> = (0..40).map(|p| (p, vec![angles[p as usize % 5].cos(), angles[p as usize % 5].sin()])).collect();
        let popular: Vec<i64> = (0..40).filter(|p| p % 7 != 3).rev().collect();
        let on_sale = OnSale::of(&popular, &vectors);
        let mut compared = 0;
        for product in 0..40 {
            let cosines = on_sale.cosines(&vectors[&product]);
            let mut all: Vec<(f64, usize, i64)> = (0..on_sale.ids.len()).filter(|&i| on_sale.ids[i] != product).map(|i| (cosines[i], on_sale.ranks[i], on_sale.ids[i])).collect();
            all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            for k in [0, 1, 3, 8, 9, 20, 33, 34, 60] {
                let expected: Vec<(i64, f64)> = all.iter().take(k).map(|(s, _, p)| (*p, *s)).collect();
                assert_eq!(on_sale.nearest(product, &cosines, k), expected, "product {product}, k {k}");
                compared += expected.len();
            }
        }
        assert!(compared > 3_000, "{compared}");
    }

    #[test]
    fn total_order_orders_as_total_cmp_and_the_heap_finds_the_kth() {
        let values = [f64::NEG_INFINITY, -1.5, -0.0, 0.0, 1e-300, 0.25, 0.25, 1.0, f64::INFINITY, f64::NAN, -f64::NAN, f64::MIN_POSITIVE];
        for a in values {
            for b in values {
                assert_eq!(total_order(a).cmp(&total_order(b)), a.total_cmp(&b), "{a} against {b}");
            }
        }
        let keys: Vec<i64> = values.iter().map(|v| total_order(*v)).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        for k in 1..=keys.len() {
            let expected = (keys.len() > k).then(|| sorted[k - 1]);
            assert_eq!(kth_largest(&keys, k), expected, "k = {k}");
        }
        // Many blocks of 16, ties, rising and falling runs.
        use rand_chacha::rand_core::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x6b74_68);
        let mut keys: Vec<i64> = (0..1000).map(|_| total_order((rng.next_u64() % 97) as f64 / 96.0 - 0.5)).collect();
        keys.extend((0..100).map(|i| total_order(i as f64)));
        keys.extend((0..100).map(|i| total_order(-i as f64)));
        let mut sorted = keys.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        for k in [1, 7, 16, 50, 51, 1000, 1199, 1200, 1300] {
            let expected = (keys.len() > k).then(|| sorted[k - 1]);
            assert_eq!(kth_largest(&keys, k), expected, "k = {k}");
        }
    }

    #[test]
    fn merging_partner_lists_gives_what_scoring_every_partner_gives() {
        let knowledge = knowledge();
        let mut compared = 0;
        for source in [Source::PairsConfidence, Source::PairsLift] {
            for (customer, bought) in &knowledge.bought {
                // The reference: every partner scored, filtered, sorted whole.
                let mut reference: Vec<(f64, usize, i64)> = knowledge
                    .scores_from(source, bought, &[])
                    .into_iter()
                    .map(|(r, s)| (s, r, knowledge.popular[r]))
                    .filter(|(s, _, p)| *s > 0.0 && bought.binary_search(p).is_err())
                    .collect();
                reference.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                for depth in [1, 3, 10, 60] {
                    let expected: Vec<i64> = reference.iter().take(depth).map(|r| r.2).collect();
                    assert_eq!(knowledge.scored(source, *customer, depth), expected, "{source:?}, customer {customer}, depth {depth}");
                    compared += expected.len();
                }
            }
        }
        assert!(compared > 5_000, "{compared}");
    }
}
