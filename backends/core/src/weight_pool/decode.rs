//! Decoding one chunk of the stream into weights: every sample that starts in `[start, end)`.
//!
//! The scalar decoder steps one PCG64 and runs numpy's ziggurat sample by sample. The fast
//! decoder reads the same draws from a [`DrawBlock`] (generated 32 at a time with AVX-512
//! IFMA where the CPU has it) and tries 8 consecutive draws at once as samples that end in
//! their first rectangle, the outcome of about 99 % of draws: the accepted run up to the first
//! draw that is not accepted there is written in one go, and that draw's sample is finished
//! by the scalar ziggurat, reading the block one draw at a time, before the next 8 are tried.

use crate::rng::{DRAWS_ROOM, DrawBlock, Pcg64, standard_normal_counted};
use half::f16;
use half::slice::HalfFloatSliceExt;

/// The reference's weight distribution.
pub(super) const LOC: f64 = 0.0;
pub(super) const SCALE: f64 = 0.02;
/// How many sample starts a decode records for re-alignment (a few are ever needed).
const RECORDED_STARTS: usize = 64;

/// What one decode found in its chunk.
pub(super) struct ChunkDecode {
    /// Absolute draw positions of its first sample starts, and how many outputs it had
    /// written before each.
    pub starts: Vec<(u64, usize)>,
    /// Outputs written (into its chunk's region, from the region's start).
    pub written: usize,
    /// The draw position just after its last sample: a sample boundary.
    pub end: u64,
}

#[inline(always)]
pub(super) fn weight_f32(z: f64) -> f32 {
    // normal(loc, scale) = loc + scale*z (two roundings), then f64 → f32; f16 comes after.
    (LOC + SCALE * z) as f32
}

/// Which decoder to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Decoder {
    Scalar,
    /// The vectorised decoder; `lanes: false` generates its draws one at a time (to test the
    /// vector ziggurat apart from the vector generator).
    Vector {
        lanes: bool,
    },
}

impl Decoder {
    /// The fastest decoder this CPU runs.
    pub fn best() -> Self {
        if vector::supported() {
            Decoder::Vector { lanes: true }
        } else {
            Decoder::Scalar
        }
    }
}

/// Decode every sample that starts in `[start, end)` of the stream, writing the weights to
/// `out` (which has room for `end - start` values).
pub(super) fn decode_chunk(
    decoder: Decoder,
    seed: &Pcg64,
    start: u64,
    end: u64,
    out: &mut [f16],
) -> ChunkDecode {
    assert!(out.len() as u64 >= end - start, "room for every sample");
    let mut bits = seed.clone();
    bits.advance(start as u128);
    match decoder {
        Decoder::Scalar => decode_scalar(bits, start, end, out),
        Decoder::Vector { lanes } => {
            let block = if lanes {
                DrawBlock::new(&bits)
            } else {
                DrawBlock::scalar(&bits)
            };
            vector::decode(block, start, end, out)
        }
    }
}

fn decode_scalar(mut bits: Pcg64, start: u64, end: u64, out: &mut [f16]) -> ChunkDecode {
    let mut pos = start;
    let mut written = 0usize;
    let mut starts = Vec::with_capacity(RECORDED_STARTS);
    let mut staging = [0f32; 1024];
    while pos < end {
        let mut n = 0;
        while n < staging.len() && pos < end {
            if starts.len() < RECORDED_STARTS {
                starts.push((pos, written + n));
            }
            let s = standard_normal_counted(&mut bits);
            staging[n] = weight_f32(s.value);
            pos += s.draws as u64;
            n += 1;
        }
        // f32 → f16 round-to-nearest-even, vectorised (F16C where the CPU has it).
        out[written..written + n].convert_from_f32_slice(&staging[..n]);
        written += n;
    }
    ChunkDecode {
        starts,
        written,
        end: pos,
    }
}

#[cfg(target_arch = "x86_64")]
mod vector {
    use super::*;
    use crate::rng::ziggurat_tables::{KI, WI};
    use std::arch::x86_64::*;

    pub fn supported() -> bool {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("f16c")
    }

    pub fn decode(mut block: DrawBlock, start: u64, end: u64, out: &mut [f16]) -> ChunkDecode {
        assert!(
            supported(),
            "the vector decoder needs AVX-512 (F, DQ, BW, VL) and F16C"
        );
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
        rectangles(&mut block, &mut pos, end, &mut written, out);
        ChunkDecode {
            starts,
            written,
            end: pos,
        }
    }

    /// Decode from `pos` (a sample start) until the samples starting before `end` are done.
    ///
    /// Block by block: first every buffered draw is decoded as if it started a sample that
    /// ends in its rectangle (independent of one another, so the CPU overlaps them), then the
    /// block is walked in stream order, copying runs of accepted candidates and finishing the
    /// other samples one draw at a time. A draw that follows a sample's last draw starts the
    /// next sample, so its candidate is valid whatever came before it.
    fn rectangles(
        block: &mut DrawBlock,
        pos: &mut u64,
        end: u64,
        written: &mut usize,
        out: &mut [f16],
    ) {
        let mut candidates = Candidates::new();
        while *pos < end {
            let (draws, n) = block.buffered();
            // SAFETY: the CPU features were checked by `decode`.
            unsafe { candidates.compute(draws, n) };
            let refills = block.refills();
            let mut i = 0;
            while i < n && *pos < end {
                let run = candidates.accepted_run(i, (n - i).min((end - *pos) as usize));
                out[*written..*written + run].copy_from_slice(&candidates.values[i..i + run]);
                block.consume(run);
                i += run;
                *pos += run as u64;
                *written += run;
                if i == n || *pos == end {
                    break;
                }
                // The draw at `i` left its rectangle: finish its sample one draw at a time.
                let s = standard_normal_counted(block);
                out[*written] = f16::from_f32(weight_f32(s.value));
                *pos += s.draws as u64;
                *written += 1;
                i += s.draws as usize;
                if block.refills() != refills {
                    // It read past the buffered draws: the candidates are for the old ones.
                    break;
                }
            }
        }
    }

    /// Every buffered draw decoded as a sample's first draw: its weight, and whether the
    /// sample ends there (the draw falls inside its rectangle).
    struct Candidates {
        values: Vec<f16>,
        /// Bit `i % 64` of word `i / 64`: draw `i` is accepted.
        accepted: Vec<u64>,
    }

    impl Candidates {
        fn new() -> Self {
            let room = DRAWS_ROOM.next_multiple_of(64);
            Self {
                values: vec![f16::ZERO; room],
                accepted: vec![0; room / 64],
            }
        }

        /// The candidates of `draws[..n]` (`draws` extends to whole vectors of 8 past `n`).
        #[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,f16c")]
        fn compute(&mut self, draws: &[u64], n: usize) {
            let vectors = n.div_ceil(8);
            assert!(draws.len() >= 8 * vectors && 8 * vectors <= self.values.len());
            let low8 = _mm512_set1_epi64(0xFF);
            let mask52 = _mm512_set1_epi64(0x000F_FFFF_FFFF_FFFF);
            let sign_bit = _mm512_set1_epi64(i64::MIN);
            let loc = _mm512_set1_pd(LOC);
            let scale = _mm512_set1_pd(SCALE);
            let accepted_bytes: &mut [u8] = bytemuck_u64s(&mut self.accepted);
            for (v, accepted) in accepted_bytes[..vectors].iter_mut().enumerate() {
                // SAFETY: `8·vectors ≤ draws.len()`, checked above.
                let r = unsafe { _mm512_loadu_si512(draws.as_ptr().add(8 * v).cast()) };
                // numpy's first step of each sample, as in `standard_normal_counted`: the low
                // byte picks the rectangle, the next bit is the sign, the next 52 the
                // magnitude.
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
                // The weight: loc + scale·x, then f64 → f32 → f16, each to nearest even.
                let w = _mm512_add_pd(loc, _mm512_mul_pd(scale, x));
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm512_cvtpd_ps(w));
                // SAFETY: `8·vectors ≤ values.len()`, checked above.
                unsafe { _mm_storeu_si128(self.values.as_mut_ptr().add(8 * v).cast(), h) };
            }
        }

        /// How many draws from `i` on are accepted in a row, at most `limit`.
        #[inline(always)]
        fn accepted_run(&self, i: usize, limit: usize) -> usize {
            let mut run = 0;
            while run < limit {
                let at = i + run;
                let ones = (self.accepted[at / 64] >> (at % 64)).trailing_ones() as usize;
                let ones = ones.min(64 - at % 64);
                run += ones;
                if at % 64 + ones < 64 {
                    break;
                }
            }
            run.min(limit)
        }
    }

    /// The mask words as bytes, little-endian (byte `v` holds draws `8v..8v+8`).
    fn bytemuck_u64s(words: &mut [u64]) -> &mut [u8] {
        // SAFETY: u8 has no alignment or validity requirement, and the byte view covers
        // exactly the words' memory; x86_64 is little-endian, so byte `v` of the view is bits
        // `8v..8v+8` of word `v / 8`.
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), words.len() * 8) }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod vector {
    use super::*;

    pub fn supported() -> bool {
        false
    }

    pub fn decode(_: DrawBlock, _: u64, _: u64, _: &mut [f16]) -> ChunkDecode {
        unreachable!("the vector decoder is only offered on x86_64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::NumpyRng;

    #[test]
    fn every_decoder_decodes_the_same_chunk() {
        if !vector::supported() {
            eprintln!("SKIPPED: the vector decoder needs AVX-512 (F, DQ, BW, VL) and F16C");
            return;
        }
        let seed = NumpyRng::from_seed_str("chunk", 4).pcg().clone();
        // Starts and ends anywhere: mid-sample, a few draws long, and long enough for
        // thousands of samples that leave their rectangle (wedges, the tail).
        for (start, len) in [
            (0u64, 1u64),
            (3, 7),
            (5, 8),
            (1000, 9),
            (17, 300_000),
            (123_456, 1 << 20),
        ] {
            let end = start + len;
            let mut expect = vec![f16::ZERO; len as usize];
            let want = decode_chunk(Decoder::Scalar, &seed, start, end, &mut expect);
            for decoder in [
                Decoder::Vector { lanes: true },
                Decoder::Vector { lanes: false },
            ] {
                let mut got = vec![f16::ZERO; len as usize];
                let have = decode_chunk(decoder, &seed, start, end, &mut got);
                assert_eq!(
                    have.written, want.written,
                    "{decoder:?} from {start}: count"
                );
                assert_eq!(have.end, want.end, "{decoder:?} from {start}: end");
                assert_eq!(have.starts, want.starts, "{decoder:?} from {start}: starts");
                let diff = got
                    .iter()
                    .zip(&expect)
                    .position(|(a, b)| a.to_bits() != b.to_bits());
                assert_eq!(
                    diff, None,
                    "{decoder:?} from {start}: first differing value"
                );
            }
        }
    }
}
