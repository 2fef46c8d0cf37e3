//! product_embeddings — one row per product in the catalog at `T`: a vector made
//! from what the shop's customers bought and browsed together, so that products
//! close in the vector space are products people want together.
//!
//! The method (Levy & Goldberg 2014; Levy, Goldberg & Dagan 2015) in four steps:
//!
//! 1. **Contexts**: every valid order up to `T` (its distinct products) and every
//!    session up to `T` (the distinct products it viewed or added to cart) that
//!    holds at least two products. A product's `support` is the number of
//!    contexts it is in; products under the minimum support get no vector and
//!    take no part in the next steps.
//! 2. **Co-occurrence** `C(i, j)`: contexts holding both `i` and `j` (`i ≠ j`).
//! 3. **SPPMI**: with `#i = Σ_j C(i, j)`, `D = Σ_i #i` and the context
//!    distribution smoothed by α = 0.75, `PMI(i→j) = ln(C(i,j)·D / (#i · D·#j^α/Σ#^α))`;
//!    the matrix is the mean of `PMI(i→j)` and `PMI(j→i)` (so it is symmetric),
//!    shifted by ln 1 and cut at 0: `M(i, j) = max(mean, 0)`.
//! 4. **Truncated eigendecomposition** of `M`: its `d` eigenpairs of largest
//!    magnitude (fewer for a catalog under 8·`d` embedded products, padded
//!    with zeros to `d` numbers) (randomized subspace iteration, Halko, Martinsson & Tropp 2011,
//!    then a Jacobi eigendecomposition of the projected matrix), `W = U·|Λ|^½`,
//!    each row L2-normalised (Gorse ranks by Euclidean distance, which on unit
//!    vectors orders as cosine similarity does).
//!
//! Everything is deterministic: products are numbered in id order, the random
//! start is a fixed ChaCha stream, and every sum runs in one order. A product
//! whose row of `M` is empty (it only co-occurs with products under the
//! support, or only with an SPPMI of 0) gets no vector either.

use super::registry::{feature, FeatureTable, Kind::*};
use super::{with, Inputs};
use polars::prelude::*;
use rand_chacha::rand_core::{Rng, SeedableRng};
use rayon::prelude::*;

/// The vectors' shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddingOptions {
    /// Numbers per vector (every vector has exactly this many).
    pub dimension: usize,
    /// Contexts (orders, sessions) a product must be in to get a vector.
    pub min_support: u32,
}

impl Default for EmbeddingOptions {
    fn default() -> Self {
        EmbeddingOptions { dimension: 32, min_support: 3 }
    }
}

/// Context distribution smoothing (Levy, Goldberg & Dagan 2015).
const SMOOTHING: f64 = 0.75;
/// Extra vectors of the randomized subspace iteration beyond the dimension.
const OVERSAMPLING: usize = 16;
/// At most one eigenpair per this many embedded products (the rest of the
/// dimension is zeros): a small catalog is not fitted to its noise. On the
/// sample (140 embedded products) 32 eigenpairs split one of the three planted
/// bundles and 17 keep all three; from 256 products on, the whole dimension.
const PRODUCTS_PER_EIGENPAIR: usize = 8;
/// Multiplications by `M` after the first: enough for the leading `d` to settle.
const POWER_ITERATIONS: usize = 12;

/// The registry entries of product_embeddings, in catalog order.
pub fn table() -> FeatureTable {
    FeatureTable {
        name: "product_embeddings",
        key: &[("product_id", I64)],
        own: &[],
        // The vector is a function of the whole shop's co-occurrence matrix.
        shop_wide: &["vector"],
        features: vec![
            feature("embedding", ListF32, "unit vector (dimension numbers, default 32) from the truncated eigendecomposition of the shop's SPPMI matrix of basket and session co-occurrence; null under the minimum support (default 3) or without a co-occurring product", || col("vector")),
            feature("support", I64, "valid orders and sessions (up to T) that hold the product and at least one other product", || col("contexts").fill_null(lit(0i64))),
        ],
    }
}

/// (`kind`, `group`, `product_id`): the distinct products of every valid order
/// (kind 0) and of every session's product views and cart adds (kind 1) up to
/// `T`, for products in the catalog at `T`, sorted by kind, group and product
/// (the sessions' come sorted, [`super::sessions::BrowseTimes::browsed`]).
fn contexts(inputs: &Inputs) -> PolarsResult<LazyFrame> {
    // A filter by a left join that keeps the rows' order (a semi join need not).
    let catalog = inputs.main.products.clone().select([col("product_id"), lit(true).alias("_in_catalog")]);
    let mut in_order = JoinArgs::new(JoinType::Left);
    in_order.maintain_order = MaintainOrderJoin::Left;
    let in_catalog = |frame: LazyFrame| frame.join(catalog.clone(), [col("product_id")], [col("product_id")], in_order.clone()).filter(col("_in_catalog").is_not_null()).drop(cols(["_in_catalog"]));
    let baskets = inputs
        .valid_lines()
        .filter(col("product_id").is_not_null())
        .select([lit(0i32).alias("kind"), col("order_id").alias("group"), col("product_id")])
        .unique(None, UniqueKeepStrategy::Any)
        .sort(["group", "product_id"], SortMultipleOptions::default());
    let sessions = inputs.browse_times().browsed.filter(col("at").lt_eq(lit(inputs.as_of))).select([lit(1i32).alias("kind"), col("session").cast(DataType::Int64).alias("group"), col("product_id")]);
    concat([in_catalog(baskets), in_catalog(sessions)], UnionArgs::default())
}

/// product_embeddings at `T`, shaped by `inputs.pairs.embeddings`.
pub fn build(inputs: &Inputs) -> PolarsResult<LazyFrame> {
    let options = inputs.pairs.embeddings;
    let schema: SchemaRef = Arc::new(Schema::from_iter([
        Field::new("product_id".into(), DataType::Int64),
        Field::new("contexts".into(), DataType::Int64),
        Field::new("vector".into(), DataType::List(Box::new(DataType::Float32))),
    ]));
    let vectors = contexts(inputs)?.map(
        move |frame| vectors(&frame, options),
        AllowedOptimizations::default(),
        Some(Arc::new(move |_: &Schema| Ok(schema.clone()))),
        Some("product embeddings"),
    );
    let products = inputs.main.products.clone().select([col("product_id")]);
    Ok(table().project(with(products, vectors, "product_id"), &inputs.shop_id, inputs.as_of))
}

/// (`product_id`, `contexts`, `vector`) for every product of `contexts` (sorted
/// by kind, group, product).
fn vectors(contexts: &DataFrame, options: EmbeddingOptions) -> PolarsResult<DataFrame> {
    let started = std::time::Instant::now();
    let column = |name: &str| -> PolarsResult<Vec<i64>> { Ok(contexts.column(name)?.cast(&DataType::Int64)?.i64()?.into_no_null_iter().collect()) };
    let (kinds, groups, products) = (column("kind")?, column("group")?, column("product_id")?);
    let mut ids = products.clone();
    ids.sort_unstable();
    ids.dedup();
    let number = |id: i64| ids.binary_search(&id).expect("a product of the contexts") as u32;
    let mut sets = Sets::default();
    let mut start = 0;
    while start < products.len() {
        let end = (start..products.len()).find(|&i| kinds[i] != kinds[start] || groups[i] != groups[start]).unwrap_or(products.len());
        if end - start >= 2 {
            sets.push((start..end).map(|i| number(products[i])));
        }
        start = end;
    }
    let support = sets.counts(ids.len());
    let embedded = embed(&sets, &support, options);
    let contexts_of = Column::new("contexts".into(), support.iter().map(|&s| s as i64).collect::<Vec<_>>());
    let mut vector = ListPrimitiveChunkedBuilder::<Float32Type>::new("vector".into(), ids.len(), ids.len() * options.dimension, DataType::Float32);
    for v in &embedded {
        match v {
            Some(v) => vector.append_slice(v),
            None => vector.append_null(),
        }
    }
    tracing::debug!(products = ids.len(), contexts = sets.len(), embedded = embedded.iter().flatten().count(), seconds = started.elapsed().as_secs_f64(), "product embeddings");
    DataFrame::new_infer_height(vec![Column::new("product_id".into(), ids), contexts_of, vector.finish().into_column()])
}

/// Sets of product numbers (contexts), each sorted, stored end to end.
#[derive(Default)]
pub struct Sets {
    starts: Vec<usize>,
    items: Vec<u32>,
}

impl Sets {
    pub fn push(&mut self, items: impl IntoIterator<Item = u32>) {
        self.starts.push(self.items.len());
        self.items.extend(items);
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    fn get(&self, i: usize) -> &[u32] {
        let end = self.starts.get(i + 1).copied().unwrap_or(self.items.len());
        &self.items[self.starts[i]..end]
    }

    /// How many sets hold each of the numbers `0..n`.
    fn counts(&self, n: usize) -> Vec<u32> {
        let mut counts = vec![0u32; n];
        for &p in &self.items {
            counts[p as usize] += 1;
        }
        counts
    }
}

/// The vector of each product number `0..support.len()` from its contexts
/// (`None` under the minimum support or without an SPPMI entry).
pub fn embed(sets: &Sets, support: &[u32], options: EmbeddingOptions) -> Vec<Option<Vec<f32>>> {
    // Renumber the products with enough support; contexts keep only them.
    let mut kept = vec![u32::MAX; support.len()];
    let mut originals = Vec::new();
    for (p, &s) in support.iter().enumerate() {
        if s >= options.min_support {
            kept[p] = originals.len() as u32;
            originals.push(p);
        }
    }
    let mut restricted = Sets::default();
    for i in 0..sets.len() {
        let items: Vec<u32> = sets.get(i).iter().map(|&p| kept[p as usize]).filter(|&p| p != u32::MAX).collect();
        if items.len() >= 2 {
            restricted.push(items);
        }
    }
    let m = sppmi(&co_occurrence(&restricted, originals.len()));
    let started = std::time::Instant::now();
    let rank = (originals.len() / PRODUCTS_PER_EIGENPAIR).clamp(options.dimension.min(2), options.dimension);
    let w = unit_rows(&truncated_eigen(&m, rank), options.dimension);
    tracing::debug!(products = originals.len(), entries = m.values.len(), seconds = started.elapsed().as_secs_f64(), "SPPMI matrix decomposed");
    let mut out = vec![None; support.len()];
    for (row, p) in w.into_iter().zip(originals) {
        out[p] = row;
    }
    out
}

/// A square sparse matrix by rows: row `i` is `columns/values[starts[i]..starts[i+1]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseRows {
    pub starts: Vec<usize>,
    pub columns: Vec<u32>,
    pub values: Vec<f64>,
}

impl SparseRows {
    pub fn n(&self) -> usize {
        self.starts.len() - 1
    }

    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let span = self.starts[i]..self.starts[i + 1];
        self.columns[span.clone()].iter().map(|&c| c as usize).zip(self.values[span].iter().copied())
    }

    /// From the rows' (column, value) lists.
    pub fn from_rows(rows: Vec<Vec<(u32, f64)>>) -> SparseRows {
        let mut starts = vec![0];
        let (mut columns, mut values) = (Vec::new(), Vec::new());
        for row in rows {
            for (c, v) in row {
                columns.push(c);
                values.push(v);
            }
            starts.push(columns.len());
        }
        SparseRows { starts, columns, values }
    }

    /// `self · x` for `x` of `n` rows of `width` numbers (row-major), row by row
    /// on every core (each row's sum runs in one order: deterministic).
    fn times(&self, x: &[f64], width: usize) -> Vec<f64> {
        let mut y = vec![0.0; x.len()];
        y.par_chunks_mut(width).enumerate().for_each(|(i, out)| {
            for (j, v) in self.row(i) {
                for (o, xj) in out.iter_mut().zip(&x[j * width..(j + 1) * width]) {
                    *o += v * xj;
                }
            }
        });
        y
    }
}

/// `C(i, j)`: sets holding both `i` and `j` (`i ≠ j`), for numbers `0..n`.
/// Row by row (each row's counts gathered in a dense accumulator): memory is
/// the result's, not every set's pairs.
pub fn co_occurrence(sets: &Sets, n: usize) -> SparseRows {
    let mut holding: Vec<Vec<u32>> = vec![Vec::new(); n];
    for s in 0..sets.len() {
        for &p in sets.get(s) {
            holding[p as usize].push(s as u32);
        }
    }
    let rows: Vec<Vec<(u32, f64)>> = (0..n)
        .into_par_iter()
        .map_init(
            || (vec![0u32; n], Vec::new()),
            |(counts, touched), a| {
                for &s in &holding[a] {
                    for &b in sets.get(s as usize) {
                        if b as usize != a {
                            if counts[b as usize] == 0 {
                                touched.push(b);
                            }
                            counts[b as usize] += 1;
                        }
                    }
                }
                touched.sort_unstable();
                let row = touched.iter().map(|&b| (b, f64::from(std::mem::take(&mut counts[b as usize])))).collect();
                touched.clear();
                row
            },
        )
        .collect();
    SparseRows::from_rows(rows)
}

/// The symmetric SPPMI matrix of co-occurrence counts (entries ≤ 0 left out).
pub fn sppmi(counts: &SparseRows) -> SparseRows {
    let n = counts.n();
    let totals: Vec<f64> = (0..n).map(|i| counts.row(i).map(|(_, v)| v).sum()).collect();
    let d: f64 = totals.iter().sum();
    let z: f64 = totals.iter().map(|t| t.powf(SMOOTHING)).sum();
    // ½(ln P(i) + ln P_α(i)): each side's share of the mean of the two directions.
    let half: Vec<f64> = totals.iter().map(|&t| 0.5 * ((t / d).ln() + (t.powf(SMOOTHING) / z).ln())).collect();
    let rows = (0..n)
        .map(|i| counts.row(i).map(|(j, c)| (j as u32, (c / d).ln() - half[i] - half[j])).filter(|(_, v)| *v > 0.0).collect())
        .collect();
    SparseRows::from_rows(rows)
}

/// The `d` eigenpairs of largest magnitude of a symmetric matrix: eigenvalues
/// (largest magnitude first) and the eigenvectors as `n` rows of that many
/// numbers. Fewer than `d` when `n < d`.
pub struct Eigen {
    pub values: Vec<f64>,
    pub vectors: Vec<f64>,
}

/// [`Eigen`] of `m` by randomized subspace iteration, or exactly by Jacobi when
/// `m` is small.
pub fn truncated_eigen(m: &SparseRows, d: usize) -> Eigen {
    let n = m.n();
    let width = (d + OVERSAMPLING).min(n);
    if width == 0 {
        return Eigen { values: vec![], vectors: vec![] };
    }
    let basis = if width == n {
        // The whole space: the identity is an exact basis.
        (0..n * n).map(|k| if k / n == k % n { 1.0 } else { 0.0 }).collect()
    } else {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5350_504d_4920);
        let start: Vec<f64> = (0..n * width).map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0).collect();
        let mut q = orthonormal(m.times(&start, width), width);
        for _ in 0..POWER_ITERATIONS {
            q = orthonormal(m.times(&q, width), width);
        }
        q
    };
    // The projected matrix B = Qᵀ M Q, its eigenpairs, and U = Q V.
    let mq = m.times(&basis, width);
    let mut b = vec![0.0; width * width];
    for (q, mq) in basis.chunks(width).zip(mq.chunks(width)) {
        for (r, &qr) in q.iter().enumerate() {
            for (b, &m) in b[r * width..(r + 1) * width].iter_mut().zip(mq) {
                *b += qr * m;
            }
        }
    }
    // Symmetric in exact arithmetic; made so exactly for Jacobi.
    for r in 0..width {
        for c in r + 1..width {
            let mean = 0.5 * (b[r * width + c] + b[c * width + r]);
            b[r * width + c] = mean;
            b[c * width + r] = mean;
        }
    }
    let (values, v) = jacobi(b, width);
    let mut order: Vec<usize> = (0..width).collect();
    order.sort_by(|&a, &b| values[b].abs().total_cmp(&values[a].abs()).then(a.cmp(&b)));
    order.truncate(d.min(width));
    let k = order.len();
    let mut vectors = vec![0.0; n * k];
    for (u, q) in vectors.chunks_mut(k.max(1)).zip(basis.chunks(width)) {
        for (out, &e) in order.iter().enumerate() {
            u[out] = q.iter().enumerate().map(|(r, qr)| qr * v[r * width + e]).sum();
        }
    }
    Eigen { values: order.iter().map(|&e| values[e]).collect(), vectors }
}

/// The columns of `x` (`n` rows of `width`) made orthonormal by Cholesky QR
/// run twice (CholQR2, which is as orthogonal as Householder QR once the first
/// pass has conditioned the columns), row by row so every pass reads rows in
/// memory order. A column that depends on the earlier ones becomes zero.
fn orthonormal(x: Vec<f64>, width: usize) -> Vec<f64> {
    cholesky_qr(cholesky_qr(x, width), width)
}

/// One pass of Cholesky QR: `G = XᵀX = RᵀR`, `Q = X·R⁻¹`.
fn cholesky_qr(mut x: Vec<f64>, width: usize) -> Vec<f64> {
    let gram = gram(&x, width);
    // R, upper triangular; a pivot that is ~0 relative to its column's own
    // norm marks a dependent column (left zero).
    let mut r = vec![0.0f64; width * width];
    for k in 0..width {
        let pivot = gram[k * width + k] - (0..k).map(|j| r[j * width + k].powi(2)).sum::<f64>();
        if pivot <= 1e-20 * gram[k * width + k] || pivot <= 0.0 {
            continue;
        }
        let rkk = pivot.sqrt();
        r[k * width + k] = rkk;
        for c in k + 1..width {
            r[k * width + c] = (gram[k * width + c] - (0..k).map(|j| r[j * width + k] * r[j * width + c]).sum::<f64>()) / rkk;
        }
    }
    // Rᵀ: column k of R as one run of numbers.
    let columns: Vec<f64> = (0..width * width).map(|i| r[(i % width) * width + i / width]).collect();
    x.par_chunks_mut(width * ROWS_SOLVED_TOGETHER).for_each(|rows| solve_rows(rows, &columns, width));
    x
}

/// Rows of `X·R⁻¹` solved together: each number is a sum of one long chain
/// of additions, each waiting for the previous; the rows' chains are
/// independent, and the CPU runs that many side by side.
const ROWS_SOLVED_TOGETHER: usize = 8;

/// `rows` (at most [`ROWS_SOLVED_TOGETHER`] rows of `width`) times `R⁻¹` in
/// place, from `Rᵀ` (`columns`): forward substitution, each sum from −0.0
/// in the order of `j` as an iterator's `sum` takes it (the same bits).
fn solve_rows(rows: &mut [f64], columns: &[f64], width: usize) {
    let count = rows.len() / width;
    for k in 0..width {
        let rkk = columns[k * width + k];
        let column = &columns[k * width..k * width + k];
        let mut sums = [-0.0f64; ROWS_SOLVED_TOGETHER];
        for (j, &rjk) in column.iter().enumerate() {
            for (q, sum) in sums.iter_mut().enumerate().take(count) {
                *sum += rows[q * width + j] * rjk;
            }
        }
        for (q, sum) in sums.iter().enumerate().take(count) {
            let at = q * width + k;
            rows[at] = if rkk == 0.0 { 0.0 } else { (rows[at] - sum) / rkk };
        }
    }
}

/// `XᵀX`'s upper triangle (row-major, `width × width`; below the diagonal
/// zeros): each entry summed over the rows in order. Gram rows are taken in
/// bands on every core, each band reading `x` once.
fn gram(x: &[f64], width: usize) -> Vec<f64> {
    const BAND: usize = 8;
    let mut gram = vec![0.0; width * width];
    gram.par_chunks_mut(width * BAND).enumerate().for_each(|(band, out)| {
        let first = band * BAND;
        for row in x.chunks(width) {
            for (i, g) in out.chunks_mut(width).enumerate() {
                let r = first + i;
                let xr = row[r];
                for (g, &xc) in g[r..].iter_mut().zip(&row[r..]) {
                    *g += xr * xc;
                }
            }
        }
    });
    gram
}

/// Eigenvalues and eigenvectors (the columns of the row-major `n × n` result)
/// of the symmetric row-major `a`, by cyclic Jacobi rotations.
fn jacobi(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v: Vec<f64> = (0..n * n).map(|k| if k / n == k % n { 1.0 } else { 0.0 }).collect();
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..100 {
        let off: f64 = (0..n).flat_map(|p| (0..n).filter(move |&q| q != p).map(move |q| (p, q))).map(|(p, q)| a[p * n + q].powi(2)).sum::<f64>().sqrt();
        if off <= 1e-15 * scale || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation that zeroes a[p][q]: t = tan φ, the smaller root.
                let tau = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = if tau >= 0.0 { 1.0 } else { -1.0 } / (tau.abs() + (tau * tau + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// `W = U·|Λ|^½`, each column's sign fixed (its largest entry positive), padded
/// with zeros to `dimension` numbers, each row L2-normalised (`None` for a zero row).
pub fn unit_rows(eigen: &Eigen, dimension: usize) -> Vec<Option<Vec<f32>>> {
    let k = eigen.values.len();
    let n = if k == 0 { 0 } else { eigen.vectors.len() / k };
    let signs: Vec<f64> = (0..k)
        .map(|e| {
            let largest = (0..n).map(|i| eigen.vectors[i * k + e]).fold(0.0f64, |best, x| if x.abs() > best.abs() { x } else { best });
            if largest < 0.0 { -1.0 } else { 1.0 }
        })
        .collect();
    let weights: Vec<f64> = eigen.values.iter().zip(&signs).map(|(l, s)| l.abs().sqrt() * s).collect();
    (0..n)
        .map(|i| {
            let mut row: Vec<f64> = (0..k).map(|e| eigen.vectors[i * k + e] * weights[e]).collect();
            row.resize(dimension, 0.0);
            let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
            (norm > 1e-12).then(|| row.iter().map(|x| (x / norm) as f32).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::{Rng, SeedableRng};

    /// One pass of Cholesky QR as written first: one row at a time, one
    /// dependent chain of additions at a time.
    fn cholesky_qr_one_row_at_a_time(mut x: Vec<f64>, width: usize) -> Vec<f64> {
        let mut gram = vec![0.0; width * width];
        for row in x.chunks(width) {
            for (r, &xr) in row.iter().enumerate() {
                for (g, &xc) in gram[r * width..(r + 1) * width].iter_mut().zip(row).skip(r) {
                    *g += xr * xc;
                }
            }
        }
        let mut r = vec![0.0f64; width * width];
        for k in 0..width {
            let pivot = gram[k * width + k] - (0..k).map(|j| r[j * width + k].powi(2)).sum::<f64>();
            if pivot <= 1e-20 * gram[k * width + k] || pivot <= 0.0 {
                continue;
            }
            r[k * width + k] = pivot.sqrt();
            for c in k + 1..width {
                r[k * width + c] = (gram[k * width + c] - (0..k).map(|j| r[j * width + k] * r[j * width + c]).sum::<f64>()) / r[k * width + k];
            }
        }
        for row in x.chunks_mut(width) {
            for k in 0..width {
                let rkk = r[k * width + k];
                row[k] = if rkk == 0.0 { 0.0 } else { (row[k] - (0..k).map(|j| row[j] * r[j * width + k]).sum::<f64>()) / rkk };
            }
        }
        x
    }

    /// Rows solved eight at a time and the Gram matrix in bands give the
    /// bits of one row at a time: widths around the bands' size, row counts
    /// that leave a partial block, a dependent column (a zero pivot), zeros
    /// of both signs.
    #[test]
    fn cholesky_qr_equals_one_row_at_a_time_to_the_bit() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x0c40_1e5c);
        let mut compared = 0;
        for (rows, width) in [(1, 1), (7, 3), (50, 8), (203, 9), (1000, 48), (37, 17)] {
            let mut x: Vec<f64> = (0..rows * width)
                .map(|_| match rng.next_u64() % 9 {
                    0 => 0.0,
                    1 => -0.0,
                    _ => (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0,
                })
                .collect();
            if width > 2 {
                // Column 2 a copy of column 0: dependent.
                for row in x.chunks_mut(width) {
                    row[2] = row[0];
                }
            }
            let expected = cholesky_qr_one_row_at_a_time(x.clone(), width);
            let got = cholesky_qr(x, width);
            assert_eq!(got.len(), expected.len());
            for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{rows}×{width}, number {i}: {a} against {b}");
                compared += 1;
            }
        }
        assert!(compared > 50_000, "{compared}");
    }
}
