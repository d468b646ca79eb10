//! Choosing a compute backend by name.

use anyhow::{Result, bail};
use half::f16;
use powhost_core::{Backend, ForwardPass, ModelParams, ModelWeights};
use powhost_cpu::CpuBackend;
use powhost_cuda::CudaBackend;
use powhost_wgpu::WgpuBackend;
use std::sync::Arc;

pub const NAMES: &str = "auto, cpu, wgpu, cuda, or CUDA devices such as cuda:0,cuda:1";

/// The backend `name` names, with the test hook below applied.
pub fn backend_by_name(name: &str) -> Result<Box<dyn Backend>> {
    let backend = open(name)?;
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

fn open(name: &str) -> Result<Box<dyn Backend>> {
    match name {
        "cpu" => Ok(Box::new(CpuBackend)),
        "wgpu" => Ok(Box::new(WgpuBackend::new()?)),
        "auto" => Ok(auto()),
        cuda if cuda.starts_with("cuda") => Ok(Box::new(match CudaBackend::parse_devices(cuda)? {
            None => CudaBackend::all()?,
            Some(ordinals) => CudaBackend::on(ordinals)?,
        })),
        other => bail!("unknown backend `{other}`; choose one of: {NAMES}"),
    }
}

/// CUDA when a device answers, then wgpu on a hardware GPU, then the CPU. A software
/// Vulkan adapter (lavapipe) is passed over: the CPU backend is far faster.
fn auto() -> Box<dyn Backend> {
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
                        Box::new(CpuBackend)
                    }
                },
                None => {
                    log::info!("backend auto: no hardware GPU through wgpu");
                    Box::new(CpuBackend)
                }
            }
        }
    };
    log::info!(
        "backend auto: using {} ({})",
        backend.name(),
        backend.device_description()
    );
    backend
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
