//! Core's GPU forward sequence (`powhost_core::gpu_forward`, which the wgpu and CUDA
//! backends run over their own kernels) run over the CPU backend's ops computes exactly what
//! the CPU backend's own sequence computes: the same logits, bit for bit. So the order, shapes
//! and buffer use the GPUs run are checked on every machine, GPU or not.

use half::f16;
use powhost_core::poc::batch_inputs;
use powhost_core::{Backend, ModelParams, ModelWeights, gpu_forward};
use powhost_cpu::{CpuBackend, CpuSteps};
use std::sync::Arc;

#[test]
fn the_gpu_sequence_on_cpu_ops_equals_the_cpu_backend_bit_for_bit() {
    for (preset, batch) in [("tiny", 5), ("small", 3), ("devtest", 2)] {
        let params = ModelParams::preset(preset).unwrap();
        let weights = Arc::new(ModelWeights::build(&params, "0a1b", 0, &|_, _| {}).unwrap());
        let nonces: Vec<i64> = (0..batch as i64).collect();
        let inputs: Vec<f16> = batch_inputs(&weights, "key", &nonces);
        let want = CpuBackend::default()
            .load(weights.clone())
            .unwrap()
            .last_position_logits(&inputs, batch)
            .unwrap();
        let mut steps = CpuSteps::new(weights.clone());
        let got = gpu_forward::last_position_logits(&mut steps, &weights, &inputs, batch).unwrap();
        assert_eq!(got.len(), batch * params.vocab_size, "{preset}");
        let differing = got
            .iter()
            .zip(&want)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            differing,
            0,
            "{preset}: {differing} of {} logits differ",
            got.len()
        );
    }
}
