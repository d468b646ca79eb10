//! The conformance suite on the CUDA backend: the same golden comparisons and budget as
//! the CPU backend (docs/spec/COMPUTATION.md §9). Where no CUDA device answers (CI, the
//! development machines) each test says so and passes without running;
//! `no_device_is_a_clear_error` checks that the answer there is an error, not a panic.

use powhost_core::conformance::check_forward_golden;
use powhost_cuda::CudaBackend;

fn backend() -> Option<CudaBackend> {
    match CudaBackend::all() {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("SKIPPED: {e:#}");
            None
        }
    }
}

/// The golden file, from this checkout, or from `tests/golden/` under the current directory
/// when the test executable was carried to another machine (docs/CUDA.md).
fn golden(name: &str) -> String {
    let built_here = format!("{}/../../tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&built_here)
        .or_else(|_| std::fs::read_to_string(format!("tests/golden/{name}")))
        .unwrap_or_else(|e| panic!("golden {name} not found here or under ./tests/golden: {e}"))
}

#[test]
fn no_device_is_a_clear_error() {
    match CudaBackend::all() {
        Ok(b) => eprintln!(
            "SKIPPED: a CUDA device answered: {}",
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

#[test]
fn tiny_agrees_with_reference() {
    let Some(b) = backend() else { return };
    check_forward_golden(&b, &golden("forward_tiny.json"), 16).unwrap();
}

#[test]
fn small_agrees_with_reference() {
    let Some(b) = backend() else { return };
    check_forward_golden(&b, &golden("forward_small.json"), 16).unwrap();
}

#[test]
fn devtest_agrees_with_reference() {
    let Some(b) = backend() else { return };
    check_forward_golden(&b, &golden("forward_devtest.json"), 64).unwrap();
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
