//! The op check on CUDA: every kernel and GEMM shape class of the forward pass against the
//! CPU backend's op on seeded random data (`powhost_cpu::op_check`), every op reported even
//! when others fail. Where no CUDA device answers, skips with a message, or fails where
//! `POWHOST_REQUIRE_BACKENDS` names `cuda`. Run on the GPU machine by `scripts/gpu-check.sh`.

use powhost_core::conformance::skip_or_fail;
use powhost_core::{ModelParams, ModelWeights};
use powhost_cuda::CudaBackend;
use std::sync::Arc;

#[test]
fn every_op_agrees_with_the_cpu_backend() {
    let backend = match CudaBackend::all() {
        Ok(b) => b,
        Err(e) => return skip_or_fail("cuda", e),
    };
    let mut failures = Vec::new();
    // tiny and devtest as on wgpu; mainnet for the GEMM shapes cuBLAS meets in production
    // (k up to 49152, n up to 49152), where it may choose other algorithms.
    let presets: &[(&str, usize)] = match std::env::var("POWHOST_OP_CHECK_PRESETS") {
        Ok(v) if v == "small-only" => &[("tiny", 3), ("devtest", 2)],
        _ => &[("tiny", 3), ("devtest", 2), ("mainnet", 2)],
    };
    for &(preset, batch) in presets {
        let params = ModelParams::preset(preset).unwrap();
        let weights = Arc::new(ModelWeights::build(&params, "5eed", 0, &|_, _| {}).unwrap());
        let mut replica = match backend.load_replica(weights.clone(), 0) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{preset}: loading the model failed: {e:#}"));
                continue;
            }
        };
        let results = powhost_cpu::op_check::check_ops(&mut replica, &weights, batch, 7);
        let heading = format!(
            "cuda ({}), {preset}, batch {batch}",
            powhost_core::Backend::device_description(&backend)
        );
        if let Err(e) = powhost_cpu::op_check::report(&heading, &results) {
            failures.push(format!("{e:#}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
