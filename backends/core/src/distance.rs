//! The distance of a nonce's logits to the target (spec §6).

/// `distance = || u/||u|| - t ||` with `u = z[π]`; see spec §6 for each precision.
pub fn distance(logits: &[f32], permutation: &[u32], target: &[f64]) -> f64 {
    debug_assert_eq!(logits.len(), permutation.len());
    debug_assert_eq!(logits.len(), target.len());
    // The reference sums u² in f32 pairwise; an f64 sum rounded to f32 at the root lands
    // within an ulp of it, where a naive f32 running sum would not.
    let sum_sq: f64 = permutation
        .iter()
        .map(|&j| {
            let u = logits[j as usize] as f64;
            u * u
        })
        .sum();
    let norm = sum_sq.sqrt() as f32;
    permutation
        .iter()
        .zip(target)
        .map(|(&j, &t)| {
            let unit = logits[j as usize] / norm; // f32 division, as the reference
            let d = unit as f64 - t;
            d * d
        })
        .sum::<f64>()
        .sqrt()
}
