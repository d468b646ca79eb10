//! Step 8's gate `a ← (silu(a) ⟂) · b ⟂`, with `silu(a) = a / (1 + exp(−a))` in f32, by table.
//!
//! `a` is an f16 value (the rounded output of `xn·w1ᵀ`), so `silu(a) ⟂` has only 65 536
//! possible inputs: a table of them, computed once with the formula, gives the same bits as
//! the formula for every element, without an `exp` per element (the gate's `exp` calls were
//! most of its time, and it is the largest element-wise step).

use crate::ops::r16;
use crate::simd;
use std::sync::OnceLock;

/// `silu(a) ⟂` by the formula: the definition the table is built from.
#[inline(always)]
pub fn silu_f16(a: f32) -> f32 {
    r16(a / (1.0 + (-a).exp()))
}

/// `silu(a) ⟂` for every f16, indexed by its bits.
fn table() -> &'static Table {
    static TABLE: OnceLock<Box<Table>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let values: Vec<f32> = (0..=u16::MAX)
            .map(|bits| silu_f16(half::f16::from_bits(bits).to_f32()))
            .collect();
        values.into_boxed_slice().try_into().expect("65 536 values")
    })
}

type Table = [f32; 1 << 16];

/// The bits of `x` as an f16 and whether `x` is a finite f16 value (the bits mean nothing
/// when it is not). Branch-free, so that the loops over it vectorise.
#[inline(always)]
fn f16_index(x: f32) -> (usize, bool) {
    let bits = x.to_bits();
    let sign = (bits >> 16) & 0x8000;
    let abs = bits & 0x7FFF_FFFF;
    // Normal: f16's exponent range, and no mantissa bits below f16's ten.
    let normal = (0x3880_0000..=0x477F_E000).contains(&abs) && abs & 0x1FFF == 0;
    let normal_bits = abs.wrapping_sub(0x3800_0000) >> 13;
    // Zero or subnormal: a whole multiple k of 2^-24, below 2^-14. Adding 0.5 rounds to that
    // grid (f32's ulp in [0.5, 1)); it is exact, and leaves k in the low bits, iff x is on it.
    let shifted = f32::from_bits(abs) + 0.5;
    let subnormal = abs < 0x3880_0000 && shifted - 0.5 == f32::from_bits(abs);
    let subnormal_bits = shifted.to_bits().wrapping_sub(0x3F00_0000);
    let magnitude = if normal { normal_bits } else { subnormal_bits };
    ((sign | magnitude) as usize & 0xFFFF, normal | subnormal)
}

/// The bits of `x` as an f16, when `x` is a finite f16 value.
#[cfg(test)]
fn finite_f16_bits(x: f32) -> Option<usize> {
    let (bits, ok) = f16_index(x);
    ok.then_some(bits)
}

/// Elements per check-then-compute block: small enough to stay in L1 between the passes.
const BLOCK: usize = 256;

/// `a ← (silu(a) ⟂) · b ⟂` element-wise.
pub fn silu_mul_chunk(a: &mut [f32], b: &[f32]) {
    let table = table();
    simd::wide(
        #[inline(always)]
        || {
            for (a, b) in a.chunks_mut(BLOCK).zip(b.chunks(BLOCK)) {
                silu_mul_block(table, a, b);
            }
        },
    )
}

#[inline(always)]
fn silu_mul_block(table: &Table, a: &mut [f32], b: &[f32]) {
    // A value that is not a finite f16 (only possible when an input overflowed, or for a
    // caller's non-f16 buffer) sends the whole block through the formula.
    if a.iter().fold(true, |ok, &x| ok & f16_index(x).1) {
        for (a, &b) in a.iter_mut().zip(b) {
            let s = table[f16_index(*a).0];
            *a = r16(s * b);
        }
    } else {
        for (a, &b) in a.iter_mut().zip(b) {
            *a = r16(silu_f16(*a) * b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    fn by_formula(a: f32, b: f32) -> f32 {
        r16(r16(a / (1.0 + (-a).exp())) * b)
    }

    fn same(got: f32, want: f32) -> bool {
        got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan())
    }

    #[test]
    fn the_index_is_the_f16_bits_of_every_finite_f16() {
        for bits in 0..=u16::MAX {
            let v = f16::from_bits(bits);
            let want = v.is_finite().then_some(bits as usize);
            assert_eq!(finite_f16_bits(v.to_f32()), want, "{bits:#06x}");
        }
        // Values between f16s, beyond f16's range, and non-finite ones have none.
        for x in [
            1.0 + f32::EPSILON,
            1e-7 + 1e-12,
            65520.0,
            -1e10,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
        ] {
            assert_eq!(finite_f16_bits(x), None, "{x:e}");
        }
    }

    #[test]
    fn the_gate_equals_the_formula_for_every_f16_input() {
        let bs = [
            1.0f32,
            -0.333_251_95,
            65504.0,
            6.1035156e-5,
            5.9604645e-8,
            0.0,
            -2.5,
        ];
        let a: Vec<f32> = (0..=u16::MAX)
            .flat_map(|bits| {
                let v = f16::from_bits(bits).to_f32();
                bs.iter().map(move |_| v)
            })
            .collect();
        let b: Vec<f32> = (0..a.len()).map(|i| bs[i % bs.len()]).collect();
        let mut got = a.clone();
        silu_mul_chunk(&mut got, &b);
        for i in 0..a.len() {
            let want = by_formula(a[i], b[i]);
            assert!(
                same(got[i], want),
                "a = {:e}, b = {:e}: {:e}, formula {:e}",
                a[i],
                b[i],
                got[i],
                want
            );
        }
    }

    #[test]
    fn a_block_with_a_value_off_the_f16_grid_uses_the_formula() {
        let mut a: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.01).collect();
        a.iter_mut().for_each(|v| *v = r16(*v));
        a[300] = 1.0 + f32::EPSILON;
        a[700] = f32::INFINITY;
        a[701] = f32::NEG_INFINITY;
        a[702] = f32::NAN;
        let b: Vec<f32> = (0..1000).map(|i| r16(i as f32 * 0.37)).collect();
        let mut got = a.clone();
        silu_mul_chunk(&mut got, &b);
        for i in 0..a.len() {
            assert!(same(got[i], by_formula(a[i], b[i])), "element {i}");
        }
    }
}
