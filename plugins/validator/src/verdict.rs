//! Scoring a recomputed batch (docs/spec/COMPUTATION.md §7, docs/spec/PROTOCOLS.md §A7) and
//! drawing spot-check samples (docs/spec/REQUESTS.md §2.3).

use crate::binomial::upper_tail;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// The network's per-nonce rate of honest mismatches the fraud test allows for.
pub const HONEST_FAILURE_RATE: f64 = 5e-4;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub n_invalid: usize,
    pub probability_honest: f64,
    pub fraud_detected: bool,
}

/// A nonce is invalid when its recomputed distance is above `r_target` (the reference's
/// test) or when the prover claimed a distance that was never valid (`≥ r_target`: the
/// reference asserts there and stops validating; counting it is what the network means). A
/// distance that is not a number (NaN: params whose arithmetic overflows) proves nothing and
/// is invalid too: every comparison with NaN is false, which would otherwise pass it.
pub fn score(received: &[f64], recomputed: &[f64], r_target: f64, fraud_threshold: f64) -> Verdict {
    debug_assert_eq!(received.len(), recomputed.len());
    let valid = |claimed: f64, dist: f64| dist <= r_target && claimed < r_target;
    let n_invalid = received
        .iter()
        .zip(recomputed)
        .filter(|&(&claimed, &dist)| !valid(claimed, dist))
        .count();
    let probability_honest = upper_tail(
        n_invalid as u64,
        recomputed.len() as u64,
        HONEST_FAILURE_RATE,
    );
    Verdict {
        n_invalid,
        probability_honest,
        fraud_detected: probability_honest < fraud_threshold,
    }
}

/// `k` distinct indices of `0..n`, in increasing order, drawn by a partial Fisher–Yates
/// shuffle from ChaCha8 seeded with `seed`: the same sample for the same (n, k, seed) on
/// every machine. All of them when `k ≥ n`.
pub fn sample_indices(n: usize, k: usize, seed: u64) -> Vec<usize> {
    if k >= n {
        return (0..n).collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let j = i + below(&mut rng, (n - i) as u64) as usize;
        order.swap(i, j);
    }
    let mut chosen = order[..k].to_vec();
    chosen.sort_unstable();
    chosen
}

/// Uniform in `0..bound` without modulo bias (Lemire's multiply-and-reject).
fn below(rng: &mut ChaCha8Rng, bound: u64) -> u64 {
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let m = (rng.next_u64() as u128) * (bound as u128);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_distances_are_invalid() {
        let v = score(&[1.0, 1.0, f64::NAN], &[f64::NAN, 1.0, 1.0], 1.4, 1e-7);
        assert_eq!(v.n_invalid, 2);
        let v = score(&[f64::NAN; 200], &[f64::NAN; 200], 1.4, 1e-7);
        assert_eq!(v.n_invalid, 200);
        assert!(v.fraud_detected);
    }

    #[test]
    fn honest_and_tampered_batches() {
        let r = 1.4;
        let received = vec![1.3; 200];
        let honest = vec![1.35; 200];
        let v = score(&received, &honest, r, 1e-7);
        assert_eq!(v.n_invalid, 0);
        assert_eq!(v.probability_honest, 1.0);
        assert!(!v.fraud_detected);

        let mut tampered = honest.clone();
        for d in tampered.iter_mut().take(6) {
            *d = 1.45;
        }
        let v = score(&received, &tampered, r, 1e-7);
        assert_eq!(v.n_invalid, 6);
        assert!(v.fraud_detected, "{v:?}");

        // 4 of 200 is within honest noise at the network's threshold; 5 is not.
        let v = score(
            &received,
            &{
                let mut t = honest.clone();
                t[..4].fill(1.5);
                t
            },
            r,
            1e-7,
        );
        assert!(!v.fraud_detected, "{v:?}");
        let v = score(
            &received,
            &{
                let mut t = honest.clone();
                t[..5].fill(1.5);
                t
            },
            r,
            1e-7,
        );
        assert!(v.fraud_detected, "{v:?}");
    }

    #[test]
    fn a_claim_at_or_above_r_target_counts_as_invalid() {
        let v = score(&[1.4, 1.5, 1.3], &[1.3, 1.3, 1.3], 1.4, 1e-7);
        assert_eq!(v.n_invalid, 2);
    }

    #[test]
    fn an_empty_batch_is_honest() {
        let v = score(&[], &[], 1.4, 1e-7);
        assert_eq!(
            v,
            Verdict {
                n_invalid: 0,
                probability_honest: 1.0,
                fraud_detected: false
            }
        );
    }

    #[test]
    fn samples_are_seeded_distinct_and_ordered() {
        let a = sample_indices(1000, 50, 7);
        assert_eq!(a, sample_indices(1000, 50, 7));
        assert_ne!(a, sample_indices(1000, 50, 8));
        assert_eq!(a.len(), 50);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert!(a.iter().all(|&i| i < 1000));
        assert_eq!(sample_indices(5, 9, 1), vec![0, 1, 2, 3, 4]);
        // Every index can be drawn: over many seeds, a 1-of-3 sample hits each.
        let mut seen = [false; 3];
        for seed in 0..100 {
            seen[sample_indices(3, 1, seed)[0]] = true;
        }
        assert_eq!(seen, [true; 3]);
    }
}
