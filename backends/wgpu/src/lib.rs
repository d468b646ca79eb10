//! The portable GPU backend: the float16 forward pass (docs/spec/COMPUTATION.md §5) as WGSL
//! compute shaders on wgpu (Vulkan: NVIDIA, AMD, Intel, and Mesa's software lavapipe for tests
//! on machines without a GPU).
//!
//! Activations are f32 buffers holding f16-representable values, rounded at every rounding
//! point by integer operations (`r16` in `kernels.wgsl`, tested against `half`). The f16
//! pool is uploaded once and weights are read from it at their placement, through windows
//! within the adapter's binding limit; only the tile-placed parameters, which wrap around the
//! pool, are gathered once into a contiguous buffer at load. The distances agree with the reference within the budget of
//! docs/spec/COMPUTATION.md §9 (the conformance tests), not to the bit: sums run in a different
//! order than PyTorch's.

mod forward;
mod gpu;

use anyhow::Result;
use powhost_core::{Backend, ForwardPass, ModelParams, ModelWeights};
use std::sync::Arc;

pub use forward::{WgpuForward, WgpuSteps};
pub use gpu::{Gpu, hardware_adapter};

/// The wgpu backend on the first adapter wgpu offers (set `WGPU_ADAPTER_NAME` or
/// `WGPU_BACKEND` to choose).
#[derive(Clone)]
pub struct WgpuBackend {
    gpu: Arc<Gpu>,
}

impl WgpuBackend {
    /// The first adapter, or an error that says none answered ("no wgpu adapter: …").
    pub fn new() -> Result<Self> {
        Ok(Self {
            gpu: Arc::new(Gpu::new()?),
        })
    }

    /// Store activations as f32 even where the adapter has SHADER_F16 (for comparing the
    /// two storages, which compute the same bits).
    pub fn with_f32_storage() -> Result<Self> {
        Ok(Self {
            gpu: Arc::new(Gpu::open(false)?),
        })
    }

    /// Read weights through pool windows of at most `bytes` (for tests: large matrices are
    /// then split into column blocks, as on adapters whose bindings are smaller than the pool).
    pub fn with_pool_window_limit(bytes: u64) -> Result<Self> {
        Ok(Self {
            gpu: Arc::new(Gpu::with_pool_window_limit(bytes)?),
        })
    }

    /// The model on this adapter, whose steps ([`WgpuForward::steps`]) can also be run one
    /// by one (the op check).
    pub fn load_model(&self, weights: Arc<ModelWeights>) -> Result<WgpuForward> {
        forward::WgpuForward::new(self.gpu.clone(), weights)
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The shaders' f16 rounding (⟂) applied to `values` on the device: for checking it
    /// against a reference rounding.
    pub fn round_f16_on_device(&self, values: &[f32]) -> Result<Vec<f32>> {
        forward::round_f16_on_device(&self.gpu, values)
    }

    /// Whether the adapter is a real GPU (not a software rasteriser such as lavapipe,
    /// which is far slower than the CPU backend).
    pub fn is_hardware(&self) -> bool {
        self.gpu.is_hardware()
    }
}

impl Backend for WgpuBackend {
    fn name(&self) -> &'static str {
        "wgpu"
    }

    fn device_description(&self) -> String {
        self.gpu.description()
    }

    fn devices(&self) -> Vec<String> {
        vec!["wgpu".into(), "wgpu:0".into()]
    }

    fn working_memory_bytes(&self, params: &ModelParams, batch: usize) -> u64 {
        // Host memory beyond the pool: the batch's inputs widened to f32 and the logits read
        // back. Device memory is checked against the adapter's limits when loading.
        let rows = (batch * params.seq_len) as u64;
        rows * params.dim as u64 * 4 + batch as u64 * params.vocab_size as u64 * 8
    }

    fn load(&self, weights: Arc<ModelWeights>) -> Result<Box<dyn ForwardPass>> {
        Ok(Box::new(self.load_model(weights)?))
    }
    /// wgpu tells the adapter's name, not its memory. A software adapter (lavapipe) is no
    /// GPU.
    fn gpus(&self) -> Vec<powhost_core::GpuDevice> {
        if !self.is_hardware() {
            return Vec::new();
        }
        vec![powhost_core::GpuDevice {
            index: 0,
            name: self.gpu.adapter_name().to_string(),
            ..Default::default()
        }]
    }
}
