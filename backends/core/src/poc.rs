//! Nonces to distances: inputs and permutations drawn on every core, the forward pass on
//! the backend, distances per docs/spec/COMPUTATION.md §6.

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
/// many nonces are done. When the backend leaves the CPU free (a GPU), the next batch's
/// inputs are drawn while the current one is computed.
pub fn compute_distances(
    forward: &dyn ForwardPass,
    weights: &ModelWeights,
    public_key: &str,
    nonces: &[i64],
    batch: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<f64>> {
    compute_distances_until(
        forward,
        weights,
        public_key,
        nonces,
        batch,
        progress,
        &|| false,
    )
}

/// As [`compute_distances`], asking `stop` before each batch: when it says so, the
/// distances computed so far (a prefix of `nonces`' distances) are returned.
pub fn compute_distances_until(
    forward: &dyn ForwardPass,
    weights: &ModelWeights,
    public_key: &str,
    nonces: &[i64],
    batch: usize,
    progress: &(dyn Fn(usize) + Sync),
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Vec<f64>> {
    if rayon::current_thread_index().is_none() && nonces.len() < 2 * rayon::current_num_threads() {
        // A few nonces: from outside the thread pool every parallel step would hand its
        // work over and wait (~15 µs each, most of such a request's time), so hop onto a
        // worker once. (Bigger requests are split per core by the CPU backend, and measured
        // ~15 % slower when started from a worker.)
        return rayon::scope(|_| {
            compute_distances_until(forward, weights, public_key, nonces, batch, progress, stop)
        });
    }
    let groups: Vec<&[i64]> = nonces.chunks(batch.max(1)).collect();
    let mut out = Vec::with_capacity(nonces.len());
    if !forward.overlaps_host_work() || groups.len() < 2 {
        for group in groups {
            if stop() {
                break;
            }
            let inputs = batch_inputs(weights, public_key, group);
            out.extend(group_distances(
                forward, weights, public_key, group, &inputs,
            )?);
            progress(out.len());
        }
        return Ok(out);
    }
    std::thread::scope(|scope| {
        let mut inputs = batch_inputs(weights, public_key, groups[0]);
        for (i, group) in groups.iter().enumerate() {
            if stop() {
                break;
            }
            let next = groups
                .get(i + 1)
                .map(|g| scope.spawn(move || batch_inputs(weights, public_key, g)));
            out.extend(group_distances(
                forward, weights, public_key, group, &inputs,
            )?);
            progress(out.len());
            if let Some(next) = next {
                inputs = next
                    .join()
                    .map_err(|_| anyhow::anyhow!("drawing nonce inputs panicked"))?;
            }
        }
        Ok(out)
    })
}

/// One batch: the forward pass, then every nonce's permutation and distance.
fn group_distances(
    forward: &dyn ForwardPass,
    weights: &ModelWeights,
    public_key: &str,
    group: &[i64],
    inputs: &[f16],
) -> Result<Vec<f64>> {
    let vocab = weights.params.vocab_size;
    let logits = forward.last_position_logits(inputs, group.len())?;
    Ok(logits
        .par_chunks(vocab)
        .zip(group)
        .map(|(z, &nonce)| {
            let perm = streams::nonce_permutation(vocab, &weights.block_hash, public_key, nonce);
            distance(z, &perm, &weights.target)
        })
        .collect())
}
