//! The distance of a nonce's logits to the target (docs/spec/COMPUTATION.md §6).

use crate::numpy_sum::numpy_sum;

/// `distance = || u/||u|| - t ||` with `u = z[π]`; see docs/spec/COMPUTATION.md §6 for each
/// precision.
pub fn distance(logits: &[f32], permutation: &[u32], target: &[f64]) -> f64 {
    debug_assert_eq!(logits.len(), permutation.len());
    debug_assert_eq!(logits.len(), target.len());
    let u: Vec<f32> = permutation.iter().map(|&j| logits[j as usize]).collect();
    // The reference's norm in f32: numpy's pairwise sum of the squares, then sqrt.
    let squares: Vec<f32> = u.iter().map(|v| v * v).collect();
    let norm = numpy_sum(&squares).sqrt();
    let diffs: Vec<f64> = u
        .iter()
        .zip(target)
        .map(|(&v, &t)| {
            let d = (v / norm) as f64 - t; // f32 division, as the reference
            d * d
        })
        .collect();
    numpy_sum(&diffs).sqrt()
}
