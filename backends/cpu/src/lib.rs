//! The exact CPU backend: the float16 forward pass (docs/spec/COMPUTATION.md §5) with f32
//! accumulation.
//!
//! f16 tensors are held as f32 arrays whose values are all f16-representable: every
//! rounding point of the spec rounds in place ([`ops::round_f16`]), and the matrix products
//! run as f32 GEMMs (faer) on exactly widened operands, which is both faster than an f16
//! GEMM on these CPUs and exactly the reference's "f32 products, f32 accumulation, ⟂".
//! On processors with AMX tiles the GEMMs can instead run as four bf16 tile products of the
//! exactly split float16 operands ([`GemmPath`], module `amx`).

mod amx;
// The arithmetic of the exact float16 GEMM on AMX tiles, and its portable reference (the
// reference and the matrix helpers serve the tests).
#[cfg_attr(not(test), allow(dead_code))]
mod bf16_split;
mod forward;
mod gate;
mod gemm_path;
#[cfg(feature = "op-check")]
pub mod op_check;
mod ops;
#[cfg(test)]
mod ops_exactness;
mod simd;
mod steps;
mod streamed;
mod weights;

/// The AMX GEMM's parts, for `benches/amx_gemm.rs` only (not an API).
#[doc(hidden)]
pub mod amx_parts {
    pub use crate::amx::gemm::{PackedB, SplitA, Weights, gemm};
    pub use crate::amx::kernel::{C_BLOCK, MicroKernel, PANEL_SLICE, TileBlock};
    pub use crate::amx::{Amx, TileKernel};
}

use anyhow::Result;
pub use gemm_path::{CPU_GEMM_CHOICES, CPU_GEMM_ENV, GemmPath};
use half::f16;
use powhost_core::parameter_table::pool_size_of;
use powhost_core::{Backend, ForwardPass, ModelParams, ModelWeights};
use std::sync::Arc;
pub use steps::CpuSteps;
pub use weights::WeightStore;

/// Keep an f32 copy of the pool when it is at most this large (every preset but mainnet and
/// testnet); bigger pools stay f16 and are widened panel by panel beside each GEMM.
pub const WIDEN_POOL_LIMIT_BYTES: u64 = 2 << 30;

/// The CPU backend on one GEMM path (the default: f32).
#[derive(Clone, Debug, Default)]
pub struct CpuBackend {
    gemm: GemmPath,
}

impl CpuBackend {
    /// The path `POWHOST_CPU_GEMM` chooses (`auto` where unset: AMX where detected).
    pub fn new() -> Result<Self> {
        Ok(Self::with_gemm(GemmPath::from_env()?))
    }

    pub fn with_gemm(gemm: GemmPath) -> Self {
        Self { gemm }
    }

    pub fn gemm(&self) -> &GemmPath {
        &self.gemm
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn device_description(&self) -> String {
        format!(
            "CPU, {} threads{}, GEMM {}",
            rayon::current_num_threads(),
            if std::arch::is_x86_feature_detected!("avx512f") {
                ", AVX-512"
            } else {
                ""
            },
            self.gemm.description()
        )
    }

    fn working_memory_bytes(&self, params: &ModelParams, batch: usize) -> u64 {
        let (_, pool_size) = pool_size_of(params);
        let widened = pool_size as u64 * 4;
        // Weights kept in f16 are widened panel by panel, each thread into its own panel; a
        // widened pool's tile-branch matrices (the output projection, k = dim) likewise.
        let threads = rayon::current_num_threads() as u64;
        let weights = if widened <= WIDEN_POOL_LIMIT_BYTES {
            widened + threads * streamed::panel_bytes(params.dim)
        } else {
            let widths = [
                params.dim,
                params.n_heads * params.head_dim(),
                params.ffn_hidden(),
            ];
            threads
                * widths
                    .into_iter()
                    .map(streamed::panel_bytes)
                    .max()
                    .unwrap_or(0)
        };
        // The AMX path packs every matrix once where they fit, else each thread packs a group
        // of columns at a time from the pool, instead of widening the pool.
        let weights = match &self.gemm {
            GemmPath::F32 => weights,
            GemmPath::Amx(_) => match amx::packed_model_bytes(params) {
                packed if packed <= WIDEN_POOL_LIMIT_BYTES => packed,
                _ => threads * amx::gemm::pool_group_bytes(params.ffn_hidden().max(params.dim)),
            },
        };
        let rows = (batch * params.seq_len) as u64;
        let widest = params.dim.max(params.ffn_hidden()).max(params.vocab_size) as u64;
        // Residual, normed, q/k/v/attention, two FFN buffers: f32 each.
        let activations = rows.saturating_mul(4 * (5 * params.dim as u64 + 2 * widest));
        let inputs = rows.saturating_mul(params.dim as u64 * 2);
        // The AMX path's buffers: the split activations (per GEMM) and each thread's C for a
        // group of columns.
        let split = match &self.gemm {
            GemmPath::F32 => 0,
            GemmPath::Amx(_) => rows.saturating_mul(4 * widest).saturating_add(
                threads.saturating_mul(amx::gemm::group_c_bytes(rows.next_multiple_of(32))),
            ),
        };
        weights
            .saturating_add(activations)
            .saturating_add(inputs)
            .saturating_add(split)
    }

    /// f32: faer's GEMM on the feed-forward's shape. AMX: the split's ceiling, a quarter of
    /// the tiles' bf16 peak (four tile products per float16 product), measured now on every
    /// thread with a register-only `tdpbf16ps` loop; `None` for the emulated tiles.
    fn gemm_peak_gflops(&self, params: &ModelParams) -> Result<Option<f64>> {
        Ok(match &self.gemm {
            GemmPath::F32 => Some(ops::gemm_peak_gflops(1024, params.dim, params.ffn_hidden())),
            GemmPath::Amx(kernel) => kernel.peak_gflops().map(|peak| peak / 4.0),
        })
    }

    fn gemm_path(&self) -> Option<&'static str> {
        Some(self.gemm.name())
    }

    fn load(&self, weights: Arc<ModelWeights>) -> Result<Box<dyn ForwardPass>> {
        Ok(Box::new(forward::CpuForward::new(weights, &self.gemm)))
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
