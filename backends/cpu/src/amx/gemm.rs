//! The driver of the AMX GEMM `out[m, n] = x[m, k] · Wᵀ` (W is `[n, k]`): the activations split
//! into bf16 halves per call, the weights packed into VNNI tiles (once per model or per block),
//! and the blocking over the caches and the cores around a [`MicroKernel`].
//!
//! Blocking: C is computed in blocks of 32 rows × 16 columns (the kernel's tiles), its main
//! sums and its corrections apart ([`super::kernel`]), added once at the end. The columns are
//! cut into groups of up to [`GROUP_COLUMNS`], one rayon task each (both cores). In a group, k
//! goes in steps of [`K_SLICES`] slices of 32: per step, each 32-row block of A (32 × 512 × 2
//! halves × 2 bytes = 64 KiB, in L2) meets every 16-column panel of the group's B (256 × 512
//! × 4 bytes = 512 KiB, kept in L2 across the row blocks).

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
/// multiple of 16 and k to a multiple of 32 with zeros.
pub struct PackedB {
    data: Vec<bf16>,
    pub n: usize,
    slices: usize,
}

impl PackedB {
    pub fn new(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "W is {n}×{k}");
        let slices = k.div_ceil(32);
        let panels = n.div_ceil(16);
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
/// `ld_out` values, in f32 (before the caller's rounding): per element the main sum plus the
/// correction sum.
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
    let panels = n.div_ceil(16);
    // Enough groups for every thread where n allows it, at most GROUP_COLUMNS wide.
    let threads = rayon::current_num_threads().max(1);
    let per_group = (panels.div_ceil(2 * threads)).clamp(1, GROUP_COLUMNS / 16);
    // C, panel by panel: panel `p` holds rows × 16 f32, row-major; main sums and corrections.
    let panel_len = rows * 16;
    let mut main = vec![0f32; panels * panel_len];
    let mut corr = vec![0f32; panels * panel_len];
    main.par_chunks_mut(per_group * panel_len)
        .zip(corr.par_chunks_mut(per_group * panel_len))
        .enumerate()
        .for_each(|(group, (main, corr))| {
            let first = group * per_group;
            for s0 in (0..slices).step_by(K_SLICES) {
                let step = K_SLICES.min(slices - s0);
                for i0 in (0..rows).step_by(32) {
                    let a_at = i0 * a.lda + 32 * s0;
                    let c = i0 * 16..i0 * 16 + C_BLOCK;
                    let panels = main.chunks_mut(panel_len).zip(corr.chunks_mut(panel_len));
                    for (g, (main, corr)) in panels.enumerate() {
                        kernel.run(TileBlock {
                            a_hi: &a.hi[a_at..],
                            a_lo: &a.lo[a_at..],
                            lda: a.lda,
                            b: b.panel(first + g, s0),
                            slices: step,
                            main: &mut main[c.clone()],
                            corr: &mut corr[c.clone()],
                        });
                    }
                }
            }
        });
    out.par_chunks_mut(ld_out)
        .take(m)
        .enumerate()
        .for_each(|(i, row)| {
            let panels = main.chunks(panel_len).zip(corr.chunks(panel_len));
            for (p, (main, corr)) in panels.enumerate() {
                let j0 = p * 16;
                let width = 16.min(n - j0);
                let out = &mut row[col0 + j0..col0 + j0 + width];
                let (main, corr) = (&main[i * 16..], &corr[i * 16..]);
                for ((o, &x), &y) in out.iter_mut().zip(main).zip(corr) {
                    *o = x + y;
                }
            }
        });
}
