//! The conformance suite (`powhost_core::conformance`) on the wgpu backend, the shaders' f16
//! rounding checked value by value, and the backend's storage variants against each other.
//! On a machine with no Vulkan driver at all each test says so and passes without running, or
//! fails where `POWHOST_REQUIRE_BACKENDS` names `wgpu`; CI installs Mesa's lavapipe and requires
//! wgpu, so they run there for real.

use half::f16;
use powhost_core::conformance::skip_or_fail;
use powhost_wgpu::WgpuBackend;
use std::sync::OnceLock;

powhost_core::conformance::suite!("wgpu", WgpuBackend::new());

/// The backend, opened once for all the tests here; `None` (after [`skip_or_fail`]) where it
/// did not open, in every test, so that each says why it did not run.
fn backend() -> Option<&'static WgpuBackend> {
    static BACKEND: OnceLock<Result<WgpuBackend, String>> = OnceLock::new();
    match BACKEND.get_or_init(|| WgpuBackend::new().map_err(|e| format!("{e:#}"))) {
        Ok(b) => Some(b),
        Err(reason) => {
            skip_or_fail("wgpu", reason);
            None
        }
    }
}

/// ⟂ on the device equals `half`'s round-to-nearest-even for every f16 boundary: each f16
/// value, the midpoints between neighbours (ties), one f32 ulp either side of them, the
/// overflow threshold, subnormals, and a spread of ordinary values.
#[test]
fn shader_rounding_is_round_to_nearest_even() {
    let Some(b) = backend() else { return };
    let mut inputs = Vec::new();
    for bits in 0..0x7c00u16 {
        let lo = f16::from_bits(bits).to_f32();
        let hi = f16::from_bits(bits + 1).to_f32();
        let mid = (lo as f64 + hi as f64) / 2.0;
        let mid = mid as f32; // exact: f16 neighbours' midpoint fits in f32
        for x in [
            lo,
            mid,
            f32::from_bits(mid.to_bits() - 1),
            f32::from_bits(mid.to_bits() + 1),
        ] {
            inputs.push(x);
            inputs.push(-x);
        }
    }
    inputs.extend([
        65504.0,
        65519.0,
        65520.0,
        1e9,
        f32::INFINITY,
        -f32::INFINITY,
        1e-30,
        0.0,
    ]);
    let mut state = 0x2545f4914f6cdd1du64;
    for _ in 0..200_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let x = f32::from_bits(state as u32);
        if x.is_finite() {
            inputs.push(x);
        }
    }
    let got = b.round_f16_on_device(&inputs).unwrap();
    let mut wrong = 0;
    for (&x, &g) in inputs.iter().zip(&got) {
        let want = f16::from_f32(x).to_f32();
        let same = g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan());
        if !same {
            if wrong < 10 {
                eprintln!("r16({x:e}) = {g:e}, want {want:e}");
            }
            wrong += 1;
        }
    }
    println!(
        "{} inputs rounded on {}",
        inputs.len(),
        b.gpu().description()
    );
    assert_eq!(wrong, 0, "{wrong} of {} roundings differ", inputs.len());
}

/// Large matrices split into column blocks whose weights fit one binding (as on adapters
/// whose bindings are smaller than the pool) give exactly the same logits.
#[test]
fn weights_read_through_small_windows_give_the_same_bits() {
    use powhost_core::poc::batch_inputs;
    use powhost_core::{Backend, ModelParams, ModelWeights};
    let Some(b) = backend() else { return };
    // tiny: every parameter is slice-placed; a 4 KiB window holds 30 rows of a 64-wide matrix.
    let windowed = WgpuBackend::with_pool_window_limit(4096).unwrap();
    let params = ModelParams::preset("tiny").unwrap();
    let weights = std::sync::Arc::new(ModelWeights::build(&params, "01", 0, &|_, _| {}).unwrap());
    let inputs = batch_inputs(&weights, "key", &[0, 1, 2, 3, 4]);
    let whole = b
        .load(weights.clone())
        .unwrap()
        .last_position_logits(&inputs, 5)
        .unwrap();
    let split = windowed
        .load(weights)
        .unwrap()
        .last_position_logits(&inputs, 5)
        .unwrap();
    assert_eq!(whole.len(), split.len());
    assert!(
        whole
            .iter()
            .zip(&split)
            .all(|(x, y)| x.to_bits() == y.to_bits())
    );

    // small has tile-placed parameters (gathered at load): the same through small windows.
    let windowed = WgpuBackend::with_pool_window_limit(64 << 10).unwrap();
    let params = ModelParams::preset("small").unwrap();
    let weights = std::sync::Arc::new(ModelWeights::build(&params, "01", 0, &|_, _| {}).unwrap());
    assert!(weights.table.parameters.iter().any(|p| matches!(
        p.placement,
        powhost_core::parameter_table::Placement::Tile { .. }
    )));
    let inputs = batch_inputs(&weights, "key", &[0, 1]);
    let whole = b
        .load(weights.clone())
        .unwrap()
        .last_position_logits(&inputs, 2)
        .unwrap();
    let split = windowed
        .load(weights)
        .unwrap()
        .last_position_logits(&inputs, 2)
        .unwrap();
    assert!(
        whole
            .iter()
            .zip(&split)
            .all(|(x, y)| x.to_bits() == y.to_bits())
    );
}

/// f16 activation storage (where the adapter has SHADER_F16) and f32 storage hold the
/// same f16-representable values, so they compute the same bits.
#[test]
fn f16_and_f32_activation_storage_agree_bit_for_bit() {
    use powhost_core::poc::batch_inputs;
    use powhost_core::{Backend, ModelParams, ModelWeights};
    let Some(b) = backend() else { return };
    // The backend opened, but this adapter cannot store f16: nothing to compare, whatever
    // POWHOST_REQUIRE_BACKENDS says (the other tests ran on it).
    if !b.gpu().description().contains("f16 activations") {
        eprintln!("SKIPPED: {} has no SHADER_F16", b.gpu().description());
        return;
    }
    let f32_storage = WgpuBackend::with_f32_storage().unwrap();
    for preset in ["tiny", "small"] {
        let params = ModelParams::preset(preset).unwrap();
        let weights =
            std::sync::Arc::new(ModelWeights::build(&params, "01", 0, &|_, _| {}).unwrap());
        let inputs = batch_inputs(&weights, "key", &[0, 1, 2, 3]);
        let f16 = b
            .load(weights.clone())
            .unwrap()
            .last_position_logits(&inputs, 4)
            .unwrap();
        let f32 = f32_storage
            .load(weights)
            .unwrap()
            .last_position_logits(&inputs, 4)
            .unwrap();
        let same = f16
            .iter()
            .zip(&f32)
            .filter(|(x, y)| x.to_bits() == y.to_bits())
            .count();
        assert_eq!(
            same,
            f16.len(),
            "{preset}: {same} of {} logits identical",
            f16.len()
        );
    }
}
