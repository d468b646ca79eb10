//! The AMX GEMM's driver on the emulated kernel against the split's reference and against the
//! f32 GEMM; the tile kernel against the emulated one where the processor has AMX.

use super::gemm::{PackedB, SplitA, Weights, gemm};
use super::summation_orders::{GUIDE_ORDER, SDM_ORDER};
use super::{Amx, EmulatedKernel, MicroKernel, TileKernel};
use crate::bf16_split::reference_gemm;
use crate::bf16_split::tests::{matrix, ulps_apart};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use half::f16;
use powhost_core::conformance::skip_or_fail;

/// `x` (`m × k`) and `W` (`n × k`) as f16-exact f32, seeded, with the spread of the model's
/// activations and weights.
fn operands(m: usize, k: usize, n: usize, seed: u64) -> (Vec<f16>, Vec<f16>) {
    (matrix(m * k, seed, 4.0), matrix(n * k, seed + 1000, 0.06))
}

fn widen(v: &[f16]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}

fn amx_gemm(
    kernel: &dyn MicroKernel,
    x: &[f32],
    w: &[f32],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f32> {
    let mut out = vec![f32::NAN; m * n];
    gemm(
        kernel,
        &SplitA::new(x, m, k),
        Weights::Packed(&PackedB::new(w, n, k)),
        &mut out,
    );
    out
}

/// Shapes (m, k, n): one nonce (m = 1), ragged edges in every dimension, several row blocks,
/// column groups and k-steps of the blocking, and the projections and feed-forward of
/// `devtest` (dim 512, hidden 2048) at 64 rows.
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 64, 64),
    (1, 96, 160),
    (17, 33, 15),
    (16, 32, 16),
    (33, 31, 47),
    (3, 1000, 7),
    (70, 1100, 600),
    (64, 512, 512),
    (64, 512, 2048),
    (64, 2048, 512),
    (1, 512, 8192),
];

#[test]
fn the_driver_on_the_emulated_kernel_equals_the_reference_bit_for_bit() {
    for (case, &(m, k, n)) in SHAPES.iter().enumerate() {
        let (x, w) = operands(m, k, n, case as u64 + 1);
        let got = amx_gemm(&EmulatedKernel, &widen(&x), &widen(&w), m, k, n);
        // The reference multiplies row-major A (m × k) by B (k × n) = Wᵀ.
        let wt: Vec<f16> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
        let want = reference_gemm(&x, &wt, m, k, n);
        for (i, (g, r)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == r,
                "{m}×{k}×{n}: C[{}][{}] = {g:e}, reference {r:e}",
                i / n,
                i % n
            );
        }
    }
}

fn faer_gemm(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    let lhs = MatRef::from_row_major_slice(x, m, k);
    let rhs = MatRef::from_row_major_slice(w, n, k).transpose();
    let dst = MatMut::from_row_major_slice_mut(&mut out, m, n);
    matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
    out
}

/// How far two GEMM results are apart.
struct Apart {
    /// The largest difference in float16 ulps after rounding to float16, where the sum is at
    /// least 1/16 of Σ|x·w| …
    ulps: u32,
    /// … and where the terms cancel to less (a float16 ulp of such a result is a small
    /// fraction of the sums' f32 error, so these are counted apart).
    ulps_cancelled: u32,
    /// The largest error of `a` against the exact (f64) sum, relative to Σ|x·w|.
    err: f64,
}

fn compare(a: &[f32], b: &[f32], x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Apart {
    let (mut ulps, mut ulps_cancelled, mut err) = (0, 0, 0f64);
    for i in 0..m {
        for j in 0..n {
            let (mut exact, mut magnitude) = (0f64, 0f64);
            for p in 0..k {
                let t = x[i * k + p] as f64 * w[j * k + p] as f64;
                exact += t;
                magnitude += t.abs();
            }
            let (ga, gb) = (a[i * n + j], b[i * n + j]);
            let apart = ulps_apart(f16::from_f32(ga), f16::from_f32(gb));
            if exact.abs() >= magnitude / 16.0 {
                ulps = ulps.max(apart);
            } else {
                ulps_cancelled = ulps_cancelled.max(apart);
            }
            if magnitude > 0.0 {
                err = err.max((ga as f64 - exact).abs() / magnitude);
            }
        }
    }
    Apart {
        ulps,
        ulps_cancelled,
        err,
    }
}

#[test]
fn the_amx_gemm_agrees_with_the_f32_gemm_on_the_forward_pass_shapes() {
    let mut worst = 0;
    for (case, &(m, k, n)) in SHAPES.iter().enumerate() {
        let (x, w) = operands(m, k, n, case as u64 + 11);
        let (x, w) = (widen(&x), widen(&w));
        let amx = amx_gemm(&EmulatedKernel, &x, &w, m, k, n);
        let f32_gemm = faer_gemm(&x, &w, m, k, n);
        let apart = compare(&amx, &f32_gemm, &x, &w, m, k, n);
        let faer_err = compare(&f32_gemm, &amx, &x, &w, m, k, n).err;
        println!(
            "{m}×{k}×{n}: {} f16 ulps from faer after rounding ({} where the terms cancel to under 1/16); error / Σ|x·w|: AMX {:.1e}, faer {faer_err:.1e}",
            apart.ulps, apart.ulps_cancelled, apart.err
        );
        worst = worst.max(apart.ulps);
        // Both are f32 sums of the same exact products, in different orders: within the f32
        // summation bound k·2⁻²⁴ of Σ|x·w|.
        let bound = k as f64 * f32::EPSILON as f64 / 2.0;
        assert!(apart.err <= bound, "{m}×{k}×{n}: {:e}", apart.err);
    }
    // Rounded to float16 the two differ by one ulp where an f32 sum lies next to a float16
    // rounding boundary. Measured 2026-12-04 on these shapes and seeds: at most 1 ulp where
    // the sum is at least 1/16 of Σ|x·w|; up to 20 where the terms cancel (the result is
    // then so small that both sums' f32 errors, about 2e-7 of Σ|x·w| for each, span many of
    // its float16 ulps).
    assert!(worst <= 1, "{worst} ulps");
}

/// `kernel` against the emulated kernel on [`SHAPES`] (seeds from `seed`), asserting what the
/// tiles must meet; prints how many values differ from the emulation and from each model of
/// `tdpbf16ps`'s summation order in `models`.
fn agrees_with_the_emulation(kernel: &dyn MicroKernel, models: &[&dyn MicroKernel]) {
    for (case, &(m, k, n)) in SHAPES.iter().enumerate() {
        let (x, w) = operands(m, k, n, case as u64 + 21);
        let (x, w) = (widen(&x), widen(&w));
        let emulated = amx_gemm(&EmulatedKernel, &x, &w, m, k, n);
        let real = amx_gemm(kernel, &x, &w, m, k, n);
        let differ = |other: &[f32]| real.iter().zip(other).filter(|(a, b)| a != b).count();
        let by_model = models
            .iter()
            .map(|model| {
                let other = amx_gemm(*model, &x, &w, m, k, n);
                format!("{} from {}", differ(&other), model.name())
            })
            .collect::<Vec<_>>()
            .join(", ");
        let Apart {
            ulps,
            ulps_cancelled,
            err,
        } = compare(&real, &emulated, &x, &w, m, k, n);
        println!(
            "{m}×{k}×{n}: {}: {} of {} f32 values differ from the emulation{}, {ulps} f16 ulps ({ulps_cancelled} where the terms cancel); error / Σ|x·w| {err:.1e}",
            kernel.name(),
            differ(&emulated),
            m * n,
            if by_model.is_empty() {
                String::new()
            } else {
                format!(" ({by_model})")
            },
        );
        assert!(
            real.iter().all(|v| v.is_finite()),
            "{m}×{k}×{n}: a non-finite value"
        );
        // The order of the f32 additions inside a `tdpbf16ps` is the emulation's model
        // (Intel documents two others): whatever the hardware's, the results lie within the
        // f32 summation bound.
        assert!(
            err <= k as f64 * f32::EPSILON as f64 / 2.0,
            "{m}×{k}×{n}: {err:e}"
        );
        assert!(ulps <= 1, "{m}×{k}×{n}: {ulps} ulps");
    }
}

/// The tile kernel where the processor has AMX (else skipped, or failed where
/// `POWHOST_REQUIRE_BACKENDS` names `amx`): against the emulated kernel on the same shapes.
#[test]
fn the_tile_kernel_agrees_with_its_emulation() {
    let amx = match Amx::detect() {
        Ok(amx) => amx,
        Err(why) => return skip_or_fail("amx", why),
    };
    agrees_with_the_emulation(&TileKernel::new(amx), &[&SDM_ORDER, &GUIDE_ORDER]);
}

/// Tiles that sum in either order Intel documents pass what the tile kernel must pass, here
/// and in the self-check that chooses the path (and the models differ from the emulation, so
/// the report on a processor with AMX tells which one the tiles follow).
#[test]
fn kernels_summing_in_the_documented_orders_pass_the_tiles_checks() {
    let models: [&dyn MicroKernel; 2] = [&SDM_ORDER, &GUIDE_ORDER];
    for model in models {
        agrees_with_the_emulation(model, &[]);
        super::self_check::check(model).unwrap();
        let (m, k, n) = (64, 512, 512);
        let (x, w) = operands(m, k, n, 5);
        let (x, w) = (widen(&x), widen(&w));
        let (a, b) = (
            amx_gemm(model, &x, &w, m, k, n),
            amx_gemm(&EmulatedKernel, &x, &w, m, k, n),
        );
        assert!(a != b, "{} equals the emulation bit for bit", model.name());
    }
}

#[test]
fn the_tiles_peak_is_measured_where_there_are_tiles() {
    let amx = match Amx::detect() {
        Ok(amx) => amx,
        Err(why) => return skip_or_fail("amx", why),
    };
    let peak = TileKernel::new(amx).peak_gflops().unwrap();
    println!(
        "AMX bf16 peak {peak:.0} GFLOP/s on {} threads",
        rayon::current_num_threads()
    );
    assert!(peak.is_finite() && peak > 0.0);
    assert_eq!(EmulatedKernel.peak_gflops(), None);
}

/// The assembly is in the binary: the kernel's 8 `tdpbf16ps` and the peak loop's 4, its 10
/// tile loads, 4 stores and the configuration (where `objdump` exists to look).
#[test]
fn the_tile_instructions_are_assembled_into_the_binary() {
    let exe = std::env::current_exe().unwrap();
    let out = match std::process::Command::new("objdump")
        .arg("-d")
        .arg(&exe)
        .output()
    {
        Ok(out) if out.status.success() => out,
        other => return println!("SKIPPED: objdump -d did not run: {other:?}"),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let count = |op: &str| text.lines().filter(|l| l.contains(op)).count();
    assert!(count("tdpbf16ps") >= 12, "{} tdpbf16ps", count("tdpbf16ps"));
    assert!(count("tileloadd") >= 10, "{} tileloadd", count("tileloadd"));
    assert!(
        count("tilestored") >= 4,
        "{} tilestored",
        count("tilestored")
    );
    assert!(count("ldtilecfg") >= 1, "no ldtilecfg");
}

/// Small models are packed once at load; the forward pass then multiplies by the packed
/// weights, and a model whose packed matrices pass the limit packs block by block instead:
/// both give the same logits.
#[test]
fn weights_packed_once_or_per_block_give_the_same_forward_pass() {
    use crate::forward::CpuForward;
    use crate::gemm_path::GemmPath;
    use powhost_core::ModelParams;
    use powhost_core::poc::batch_inputs;
    let params = ModelParams::preset("small").unwrap();
    let weights = std::sync::Arc::new(
        powhost_core::ModelWeights::build(&params, "0a1b", 0, &|_, _| {}).unwrap(),
    );
    let counting = std::sync::Arc::new(Counting::default());
    let path = GemmPath::Amx(counting.clone());
    let once = path.weight_store(&weights, crate::WIDEN_POOL_LIMIT_BYTES);
    let per_block = path.weight_store(&weights, 0);
    match (&once, &per_block) {
        (crate::WeightStore::Amx(a), crate::WeightStore::Amx(b)) => {
            assert!(a.packed_once() && !b.packed_once())
        }
        _ => panic!("the AMX path made an f32 store"),
    }
    let inputs = batch_inputs(&weights, "key", &[0, 1, 2]);
    let runs = || counting.runs.load(std::sync::atomic::Ordering::Relaxed);
    let a = CpuForward::with_store(weights.clone(), once).forward(&inputs, 3);
    let after_once = runs();
    let b = CpuForward::with_store(weights.clone(), per_block).forward(&inputs, 3);
    // Both stores multiply on the AMX kernel (not on a store's f32 fallback), equally often.
    assert!(
        after_once > 0,
        "the packed-once store never ran the AMX kernel"
    );
    assert_eq!(
        runs() - after_once,
        after_once,
        "kernel runs, per block vs once"
    );
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    assert_eq!(a.len(), 3 * params.vocab_size);
}

/// Weights packed group by group from the pool (as mainnet's are) give the same bits as the
/// whole matrix packed ahead: slice- and tile-branch parameters, ragged last panels, one row
/// and several row blocks, with groups narrower than the matrix.
#[test]
fn weights_packed_from_the_pool_equal_weights_packed_ahead() {
    use powhost_core::{ModelParams, ModelWeights};
    let params = ModelParams::preset("small").unwrap();
    let weights = ModelWeights::build(&params, "0a1b", 0, &|_, _| {}).unwrap();
    let layer = weights.layer(1);
    for p in [layer.wq, layer.w2, weights.output()] {
        let (n, k) = (p.shape[0], p.shape[1]);
        let mut wide = vec![0f32; n * k];
        weights.pool.widen_into(p, &mut wide);
        let ahead = PackedB::new(&wide, n, k);
        for m in [1, 45] {
            let (x, _) = operands(m, k, 1, m as u64);
            let a = SplitA::new(&widen(&x), m, k);
            let mut want = vec![f32::NAN; m * n];
            gemm(&EmulatedKernel, &a, Weights::Packed(&ahead), &mut want);
            let mut got = vec![f32::NAN; m * n];
            gemm(
                &EmulatedKernel,
                &a,
                Weights::Pool {
                    weights: &weights,
                    p,
                },
                &mut got,
            );
            let differ = got
                .iter()
                .zip(&want)
                .filter(|(g, w)| g.to_bits() != w.to_bits());
            assert_eq!(differ.count(), 0, "{} at m = {m}", p.name);
        }
    }
}

/// The emulated kernel, counting its runs.
#[derive(Default)]
struct Counting {
    runs: std::sync::atomic::AtomicUsize,
}

impl MicroKernel for Counting {
    fn run(&self, block: super::kernel::TileBlock<'_>) {
        self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        EmulatedKernel.run(block);
    }

    fn name(&self) -> &'static str {
        "counting emulation"
    }

    fn peak_gflops(&self) -> Option<f64> {
        None
    }
}
