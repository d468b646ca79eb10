//! What the node software's `/api/v1/gpu/*` routes report of the CUDA devices: each
//! device's name and memory, and the driver's versions, from the driver API (the CUDA version
//! it supports) and the kernel module (the driver's own version).

use cudarc::driver::CudaContext;
use powhost_core::{GpuDevice, GpuDriver};
use std::sync::Arc;

/// Each device as it is now; one that does not answer is reported with the driver's error,
/// as the reference reports it ("Unknown", not available).
pub(crate) fn gpus(devices: &[Arc<CudaContext>]) -> Vec<GpuDevice> {
    devices
        .iter()
        .map(|ctx| {
            let index = ctx.ordinal();
            let queried = ctx
                .name()
                .and_then(|name| ctx.mem_get_info().map(|memory| (name, memory)));
            match queried {
                Ok((name, (free, total))) => GpuDevice {
                    index,
                    name,
                    total_memory_bytes: Some(total as u64),
                    free_memory_bytes: Some(free as u64),
                    error: None,
                },
                Err(e) => GpuDevice {
                    index,
                    name: "Unknown".into(),
                    error: Some(e.to_string()),
                    ..GpuDevice::default()
                },
            }
        })
        .collect()
}

pub(crate) fn driver() -> GpuDriver {
    let mut version: std::ffi::c_int = 0;
    // SAFETY: the backend exists, so libcuda is loaded; the call writes one int.
    let cuda = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) }.result();
    GpuDriver {
        driver_version: std::fs::read_to_string("/proc/driver/nvidia/version")
            .ok()
            .and_then(|text| kernel_module_version(&text)),
        // 12020 → "12.2", as NVML writes it.
        cuda_driver_version: cuda
            .ok()
            .map(|()| format!("{}.{}", version / 1000, (version % 1000) / 10)),
    }
}

/// The version in the kernel module's banner: "NVRM version: NVIDIA UNIX x86_64 Kernel
/// Module  535.104.05  Sat Aug 19 …" (or "… Open Kernel Module for x86_64  …").
fn kernel_module_version(banner: &str) -> Option<String> {
    let line = banner.lines().find(|l| l.starts_with("NVRM version:"))?;
    line.split_whitespace()
        .find(|word| word.contains('.') && word.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::kernel_module_version;

    #[test]
    fn the_driver_version_is_read_from_the_kernel_modules_banner() {
        let proprietary = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\nGCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n";
        assert_eq!(
            kernel_module_version(proprietary).as_deref(),
            Some("535.104.05")
        );
        let open = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.82.07  Release Build  (dvs-builder@U16-I3-B03-4-3)  Wed Aug 27 2025\n";
        assert_eq!(kernel_module_version(open).as_deref(), Some("580.82.07"));
        assert_eq!(kernel_module_version("GCC version: 12.2.0\n"), None);
    }
}
