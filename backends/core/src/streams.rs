//! The per-nonce and per-block random inputs (docs/spec/COMPUTATION.md §1, §4, §6.3).

use crate::numpy_sum::numpy_sum;
use crate::params::ModelParams;
use crate::rng::NumpyRng;
use half::f16;

/// The seed strings of the table in docs/spec/COMPUTATION.md §1.2.
pub fn input_seed(block_hash: &str, public_key: &str, nonce: i64) -> String {
    format!("{block_hash}_{public_key}_nonce{nonce}")
}
pub fn permutation_seed(block_hash: &str, public_key: &str, nonce: i64) -> String {
    format!("{block_hash}_{public_key}_nonce_{nonce}_permutations")
}
pub fn target_seed(block_hash: &str) -> String {
    format!("{block_hash}_target")
}

/// The embedding of nonce `n`: `seq_len·dim` standard normals, each f64 → f32 → f16,
/// row-major `[seq][dim]`, written into `out`.
pub fn nonce_input_into(
    params: &ModelParams,
    block_hash: &str,
    public_key: &str,
    nonce: i64,
    out: &mut [f16],
) {
    assert_eq!(out.len(), params.seq_len * params.dim);
    let mut rng = NumpyRng::from_seed_str(&input_seed(block_hash, public_key, nonce), 4);
    for v in out {
        *v = f16::from_f32(rng.standard_normal() as f32);
    }
}

pub fn nonce_input(
    params: &ModelParams,
    block_hash: &str,
    public_key: &str,
    nonce: i64,
) -> Vec<f16> {
    let mut out = vec![f16::ZERO; params.seq_len * params.dim];
    nonce_input_into(params, block_hash, public_key, nonce, &mut out);
    out
}

/// The logit permutation of nonce `n`: `permutation(vocab_size)` from a 1-hash stream.
pub fn nonce_permutation(
    vocab_size: usize,
    block_hash: &str,
    public_key: &str,
    nonce: i64,
) -> Vec<u32> {
    NumpyRng::from_seed_str(&permutation_seed(block_hash, public_key, nonce), 1)
        .permutation(vocab_size)
}

/// The target: `vocab_size` standard normals divided by their f64 Euclidean norm.
pub fn target(vocab_size: usize, block_hash: &str) -> Vec<f64> {
    let mut rng = NumpyRng::from_seed_str(&target_seed(block_hash), 1);
    let mut t = vec![0f64; vocab_size];
    rng.fill_standard_normal(&mut t);
    // The reference's norm, bit for bit: numpy's sum of squares (its pairwise summation),
    // then sqrt. (A BLAS dot product, as np.linalg.norm uses, differs in the last bit.)
    let squares: Vec<f64> = t.iter().map(|v| v * v).collect();
    let norm = numpy_sum(&squares).sqrt();
    t.iter_mut().for_each(|v| *v /= norm);
    t
}
