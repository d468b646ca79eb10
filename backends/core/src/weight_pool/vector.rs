//! The vectorised decoder. About 99 % of numpy's normals end in their first draw's rectangle,
//! so block by block every buffered draw is first decoded as if it started a sample that ends
//! there: its weight, and whether it is accepted. Those candidates do not depend on one another,
//! so the CPU overlaps their table lookups. Then the block is walked in stream order: runs of
//! accepted candidates are copied out, and each other sample is finished by the scalar
//! ziggurat, reading the block one draw at a time. A draw that follows a sample's last draw
//! starts the next sample, so its candidate is valid whatever came before it.

use super::Simd;
use super::decode::{ChunkDecode, LOC, RECORDED_STARTS, SCALE, weight_f32};
use crate::rng::ziggurat_tables::{KI, WI};
use crate::rng::{DRAWS_ROOM, DrawBlock, standard_normal_counted};
use half::f16;
use std::arch::x86_64::*;

pub fn supported(simd: Simd) -> bool {
    let base = is_x86_feature_detected!("f16c");
    base && match simd {
        Simd::Avx2 => is_x86_feature_detected!("avx2"),
        Simd::Avx512 => {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512dq")
                && is_x86_feature_detected!("avx512vl")
        }
    }
}

/// Decode every sample that starts in `[start, end)`, reading the draws from `block`
/// (positioned at `start`).
pub fn decode(
    simd: Simd,
    mut block: DrawBlock,
    start: u64,
    end: u64,
    out: &mut [f16],
) -> ChunkDecode {
    assert!(supported(simd), "{simd:?} is not available on this CPU");
    let mut pos = start;
    let mut written = 0usize;
    let mut starts = Vec::with_capacity(RECORDED_STARTS);
    // The first samples one by one, recording where each starts.
    while pos < end && starts.len() < RECORDED_STARTS {
        starts.push((pos, written));
        let s = standard_normal_counted(&mut block);
        out[written] = f16::from_f32(weight_f32(s.value));
        pos += s.draws as u64;
        written += 1;
    }
    let mut candidates = Candidates::new();
    while pos < end {
        let (draws, n) = block.buffered();
        // SAFETY: the CPU features were checked above.
        unsafe {
            match simd {
                Simd::Avx2 => candidates.compute_avx2(draws, n),
                Simd::Avx512 => candidates.compute_avx512(draws, n),
            }
        }
        let refills = block.refills();
        let mut i = 0;
        while i < n && pos < end {
            let run = candidates.accepted_run(i, (n - i).min((end - pos) as usize));
            out[written..written + run].copy_from_slice(&candidates.values[i..i + run]);
            block.consume(run);
            i += run;
            pos += run as u64;
            written += run;
            if i == n || pos == end {
                break;
            }
            // The draw at `i` left its rectangle: finish its sample one draw at a time.
            let s = standard_normal_counted(&mut block);
            out[written] = f16::from_f32(weight_f32(s.value));
            pos += s.draws as u64;
            written += 1;
            i += s.draws as usize;
            if block.refills() != refills {
                // It read past the buffered draws: the candidates are for the old ones.
                break;
            }
        }
    }
    ChunkDecode {
        starts,
        written,
        end: pos,
    }
}

/// Every buffered draw decoded as a sample's first draw, as `standard_normal_counted` does:
/// the low byte picks the rectangle, the next bit is the sign, the next 52 the magnitude.
struct Candidates {
    /// The weight `loc + scale·x`, rounded f64 → f32 → f16, each to nearest even.
    values: Vec<f16>,
    /// Bit `i % 64` of word `i / 64`: draw `i` lies inside its rectangle.
    accepted: Vec<u64>,
}

const MASK52: i64 = 0x000F_FFFF_FFFF_FFFF;

impl Candidates {
    fn new() -> Self {
        let room = DRAWS_ROOM.next_multiple_of(64);
        Self {
            values: vec![f16::ZERO; room],
            accepted: vec![0; room / 64],
        }
    }

    /// The mask words as bytes: byte `v` holds draws `8v..8v+8` (x86_64 is little-endian).
    fn accepted_bytes(&mut self) -> &mut [u8] {
        // SAFETY: u8 has no alignment or validity requirement and the view covers exactly
        // the words' memory.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.accepted.as_mut_ptr().cast(),
                self.accepted.len() * 8,
            )
        }
    }

    /// The candidates of `draws[..n]`; `draws` extends to whole vectors of 8 past `n`.
    #[target_feature(enable = "avx512f,avx512dq,avx512vl,f16c")]
    fn compute_avx512(&mut self, draws: &[u64], n: usize) {
        let groups = n.div_ceil(8);
        assert!(draws.len() >= 8 * groups && 8 * groups <= self.values.len());
        let low8 = _mm512_set1_epi64(0xFF);
        let mask52 = _mm512_set1_epi64(MASK52);
        let sign_bit = _mm512_set1_epi64(i64::MIN);
        let (loc, scale) = (_mm512_set1_pd(LOC), _mm512_set1_pd(SCALE));
        let values = self.values.as_mut_ptr();
        for (g, accepted) in self.accepted_bytes()[..groups].iter_mut().enumerate() {
            // SAFETY: `8·groups ≤ draws.len()`, checked above.
            let r = unsafe { _mm512_loadu_si512(draws.as_ptr().add(8 * g).cast()) };
            let idx = _mm512_and_si512(r, low8);
            // SAFETY: every index is < 256, the tables' length.
            let (wi, ki) = unsafe {
                (
                    _mm512_i64gather_pd::<8>(idx, WI.as_ptr()),
                    _mm512_i64gather_epi64::<8>(idx, KI.as_ptr().cast()),
                )
            };
            let rabs = _mm512_and_si512(_mm512_srli_epi64::<9>(r), mask52);
            let sign = _mm512_and_si512(_mm512_slli_epi64::<55>(r), sign_bit);
            let x = _mm512_mul_pd(_mm512_cvtepu64_pd(rabs), wi);
            let x = _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(x), sign));
            *accepted = _mm512_cmplt_epu64_mask(rabs, ki);
            let w = _mm512_add_pd(loc, _mm512_mul_pd(scale, x));
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm512_cvtpd_ps(w));
            // SAFETY: `8·groups ≤ values.len()`, checked above.
            unsafe { _mm_storeu_si128(values.add(8 * g).cast(), h) };
        }
    }

    /// As [`Self::compute_avx512`], 4 draws per vector.
    #[target_feature(enable = "avx2,f16c")]
    fn compute_avx2(&mut self, draws: &[u64], n: usize) {
        let groups = n.div_ceil(8);
        assert!(draws.len() >= 8 * groups && 8 * groups <= self.values.len());
        let low8 = _mm256_set1_epi64x(0xFF);
        let mask52 = _mm256_set1_epi64x(MASK52);
        let sign_bit = _mm256_set1_epi64x(i64::MIN);
        // A magnitude below 2^52 in the significand of 2^52, minus 2^52: the magnitude as
        // f64, exactly (AVX2 has no u64 → f64 conversion).
        let two52_bits = _mm256_set1_epi64x(0x4330_0000_0000_0000);
        let two52 = _mm256_set1_pd(4_503_599_627_370_496.0);
        let (loc, scale) = (_mm256_set1_pd(LOC), _mm256_set1_pd(SCALE));
        let values = self.values.as_mut_ptr();
        for (g, accepted) in self.accepted_bytes()[..groups].iter_mut().enumerate() {
            let mut mask = 0u8;
            for half in 0..2 {
                let at = 8 * g + 4 * half;
                // SAFETY: `at + 4 ≤ 8·groups ≤ draws.len()`, checked above.
                let r = unsafe { _mm256_loadu_si256(draws.as_ptr().add(at).cast()) };
                let idx = _mm256_and_si256(r, low8);
                // SAFETY: every index is < 256, the tables' length.
                let (wi, ki) = unsafe {
                    (
                        _mm256_i64gather_pd::<8>(WI.as_ptr(), idx),
                        _mm256_i64gather_epi64::<8>(KI.as_ptr().cast(), idx),
                    )
                };
                let rabs = _mm256_and_si256(_mm256_srli_epi64::<9>(r), mask52);
                let sign = _mm256_and_si256(_mm256_slli_epi64::<55>(r), sign_bit);
                let magnitude = _mm256_sub_pd(
                    _mm256_castsi256_pd(_mm256_or_si256(rabs, two52_bits)),
                    two52,
                );
                let x = _mm256_mul_pd(magnitude, wi);
                let x = _mm256_castsi256_pd(_mm256_xor_si256(_mm256_castpd_si256(x), sign));
                // Both are below 2^63, so the signed comparison is the unsigned one.
                let inside = _mm256_cmpgt_epi64(ki, rabs);
                mask |= (_mm256_movemask_pd(_mm256_castsi256_pd(inside)) as u8) << (4 * half);
                let w = _mm256_add_pd(loc, _mm256_mul_pd(scale, x));
                let h = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_cvtpd_ps(w));
                // SAFETY: `at + 4 ≤ values.len()`; 4 f16 are the vector's low 8 bytes.
                unsafe { _mm_storel_epi64(values.add(at).cast(), h) };
            }
            *accepted = mask;
        }
    }

    /// How many draws from `i` on are accepted in a row, at most `limit`.
    #[inline(always)]
    fn accepted_run(&self, i: usize, limit: usize) -> usize {
        let mut run = 0;
        while run < limit {
            let at = i + run;
            let ones =
                ((self.accepted[at / 64] >> (at % 64)).trailing_ones() as usize).min(64 - at % 64);
            run += ones;
            if at % 64 + ones < 64 {
                break;
            }
        }
        run.min(limit)
    }
}
