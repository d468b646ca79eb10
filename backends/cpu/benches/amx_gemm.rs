//! Where the AMX GEMM's time goes, shape by shape: `cargo bench -p powhost-cpu --bench amx_gemm`.
//! One JSON line each, milliseconds, best of 5:
//!
//! - where the processor has AMX tiles, the kernel alone on one cache-resident block beside
//!   the tiles' peak ÷ 4 (how close its own instruction sequence comes to the ceiling);
//! - devtest's whole forward pass on the AMX path with a kernel that does nothing, beside the
//!   f32 path's (what the path costs besides the tiles);
//! - mainnet's matrices packed group by group from the pool (one layer, one nonce);
//! - per shape of the forward pass (devtest as one core's group of 128 nonces runs it,
//!   mainnet at one nonce): splitting the activations, packing the weights, the driver around
//!   the kernel (with the kernel doing nothing: C's buffers, the blocking, the final sums),
//!   the whole GEMM on the tiles where present, and faer's f32 GEMM beside it.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use powhost_cpu::amx_parts::{
    Amx, C_BLOCK, MicroKernel, PANEL_SLICE, PackedB, SplitA, TileBlock, TileKernel, Weights, gemm,
};
use std::time::Instant;

/// Stands in for the tiles: the driver's own cost.
struct Nothing;

impl MicroKernel for Nothing {
    fn run(&self, _: TileBlock<'_>) {}

    fn name(&self) -> &'static str {
        "nothing"
    }

    fn peak_gflops(&self) -> Option<f64> {
        None
    }
}

fn best_ms(mut f: impl FnMut()) -> f64 {
    f();
    (0..5)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::MAX, f64::min)
}

/// f16-exact values of every scale.
fn values(len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let h = (i.wrapping_mul(2_654_435_761) ^ salt).wrapping_mul(40_503) % 65_521;
            half::f16::from_f32(h as f32 / 65_521.0 - 0.5).to_f32()
        })
        .collect()
}

fn main() {
    let tiles = Amx::detect().map(TileKernel::new);
    if let Err(why) = &tiles {
        eprintln!("SKIPPED the tile GEMM: {why}");
    }
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    // (name, m, k, n, threads): devtest as one core's group runs it (the forward pass runs a
    // group per core, each on one thread); mainnet's one nonce on every core.
    let shapes = [
        ("devtest wq/wk/wv/wo", 512, 512, 512, 1),
        ("devtest w1/w3", 512, 512, 2048, 1),
        ("devtest w2", 512, 2048, 512, 1),
        ("mainnet wq/wk/wv/wo", 256, 1792, 1792, 0),
        ("mainnet w1/w3 block", 256, 1792, 2340, 0),
    ];
    match &tiles {
        Ok(kernel) => one_thread.install(|| kernel_alone(kernel)),
        // Runs the measurement's code (bounds included) without timing anything meaningful.
        Err(_) => drop(kernel_alone_ms(&Nothing, 1)),
    }
    forward_outside_the_tiles();
    pool_shapes(tiles.as_ref().ok());
    for (name, m, k, n, threads) in shapes {
        let pool = if threads == 1 {
            &one_thread
        } else {
            &rayon::ThreadPoolBuilder::new().build().unwrap()
        };
        pool.install(|| {
            let x = values(m * k, 11);
            let w = values(n * k, 97);
            let split = best_ms(|| drop(SplitA::new(&x, m, k)));
            // Packing per call reuses its buffer (a thread's block of the weight).
            let mut packed = PackedB::new(&w, n, k);
            let pack = best_ms(|| packed.repack(&w, n, k));
            let (a, b) = (SplitA::new(&x, m, k), PackedB::new(&w, n, k));
            let mut out = vec![0f32; m * n];
            let driver = best_ms(|| gemm(&Nothing, &a, Weights::Packed(&b), &mut out));
            let tiles_ms = tiles
                .as_ref()
                .ok()
                .map(|kernel| best_ms(|| gemm(kernel, &a, Weights::Packed(&b), &mut out)));
            let f32_ms = best_ms(|| {
                let lhs = MatRef::from_row_major_slice(&x, m, k);
                let rhs = MatRef::from_row_major_slice(&w, n, k).transpose();
                let dst = MatMut::from_row_major_slice_mut(&mut out, m, n);
                matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::rayon(0));
            });
            let gflop = 2.0 * (m * k * n) as f64 / 1e9;
            println!(
                "{{\"shape\": \"{name}\", \"m\": {m}, \"k\": {k}, \"n\": {n}, \"threads\": {}, \"split_a_ms\": {split:.3}, \"pack_b_ms\": {pack:.3}, \"driver_ms\": {driver:.3}, \"tiles_gemm_ms\": {}, \"f32_gemm_ms\": {f32_ms:.3}, \"f32_gflops\": {:.1}}}",
                rayon::current_num_threads(),
                tiles_ms.map_or("null".into(), |t| format!("{t:.3}")),
                gflop / f32_ms * 1e3,
            );
        });
    }
}

/// Mainnet's matrices packed group by group from the pool as the forward pass multiplies by
/// them (one layer of mainnet's shapes, one nonce: m = 256, every core): the packing and the
/// driver together with the kernel that does nothing, and the tiles where present.
fn pool_shapes(tiles: Option<&TileKernel>) {
    let mut params = powhost_core::ModelParams::preset("mainnet").unwrap();
    params.n_layers = 1;
    let weights = powhost_core::ModelWeights::build(&params, "bench", 0, &|_, _| {}).unwrap();
    let layer = weights.layer(0);
    let m = 256;
    for (name, p) in [
        ("mainnet wq from the pool", layer.wq),
        ("mainnet w1 from the pool", layer.w1),
        ("mainnet w2 from the pool", layer.w2),
    ] {
        let (n, k) = (p.shape[0], p.shape[1]);
        let x = values(m * k, 11);
        let a = SplitA::new(&x, m, k);
        let mut out = vec![0f32; m * n];
        let pool = Weights::Pool {
            weights: &weights,
            p,
        };
        let pack_and_driver = best_ms(|| gemm(&Nothing, &a, pool, &mut out));
        let tiles_ms = tiles.map(|kernel| best_ms(|| gemm(kernel, &a, pool, &mut out)));
        println!(
            "{{\"shape\": \"{name}\", \"m\": {m}, \"k\": {k}, \"n\": {n}, \"threads\": {}, \"pack_and_driver_ms\": {pack_and_driver:.3}, \"tiles_gemm_ms\": {}, \"gflop\": {:.2}}}",
            rayon::current_num_threads(),
            tiles_ms.map_or("null".into(), |t| format!("{t:.3}")),
            2.0 * (m * k * n) as f64 / 1e9,
        );
    }
}

/// The whole forward pass on the AMX path with a kernel that does nothing: what the path
/// costs besides the tiles' products (splitting, the driver, the element-wise steps and
/// roundings), beside the f32 path's forward pass; devtest, 256 nonces (a group of 128 per
/// core), best of 3.
fn forward_outside_the_tiles() {
    use powhost_core::Backend;
    use powhost_cpu::{CpuBackend, GemmPath};
    let params = powhost_core::ModelParams::preset("devtest").unwrap();
    let weights = std::sync::Arc::new(
        powhost_core::ModelWeights::build(&params, "bench", 0, &|_, _| {}).unwrap(),
    );
    let nonces: Vec<i64> = (0..256).collect();
    let inputs = powhost_core::poc::batch_inputs(&weights, "bench", &nonces);
    let time = |gemm: GemmPath| {
        let forward = CpuBackend::with_gemm(gemm).load(weights.clone()).unwrap();
        best_ms(|| drop(forward.last_position_logits(&inputs, nonces.len()).unwrap()))
    };
    let f32_ms = time(GemmPath::F32);
    let outside_ms = time(GemmPath::Amx(std::sync::Arc::new(Nothing)));
    println!(
        "{{\"forward\": \"devtest\", \"nonces\": {}, \"threads\": {}, \"f32_ms\": {f32_ms:.1}, \"amx_outside_the_tiles_ms\": {outside_ms:.1}, \"gflop\": {:.1}}}",
        nonces.len(),
        rayon::current_num_threads(),
        nonces.len() as f64 * params.forward_flops() as f64 / 1e9,
    );
}

/// One kernel call's k-slices in [`kernel_alone`]: devtest's k of 512.
const SLICES: usize = 16;

/// The kernel by itself on one thread, on one block whose operands stay in L1 (A 32 rows ×
/// 512 × 2 halves, B one panel): its rate beside the tiles' peak ÷ 4 measured on the same
/// thread tells how close the kernel's own instruction sequence (its loads, and its three
/// dependent products per slice on each correction tile) comes to the split's ceiling.
fn kernel_alone(kernel: &TileKernel) {
    let calls = 20_000;
    let ms = kernel_alone_ms(kernel, calls);
    let flop = (2 * 32 * 16 * 32 * SLICES * calls) as f64;
    let ceiling = kernel.peak_gflops().unwrap_or(f64::NAN) / 4.0;
    println!(
        "{{\"kernel_alone\": \"32 x 16 block, k = {}\", \"threads\": 1, \"gflops\": {:.1}, \"split_ceiling_gflops\": {ceiling:.1}, \"fraction\": {:.3}}}",
        32 * SLICES,
        flop / ms / 1e6,
        flop / ms / 1e6 / ceiling,
    );
}

/// Milliseconds for `calls` kernel calls on one block (best of 5).
fn kernel_alone_ms(kernel: &dyn MicroKernel, calls: usize) -> f64 {
    let lda = 32 * SLICES;
    let a_hi = vec![half::bf16::from_f32(0.5); 32 * lda];
    let a_lo = vec![half::bf16::from_f32(0.001); 32 * lda];
    let b = vec![half::bf16::from_f32(0.25); SLICES * PANEL_SLICE];
    let (mut main, mut corr) = (vec![0f32; C_BLOCK], vec![0f32; C_BLOCK]);
    best_ms(|| {
        for _ in 0..calls {
            let block = TileBlock {
                a_hi: &a_hi,
                a_lo: &a_lo,
                lda,
                b: &b,
                slices: SLICES,
                main: &mut main,
                corr: &mut corr,
            };
            block.check();
            kernel.run(block);
        }
    })
}
