//! The one trait every compute backend implements. The seeded work (pool, inputs,
//! permutations, target, distances) is shared in this crate; a backend only runs the
//! forward pass of docs/spec/COMPUTATION.md §5 for a batch of nonce inputs.

use crate::model::ModelWeights;
use crate::params::ModelParams;
use anyhow::Result;
use half::f16;
use std::sync::Arc;

pub trait Backend: Send + Sync {
    /// Short name as used on the command line (`cpu`, `cuda`, `wgpu`).
    fn name(&self) -> &'static str;

    /// The device this backend computes on, in words.
    fn device_description(&self) -> String;

    /// The device names a request may ask for (`cpu`, `cuda:0`, …).
    fn devices(&self) -> Vec<String> {
        vec![self.name().to_string()]
    }

    /// Working memory this backend needs beyond the f16 weight pool, for a batch of
    /// `batch` nonces: checked against the machine before the model is built.
    fn working_memory_bytes(&self, params: &ModelParams, batch: usize) -> u64;

    /// Prepare the forward pass for these weights.
    fn load(&self, weights: Arc<ModelWeights>) -> Result<Box<dyn ForwardPass>>;

    /// Nonces per forward pass this backend would choose for `params` (e.g. from free
    /// device memory); `None` leaves the choice to the caller.
    fn preferred_batch(&self, _params: &ModelParams) -> Option<usize> {
        None
    }

    /// The backend's matrix-product speed on a GEMM shaped like the model's feed-forward
    /// (1024 rows × dim → ffn hidden), measured now, in GFLOP/s: the yardstick `bench`
    /// compares the forward pass with. `None` where the backend does not measure it.
    fn gemm_peak_gflops(&self, _params: &ModelParams) -> Result<Option<f64>> {
        Ok(None)
    }

    /// Which GEMM path the backend runs, where it has a choice (the CPU backend: `f32` or
    /// `amx`); `None` elsewhere.
    fn gemm_path(&self) -> Option<&'static str> {
        None
    }

    /// The GPUs this backend computes on, as they are now (free memory changes): what the
    /// node software reads from `/api/v1/gpu/devices`. None on the CPU.
    fn gpus(&self) -> Vec<GpuDevice> {
        Vec::new()
    }

    /// The GPU driver's versions, where the backend talks to one.
    fn gpu_driver(&self) -> Option<GpuDriver> {
        None
    }
}

/// One GPU, with what its backend can tell of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GpuDevice {
    /// The device's ordinal as its backend numbers it (`cuda:N`).
    pub index: usize,
    /// As the driver names it, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    pub total_memory_bytes: Option<u64>,
    pub free_memory_bytes: Option<u64>,
    /// Why the device could not be queried, when it could not.
    pub error: Option<String>,
}

/// The versions of the GPU driver, each where the backend can tell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GpuDriver {
    /// The driver's own version, e.g. `535.104.05`.
    pub driver_version: Option<String>,
    /// The newest CUDA version the driver supports, e.g. `12.2`.
    pub cuda_driver_version: Option<String>,
}

/// A model ready to compute.
pub trait ForwardPass: Send + Sync {
    /// For `batch` nonce inputs (each `[seq_len][dim]` f16, concatenated), the last
    /// position's logits (`vocab_size` f32 each, concatenated).
    fn last_position_logits(&self, inputs: &[f16], batch: usize) -> Result<Vec<f32>>;

    /// Whether the forward pass leaves the CPU cores free (a GPU computes), so that the
    /// next batch's inputs are best drawn on them meanwhile.
    fn overlaps_host_work(&self) -> bool {
        false
    }
}
