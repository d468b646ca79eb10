//! The conformance suite (`powhost_core::conformance`) on the CPU backend's f32 GEMM path (the
//! AMX path's goldens are in `amx.rs`), and the input prefetch checked against the plain path.

use powhost_cpu::CpuBackend;

powhost_core::conformance::suite!("cpu", Ok(CpuBackend::default()));

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
    let plain = CpuBackend::default().load(weights.clone()).unwrap();
    let ahead = Overlapping(CpuBackend::default().load(weights.clone()).unwrap());
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
