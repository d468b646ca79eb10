//! The AMX path's weights and its `x · Wᵀ`. The weights are split and packed once per model
//! when all of them fit in the memory the f32 path would give a widened pool
//! ([`crate::WIDEN_POOL_LIMIT_BYTES`]: packed hi + lo take 4 bytes an element, as f32 does);
//! otherwise (mainnet, testnet) each GEMM packs its weight group of columns by group, straight
//! from the pool, on the thread that multiplies by it ([`Weights::Pool`]), so memory stays at
//! about a megabyte per thread.

use super::gemm::{PackedB, SplitA, Weights, gemm};
use super::kernel::MicroKernel;
use powhost_core::parameter_table::{Parameter, parameter_shapes};
use powhost_core::{ModelParams, ModelWeights};
use rayon::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

thread_local! {
    /// Each thread's split activations, reused from one product to the next.
    static SPLIT: RefCell<SplitA> = RefCell::new(SplitA::empty());
}

pub struct AmxWeights {
    kernel: Arc<dyn MicroKernel>,
    /// Every matrix packed, by parameter name; empty when they do not fit.
    packed: HashMap<String, PackedB>,
}

/// The matrices the forward pass multiplies by.
fn matrices(weights: &ModelWeights) -> Vec<&Parameter> {
    let mut out = Vec::new();
    for l in 0..weights.params.n_layers {
        let lp = weights.layer(l);
        out.extend([lp.wq, lp.wk, lp.wv, lp.wo, lp.w1, lp.w2, lp.w3]);
    }
    out.push(weights.output());
    out
}

/// Bytes of every matrix of a model packed (hi and lo, padded to the tiles): what packing
/// once per model costs.
pub fn packed_model_bytes(params: &ModelParams) -> u64 {
    parameter_shapes(params)
        .iter()
        .filter(|(name, shape)| shape.len() == 2 && name != "tok_embeddings.weight")
        .map(|(_, shape)| packed_bytes(shape[0], shape[1]))
        .sum()
}

/// Bytes of a packed `[n, k]` matrix.
fn packed_bytes(n: usize, k: usize) -> u64 {
    (n.div_ceil(16) * 16) as u64 * (k.div_ceil(32) * 32) as u64 * 4
}

impl AmxWeights {
    pub fn new(weights: &ModelWeights, kernel: Arc<dyn MicroKernel>, limit_bytes: u64) -> Self {
        let packed = if packed_model_bytes(&weights.params) <= limit_bytes {
            // Straight from the pool, as a product packs a weight on the fly; a matrix a core.
            matrices(weights)
                .into_par_iter()
                .map(|p| {
                    let mut b = PackedB::empty();
                    b.pack_parameter_here(weights, p, 0, p.shape[0]);
                    (p.name.clone(), b)
                })
                .collect()
        } else {
            HashMap::new()
        };
        Self { kernel, packed }
    }

    /// Whether the weights were packed once (else per call, group by group).
    #[cfg(test)]
    pub fn packed_once(&self) -> bool {
        !self.packed.is_empty()
    }

    /// `out[m, n] = x[m, k] · Wᵀ` in f32 (the caller rounds), `W = w` of shape `[n, k]`.
    pub fn matmul_xwt(
        &self,
        weights: &ModelWeights,
        x: &[f32],
        m: usize,
        w: &Parameter,
        out: &mut [f32],
    ) {
        SPLIT.with_borrow_mut(|a| {
            a.resplit(x, m, w.shape[1]);
            let b = match self.packed.get(&w.name) {
                Some(b) => Weights::Packed(b),
                None => Weights::Pool { weights, p: w },
            };
            gemm(&*self.kernel, a, b, out);
        })
    }
}
