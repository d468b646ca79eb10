//! Nonces to distances: inputs and permutations drawn on every core, the forward pass on
//! the backend, distances per spec §6.

use crate::backend::ForwardPass;
use crate::distance::distance;
use crate::model::ModelWeights;
use crate::streams;
use anyhow::Result;
use half::f16;
use rayon::prelude::*;

/// The f16 inputs of a batch of nonces, concatenated.
pub fn batch_inputs(weights: &ModelWeights, public_key: &str, nonces: &[i64]) -> Vec<f16> {
    let n = weights.params.seq_len * weights.params.dim;
    let mut inputs = vec![f16::ZERO; n * nonces.len()];
    inputs
        .par_chunks_mut(n)
        .zip(nonces)
        .for_each(|(out, &nonce)| {
            streams::nonce_input_into(&weights.params, &weights.block_hash, public_key, nonce, out)
        });
    inputs
}

/// The distances of `nonces`, in order, computed `batch` at a time. `progress` is told how
/// many nonces are done.
pub fn compute_distances(
    forward: &dyn ForwardPass,
    weights: &ModelWeights,
    public_key: &str,
    nonces: &[i64],
    batch: usize,
    progress: &dyn Fn(usize),
) -> Result<Vec<f64>> {
    let vocab = weights.params.vocab_size;
    let mut out = Vec::with_capacity(nonces.len());
    for group in nonces.chunks(batch.max(1)) {
        let inputs = batch_inputs(weights, public_key, group);
        let logits = forward.last_position_logits(&inputs, group.len())?;
        let dists: Vec<f64> = logits
            .par_chunks(vocab)
            .zip(group)
            .map(|(z, &nonce)| {
                let perm =
                    streams::nonce_permutation(vocab, &weights.block_hash, public_key, nonce);
                distance(z, &perm, &weights.target)
            })
            .collect();
        out.extend(dists);
        progress(out.len());
    }
    Ok(out)
}
