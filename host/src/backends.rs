//! Choosing a compute backend by name.

use anyhow::{Result, bail};
use half::f16;
use powhost_core::{Backend, ForwardPass, ModelParams, ModelWeights};
use powhost_cpu::{CpuBackend, GemmPath};
use powhost_cuda::CudaBackend;
use powhost_wgpu::WgpuBackend;
use std::sync::Arc;

pub const NAMES: &str = "auto, cpu, wgpu, cuda, or CUDA devices such as cuda:0,cuda:1";

/// The backend `name` names, with the test hook below applied; the CPU backend's GEMM path
/// from `POWHOST_CPU_GEMM` (else `auto`).
pub fn backend_by_name(name: &str) -> Result<Box<dyn Backend>> {
    backend_with_cpu_gemm(name, None)
}

/// [`backend_by_name`], the CPU backend's GEMM path chosen by `cpu_gemm` (`f32`, `amx`,
/// `auto`; `None`: `POWHOST_CPU_GEMM`, else `auto`).
pub fn backend_with_cpu_gemm(name: &str, cpu_gemm: Option<&str>) -> Result<Box<dyn Backend>> {
    let backend = open(name, cpu_gemm)?;
    Ok(match std::env::var("POWHOST_INJECT_FAULT").as_deref() {
        Ok("logits") => {
            log::warn!(
                "POWHOST_INJECT_FAULT=logits: the {} backend's answers are deliberately wrong (a test hook)",
                backend.name()
            );
            Box::new(Faulty(backend))
        }
        _ => backend,
    })
}

/// Whether `name` names a backend (opening nothing): what the command line checks.
pub fn check_name(name: &str) -> Result<()> {
    match name {
        "cpu" | "wgpu" | "auto" => Ok(()),
        cuda if cuda.starts_with("cuda") => CudaBackend::parse_devices(cuda).map(|_| ()),
        other => bail!("unknown backend `{other}`; choose one of: {NAMES}"),
    }
}

/// The CPU backend on the GEMM path `cpu_gemm` names (`--cpu-gemm`), else the environment's.
fn cpu(cpu_gemm: Option<&str>) -> Result<CpuBackend> {
    Ok(match cpu_gemm {
        Some(choice) => CpuBackend::with_gemm(GemmPath::from_choice(
            choice,
            &format!("--cpu-gemm {choice}"),
        )?),
        None => CpuBackend::new()?,
    })
}

fn open(name: &str, cpu_gemm: Option<&str>) -> Result<Box<dyn Backend>> {
    match name {
        "cpu" => Ok(Box::new(cpu(cpu_gemm)?)),
        "wgpu" => Ok(Box::new(WgpuBackend::new()?)),
        "auto" => auto(cpu_gemm),
        cuda if cuda.starts_with("cuda") => Ok(Box::new(match CudaBackend::parse_devices(cuda)? {
            None => CudaBackend::all()?,
            Some(ordinals) => CudaBackend::on(ordinals)?,
        })),
        other => bail!("unknown backend `{other}`; choose one of: {NAMES}"),
    }
}

/// CUDA when a device answers, then wgpu on a hardware GPU, then the CPU. A software
/// Vulkan adapter (lavapipe) is passed over: the CPU backend is far faster.
fn auto(cpu_gemm: Option<&str>) -> Result<Box<dyn Backend>> {
    let backend: Box<dyn Backend> = match CudaBackend::all() {
        Ok(cuda) => Box::new(cuda),
        Err(e) => {
            log::info!("backend auto: {e:#}");
            match powhost_wgpu::hardware_adapter() {
                Some(name) => match WgpuBackend::new() {
                    Ok(wgpu) => Box::new(wgpu),
                    Err(e) => {
                        log::warn!(
                            "backend auto: the GPU {name} did not open ({e:#}); using the CPU"
                        );
                        Box::new(cpu(cpu_gemm)?)
                    }
                },
                None => {
                    log::info!("backend auto: no hardware GPU through wgpu");
                    Box::new(cpu(cpu_gemm)?)
                }
            }
        }
    };
    log::info!(
        "backend auto: using {} ({})",
        backend.name(),
        backend.device_description()
    );
    Ok(backend)
}

/// Test hook (`POWHOST_INJECT_FAULT=logits`): a backend that computes, but wrongly, as a
/// faulty device would: every last-position logit is shifted by 1 %. It lets the tests show
/// that the self-test refuses such a device; nothing else sets it. (The other test hook,
/// `POWHOST_TEST_HOLD_SELFTEST`, which keeps a start waiting, is in selftest/.)
struct Faulty(Box<dyn Backend>);

struct FaultyPass(Box<dyn ForwardPass>);

impl Backend for Faulty {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn device_description(&self) -> String {
        self.0.device_description()
    }
    fn devices(&self) -> Vec<String> {
        self.0.devices()
    }
    fn working_memory_bytes(&self, params: &ModelParams, batch: usize) -> u64 {
        self.0.working_memory_bytes(params, batch)
    }
    fn load(&self, weights: Arc<ModelWeights>) -> Result<Box<dyn ForwardPass>> {
        Ok(Box::new(FaultyPass(self.0.load(weights)?)))
    }
    fn preferred_batch(&self, params: &ModelParams) -> Option<usize> {
        self.0.preferred_batch(params)
    }
    fn gpus(&self) -> Vec<powhost_core::GpuDevice> {
        self.0.gpus()
    }
    fn gpu_driver(&self) -> Option<powhost_core::GpuDriver> {
        self.0.gpu_driver()
    }
    fn gemm_path(&self) -> Option<&'static str> {
        self.0.gemm_path()
    }
}

impl ForwardPass for FaultyPass {
    fn last_position_logits(&self, inputs: &[f16], batch: usize) -> Result<Vec<f32>> {
        let mut logits = self.0.last_position_logits(inputs, batch)?;
        for (i, x) in logits.iter_mut().enumerate() {
            if i % 2 == 0 {
                *x *= 1.01;
            }
        }
        Ok(logits)
    }
    fn overlaps_host_work(&self) -> bool {
        self.0.overlaps_host_work()
    }
}
