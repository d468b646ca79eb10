//! The driver of the AMX GEMM `out[m, n] = x[m, k] · Wᵀ` (W is `[n, k]`): the activations split
//! into bf16 halves per call, the weights packed into VNNI tiles (once per model or per block),
//! and the blocking over the caches and the cores around a [`MicroKernel`].
//!
//! Blocking: C is computed in blocks of 32 × 32 (the kernel's 2×2 tiles). The columns are cut
//! into groups of up to [`GROUP_COLUMNS`], one rayon task each (both cores). In a group, k goes
//! in steps of [`K_SLICES`] slices of 32: per step, each 32-row block of A (32 × 512 × 2
//! halves × 2 bytes = 64 KiB, in L2) meets every 32-column panel of the group's B (256 × 512 ×
//! 4 bytes = 512 KiB, kept in L2 across the row blocks).

use super::kernel::{C_BLOCK, MicroKernel, PANEL_SLICE, TileBlock};
use crate::bf16_split::split_f32;
use half::bf16;
use rayon::prelude::*;

/// k-slices (of 32) per kernel call.
pub const K_SLICES: usize = 16;
/// Columns of C per task (a multiple of 32).
pub const GROUP_COLUMNS: usize = 256;

/// The activations `x` (`m × k`, f16-exact f32) split into bf16 halves, rows padded to a
/// multiple of 32 and k to a multiple of 32 with zeros.
pub struct SplitA {
    pub hi: Vec<bf16>,
    pub lo: Vec<bf16>,
    pub m: usize,
    /// Row stride, in bf16: k rounded up to 32.
    pub lda: usize,
}

impl SplitA {
    pub fn new(x: &[f32], m: usize, k: usize) -> Self {
        assert_eq!(x.len(), m * k, "x is {m}×{k}");
        let lda = k.div_ceil(32) * 32;
        let rows = m.div_ceil(32) * 32;
        let mut hi = vec![bf16::ZERO; rows * lda];
        let mut lo = vec![bf16::ZERO; rows * lda];
        if k > 0 {
            hi.par_chunks_mut(lda)
                .zip(lo.par_chunks_mut(lda))
                .zip(x.par_chunks(k))
                .for_each(|((hi, lo), row)| {
                    for ((h, l), &v) in hi.iter_mut().zip(lo.iter_mut()).zip(row) {
                        (*h, *l) = split_f32(v);
                    }
                });
        }
        Self { hi, lo, m, lda }
    }

    fn slices(&self) -> usize {
        self.lda / 32
    }
}

/// Weights `W` (`n × k`, f16-exact f32) as the kernel reads them: per 16-column panel (a
/// panel's columns are 16 rows of W), per k-slice of 32, the hi tile then the lo tile, each
/// 16 VNNI rows of 32 bf16 (row `r`, column `j`: `W[j][2r], W[j][2r + 1]`). n is padded to a
/// multiple of 32 and k to a multiple of 32 with zeros.
pub struct PackedB {
    data: Vec<bf16>,
    pub n: usize,
    slices: usize,
}

impl PackedB {
    pub fn new(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "W is {n}×{k}");
        let slices = k.div_ceil(32);
        let panels = n.div_ceil(32) * 2;
        let mut data = vec![bf16::ZERO; panels * slices * PANEL_SLICE];
        if slices > 0 {
            data.par_chunks_mut(slices * PANEL_SLICE)
                .enumerate()
                .for_each(|(panel, out)| {
                    for j in 0..16 {
                        let col = panel * 16 + j;
                        if col >= n {
                            break;
                        }
                        for (p, &v) in w[col * k..(col + 1) * k].iter().enumerate() {
                            let (s, q) = (p / 32, p % 32);
                            // Row q/2 of the slice's tile, column j, element q%2 of the pair.
                            let at = s * PANEL_SLICE + (q / 2) * 32 + 2 * j + q % 2;
                            let (h, l) = split_f32(v);
                            out[at] = h;
                            out[at + PANEL_SLICE / 2] = l;
                        }
                    }
                });
        }
        Self { data, n, slices }
    }

    /// The packed 16-column panel `panel`, from slice `s0` on.
    fn panel(&self, panel: usize, s0: usize) -> &[bf16] {
        let len = self.slices * PANEL_SLICE;
        &self.data[panel * len + s0 * PANEL_SLICE..(panel + 1) * len]
    }
}

/// `out[i][col0 + j] = Σ_p x[i][p] · W[j][p]` for `i < a.m`, `j < b.n`, with `out` rows of
/// `ld_out` values, in f32 (before the caller's rounding).
pub fn gemm(
    kernel: &dyn MicroKernel,
    a: &SplitA,
    b: &PackedB,
    out: &mut [f32],
    ld_out: usize,
    col0: usize,
) {
    assert_eq!(a.lda, b.slices * 32, "A's k and B's k differ");
    assert!(
        col0 + b.n <= ld_out && out.len() >= a.m * ld_out,
        "out too small"
    );
    let (m, n, slices) = (a.m, b.n, a.slices());
    if m == 0 || n == 0 {
        return;
    }
    let rows = m.div_ceil(32) * 32;
    let blocks = n.div_ceil(32);
    // Enough groups for every thread where n allows it, at most GROUP_COLUMNS wide.
    let threads = rayon::current_num_threads().max(1);
    let per_group = (blocks.div_ceil(2 * threads)).clamp(1, GROUP_COLUMNS / 32);
    // C, column block by column block: block `nb` holds rows × 32 f32, row-major.
    let mut c = vec![0f32; blocks * rows * 32];
    c.par_chunks_mut(per_group * rows * 32)
        .enumerate()
        .for_each(|(group, c)| {
            let first = group * per_group;
            for s0 in (0..slices).step_by(K_SLICES) {
                let step = K_SLICES.min(slices - s0);
                for i0 in (0..rows).step_by(32) {
                    let a_at = i0 * a.lda + 32 * s0;
                    for (g, c) in c.chunks_mut(rows * 32).enumerate() {
                        let nb = first + g;
                        kernel.run(TileBlock {
                            a_hi: &a.hi[a_at..],
                            a_lo: &a.lo[a_at..],
                            lda: a.lda,
                            b0: b.panel(2 * nb, s0),
                            b1: b.panel(2 * nb + 1, s0),
                            slices: step,
                            c: &mut c[i0 * 32..i0 * 32 + C_BLOCK],
                        });
                    }
                }
            }
        });
    out.par_chunks_mut(ld_out)
        .take(m)
        .enumerate()
        .for_each(|(i, row)| {
            for (nb, block) in c.chunks(rows * 32).enumerate() {
                let j0 = nb * 32;
                let width = 32.min(n - j0);
                row[col0 + j0..col0 + j0 + width].copy_from_slice(&block[i * 32..i * 32 + width]);
            }
        });
}
