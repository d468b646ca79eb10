//! The driver of the AMX GEMM `out[m, n] = x[m, k] · Wᵀ` (W is `[n, k]`): the activations split
//! into bf16 halves per call, the weights packed into VNNI tiles (once per model, or per group
//! of columns by the thread that multiplies by them), and the blocking over the caches and the
//! cores around a [`MicroKernel`].
//!
//! Blocking: C is computed in blocks of 32 rows × 16 columns (the kernel's tiles), its main
//! sums and its corrections apart ([`super::kernel`]), added once at the end. The columns are
//! cut into groups of up to [`GROUP_COLUMNS`], one rayon task each (both cores). In a group, k
//! goes in steps of [`K_SLICES`] slices of 32: per step, each 32-row block of A (32 × 512 × 2
//! halves × 2 bytes = 64 KiB, in L2) meets every 16-column panel of the group's B (256 × 512
//! × 4 bytes = 512 KiB, kept in L2 across the row blocks). Where one step covers k, a block's
//! C lives on the stack and is added into the output after its one kernel call; else the
//! group's C lives in a buffer of the task's thread until the last step.
//!
//! The splitting and packing are vectorised (AVX-512 where present): timed with a kernel that
//! does nothing (`cargo bench -p powhost-cpu --bench amx_gemm`), they had cost more than the
//! tiles would take for the products themselves.

use super::kernel::{C_BLOCK, MicroKernel, PANEL_SLICE, TileBlock};
use crate::bf16_split::split_f32_bits;
use crate::weights::widen_rows_here;
use faer::MatMut;
use faer::reborrow::ReborrowMut;
use half::{bf16, f16};
use powhost_core::ModelWeights;
use powhost_core::parameter_table::Parameter;
use rayon::prelude::*;
use std::cell::RefCell;

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
        let mut a = Self::empty();
        a.resplit(x, m, k);
        a
    }

    /// An empty split whose buffers later splits reuse.
    pub fn empty() -> Self {
        Self {
            hi: Vec::new(),
            lo: Vec::new(),
            m: 0,
            lda: 0,
        }
    }

    /// Splits `x` into this split's buffers (a reused buffer is written whole: values,
    /// then zeros to the padded row length and in the padding rows).
    pub fn resplit(&mut self, x: &[f32], m: usize, k: usize) {
        assert_eq!(x.len(), m * k, "x is {m}×{k}");
        let lda = k.div_ceil(32) * 32;
        let rows = m.div_ceil(32) * 32;
        (self.m, self.lda) = (m, lda);
        for half in [&mut self.hi, &mut self.lo] {
            half.resize(rows * lda, bf16::ZERO);
            half[m * lda..].fill(bf16::ZERO);
        }
        if m == 0 || k == 0 {
            return;
        }
        self.hi[..m * lda]
            .par_chunks_mut(lda)
            .zip(self.lo[..m * lda].par_chunks_mut(lda))
            .zip(x.par_chunks(k))
            .with_min_len(8)
            .for_each(|((hi, lo), row)| {
                crate::simd::wide(
                    #[inline(always)]
                    || {
                        for ((h, l), &v) in hi.iter_mut().zip(lo.iter_mut()).zip(row) {
                            let (hb, lb) = split_f32_bits(v);
                            (*h, *l) = (bf16::from_bits(hb), bf16::from_bits(lb));
                        }
                        hi[row.len()..].fill(bf16::ZERO);
                        lo[row.len()..].fill(bf16::ZERO);
                    },
                )
            });
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

thread_local! {
    /// Each thread's rows of W widened for one panel whose rows the pool does not hold in
    /// one run (the tile branch, where it wraps), reused.
    static PANEL_ROWS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl PackedB {
    /// An empty packing whose buffer later packings reuse.
    pub fn empty() -> Self {
        Self {
            data: Vec::new(),
            n: 0,
            slices: 0,
        }
    }

    pub fn new(w: &[f32], n: usize, k: usize) -> Self {
        let mut packed = Self::empty();
        packed.repack(w, n, k);
        packed
    }

    /// Packs `w` (`n × k`) into this packing's buffer, the panels on every core.
    pub fn repack(&mut self, w: &[f32], n: usize, k: usize) {
        assert_eq!(w.len(), n * k, "W is {n}×{k}");
        let slices = self.resize(n, k);
        if slices == 0 {
            return;
        }
        self.data
            .par_chunks_mut(slices * PANEL_SLICE)
            .enumerate()
            .for_each(|(panel, out)| {
                let rows = &w[panel * 16 * k..(panel * 16 + 16).min(n) * k];
                pack_panel(Rows::F32(rows), k, out);
            });
    }

    /// Packs rows `row0 .. row0 + n` of the `[_, k]` parameter `p` straight from the weight
    /// pool into this packing's buffer, on this thread: each panel from the pool's float16
    /// where its rows lie in one run, else widened first into a buffer that stays in cache.
    pub fn pack_parameter_here(
        &mut self,
        weights: &ModelWeights,
        p: &Parameter,
        row0: usize,
        n: usize,
    ) {
        let k = p.shape[1];
        let slices = self.resize(n, k);
        if slices == 0 {
            return;
        }
        PANEL_ROWS.with_borrow_mut(|buf| {
            for (panel, out) in self.data.chunks_exact_mut(slices * PANEL_SLICE).enumerate() {
                let (first, len) = ((row0 + panel * 16) * k, 16.min(n - panel * 16) * k);
                let mut runs = weights.pool.runs(p, first, len);
                match (runs.next(), runs.next()) {
                    // The rows lie in one run of the pool (always for the slice branch).
                    (Some(run), None) => pack_panel(Rows::F16(run), k, out),
                    _ => {
                        buf.resize(len, 0.0);
                        widen_rows_here(weights, p, first, buf);
                        pack_panel(Rows::F32(buf), k, out);
                    }
                }
            }
        });
    }

    /// Sizes the buffer for `n × k` (a growing buffer's new part is zeroed; the packing
    /// overwrites every element, padding included, so a reused one needs no clearing), and
    /// returns the slices per panel.
    fn resize(&mut self, n: usize, k: usize) -> usize {
        let slices = k.div_ceil(32);
        self.data
            .resize(n.div_ceil(16) * slices * PANEL_SLICE, bf16::ZERO);
        (self.n, self.slices) = (n, slices);
        slices
    }

    /// The packed 16-column panel `panel`, from slice `s0` on.
    fn panel(&self, panel: usize, s0: usize) -> &[bf16] {
        let len = self.slices * PANEL_SLICE;
        &self.data[panel * len + s0 * PANEL_SLICE..(panel + 1) * len]
    }
}

/// Up to 16 rows of W, one after another: f16-exact f32, or float16 as the pool holds them.
#[derive(Clone, Copy)]
pub enum Rows<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
}

impl Rows<'_> {
    fn len(&self) -> usize {
        match self {
            Self::F32(r) => r.len(),
            Self::F16(r) => r.len(),
        }
    }

    #[inline(always)]
    fn get(&self, i: usize) -> f32 {
        match self {
            Self::F32(r) => r[i],
            Self::F16(r) => r[i].to_f32(),
        }
    }
}

/// One 16-column panel: `rows` are its (up to 16) rows of W, `k` long; `out` its slices,
/// every element written (zeros past W's rows and k). A slice's 32 values of W's row `j`
/// become column `j` of the slice's two tiles: row `r` of a tile holds the pair of k
/// `2r, 2r + 1` (the VNNI layout), the hi tile then the lo tile.
fn pack_panel(rows: Rows<'_>, k: usize, out: &mut [bf16]) {
    assert!(
        rows.len() <= 16 * k && rows.len().is_multiple_of(k.max(1)),
        "up to 16 rows of {k}"
    );
    assert_eq!(
        out.len(),
        k.div_ceil(32) * PANEL_SLICE,
        "the panel's slices"
    );
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx512() {
        // SAFETY: the CPU has AVX-512 F, BW and VL; the lengths are as asserted above.
        return unsafe { x86::pack_panel_avx512(rows, k, out) };
    }
    pack_panel_portable(rows, k, out)
}

/// [`pack_panel`] one element at a time (the definition; processors without AVX-512).
fn pack_panel_portable(rows: Rows<'_>, k: usize, out: &mut [bf16]) {
    let columns = rows.len() / k.max(1);
    for (s, tiles) in out.chunks_exact_mut(PANEL_SLICE).enumerate() {
        let (hi_tile, lo_tile) = tiles.split_at_mut(PANEL_SLICE / 2);
        for j in 0..16 {
            let (mut hi, mut lo) = ([0u16; 32], [0u16; 32]);
            if j < columns {
                let part = j * k + 32 * s..j * k + (32 * s + 32).min(k);
                for ((h, l), i) in hi.iter_mut().zip(lo.iter_mut()).zip(part) {
                    (*h, *l) = split_f32_bits(rows.get(i));
                }
            }
            for r in 0..16 {
                let at = r * 32 + 2 * j;
                hi_tile[at] = bf16::from_bits(hi[2 * r]);
                hi_tile[at + 1] = bf16::from_bits(hi[2 * r + 1]);
                lo_tile[at] = bf16::from_bits(lo[2 * r]);
                lo_tile[at + 1] = bf16::from_bits(lo[2 * r + 1]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{PANEL_SLICE, Rows};
    use half::bf16;
    use std::arch::x86_64::*;

    /// How many slices ahead [`pack_panel_avx512`] asks for its rows.
    const PREFETCH_SLICES: usize = 8;

    /// `pack_panel` with AVX-512: per slice, each row's 32 values split 16 at a time, their
    /// halves' pairs gathered into one vector per row (`vpermt2w`), and the 16 × 16 pairs
    /// transposed in registers into the tile's rows.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW and VL; `rows` holds up to 16 rows of `k`, `out` the
    /// `ceil(k / 32)` slices of the panel.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn pack_panel_avx512(rows: Rows<'_>, k: usize, out: &mut [bf16]) {
        let columns = rows.len() / k.max(1);
        // Word q of the result: the top half of 32-bit element q of (a, b), i.e. word 2q + 1.
        let odd_words: [i16; 32] = std::array::from_fn(|q| (2 * q + 1) as i16);
        // SAFETY (every block below): the loads read only elements the masks admit, inside
        // `rows` (row j < columns, at j·k + 32s + i with 32s + i < k); the stores write
        // 16 × 64 bytes into each tile of this slice's PANEL_SLICE elements of `out`.
        unsafe {
            let odd = _mm512_loadu_epi16(odd_words.as_ptr());
            let round = _mm512_set1_epi32(0x7fff);
            let one = _mm512_set1_epi32(1);
            let top = _mm512_set1_epi32(0xffff_0000u32 as i32);
            for (s, tiles) in out.chunks_exact_mut(PANEL_SLICE).enumerate() {
                let mut hi = [_mm512_setzero_si512(); 16];
                let mut lo = [_mm512_setzero_si512(); 16];
                for j in 0..columns {
                    let at = j * k + 32 * s;
                    let left = k - 32 * s;
                    // The rows are 16 streams k apart, too many for the hardware prefetchers:
                    // ask for each row's data a few slices ahead.
                    if 32 * (s + PREFETCH_SLICES) < k {
                        let ahead = at + 32 * PREFETCH_SLICES;
                        match rows {
                            Rows::F32(r) => {
                                _mm_prefetch::<_MM_HINT_T0>(r.as_ptr().add(ahead).cast());
                                _mm_prefetch::<_MM_HINT_T0>(r.as_ptr().add(ahead + 16).cast());
                            }
                            Rows::F16(r) => {
                                _mm_prefetch::<_MM_HINT_T0>(r.as_ptr().add(ahead).cast())
                            }
                        }
                    }
                    let mask = |from: usize| -> __mmask16 {
                        let n = left.saturating_sub(from).min(16);
                        ((1u32 << n) - 1) as __mmask16
                    };
                    let halves = |from: usize| {
                        let v = match rows {
                            Rows::F32(r) => {
                                _mm512_maskz_loadu_ps(mask(from), r.as_ptr().add(at + from))
                            }
                            Rows::F16(r) => _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(
                                mask(from),
                                r.as_ptr().add(at + from).cast(),
                            )),
                        };
                        let bits = _mm512_castps_si512(v);
                        let odd_bit = _mm512_and_si512(_mm512_srli_epi32::<16>(bits), one);
                        let h = _mm512_and_si512(
                            _mm512_add_epi32(bits, _mm512_add_epi32(round, odd_bit)),
                            top,
                        );
                        let l = _mm512_castps_si512(_mm512_sub_ps(v, _mm512_castsi512_ps(h)));
                        (h, l)
                    };
                    let ((h0, l0), (h1, l1)) = (halves(0), halves(16));
                    hi[j] = _mm512_permutex2var_epi16(h0, odd, h1);
                    lo[j] = _mm512_permutex2var_epi16(l0, odd, l1);
                }
                let (hi_tile, lo_tile) = tiles.split_at_mut(PANEL_SLICE / 2);
                store_transposed(&hi, hi_tile);
                store_transposed(&lo, lo_tile);
            }
        }
    }

    /// Row `r` of `tile` (16 × 16 pairs) is element `r` of every `rows[j]`, in order of j.
    #[target_feature(enable = "avx512f")]
    unsafe fn store_transposed(rows: &[__m512i; 16], tile: &mut [bf16]) {
        assert!(tile.len() >= 16 * 32);
        // Within each 128-bit lane l: u[4g + c] holds rows 4g .. 4g + 3 of column 4l + c.
        let mut u = [_mm512_setzero_si512(); 16];
        for g in 0..4 {
            let r = &rows[4 * g..4 * g + 4];
            let t0 = _mm512_unpacklo_epi32(r[0], r[1]);
            let t1 = _mm512_unpackhi_epi32(r[0], r[1]);
            let t2 = _mm512_unpacklo_epi32(r[2], r[3]);
            let t3 = _mm512_unpackhi_epi32(r[2], r[3]);
            u[4 * g] = _mm512_unpacklo_epi64(t0, t2);
            u[4 * g + 1] = _mm512_unpackhi_epi64(t0, t2);
            u[4 * g + 2] = _mm512_unpacklo_epi64(t1, t3);
            u[4 * g + 3] = _mm512_unpackhi_epi64(t1, t3);
        }
        for c in 0..4 {
            // Lanes 0, 1 of u[c] and u[4 + c], then lanes 2, 3; likewise u[8 + c], u[12 + c].
            let a_lo = _mm512_shuffle_i32x4::<0x44>(u[c], u[4 + c]);
            let a_hi = _mm512_shuffle_i32x4::<0xee>(u[c], u[4 + c]);
            let b_lo = _mm512_shuffle_i32x4::<0x44>(u[8 + c], u[12 + c]);
            let b_hi = _mm512_shuffle_i32x4::<0xee>(u[8 + c], u[12 + c]);
            let column = [
                _mm512_shuffle_i32x4::<0x88>(a_lo, b_lo),
                _mm512_shuffle_i32x4::<0xdd>(a_lo, b_lo),
                _mm512_shuffle_i32x4::<0x88>(a_hi, b_hi),
                _mm512_shuffle_i32x4::<0xdd>(a_hi, b_hi),
            ];
            for (l, v) in column.into_iter().enumerate() {
                let r = 4 * l + c;
                // SAFETY: row r's 32 bf16 lie inside `tile` (asserted above).
                unsafe { _mm512_storeu_si512(tile.as_mut_ptr().add(r * 32).cast(), v) };
            }
        }
    }
}

/// The weights of one product, as the kernel's B panels come from them.
#[derive(Clone, Copy)]
pub enum Weights<'a> {
    /// Packed ahead (once per model).
    Packed(&'a PackedB),
    /// A parameter left in the pool: each group of columns is packed by the thread that
    /// multiplies by it, into a buffer of about [`GROUP_PACKED_BYTES`] that stays in its
    /// cache (mainnet's matrices are too large to keep packed: 4 bytes an element).
    Pool {
        weights: &'a ModelWeights,
        p: &'a Parameter,
    },
}

/// Bytes of packed weights per group of columns packed on the fly: within a core's L2.
pub const GROUP_PACKED_BYTES: usize = 1 << 20;

/// Bytes a thread keeps to pack weights from the pool for a `k` as wide as `k_max`: its packed
/// group of columns (one panel at least) and one panel's rows widened to f32.
pub fn pool_group_bytes(k_max: usize) -> u64 {
    let panel = (16 * k_max.next_multiple_of(32) * 4) as u64;
    (GROUP_PACKED_BYTES as u64).max(panel) + panel
}

/// Bytes of a thread's C for one group of columns, for `rows` rows (a multiple of 32): main
/// sums and corrections, at most [`GROUP_COLUMNS`] wide.
pub fn group_c_bytes(rows: u64) -> u64 {
    rows.saturating_mul(GROUP_COLUMNS as u64 * 4 * 2)
}

impl Weights<'_> {
    fn n(&self) -> usize {
        match self {
            Self::Packed(b) => b.n,
            Self::Pool { p, .. } => p.shape[0],
        }
    }

    /// k in slices of 32.
    fn k_slices(&self) -> usize {
        match self {
            Self::Packed(b) => b.slices,
            Self::Pool { p, .. } => p.shape[1].div_ceil(32),
        }
    }
}

thread_local! {
    /// Each thread's packed group of columns, for weights packed on the fly.
    static GROUP_WEIGHTS: RefCell<PackedB> = RefCell::new(PackedB::empty());
    /// Each thread's C for one group of columns: main sums, then corrections.
    static GROUP_C: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `out[i][j] = Σ_p x[i][p] · W[j][p]` for `i < a.m`, `j < n` (`out` is `m × n`, row-major),
/// in f32 (before the caller's rounding): per element the main sum plus the correction sum.
///
/// The columns go in groups, one rayon task each, writing the sums into its columns of `out`
/// (see the module's blocking).
pub fn gemm(kernel: &dyn MicroKernel, a: &SplitA, b: Weights<'_>, out: &mut [f32]) {
    let (m, n) = (a.m, b.n());
    assert_eq!(out.len(), m * n, "out is {m}×{n}");
    assert_eq!(a.slices(), b.k_slices(), "A's k and B's k differ");
    if m == 0 || n == 0 {
        return;
    }
    let panels = n.div_ceil(16);
    let widest = match b {
        Weights::Packed(_) => GROUP_COLUMNS / 16,
        Weights::Pool { .. } => {
            (GROUP_PACKED_BYTES / (a.lda.max(32) * 4 * 16)).clamp(1, GROUP_COLUMNS / 16)
        }
    };
    // Enough groups for every thread where n allows it.
    let threads = rayon::current_num_threads().max(1);
    let per_group = panels.div_ceil(2 * threads).clamp(1, widest);
    let dst = MatMut::from_row_major_slice_mut(out, m, n);
    dst.par_col_chunks_mut(per_group * 16)
        .enumerate()
        .for_each(|(group, dst)| {
            let first = group * per_group;
            match b {
                Weights::Packed(b) => multiply_group(kernel, a, b, first, dst),
                Weights::Pool { weights, p } => GROUP_WEIGHTS.with_borrow_mut(|packed| {
                    packed.pack_parameter_here(weights, p, first * 16, dst.ncols());
                    multiply_group(kernel, a, packed, 0, dst)
                }),
            }
        });
}

/// One task of [`gemm`]: `dst` (every row, the group's columns) from B's panels
/// `first_panel ..`.
fn multiply_group(
    kernel: &dyn MicroKernel,
    a: &SplitA,
    b: &PackedB,
    first_panel: usize,
    mut dst: MatMut<'_, f32>,
) {
    let (m, slices) = (a.m, a.slices());
    let rows = m.div_ceil(32) * 32;
    let count = dst.ncols().div_ceil(16);
    if slices <= K_SLICES {
        // One kernel call covers k: each block's C lives in 4 KiB on the stack, summed into
        // `dst` straight after, instead of a group-sized buffer zeroed and read back.
        let width = dst.ncols();
        for i0 in (0..rows).step_by(32) {
            for g in 0..count {
                let mut c = [[0f32; C_BLOCK]; 2];
                let [main, corr] = &mut c;
                kernel.run(TileBlock {
                    a_hi: &a.hi[i0 * a.lda..],
                    a_lo: &a.lo[i0 * a.lda..],
                    lda: a.lda,
                    b: b.panel(first_panel + g, 0),
                    slices,
                    main,
                    corr,
                });
                for r in 0..32.min(m - i0) {
                    let row = dst.rb_mut().row_mut(i0 + r);
                    let row = row.try_as_row_major_mut().expect("row-major output");
                    let row = row.as_slice_mut();
                    let out = &mut row[g * 16..(g * 16 + 16).min(width)];
                    add_sums(out, &c[0][r * 16..], &c[1][r * 16..]);
                }
            }
        }
        return;
    }
    // Per panel of the group: rows × 16 f32, row-major.
    let panel_len = rows * 16;
    GROUP_C.with_borrow_mut(|(main, corr)| {
        for c in [&mut *main, &mut *corr] {
            c.clear();
            c.resize(count * panel_len, 0.0);
        }
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
                        b: b.panel(first_panel + g, s0),
                        slices: step,
                        main: &mut main[c.clone()],
                        corr: &mut corr[c.clone()],
                    });
                }
            }
        }
        for i in 0..m {
            let row = dst.rb_mut().row_mut(i);
            let row = row.try_as_row_major_mut().expect("row-major output");
            for (g, out) in row.as_slice_mut().chunks_mut(16).enumerate() {
                let at = g * panel_len + i * 16;
                add_sums(out, &main[at..], &corr[at..]);
            }
        }
    });
}

/// `out[j] = main[j] + corr[j]`: a row of C's blocks, finished.
fn add_sums(out: &mut [f32], main: &[f32], corr: &[f32]) {
    for ((o, &x), &y) in out.iter_mut().zip(main).zip(corr) {
        *o = x + y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A split reused for smaller and ragged shapes holds what a fresh one does, padding
    /// included (the kernel reads the padding).
    #[test]
    fn a_reused_split_equals_a_fresh_one() {
        let x = |m: usize, k: usize| -> Vec<f32> {
            (0..m * k)
                .map(|i| half::f16::from_bits((i * 7919 % 30000) as u16).to_f32())
                .collect()
        };
        let mut reused = SplitA::empty();
        for (m, k) in [
            (70, 100),
            (33, 64),
            (5, 7),
            (64, 2048),
            (1, 1),
            (40, 0),
            (0, 9),
            (17, 33),
        ] {
            let x = x(m, k);
            reused.resplit(&x, m, k);
            let fresh = SplitA::new(&x, m, k);
            assert_eq!((reused.m, reused.lda), (fresh.m, fresh.lda), "{m}×{k}");
            let rows = m.div_ceil(32) * 32 * fresh.lda;
            assert_eq!(fresh.hi.len(), rows);
            let bits = |v: &[bf16]| v.iter().map(|h| h.to_bits()).collect::<Vec<u16>>();
            assert_eq!(bits(&reused.hi), bits(&fresh.hi), "{m}×{k}");
            assert_eq!(bits(&reused.lo), bits(&fresh.lo), "{m}×{k}");
        }
    }

    /// The packing this processor runs (AVX-512 where present) writes the same bits as the
    /// element-by-element definition, for ragged rows and k, into a buffer holding garbage.
    #[test]
    fn the_panel_packing_equals_its_definition() {
        let value = |i: usize| {
            let h = (i.wrapping_mul(2_654_435_761) ^ 0x5bd1) % 65_521;
            half::f16::from_f32((h as f32 / 65_521.0 - 0.5) * [0.01, 3.0, 300.0][i % 3]).to_f32()
        };
        if !crate::simd::has_avx512() {
            println!("SKIPPED the AVX-512 packing: this CPU has no AVX-512; the portable one runs");
        }
        for (rows, k) in [
            (16, 64),
            (16, 1792),
            (3, 32),
            (16, 7),
            (11, 45),
            (1, 1),
            (16, 2048),
        ] {
            let w: Vec<f32> = (0..rows * k).map(value).collect();
            let w16: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
            let len = k.div_ceil(32) * PANEL_SLICE;
            let mut want = vec![bf16::from_bits(0x7fc1); len];
            pack_panel_portable(Rows::F32(&w), k, &mut want);
            assert!(
                want.iter().all(|v| v.to_bits() != 0x7fc1),
                "every element written"
            );
            for (source, rows_of) in [("f32", Rows::F32(&w)), ("f16", Rows::F16(&w16))] {
                for pack in [pack_panel, pack_panel_portable] {
                    let mut got = vec![bf16::from_bits(0x7fc1); len];
                    pack(rows_of, k, &mut got);
                    let differ = (0..len).find(|&i| got[i].to_bits() != want[i].to_bits());
                    assert_eq!(differ, None, "{rows} rows of {k} from {source}");
                }
            }
        }
    }
}
