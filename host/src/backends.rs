//! Choosing a compute backend by name.

use anyhow::{Result, bail};
use powhost_core::Backend;
use powhost_cpu::CpuBackend;
use powhost_cuda::CudaBackend;
use powhost_wgpu::WgpuBackend;

pub const NAMES: &str = "auto, cpu, wgpu, cuda, or CUDA devices such as cuda:0,cuda:1";

pub fn backend_by_name(name: &str) -> Result<Box<dyn Backend>> {
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
