//! A check of the tile kernel against its emulation, run once before the AMX path is chosen:
//! a processor or operating system whose tiles do not compute what the emulation does (or a
//! fault in the kernel's assumptions about them) then leaves the f32 path in use instead of
//! giving wrong distances.

use super::gemm::{PackedB, SplitA, gemm};
use super::{EmulatedKernel, MicroKernel};
use half::f16;

/// Ragged in every dimension, several k-slices and row blocks, f16 values of every scale.
const SHAPE: (usize, usize, usize) = (37, 200, 40);

/// `Ok` when `kernel` computes a small GEMM as the emulation does, to within the f32
/// summation bound (the hardware may order the f32 additions inside a `tdpbf16ps` otherwise:
/// see [`super::emulated`]).
pub fn check(kernel: &dyn MicroKernel) -> Result<(), String> {
    let (m, k, n) = SHAPE;
    let value = |i: usize, salt: usize| {
        let h = (i.wrapping_mul(2_654_435_761) ^ salt).wrapping_mul(40_503) % 65_521;
        f16::from_f32((h as f32 / 65_521.0 - 0.5) * [0.02, 1.0, 37.0][i % 3]).to_f32()
    };
    let x: Vec<f32> = (0..m * k).map(|i| value(i, 11)).collect();
    let w: Vec<f32> = (0..n * k).map(|i| value(i, 97)).collect();
    let (a, b) = (SplitA::new(&x, m, k), PackedB::new(&w, n, k));
    let run = |kernel: &dyn MicroKernel| {
        let mut out = vec![0f32; m * n];
        gemm(kernel, &a, &b, &mut out, n, 0);
        out
    };
    let (real, emulated) = (run(kernel), run(&EmulatedKernel));
    for i in 0..m {
        for j in 0..n {
            let magnitude: f64 = (0..k)
                .map(|p| (x[i * k + p] as f64 * w[j * k + p] as f64).abs())
                .sum();
            let bound = k as f64 * f32::EPSILON as f64 * magnitude;
            let (got, want) = (real[i * n + j], emulated[i * n + j]);
            if !got.is_finite() || (got as f64 - want as f64).abs() > bound {
                return Err(format!(
                    "{}: element ({i}, {j}) of a {m}×{k}×{n} GEMM is {got:e}, the emulation gives {want:e}",
                    kernel.name()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amx::kernel::TileBlock;

    #[test]
    fn the_emulation_passes_its_own_check() {
        check(&EmulatedKernel).unwrap();
    }

    /// A kernel that computes nothing.
    struct Off;

    impl MicroKernel for Off {
        fn name(&self) -> &'static str {
            "off"
        }

        fn run(&self, _: TileBlock<'_>) {}

        fn peak_gflops(&self) -> Option<f64> {
            None
        }
    }

    #[test]
    fn a_kernel_that_computes_otherwise_fails_the_check() {
        let why = check(&Off).unwrap_err();
        assert!(why.contains("off: element"), "{why}");
    }
}
