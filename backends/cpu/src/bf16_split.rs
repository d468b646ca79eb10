//! Exact float16 products from bfloat16 halves: the arithmetic an AMX (`tdpbf16ps`) GEMM needs
//! to compute the float16 forward pass exactly, and a portable reference of that GEMM.
//!
//! Every float16 `x` splits exactly into two bfloat16, `hi = bf16(x)` and `lo = x − hi`: an f16
//! significand has 11 bits and a bf16 one 8, so the remainder has at most 3 significant bits
//! left, and bf16 has f32's exponent range, so neither half falls into bf16's subnormals (which
//! the tiles flush). Each of the four products `hi·hi, hi·lo, lo·hi, lo·lo` of two split values
//! has at most 16 significant bits, exact in f32. Four bf16 tile products accumulated in f32
//! therefore compute the float16 GEMM that an f32 FMA loop computes, up to the order of the
//! f32 additions (which differs between any two GEMM libraries already).
//!
//! This module is what the tile kernel (`crate::amx`) is checked against: [`split`], the VNNI
//! packing of the right-hand operand, and [`reference_gemm`], which accumulates the four
//! products block by block in the tiles' 16×16×32 shape, in the kernel's order.

use half::{bf16, f16};

/// The exact split of a float16: `hi + lo == x` (as f32), both bfloat16.
pub fn split(x: f16) -> (bf16, bf16) {
    let x = x.to_f32();
    let hi = bf16::from_f32(x);
    // Exact: x − hi has at most 3 significant bits (see the module docs).
    let lo = bf16::from_f32(x - hi.to_f32());
    (hi, lo)
}

/// [`split`] for an f32 holding a float16 value (the CPU backend's activations and widened
/// weights), as the halves' bits, in integer and f32 arithmetic a loop vectorises (the
/// packing and splitting of whole matrices): `hi` is `x` rounded to bfloat16 to nearest even
/// (adding `0x7fff` plus the kept part's last bit carries exactly when the dropped half is
/// above a half-ulp, or equal with an odd kept part; no float16 is near overflow or a NaN),
/// and `lo = x − hi` is a bfloat16 already, so its top half is exact.
#[inline(always)]
pub fn split_f32_bits(x: f32) -> (u16, u16) {
    let bits = x.to_bits();
    let hi = bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) & 0xffff_0000;
    let lo = x - f32::from_bits(hi);
    ((hi >> 16) as u16, (lo.to_bits() >> 16) as u16)
}

/// A row-major `rows × cols` float16 matrix split into its bfloat16 halves.
pub fn split_matrix(values: &[f16]) -> (Vec<bf16>, Vec<bf16>) {
    values.iter().map(|&x| split(x)).unzip()
}

/// The right-hand operand of a tile product in the VNNI layout `tdpbf16ps` reads: for a
/// row-major `k × n` matrix (`k` even), row `r` of the result holds, for each column `j`, the
/// pair `(b[2r][j], b[2r+1][j])`. A ragged `k` is padded with a zero row.
pub fn pack_vnni(b: &[bf16], k: usize, n: usize) -> Vec<bf16> {
    assert_eq!(b.len(), k * n, "a {k}×{n} matrix");
    let pairs = k.div_ceil(2);
    let mut out = vec![bf16::ZERO; pairs * 2 * n];
    for r in 0..pairs {
        for j in 0..n {
            out[(r * n + j) * 2] = b[2 * r * n + j];
            if 2 * r + 1 < k {
                out[(r * n + j) * 2 + 1] = b[(2 * r + 1) * n + j];
            }
        }
    }
    out
}

/// The tiles' block: C[16×16] += A[16×32] · B[32×16].
pub const TILE_M: usize = 16;
pub const TILE_N: usize = 16;
pub const TILE_K: usize = 32;

/// `C = A · B` for row-major float16 `A` (`m × k`) and `B` (`k × n`), as the tile kernel will
/// compute it: both operands split into bfloat16 halves, B packed in the VNNI layout, and for
/// each 16×16 block of C the products accumulated in f32 over 32-deep slices of k, one pair
/// of k at a time (the emulation's model of a `tdpbf16ps` lane), as the tile kernel does
/// (`crate::amx::kernel`): the main product `hi·hi` in one sum, the corrections `hi·lo`,
/// `lo·hi`, `lo·lo` (in that order per slice) in another, the two added at the end. Ragged
/// edges are the tiles' zero padding. Returns C in f32, before the caller's rounding to
/// float16.
pub fn reference_gemm(a: &[f16], b: &[f16], m: usize, k: usize, n: usize) -> Vec<f32> {
    assert_eq!(a.len(), m * k, "A is {m}×{k}");
    assert_eq!(b.len(), k * n, "B is {k}×{n}");
    let (a_hi, a_lo) = split_matrix(a);
    let (b_hi, b_lo) = split_matrix(b);
    let (b_hi, b_lo) = (pack_vnni(&b_hi, k, n), pack_vnni(&b_lo, k, n));
    let a_at = |part: &[bf16], i: usize, p: usize| {
        if p < k { part[i * k + p].to_f32() } else { 0.0 }
    };
    // B[p][j] from the VNNI layout (p may pass k by the padding row).
    let b_at = |part: &[bf16], p: usize, j: usize| part[((p / 2) * n + j) * 2 + p % 2].to_f32();
    let mut main = vec![0f32; m * n];
    let mut corr = vec![0f32; m * n];
    // `acc += Σ pairs of ap·bp` over the slice at k0 (one `tdpbf16ps` lane, as modelled).
    let slice = |acc: &mut f32, ap: &[bf16], bp: &[bf16], i: usize, j: usize, k0: usize| {
        for p in (k0..(k0 + TILE_K).min(k)).step_by(2) {
            let pair = a_at(ap, i, p) * b_at(bp, p, j) + a_at(ap, i, p + 1) * b_at(bp, p + 1, j);
            *acc += pair;
        }
    };
    for i0 in (0..m).step_by(TILE_M) {
        for j0 in (0..n).step_by(TILE_N) {
            for k0 in (0..k).step_by(TILE_K) {
                for i in i0..(i0 + TILE_M).min(m) {
                    for j in j0..(j0 + TILE_N).min(n) {
                        slice(&mut main[i * n + j], &a_hi, &b_hi, i, j, k0);
                        for (ap, bp) in [(&a_hi, &b_lo), (&a_lo, &b_hi), (&a_lo, &b_lo)] {
                            slice(&mut corr[i * n + j], ap, bp, i, j, k0);
                        }
                    }
                }
            }
        }
    }
    main.iter().zip(&corr).map(|(x, y)| x + y).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn finite_f16() -> impl Iterator<Item = f16> {
        (0..=u16::MAX).map(f16::from_bits).filter(|x| x.is_finite())
    }

    #[test]
    fn every_float16_splits_exactly_into_two_bfloat16() {
        for x in finite_f16() {
            let (hi, lo) = split(x);
            assert_eq!(hi.to_f32() + lo.to_f32(), x.to_f32(), "{x:?}");
            // The remainder was representable: nothing was rounded away.
            assert_eq!(lo.to_f32(), x.to_f32() - hi.to_f32(), "{x:?}");
            // Neither half is below 2⁻²⁴ (float16's quantum), far from the bf16 subnormals
            // that `tdpbf16ps` reads as zero (DAZ).
            for half in [hi, lo] {
                let v = half.to_f32();
                assert!(v == 0.0 || v.abs() >= SMALLEST_HALF, "{x:?}: {v:e}");
            }
        }
    }

    /// The smallest nonzero |hi| or |lo| of any float16.
    const SMALLEST_HALF: f32 = 1.0 / (1u32 << 24) as f32;

    /// `tdpbf16ps` flushes f32 subnormal results to zero (FTZ). Every nonzero product of two
    /// halves is at least 2⁻⁴⁸, and so is every nonzero f32 sum of such products (they are
    /// multiples of 2⁻⁴⁸, and rounding to nearest never goes below the representable 2⁻⁴⁸):
    /// 2⁻⁴⁸ is a normal f32, so nothing the kernel adds is ever flushed.
    /// The bit arithmetic rounds as `half`'s conversion does, for every float16.
    #[test]
    fn the_vectorisable_split_equals_half_s_rounding() {
        for x in finite_f16() {
            let v = x.to_f32();
            let hi = bf16::from_f32(v);
            let lo = bf16::from_f32(v - hi.to_f32());
            let (h, l) = split_f32_bits(v);
            assert_eq!((h, l), (hi.to_bits(), lo.to_bits()), "{x:?}");
        }
    }

    #[test]
    fn no_product_or_sum_of_halves_is_an_f32_subnormal() {
        let smallest_product = SMALLEST_HALF * SMALLEST_HALF;
        assert_eq!(smallest_product as f64, 2f64.powi(-48));
        assert!(smallest_product.is_normal());
        // Both halves reach 2⁻²⁴: hi of the smallest f16 subnormal, lo of 511 · 2⁻²⁴ (nine
        // significant bits, rounded to 512 · 2⁻²⁴).
        let (hi, lo) = split(f16::from_bits(1));
        assert_eq!((hi.to_f32(), lo.to_f32()), (SMALLEST_HALF, 0.0));
        let (hi, lo) = split(f16::from_bits(0x01ff));
        assert_eq!(
            (hi.to_f32(), lo.to_f32()),
            (512.0 * SMALLEST_HALF, -SMALLEST_HALF)
        );
    }

    #[test]
    fn the_four_products_of_split_values_are_exact_in_f32() {
        // Every float16 against a spread of others: 65,536 × 64 products per pair of halves.
        let others: Vec<f16> = finite_f16().step_by(977).collect();
        for x in finite_f16() {
            let (xh, xl) = split(x);
            for &y in &others {
                let (yh, yl) = split(y);
                for (p, q) in [(xh, yh), (xh, yl), (xl, yh), (xl, yl)] {
                    let exact = p.to_f32() as f64 * q.to_f32() as f64;
                    let product = p.to_f32() * q.to_f32();
                    if product.is_finite() {
                        assert_eq!(product as f64, exact, "{x:?}·{y:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn vnni_packing_interleaves_row_pairs_and_pads_a_ragged_k() {
        let b: Vec<bf16> = (0..15).map(|v| bf16::from_f32(v as f32)).collect(); // 5 × 3
        let packed = pack_vnni(&b, 5, 3);
        let as_f32: Vec<f32> = packed.iter().map(|v| v.to_f32()).collect();
        assert_eq!(
            as_f32,
            [
                0., 3., 1., 4., 2., 5., // rows 0 and 1
                6., 9., 7., 10., 8., 11., // rows 2 and 3
                12., 0., 13., 0., 14., 0., // row 4 and the padding row
            ]
        );
    }

    /// A seeded float16 matrix with the spread of the model's activations and weights.
    pub(crate) fn matrix(len: usize, seed: u64, scale: f32) -> Vec<f16> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
                f16::from_f32(((unit * 2.0 - 1.0) as f32) * scale)
            })
            .collect()
    }

    pub(crate) fn ulps_apart(a: f16, b: f16) -> u32 {
        let key = |x: f16| {
            let bits = x.to_bits() as i32;
            if bits & 0x8000 != 0 {
                -(bits & 0x7fff)
            } else {
                bits
            }
        };
        (key(a) - key(b)).unsigned_abs()
    }

    #[test]
    fn the_split_gemm_agrees_with_an_f32_fma_loop_on_the_forward_pass_shapes() {
        // (m, k, n): one nonce (m = 1), ragged edges in every dimension, and the shapes of a
        // small model's projections and feed-forward.
        let shapes = [
            (1, 64, 64),
            (1, 96, 160),
            (17, 33, 15),
            (16, 32, 16),
            (40, 128, 352),
            (64, 352, 128),
            (3, 1000, 7),
        ];
        for (case, &(m, k, n)) in shapes.iter().enumerate() {
            let a = matrix(m * k, case as u64 + 1, 4.0);
            let b = matrix(k * n, case as u64 + 101, 0.06);
            let split_c = reference_gemm(&a, &b, m, k, n);
            let (mut worst_ulps, mut worst_ulps_cancelled) = (0, 0);
            let (mut split_err, mut fma_err) = (0f64, 0f64);
            for i in 0..m {
                for j in 0..n {
                    let (mut fma, mut exact, mut magnitude) = (0f32, 0f64, 0f64);
                    for p in 0..k {
                        let (x, y) = (a[i * k + p].to_f32(), b[p * n + j].to_f32());
                        fma = x.mul_add(y, fma);
                        exact += x as f64 * y as f64;
                        magnitude += (x as f64 * y as f64).abs();
                    }
                    let got = split_c[i * n + j];
                    let ulps = ulps_apart(f16::from_f32(got), f16::from_f32(fma));
                    // Where the terms cancel, a float16 ulp of the small result is a tiny
                    // fraction of the terms: counted apart.
                    if exact.abs() >= magnitude / 16.0 {
                        worst_ulps = worst_ulps.max(ulps);
                    } else {
                        worst_ulps_cancelled = worst_ulps_cancelled.max(ulps);
                    }
                    // Errors of a sum relative to the sum of its terms' magnitudes: the scale
                    // every f32 summation error is bounded by (the sum itself may cancel).
                    split_err = split_err.max((got as f64 - exact).abs() / magnitude);
                    fma_err = fma_err.max((fma as f64 - exact).abs() / magnitude);
                }
            }
            println!(
                "{m}×{k}×{n}: {worst_ulps} f16 ulps from the FMA loop ({worst_ulps_cancelled} where the terms cancel to under 1/16); error / Σ|a·b|: split {split_err:.1e}, FMA loop {fma_err:.1e}"
            );
            // Both are f32 sums of the same exact products in different orders: rounded to
            // float16 they may differ by one ulp where the f32 sum lies near a rounding tie
            // (measured 2026-12-04: at most 1 ulp, and 2 where the terms cancel; error / Σ|a·b|
            // at most 7.6e-8 for the split, its corrections summed apart, 1.9e-7 for the FMA
            // loop).
            assert!(worst_ulps <= 1, "{m}×{k}×{n}: {worst_ulps} ulps");
            // The bound of an f32 sum of k terms is k·2⁻²⁴ of Σ|a·b|; both stay far inside it.
            let bound = k as f64 * f32::EPSILON as f64 / 2.0;
            assert!(split_err <= bound, "{m}×{k}×{n}: split error {split_err:e}");
        }
    }
}
