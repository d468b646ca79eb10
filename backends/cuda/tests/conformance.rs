//! The conformance suite (`powhost_core::conformance`) on the CUDA backend, device lists, and
//! the batch split between replicas. Where no CUDA device answers (CI, the development
//! machines) each test says so and passes without running, or fails where
//! `POWHOST_REQUIRE_BACKENDS` names `cuda`; `no_device_is_a_clear_error` checks that the
//! answer there is an error, not a panic.

use powhost_core::conformance::skip_or_fail;
use powhost_cuda::CudaBackend;

powhost_core::conformance::suite!("cuda", CudaBackend::all());

fn backend() -> Option<CudaBackend> {
    match CudaBackend::all() {
        Ok(b) => Some(b),
        Err(e) => {
            skip_or_fail("cuda", e);
            None
        }
    }
}

#[test]
fn no_device_is_a_clear_error() {
    match CudaBackend::all() {
        // Not a skip of the backend (it opened, and the other tests run on it): no "SKIPPED",
        // which scripts/gpu-check.sh would read as the whole step not having run.
        Ok(b) => eprintln!(
            "nothing to check: a CUDA device answered ({})",
            powhost_core::Backend::device_description(&b)
        ),
        Err(e) => assert!(format!("{e:#}").starts_with("no CUDA device"), "{e:#}"),
    }
}

#[test]
fn device_lists_parse() {
    assert_eq!(CudaBackend::parse_devices("cuda").unwrap(), None);
    assert_eq!(
        CudaBackend::parse_devices("cuda:0,cuda:1").unwrap(),
        Some(vec![0, 1])
    );
    assert!(CudaBackend::parse_devices("cuda:x").is_err());
    assert!(CudaBackend::parse_devices("gpu0").is_err());
}

/// Two replicas (on the same device when there is only one) split each batch; the result
/// is the same as one replica's.
#[test]
fn a_batch_split_between_replicas_gives_the_same_logits() {
    use powhost_core::poc::batch_inputs;
    use powhost_core::{Backend, ModelParams, ModelWeights};
    let Some(one) = backend() else { return };
    let two = CudaBackend::on(vec![0, 0]).unwrap();
    let params = ModelParams::preset("small").unwrap();
    let weights = std::sync::Arc::new(ModelWeights::build(&params, "01", 0, &|_, _| {}).unwrap());
    let inputs = batch_inputs(&weights, "key", &[0, 1, 2, 3, 4]);
    let a = one
        .load(weights.clone())
        .unwrap()
        .last_position_logits(&inputs, 5)
        .unwrap();
    let b = two
        .load(weights)
        .unwrap()
        .last_position_logits(&inputs, 5)
        .unwrap();
    assert_eq!(a, b);
}
