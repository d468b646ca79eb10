//! Choosing a compute backend by name.

use anyhow::{Result, bail};
use powhost_core::Backend;
use powhost_cpu::CpuBackend;

/// Backends in the order `auto` tries them, and whether this build has each.
const BUILT: &[(&str, bool)] = &[("cuda", false), ("wgpu", false), ("cpu", true)];

pub fn backend_by_name(name: &str) -> Result<Box<dyn Backend>> {
    match name {
        "cpu" => Ok(Box::new(CpuBackend)),
        "auto" => {
            let skipped: Vec<&str> = BUILT
                .iter()
                .take_while(|(_, built)| !built)
                .map(|(n, _)| *n)
                .collect();
            let backend = Box::new(CpuBackend);
            log::info!(
                "backend auto: using cpu ({}); {}",
                backend.device_description(),
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!("this build has no {} backend", skipped.join(" or "))
                }
            );
            Ok(backend)
        }
        "cuda" | "wgpu" => {
            bail!("backend `{name}` is not built into this powhost yet; use --backend cpu or auto")
        }
        other => bail!("unknown backend `{other}`; choose auto or cpu"),
    }
}
