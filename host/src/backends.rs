//! Choosing a compute backend by name.

use anyhow::{Result, bail};
use powhost_core::Backend;
use powhost_cpu::CpuBackend;

pub fn backend_by_name(name: &str) -> Result<Box<dyn Backend>> {
    match name {
        "cpu" => Ok(Box::new(CpuBackend)),
        "cuda" | "wgpu" | "auto" => {
            bail!("backend `{name}` is not built into this powhost yet; use --backend cpu")
        }
        other => bail!("unknown backend `{other}`; choose cpu"),
    }
}
