//! PCG64 stepped in 32 lanes at once with AVX-512 IFMA: the same draws, in the same order, as
//! [`Pcg64::next_u64`] called again and again.
//!
//! One PCG64 step is a 128-bit multiply-add whose result feeds the next, so a single stream is
//! bound by the multiplier's latency. Lane `j` here holds the state of draw `q + j`; every lane
//! jumps 32 draws per step (`state ↦ A·state + C`, with `A`, `C` from [`Pcg64::jump`]), so the
//! 32 lanes' outputs are the next 32 draws and the lanes' steps are independent.
//!
//! The 128-bit states are held in 52-bit limbs (52 + 52 + 24 bits), the width IFMA multiplies:
//! `A·s mod 2^128` takes nine 52×52-bit partial products, the ones below 2^128.

use super::Pcg64;
use std::arch::x86_64::*;

/// Draws per step of all lanes.
pub const LANES: usize = 32;
const VECTORS: usize = LANES / 8;
const MASK52: u64 = (1 << 52) - 1;
const MASK24: u64 = (1 << 24) - 1;

/// A 128-bit value as 52-bit limbs, low first.
fn limbs(x: u128) -> [u64; 3] {
    [
        (x as u64) & MASK52,
        ((x >> 52) as u64) & MASK52,
        (x >> 104) as u64,
    ]
}

/// The lanes' states and the 32-draw jump. Only built where the CPU has AVX-512 IFMA.
#[derive(Clone)]
pub struct Pcg64Lanes {
    /// Limb `l` of lane `j`: `state[l][j]`, each lane's state already stepped onto its draw.
    state: [[u64; LANES]; 3],
    mult: [u64; 3],
    plus: [u64; 3],
}

impl Pcg64Lanes {
    /// Whether this CPU can run the lanes.
    pub fn supported() -> bool {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512ifma")
    }

    /// Lanes whose first 32 outputs are the next 32 draws of `bits`. `None` where the CPU
    /// lacks AVX-512 IFMA.
    pub fn new(bits: &Pcg64) -> Option<Self> {
        if !Self::supported() {
            return None;
        }
        let mut state = [[0u64; LANES]; 3];
        let mut lane = bits.clone();
        for j in 0..LANES {
            lane.next_u64();
            let l = limbs(lane.state());
            for (limb, value) in state.iter_mut().zip(l) {
                limb[j] = value;
            }
        }
        let (mult, plus) = bits.jump(LANES as u128);
        Some(Self {
            state,
            mult: limbs(mult),
            plus: limbs(plus),
        })
    }

    /// Write the next `out.len()` draws (a multiple of [`LANES`]) into `out`.
    pub fn fill(&mut self, out: &mut [u64]) {
        assert!(
            out.len().is_multiple_of(LANES),
            "draws are generated {LANES} at a time"
        );
        // SAFETY: `new` returned `Self` only after checking the CPU has both features.
        unsafe { self.fill_ifma(out) }
    }

    #[target_feature(enable = "avx512f,avx512ifma")]
    fn fill_ifma(&mut self, out: &mut [u64]) {
        let m52 = _mm512_set1_epi64(MASK52 as i64);
        let m24 = _mm512_set1_epi64(MASK24 as i64);
        let [a0, a1, a2] = self.mult.map(|v| _mm512_set1_epi64(v as i64));
        let [c0, c1, c2] = self.plus.map(|v| _mm512_set1_epi64(v as i64));
        let zero = _mm512_setzero_si512();
        let load = |limb: &[u64; LANES], v: usize| {
            // SAFETY: `v < VECTORS`, so the 8 lanes read lie inside `limb`.
            unsafe { _mm512_loadu_si512(limb.as_ptr().add(8 * v).cast()) }
        };
        let mut s: [[__m512i; 3]; VECTORS] =
            std::array::from_fn(|v| std::array::from_fn(|l| load(&self.state[l], v)));
        for block in out.chunks_exact_mut(LANES) {
            for (v, [s0, s1, s2]) in s.iter_mut().enumerate() {
                // The output of the current states: XSL-RR of (hi, lo).
                let lo = _mm512_or_si512(*s0, _mm512_slli_epi64::<52>(*s1));
                let hi =
                    _mm512_or_si512(_mm512_srli_epi64::<12>(*s1), _mm512_slli_epi64::<40>(*s2));
                let x = _mm512_xor_si512(hi, lo);
                let draw = _mm512_rorv_epi64(x, _mm512_srli_epi64::<58>(hi));
                // SAFETY: `block` has LANES = 8·VECTORS elements.
                unsafe { _mm512_storeu_si512(block.as_mut_ptr().add(8 * v).cast(), draw) };
                // s ← A·s + C (mod 2^128), limb by limb: the low and high 52 bits of each
                // partial product land on the limb of their weight.
                let t0 = _mm512_madd52lo_epu64(c0, *s0, a0);
                let mut t1 = _mm512_madd52hi_epu64(c1, *s0, a0);
                t1 = _mm512_madd52lo_epu64(t1, *s0, a1);
                t1 = _mm512_madd52lo_epu64(t1, *s1, a0);
                let mut t2 = _mm512_madd52hi_epu64(c2, *s0, a1);
                t2 = _mm512_madd52hi_epu64(t2, *s1, a0);
                let mut u2 = _mm512_madd52lo_epu64(zero, *s0, a2);
                u2 = _mm512_madd52lo_epu64(u2, *s1, a1);
                u2 = _mm512_madd52lo_epu64(u2, *s2, a0);
                // Carries up, then the top limb cut to 24 bits (mod 2^128).
                t1 = _mm512_add_epi64(t1, _mm512_srli_epi64::<52>(t0));
                t2 = _mm512_add_epi64(_mm512_add_epi64(t2, u2), _mm512_srli_epi64::<52>(t1));
                *s0 = _mm512_and_si512(t0, m52);
                *s1 = _mm512_and_si512(t1, m52);
                *s2 = _mm512_and_si512(t2, m24);
            }
        }
        for (v, limbs) in s.iter().enumerate() {
            for (l, value) in limbs.iter().enumerate() {
                // SAFETY: as for `load`.
                unsafe {
                    _mm512_storeu_si512(self.state[l].as_mut_ptr().add(8 * v).cast(), *value)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeedSequence;

    #[test]
    fn lanes_give_the_streams_draws_in_order() {
        let mut bits = Pcg64::from_seed_sequence(&SeedSequence::new(&[7, 8, 9]));
        bits.advance(12345);
        let Some(mut lanes) = Pcg64Lanes::new(&bits) else {
            eprintln!("SKIPPED: this CPU has no AVX-512 IFMA");
            return;
        };
        let mut out = vec![0u64; 100 * LANES];
        // In two calls, so the states carried between calls are checked too.
        let (a, b) = out.split_at_mut(37 * LANES);
        lanes.fill(a);
        lanes.fill(b);
        for (i, &draw) in out.iter().enumerate() {
            assert_eq!(draw, bits.next_u64(), "draw {i}");
        }
    }

    #[test]
    fn limbs_cover_all_128_bits() {
        for x in [
            0u128,
            1,
            u128::MAX,
            0x2360_ED05_1FC6_5DA4_4385_DF64_9FCC_F645,
        ] {
            let [l0, l1, l2] = limbs(x);
            assert_eq!(l0 as u128 | (l1 as u128) << 52 | (l2 as u128) << 104, x);
        }
    }
}
