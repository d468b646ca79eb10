//! The conformance suite on the CPU backend: distances of the reference's 64 golden nonces
//! per preset within the budget of docs/spec/COMPUTATION.md §9 (median |Δd| ≤ 5e-7, max ≤ 5e-6,
//! no verdict flips at r_target 2.0 and 1.4013564660458173). The achieved figures are printed
//! (`--nocapture`).

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

/// A backend that leaves the CPU free has the next batch's inputs drawn on other threads
/// while the current batch computes: the distances are the same, bit for bit.
#[test]
fn inputs_drawn_ahead_give_the_same_distances() {
    use half::f16;
    use powhost_core::poc::compute_distances;
    use powhost_core::{Backend, ForwardPass, ModelParams, ModelWeights};
    struct Overlapping(Box<dyn ForwardPass>);
    impl ForwardPass for Overlapping {
        fn last_position_logits(&self, inputs: &[f16], batch: usize) -> anyhow::Result<Vec<f32>> {
            self.0.last_position_logits(inputs, batch)
        }
        fn overlaps_host_work(&self) -> bool {
            true
        }
    }
    let params = ModelParams::preset("small").unwrap();
    let weights = std::sync::Arc::new(ModelWeights::build(&params, "01", 0, &|_, _| {}).unwrap());
    let nonces: Vec<i64> = (0..37).collect();
    let plain = CpuBackend.load(weights.clone()).unwrap();
    let ahead = Overlapping(CpuBackend.load(weights.clone()).unwrap());
    let a = compute_distances(&*plain, &weights, "key", &nonces, 8, &|_| {}).unwrap();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let b = compute_distances(&ahead, &weights, "key", &nonces, 8, &|n| {
        done.store(n, std::sync::atomic::Ordering::Relaxed)
    })
    .unwrap();
    assert_eq!(done.into_inner(), 37);
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    assert_eq!(a.len(), b.len());
}
