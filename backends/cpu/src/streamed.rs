//! `x·Wᵀ ⟂` for a weight kept in f16 (a pool too large to widen whole, or a tiled
//! parameter): the weight is widened panel by panel into a per-thread buffer the size of a
//! core's L2 cache, and each panel's GEMM runs on the thread that widened it.
//!
//! Widening a whole block and then running one GEMM on every core (the widened-pool path's
//! shape) costs, for one mainnet nonce, a fresh 16 MB buffer per call, a pass over memory
//! for the widening, and faer's barriers between the cores on each of its panels: on the
//! profile the barriers alone were a fifth of the time. Here each core widens and multiplies
//! its own panels (rayon balances them), the widened panel is read back from L2 by the
//! GEMM's packing, and each panel's output is rounded (⟂) while it is still in cache.

use crate::ops::round_f16_here;
use crate::simd;
use crate::weights::widen_rows_here;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use powhost_core::ModelWeights;
use powhost_core::parameter_table::Parameter;
use rayon::prelude::*;
use std::cell::RefCell;

/// Bytes of widened weight per panel at most (at least one kernel's rows): most of Zen 4's
/// 1 MB L2 (and of Intel's 1–2 MB), so that the GEMM's packing reads the panel from there.
const PANEL_BYTES: usize = 768 << 10;

/// Panels are a whole number of the AVX-512 f32 micro-kernel's 96 rows: a ragged panel
/// runs narrower, masked kernels on its remainder (a third of the time with 73-row panels).
const KERNEL_ROWS: usize = 96;

/// Rows of a `[n, k]` weight widened per panel: a whole number of kernels within
/// [`PANEL_BYTES`], one kernel's rows at least (so a panel outgrows it when `k` is wide).
fn panel_rows(k: usize) -> usize {
    (PANEL_BYTES / 4 / k.max(1) / KERNEL_ROWS).max(1) * KERNEL_ROWS
}

/// Bytes of one thread's widened panel for a weight `k` columns wide (each thread keeps its
/// panel for reuse): 768 KB for most, 18.9 MB for mainnet's `w2` (k = 49,152).
pub fn panel_bytes(k: usize) -> u64 {
    (panel_rows(k) * k * 4) as u64
}

thread_local! {
    /// Each thread's widened panel, reused across calls.
    static PANEL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `out[m, n] = x[m, k] · Wᵀ ⟂` for a weight `W` of shape `[n, k]` widened as it goes.
pub fn matmul_xwt(weights: &ModelWeights, x: &[f32], m: usize, w: &Parameter, out: &mut [f32]) {
    let (n, k) = (w.shape[0], w.shape[1]);
    debug_assert_eq!(x.len(), m * k);
    debug_assert_eq!(out.len(), m * n);
    let lhs = MatRef::from_row_major_slice(x, m, k);
    let dst = MatMut::from_row_major_slice_mut(out, m, n);
    let panel_rows = panel_rows(k);
    dst.par_col_chunks_mut(panel_rows)
        .enumerate()
        .for_each(|(panel, mut dst)| {
            let (row0, rows) = (panel * panel_rows, dst.ncols());
            PANEL.with_borrow_mut(|block| {
                block.resize(rows * k, 0.0);
                widen_rows_here(weights, w, row0 * k, block);
                let rhs = MatRef::from_row_major_slice(block, rows, k).transpose();
                matmul(dst.as_mut(), Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
            });
            simd::wide(
                #[inline(always)]
                || {
                    for row in dst.row_iter_mut() {
                        let row = row.try_as_row_major_mut().expect("row-major output");
                        round_f16_here(row.as_slice_mut());
                    }
                },
            );
        });
}

#[cfg(test)]
mod tests {
    use powhost_core::{ModelParams, ModelWeights};

    /// The widened path's product: the whole weight widened, one GEMM, then ⟂.
    fn one_gemm(weights: &ModelWeights, x: &[f32], m: usize, w: &super::Parameter) -> Vec<f32> {
        use faer::{Accum, MatMut, MatRef, Par, linalg::matmul::matmul};
        let (n, k) = (w.shape[0], w.shape[1]);
        let mut out = vec![0f32; m * n];
        let mut wide = vec![0f32; n * k];
        weights.pool.widen_into(w, &mut wide);
        let lhs = MatRef::from_row_major_slice(x, m, k);
        let rhs = MatRef::from_row_major_slice(&wide, n, k).transpose();
        let dst = MatMut::from_row_major_slice_mut(&mut out, m, n);
        matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
        crate::ops::round_f16(&mut out);
        out
    }

    /// The memory estimate's panel size is what a thread really keeps: the widest panel a
    /// weight needs, for a narrow `k` and for one too wide for `PANEL_BYTES`.
    #[test]
    fn a_thread_keeps_one_panel_of_the_estimated_size() {
        let params = ModelParams::preset("small").unwrap();
        let weights = ModelWeights::build(&params, "0a1b", 0, &|_, _| {}).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let layer = weights.layer(0);
        for w in [layer.wq, layer.w2] {
            let (n, k) = (w.shape[0], w.shape[1]);
            let m = 3;
            let x = vec![0.5f32; m * k];
            let mut out = vec![0f32; m * n];
            let kept = pool.install(|| {
                super::PANEL.with_borrow_mut(Vec::clear);
                super::matmul_xwt(&weights, &x, m, w, &mut out);
                super::PANEL.with_borrow(|panel| panel.len() as u64 * 4)
            });
            let want = super::panel_bytes(k).min((n * k * 4) as u64);
            assert_eq!(kept, want, "{} (k = {k})", w.name);
        }
        // mainnet's w2: one kernel's rows of a 49,152-wide weight.
        assert_eq!(super::panel_bytes(49_152), 96 * 49_152 * 4);
    }

    #[test]
    fn panels_give_the_same_bits_as_one_gemm_of_the_whole_weight() {
        // tiny's weights are pool slices, small's include tiled ones; the output projection
        // has a ragged last panel.
        for preset in ["tiny", "small"] {
            let params = ModelParams::preset(preset).unwrap();
            let weights = ModelWeights::build(&params, "0a1b", 0, &|_, _| {}).unwrap();
            let layer = weights.layer(1);
            for w in [layer.wq, layer.wk, layer.w1, layer.w2, weights.output()] {
                let (n, k) = (w.shape[0], w.shape[1]);
                let m = 37;
                let x: Vec<f32> = (0..m * k)
                    .map(|i| crate::ops::r16(((i * 7919) % 2003) as f32 / 1001.0 - 1.0))
                    .collect();
                let mut got = vec![0f32; m * n];
                super::matmul_xwt(&weights, &x, m, w, &mut got);
                let want = one_gemm(&weights, &x, m, w);
                let differ = got
                    .iter()
                    .zip(&want)
                    .filter(|(a, b)| a.to_bits() != b.to_bits())
                    .count();
                assert_eq!(
                    differ,
                    0,
                    "{preset} {:?}: {differ} of {} differ",
                    w.shape,
                    m * n
                );
            }
        }
    }
}
