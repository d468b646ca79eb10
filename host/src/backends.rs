//! Choosing a compute backend by name.

use anyhow::{Result, bail};
use powhost_core::Backend;
use powhost_cpu::CpuBackend;
use powhost_wgpu::WgpuBackend;

pub const NAMES: &str = "auto, cpu, wgpu (cuda is not built into this powhost yet)";

pub fn backend_by_name(name: &str) -> Result<Box<dyn Backend>> {
    match name {
        "cpu" => Ok(Box::new(CpuBackend)),
        "wgpu" => Ok(Box::new(WgpuBackend::new()?)),
        "auto" => Ok(auto()),
        "cuda" => {
            bail!(
                "backend `cuda` is not built into this powhost yet; use --backend cpu, wgpu or auto"
            )
        }
        other => bail!("unknown backend `{other}`; choose one of: {NAMES}"),
    }
}

/// CUDA when a device answers (not in this build), then wgpu on a hardware GPU, then the
/// CPU. A software Vulkan adapter (lavapipe) is passed over: the CPU backend is far faster.
fn auto() -> Box<dyn Backend> {
    let backend: Box<dyn Backend> = match powhost_wgpu::hardware_adapter() {
        Some(name) => match WgpuBackend::new() {
            Ok(wgpu) => Box::new(wgpu),
            Err(e) => {
                log::warn!("backend auto: the GPU {name} did not open ({e:#}); using the CPU");
                Box::new(CpuBackend)
            }
        },
        None => {
            log::info!("backend auto: no hardware GPU through wgpu");
            Box::new(CpuBackend)
        }
    };
    log::info!(
        "backend auto: using {} ({}); this build has no cuda backend",
        backend.name(),
        backend.device_description()
    );
    backend
}
