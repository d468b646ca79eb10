//! The exact CPU backend: the float16 forward pass (docs/spec/COMPUTATION.md §5) with f32
//! accumulation.
//!
//! f16 tensors are held as f32 arrays whose values are all f16-representable: every
//! rounding point of the spec rounds in place ([`ops::round_f16`]), and the matrix products
//! run as f32 GEMMs (faer) on exactly widened operands, which is both faster than an f16
//! GEMM on these CPUs and exactly the reference's "f32 products, f32 accumulation, ⟂".

// The arithmetic of an exact float16 GEMM on AMX tiles, and its portable reference; the tile
// kernel that will use it needs an AMX processor to be written against and tested.
#[cfg_attr(not(test), allow(dead_code))]
mod bf16_split;
mod forward;
mod gate;
#[cfg(feature = "op-check")]
pub mod op_check;
mod ops;
#[cfg(test)]
mod ops_exactness;
mod simd;
mod steps;
mod streamed;
mod weights;

use anyhow::Result;
use half::f16;
use powhost_core::parameter_table::pool_size_of;
use powhost_core::{Backend, ForwardPass, ModelParams, ModelWeights};
use std::sync::Arc;
pub use steps::CpuSteps;
pub use weights::WeightStore;

/// Keep an f32 copy of the pool when it is at most this large (every preset but mainnet and
/// testnet); bigger pools stay f16 and are widened panel by panel beside each GEMM.
pub const WIDEN_POOL_LIMIT_BYTES: u64 = 2 << 30;

#[derive(Clone, Debug, Default)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn device_description(&self) -> String {
        format!(
            "CPU, {} threads{}",
            rayon::current_num_threads(),
            if std::arch::is_x86_feature_detected!("avx512f") {
                ", AVX-512"
            } else {
                ""
            }
        )
    }

    fn working_memory_bytes(&self, params: &ModelParams, batch: usize) -> u64 {
        let (_, pool_size) = pool_size_of(params);
        let widened = pool_size as u64 * 4;
        let weights = if widened <= WIDEN_POOL_LIMIT_BYTES {
            widened
        } else {
            weights::BLOCK_ELEMENTS as u64 * 4 * 2
        };
        let rows = (batch * params.seq_len) as u64;
        let widest = params.dim.max(params.ffn_hidden()).max(params.vocab_size) as u64;
        // Residual, normed, q/k/v/attention, two FFN buffers: f32 each.
        let activations = rows.saturating_mul(4 * (5 * params.dim as u64 + 2 * widest));
        let inputs = rows.saturating_mul(params.dim as u64 * 2);
        weights.saturating_add(activations).saturating_add(inputs)
    }

    fn gemm_peak_gflops(&self, params: &ModelParams) -> Result<Option<f64>> {
        Ok(Some(ops::gemm_peak_gflops(
            1024,
            params.dim,
            params.ffn_hidden(),
        )))
    }

    fn load(&self, weights: Arc<ModelWeights>) -> Result<Box<dyn ForwardPass>> {
        Ok(Box::new(forward::CpuForward::new(weights)))
    }
}

impl ForwardPass for forward::CpuForward {
    fn last_position_logits(&self, inputs: &[f16], batch: usize) -> Result<Vec<f32>> {
        let p = &self.weights.params;
        anyhow::ensure!(
            inputs.len() == batch * p.seq_len * p.dim,
            "inputs hold {} values, expected {batch} × {} × {}",
            inputs.len(),
            p.seq_len,
            p.dim
        );
        Ok(self.forward(inputs, batch))
    }
}
