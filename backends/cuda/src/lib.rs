//! The CUDA backend: the float16 forward pass (docs/spec/COMPUTATION.md §5) on NVIDIA GPUs,
//! with cuBLAS GEMMs (f16 in, f32 accumulation, f16 out) and NVRTC-compiled kernels for the
//! other steps (`kernels.cu`). The f16 pool is uploaded once per device and weights are offsets
//! into it.
//!
//! cudarc loads libcuda, libcublas and libnvrtc at run time, so this crate builds on
//! machines without CUDA; there, [`CudaBackend::new`] returns "no CUDA device: …" (cudarc
//! panics when a library is missing, so their presence is checked first).
//!
//! Status: the kernels are compiled by NVRTC for every architecture in CI (`tests/nvrtc.rs`),
//! and the conformance, op-check and self-test steps of `scripts/gpu-check.sh` are ready, but
//! no session has had a GPU to run them on yet: without a device they skip with a message.

mod device_info;
mod forward;

pub use forward::{DeviceBuffer, Replica};

use anyhow::{Context, Result, bail};
use cudarc::driver::CudaContext;
use powhost_core::{Backend, ForwardPass, GpuDevice, GpuDriver, ModelParams, ModelWeights};
use std::sync::Arc;

const KERNELS: &str = include_str!("kernels.cu");

/// The architectures the kernels are compiled for and tested on (`tests/nvrtc.rs`): Ampere
/// (A100, A10/RTX 30), Ada (L4/L40/RTX 40) and Hopper (H100/H200).
pub const ARCHITECTURES: &[&str] = &["sm_80", "sm_86", "sm_89", "sm_90"];

/// `kernels.cu` compiled by NVRTC to PTX for `arch` (`sm_90`, …; `None`: NVRTC's default).
/// `--fmad=false`: no multiply-add contraction, so every product is rounded as
/// docs/spec/COMPUTATION.md §5 and the CPU backend round it (RoPE's `x0·c − x1·s` above all).
pub fn compile_kernels(arch: Option<&'static str>) -> Result<cudarc::nvrtc::Ptx> {
    let options = cudarc::nvrtc::CompileOptions {
        fmad: Some(false),
        arch,
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(KERNELS, options).map_err(|e| {
        anyhow::anyhow!(
            "NVRTC could not compile kernels.cu for {}: {e}",
            arch.unwrap_or("its default architecture")
        )
    })
}

/// Whether NVRTC's library loads here (it needs no GPU and no driver).
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen the library and reports whether it loaded.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// One or more CUDA devices; a model replica is loaded on each and batches are split
/// between them.
pub struct CudaBackend {
    devices: Vec<Arc<CudaContext>>,
    names: Vec<String>,
}

impl CudaBackend {
    /// Every device the driver reports.
    pub fn all() -> Result<Self> {
        check_libraries()?;
        let count = CudaContext::device_count().map_err(|e| {
            anyhow::anyhow!("no CUDA device: the driver could not count devices ({e})")
        })?;
        if count < 1 {
            bail!("no CUDA device: the driver reports none");
        }
        Self::on((0..count as usize).collect())
    }

    /// These device ordinals (`cuda:0,cuda:1` → `[0, 1]`).
    pub fn on(ordinals: Vec<usize>) -> Result<Self> {
        check_libraries()?;
        if ordinals.is_empty() {
            bail!("no CUDA device was named");
        }
        let mut devices = Vec::new();
        let mut names = Vec::new();
        for i in ordinals {
            let ctx = CudaContext::new(i)
                .map_err(|e| anyhow::anyhow!("no CUDA device: cuda:{i} did not open ({e})"))?;
            let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
            names.push(format!("cuda:{i} ({name})"));
            devices.push(ctx);
        }
        Ok(Self { devices, names })
    }

    /// The model on the `index`-th device of this backend, whose steps can be run one by
    /// one (the op check).
    pub fn load_replica(&self, weights: Arc<ModelWeights>, index: usize) -> Result<Replica> {
        let ctx = self.devices.get(index).context("no such CUDA device")?;
        Replica::new(ctx.clone(), weights)
    }

    /// Parse `cuda`, `cuda:0`, `cuda:0,cuda:1` into device ordinals.
    pub fn parse_devices(spec: &str) -> Result<Option<Vec<usize>>> {
        if spec == "cuda" {
            return Ok(None);
        }
        spec.split(',')
            .map(|d| {
                d.trim()
                    .strip_prefix("cuda:")
                    .and_then(|n| n.parse().ok())
                    .with_context(|| format!("`{d}` is not a CUDA device; write cuda:0, cuda:1, …"))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}

/// cudarc panics when a library it needs is missing: ask first.
fn check_libraries() -> Result<()> {
    // SAFETY: these only try to dlopen the libraries and report whether they loaded.
    let (driver, blas, nvrtc) = unsafe {
        (
            cudarc::driver::sys::is_culib_present(),
            cudarc::cublas::sys::is_culib_present(),
            cudarc::nvrtc::sys::is_culib_present(),
        )
    };
    let missing: Vec<&str> = [
        (driver, "the driver (libcuda)"),
        (blas, "cuBLAS"),
        (nvrtc, "NVRTC"),
    ]
    .into_iter()
    .filter(|(present, _)| !present)
    .map(|(_, name)| name)
    .collect();
    if !missing.is_empty() {
        bail!(
            "no CUDA device: this machine lacks {} (install the NVIDIA driver and CUDA 13, or use --backend cpu)",
            missing.join(", ")
        );
    }
    Ok(())
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn device_description(&self) -> String {
        self.names.join(", ")
    }

    fn devices(&self) -> Vec<String> {
        let mut d = vec!["cuda".to_string()];
        d.extend((0..self.devices.len()).map(|i| format!("cuda:{i}")));
        d
    }

    fn working_memory_bytes(&self, params: &ModelParams, batch: usize) -> u64 {
        // Host memory beyond the pool: the inputs and the logits read back.
        let rows = (batch * params.seq_len) as u64;
        rows * params.dim as u64 * 2 + batch as u64 * params.vocab_size as u64 * 6
    }

    /// As many nonces as the smallest device's free memory holds beside the pool, with a
    /// tenth kept spare.
    fn preferred_batch(&self, params: &ModelParams) -> Option<usize> {
        let (_, pool_size) = powhost_core::parameter_table::pool_size_of(params);
        let (s, dim, hidden) = (
            params.seq_len as u64,
            params.dim as u64,
            params.ffn_hidden() as u64,
        );
        let per_nonce = s * (6 * dim + 2 * hidden) * 2
            + params.n_heads as u64 * s * s * 4
            + params.vocab_size as u64 * 2;
        let free = self
            .devices
            .iter()
            .filter_map(|ctx| {
                ctx.bind_to_thread().ok()?;
                cudarc::driver::result::mem_get_info()
                    .ok()
                    .map(|(free, _)| free as u64)
            })
            .min()?;
        let spare = (free / 10).saturating_add(pool_size as u64 * 2);
        let batch = (free.saturating_sub(spare) / per_nonce.max(1)).clamp(1, 4096) as usize;
        log::info!(
            "cuda: {} MiB free on the smallest device: batch {batch}",
            free >> 20
        );
        Some(batch)
    }

    fn gpus(&self) -> Vec<GpuDevice> {
        device_info::gpus(&self.devices)
    }

    fn gpu_driver(&self) -> Option<GpuDriver> {
        Some(device_info::driver())
    }

    fn gemm_peak_gflops(&self, params: &ModelParams) -> Result<Option<f64>> {
        let ctx = self.devices.first().context("no CUDA device")?;
        forward::gemm_peak_gflops(ctx.clone(), 8192, params.dim, params.ffn_hidden()).map(Some)
    }

    fn load(&self, weights: Arc<ModelWeights>) -> Result<Box<dyn ForwardPass>> {
        let replicas = self
            .devices
            .iter()
            .map(|ctx| forward::Replica::new(ctx.clone(), weights.clone()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(forward::CudaForward::new(weights, replicas)))
    }
}
