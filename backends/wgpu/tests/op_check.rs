//! The op check on wgpu: every kernel and GEMM shape class against the CPU backend's op on
//! seeded random data (`powhost_cpu::op_check`). On lavapipe in CI; where no Vulkan driver
//! answers, skips with a message, or fails where `POWHOST_REQUIRE_BACKENDS` names `wgpu`.

use powhost_core::conformance::skip_or_fail;
use powhost_core::{ModelParams, ModelWeights};
use powhost_wgpu::WgpuBackend;
use std::sync::Arc;

#[test]
fn every_op_agrees_with_the_cpu_backend() {
    let backend = match WgpuBackend::new() {
        Ok(b) => b,
        Err(e) => return skip_or_fail("wgpu", e),
    };
    let mut failures = Vec::new();
    // tiny: GQA and small shapes; devtest: 16 heads, scaled RoPE, an 8192-wide output.
    for (preset, batch) in [("tiny", 3), ("devtest", 2)] {
        let params = ModelParams::preset(preset).unwrap();
        let weights = Arc::new(ModelWeights::build(&params, "5eed", 0, &|_, _| {}).unwrap());
        let model = backend.load_model(weights.clone()).unwrap();
        let results = powhost_cpu::op_check::check_ops(&mut model.steps(), &weights, batch, 7);
        let heading = format!(
            "wgpu ({}), {preset}, batch {batch}",
            backend.gpu().description()
        );
        if let Err(e) = powhost_cpu::op_check::report(&heading, &results) {
            failures.push(format!("{e:#}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
