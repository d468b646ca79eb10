//! The conformance suite on the CPU backend: distances of the reference's 64 golden nonces
//! per preset within spec §9's budget (median |Δd| ≤ 5e-7, max ≤ 5e-6, no verdict flips at
//! r_target 2.0 and 1.4013564660458173). The achieved figures are printed (`--nocapture`).

use powhost_core::conformance::check_forward_golden;
use powhost_cpu::CpuBackend;

fn golden(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../tests/golden/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn tiny_agrees_with_reference() {
    check_forward_golden(&CpuBackend, &golden("forward_tiny.json"), 16).unwrap();
}

#[test]
fn small_agrees_with_reference() {
    check_forward_golden(&CpuBackend, &golden("forward_small.json"), 16).unwrap();
}

#[test]
fn devtest_agrees_with_reference() {
    check_forward_golden(&CpuBackend, &golden("forward_devtest.json"), 64).unwrap();
}
