//! Ranking metrics per customer, and their means with bootstrap intervals.

use serde::{Deserialize, Serialize};

/// One customer's scores for one ranked list: hit rate, recall and NDCG at k.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub hit: f64,
    pub recall: f64,
    pub ndcg: f64,
}

/// The scores of `ranked` (best first; only its first `k` count) against the
/// `relevant` items (binary relevance; at least one).
pub fn scores(ranked: &[i64], relevant: &[i64], k: usize) -> Scores {
    let top = &ranked[..ranked.len().min(k)];
    let hits: Vec<bool> = top.iter().map(|item| relevant.contains(item)).collect();
    let found = hits.iter().filter(|h| **h).count();
    // Position p (0-based) is worth 1 / log2(p + 2).
    let gain = |p: usize| 1.0 / ((p + 2) as f64).log2();
    // Folded from +0.0 (an empty f64 sum is -0.0).
    let dcg = hits.iter().enumerate().filter(|(_, h)| **h).map(|(p, _)| gain(p)).fold(0.0, |a, b| a + b);
    let ideal = (0..relevant.len().min(k)).map(gain).fold(0.0, |a, b| a + b);
    Scores {
        hit: if found > 0 { 1.0 } else { 0.0 },
        recall: found as f64 / relevant.len() as f64,
        ndcg: if ideal > 0.0 { dcg / ideal } else { 0.0 },
    }
}

/// A mean over customers and its 95% bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

/// The mean of `values` and the 2.5th and 97.5th percentiles of the means of
/// `resamples` resamples of them (drawn with replacement, the same draws for
/// every metric and source: `draws` from [`draws`]).
pub fn estimate(values: &[f64], draws: &[Vec<usize>]) -> Estimate {
    let mean = |picked: &mut dyn Iterator<Item = f64>, n: usize| picked.fold(0.0, |a, b| a + b) / n.max(1) as f64;
    let mut means: Vec<f64> = draws.iter().map(|draw| mean(&mut draw.iter().map(|&i| values[i]), draw.len())).collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means.get(((means.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN);
    Estimate { mean: mean(&mut values.iter().copied(), values.len()), low: at(0.025), high: at(0.975) }
}

/// `resamples` resamples of `n` indices with replacement, from `seed`
/// (deterministic: the same evaluation gives the same intervals).
pub fn draws(n: usize, resamples: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rand = crate::generate::rng::Rand::new(seed, 0xE7A1);
    (0..resamples).map(|_| (0..n).map(|_| rand.index(n)).collect()).collect()
}
