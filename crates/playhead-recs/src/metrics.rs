//! Ranking metrics and bootstrap intervals.
//!
//! Recall@K is `hits / min(K, |truth|)` (Steck 2019 and Liang et al. 2018 use this, so a profile
//! with more held-out titles than K can still reach 1). NDCG@K uses binary relevance,
//! `1 / log2(rank + 2)` per hit, divided by the ideal DCG of `min(K, |truth|)` hits.
//!
//! Rule: intervals are 95% percentile bootstraps over profiles, and every model of one evaluation
//! is resampled with the same seed, so the profiles drawn are the same for each (paired).

use std::collections::HashSet;
use std::hash::Hash;

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Recall at `k`: hits in the first `k` over `min(k, |truth|)`; 0 for an empty truth.
pub fn recall_at_k<T: Eq + Hash>(recs: &[T], truth: &HashSet<T>, k: usize) -> f64 {
    let denom = k.min(truth.len());
    if denom == 0 {
        return 0.0;
    }
    recs.iter().take(k).filter(|r| truth.contains(r)).count() as f64 / denom as f64
}

/// NDCG at `k` with binary relevance; 0 for an empty truth.
pub fn ndcg_at_k<T: Eq + Hash>(recs: &[T], truth: &HashSet<T>, k: usize) -> f64 {
    let ideal: f64 = (0..k.min(truth.len())).map(|r| 1.0 / (r as f64 + 2.0).log2()).sum();
    if ideal == 0.0 {
        return 0.0;
    }
    let dcg: f64 = recs
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, r)| truth.contains(r))
        .map(|(i, _)| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    dcg / ideal
}

/// A point estimate with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The statistic on the full sample.
    pub mean: f64,
    /// 2.5th percentile of the bootstrap distribution.
    pub lo: f64,
    /// 97.5th percentile of the bootstrap distribution.
    pub hi: f64,
}

impl Interval {
    /// Whether two intervals are disjoint.
    pub fn disjoint(&self, other: &Interval) -> bool {
        self.hi < other.lo || other.hi < self.lo
    }
}

/// Bootstrap a statistic over `n` units: `stat` receives the indices of one resample (with
/// repeats); the first call gets `0..n`, the point estimate.
pub fn bootstrap(n: usize, resamples: usize, seed: u64, mut stat: impl FnMut(&[usize]) -> f64) -> Interval {
    let all: Vec<usize> = (0..n).collect();
    let mean = stat(&all);
    if n == 0 || resamples == 0 {
        return Interval { mean, lo: mean, hi: mean };
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut idx = vec![0usize; n];
    let mut stats: Vec<f64> = (0..resamples)
        .map(|_| {
            for x in idx.iter_mut() {
                *x = rng.gen_range(0..n);
            }
            stat(&idx)
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    let q = |p: f64| stats[((p * (stats.len() - 1) as f64).round() as usize).min(stats.len() - 1)];
    Interval { mean, lo: q(0.025), hi: q(0.975) }
}

/// Bootstrap the mean of per-profile values.
pub fn bootstrap_mean(values: &[f64], resamples: usize, seed: u64) -> Interval {
    bootstrap(values.len(), resamples, seed, |idx| {
        if idx.is_empty() { 0.0 } else { idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64 }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u32]) -> HashSet<u32> {
        v.iter().copied().collect()
    }

    #[test]
    fn recall_by_hand() {
        // Truth {1, 2, 3}; hits at ranks 1 and 4 of [1, 9, 8, 2, 7].
        let recs = [1, 9, 8, 2, 7];
        assert_eq!(recall_at_k(&recs, &set(&[1, 2, 3]), 5), 2.0 / 3.0);
        assert_eq!(recall_at_k(&recs, &set(&[1, 2, 3]), 2), 1.0 / 2.0);
        assert_eq!(recall_at_k(&recs, &set(&[]), 2), 0.0);
    }

    #[test]
    fn ndcg_by_hand() {
        // Hits at positions 0 and 3: DCG = 1/log2(2) + 1/log2(5) = 1 + 0.430677 = 1.430677.
        // Ideal for min(5, 3) = 3 hits: 1 + 1/log2(3) + 1/log2(4) = 1 + 0.630930 + 0.5 = 2.130930.
        let v = ndcg_at_k(&[1, 9, 8, 2, 7], &set(&[1, 2, 3]), 5);
        assert!((v - 1.430_677 / 2.130_930).abs() < 1e-6, "{v}");
        // A single held-out title at rank 2 (third place): 1/log2(4) = 0.5.
        assert!((ndcg_at_k(&[5, 6, 7], &set(&[7]), 3) - 0.5).abs() < 1e-12);
        assert_eq!(ndcg_at_k(&[5, 6, 7], &set(&[7]), 2), 0.0);
    }

    #[test]
    fn bootstrap_interval_contains_the_point_estimate() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let values: Vec<f64> = (0..500).map(|_| if rng.gen_bool(0.3) { 1.0 } else { 0.0 }).collect();
        let iv = bootstrap_mean(&values, 1000, 42);
        assert!(iv.lo <= iv.mean && iv.mean <= iv.hi, "{iv:?}");
        assert!(iv.hi - iv.lo > 0.02 && iv.hi - iv.lo < 0.2, "{iv:?}");
        assert_eq!(iv, bootstrap_mean(&values, 1000, 42));
    }

    #[test]
    fn disjoint_intervals() {
        let a = Interval { mean: 0.2, lo: 0.1, hi: 0.3 };
        assert!(a.disjoint(&Interval { mean: 0.5, lo: 0.4, hi: 0.6 }));
        assert!(!a.disjoint(&Interval { mean: 0.3, lo: 0.25, hi: 0.35 }));
    }
}
