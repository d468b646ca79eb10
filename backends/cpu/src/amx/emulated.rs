//! The micro-kernel in portable Rust, doing what the tile instructions do: the same loads
//! from the same addresses, the same exact bf16 products, summed in f32 in an order that
//! models `tdpbf16ps` (as [`crate::bf16_split::reference_gemm`] does: for each element of C,
//! per pair of k, the two products summed, then added to the accumulator; the 16 pairs of a
//! slice in order). It lets the blocking and packing driver be tested on any processor, and
//! the tile kernel be checked against it on one with AMX.
//!
//! That order of the f32 additions inside one `tdpbf16ps` is a model, not Intel's word, and
//! Intel documents two others: the SDM's pseudocode keeps two partial sums per element of C
//! (the even and the odd products of the 16 pairs, each an FMA), adds them, then adds that
//! to C; the Intrinsics Guide adds the 32 products to C one by one (both modelled in
//! `summation_orders`, for the tests). The orders round differently, within the f32 summation bound, so
//! the tiles are compared with the emulation within that bound (`self_check`, the tests),
//! not bit for bit; the tests on a processor with AMX report which model its tiles match.

use super::kernel::{C_BLOCK, MicroKernel, PANEL_SLICE, TileBlock};
use half::bf16;

pub(super) type Tile<T> = [[T; 32]; 16];

#[derive(Clone, Copy, Debug, Default)]
pub struct EmulatedKernel;

/// `tileloadd`: 16 rows of 32 bf16 from `src`, row `r` at `r·stride`.
fn load(src: &[bf16], stride: usize) -> Tile<f32> {
    let mut t = [[0f32; 32]; 16];
    for (r, row) in t.iter_mut().enumerate() {
        for (x, v) in row.iter_mut().zip(&src[r * stride..r * stride + 32]) {
            *x = v.to_f32();
        }
    }
    t
}

/// `tdpbf16ps c, a, b`: `c[i][j] += Σ_p (a[i][2p]·b[p][2j] + a[i][2p+1]·b[p][2j+1])`, with `c`
/// 16 rows of 16 f32 (`c[i·16 + j]`).
fn dot_product(c: &mut [f32], a: &Tile<f32>, b: &Tile<f32>) {
    for (i, a_row) in a.iter().enumerate() {
        for j in 0..16 {
            let mut acc = c[i * 16 + j];
            for p in 0..16 {
                // Both products are exact (8-bit by 8-bit significands); their sum is rounded.
                let pair = a_row[2 * p] * b[p][2 * j] + a_row[2 * p + 1] * b[p][2 * j + 1];
                acc += pair;
            }
            c[i * 16 + j] = acc;
        }
    }
}

impl MicroKernel for EmulatedKernel {
    fn run(&self, block: TileBlock<'_>) {
        run(block, dot_product);
    }

    fn name(&self) -> &'static str {
        "amx emulated (portable model of the tile kernel)"
    }

    fn peak_gflops(&self) -> Option<f64> {
        None
    }
}

/// The kernel's loads and its eight tile products per slice, with `dot_product` for
/// `tdpbf16ps`.
pub(super) fn run(block: TileBlock<'_>, dot_product: fn(&mut [f32], &Tile<f32>, &Tile<f32>)) {
    block.check();
    let TileBlock {
        a_hi,
        a_lo,
        lda,
        b,
        slices,
        main,
        corr,
    } = block;
    // The four C tiles: main and corr, rows 0–15 and 16–31 each.
    let (main0, main1) = main[..C_BLOCK].split_at_mut(16 * 16);
    let (corr0, corr1) = corr[..C_BLOCK].split_at_mut(16 * 16);
    for s in 0..slices {
        let a = |part: &[bf16], rows: usize| load(&part[rows * lda + 32 * s..], lda);
        let (a0, a1) = (a(a_hi, 0), a(a_hi, 16));
        let b_hi = load(&b[s * PANEL_SLICE..], 32);
        let b_lo = load(&b[s * PANEL_SLICE + PANEL_SLICE / 2..], 32);
        dot_product(main0, &a0, &b_hi);
        dot_product(main1, &a1, &b_hi);
        dot_product(corr0, &a0, &b_lo);
        dot_product(corr1, &a1, &b_lo);
        let (a0, a1) = (a(a_lo, 0), a(a_lo, 16));
        dot_product(corr0, &a0, &b_hi);
        dot_product(corr1, &a1, &b_hi);
        dot_product(corr0, &a0, &b_lo);
        dot_product(corr1, &a1, &b_lo);
    }
}
