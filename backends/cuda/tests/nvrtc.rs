//! `kernels.cu` through cudarc's NVRTC for every architecture the backend may meet. NVRTC
//! needs no GPU and no driver: CI installs NVIDIA's runtime wheel (`nvidia-cuda-nvrtc` 13.x,
//! see `.ci/run`) and points `LD_LIBRARY_PATH` at it. Where libnvrtc cannot be found, the test
//! says so and passes without running, or fails where `POWHOST_REQUIRE_BACKENDS` names `nvrtc`
//! (as `.ci/run` does once the wheel is installed).

use powhost_core::conformance::skip_or_fail;
use powhost_cuda::{ARCHITECTURES, compile_kernels, nvrtc_present};

/// The kernels the forward pass and the model load launch.
const ENTRY_POINTS: &[&str] = &[
    "rms_norm",
    "rope",
    "attention",
    "add_residual",
    "silu_mul",
    "last_rows",
    "gather_tile",
];

#[test]
fn kernels_compile_for_every_architecture() {
    if !nvrtc_present() {
        return skip_or_fail(
            "nvrtc",
            "libnvrtc not found; install it with `pip install --target DIR nvidia-cuda-nvrtc==13.0.*` \
             and set LD_LIBRARY_PATH=DIR/nvidia/cu13/lib (as .ci/run does)",
        );
    }
    let mut failures = Vec::new();
    for &arch in ARCHITECTURES {
        match compile_kernels(Some(arch)) {
            Ok(ptx) => {
                let text = ptx.to_src();
                let target = format!(".target {arch}");
                let missing: Vec<_> = ENTRY_POINTS
                    .iter()
                    .filter(|e| !text.contains(&format!(".entry {e}(")))
                    .collect();
                // The spec's rounding points are these conversions. (The f32 fma left with
                // --fmad=false are expf's own, inside its library implementation.)
                let conversions = text.contains("cvt.rn.f16.f32") && text.contains("cvt.f32.f16");
                let fused = text
                    .lines()
                    .filter(|l| l.trim_start().starts_with("fma.rn.f32"))
                    .count();
                eprintln!(
                    "{arch}: {} bytes of PTX, {} of {} entry points, f16 conversions {}, {fused} f32 fma",
                    text.len(),
                    ENTRY_POINTS.len() - missing.len(),
                    ENTRY_POINTS.len(),
                    if conversions { "present" } else { "MISSING" }
                );
                if !text.contains(&target) {
                    failures.push(format!("{arch}: PTX lacks `{target}`"));
                }
                if !missing.is_empty() {
                    failures.push(format!("{arch}: entry points missing: {missing:?}"));
                }
                if !conversions {
                    failures.push(format!("{arch}: the f16 rounding conversions are missing"));
                }
            }
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
