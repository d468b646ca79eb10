//! Decoding one chunk of the stream into weights: every sample that starts in `[start, end)`.
//! The vectorised decoder is in `vector.rs`.
//!
//! The scalar decoder steps one PCG64 and runs numpy's ziggurat sample by sample. The fast
//! decoder reads the same draws from a [`DrawBlock`] (generated 32 at a time with AVX-512
//! IFMA where the CPU has it) and tries 8 consecutive draws at once as samples that end in
//! their first rectangle, the outcome of about 99 % of draws: the accepted run up to the first
//! draw that is not accepted there is written in one go, and that draw's sample is finished
//! by the scalar ziggurat, reading the block one draw at a time, before the next 8 are tried.

use crate::rng::{DrawBlock, Pcg64, standard_normal_counted};
use half::f16;
use half::slice::HalfFloatSliceExt;

/// The reference's weight distribution.
pub(crate) const LOC: f64 = 0.0;
pub(crate) const SCALE: f64 = 0.02;
/// How many sample starts a decode records for re-alignment (a few are ever needed).
pub(crate) const RECORDED_STARTS: usize = 64;

/// What one decode found in its chunk.
pub(crate) struct ChunkDecode {
    /// Absolute draw positions of its first sample starts, and how many outputs it had
    /// written before each.
    pub starts: Vec<(u64, usize)>,
    /// Outputs written (into its chunk's region, from the region's start).
    pub written: usize,
    /// The draw position just after its last sample: a sample boundary.
    pub end: u64,
}

#[inline(always)]
pub(crate) fn weight_f32(z: f64) -> f32 {
    // normal(loc, scale) = loc + scale*z (two roundings), then f64 → f32; f16 comes after.
    (LOC + SCALE * z) as f32
}

/// How the stream is decoded into weights: every decoder gives the same pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoder {
    /// One PCG64 stepped draw by draw, one sample at a time.
    Scalar,
    /// Candidate samples for a whole block of draws at once with `simd`; `lanes`: the draws
    /// generated 32 at a time with AVX-512 IFMA, else one at a time.
    Vector { simd: Simd, lanes: bool },
}

/// The vector instructions a [`Decoder::Vector`] computes its candidates with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simd {
    /// AVX2 and F16C: 4 draws per vector.
    Avx2,
    /// AVX-512 (F, DQ, BW, VL) and F16C: 8 draws per vector.
    Avx512,
}

impl Decoder {
    /// Every decoder this CPU runs, slowest first.
    pub fn available() -> Vec<Self> {
        let mut all = vec![Decoder::Scalar];
        let lanes = [false, lanes_supported()];
        for simd in [Simd::Avx2, Simd::Avx512] {
            if vector::supported(simd) {
                all.extend(lanes.iter().map(|&lanes| Decoder::Vector { simd, lanes }));
            }
        }
        all.dedup();
        all
    }

    /// The fastest decoder this CPU runs: the draws from IFMA lanes where there are any, the
    /// candidates with AVX2 where it is there. The AVX-512 candidates were slower than AVX2's
    /// on the one processor measured (a Zen 4, whose 512-bit gathers are slow: 2.5–2.7 against
    /// 2.3–2.4 ns per normal with the lanes, `cargo bench -p powhost-core --bench
    /// weight_pool`), so they are only compared there, until a processor prefers them.
    pub fn best() -> Self {
        let all = Self::available();
        let rank = |d: &Decoder| match *d {
            Decoder::Scalar => 0,
            Decoder::Vector { simd, lanes } => {
                1 + 2 * usize::from(lanes) + usize::from(simd == Simd::Avx2)
            }
        };
        all.into_iter()
            .max_by_key(rank)
            .expect("the scalar decoder runs everywhere")
    }

    pub fn name(self) -> String {
        match self {
            Decoder::Scalar => "scalar".into(),
            Decoder::Vector { simd, lanes } => format!(
                "{} ziggurat, {} pcg64",
                match simd {
                    Simd::Avx2 => "avx2",
                    Simd::Avx512 => "avx512",
                },
                if lanes { "ifma lanes" } else { "scalar" }
            ),
        }
    }
}

fn lanes_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    return crate::rng::Pcg64Lanes::supported();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Decode every sample that starts in `[start, end)` of the stream, writing the weights to
/// `out` (which has room for `end - start` values).
pub(crate) fn decode_chunk(
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
        Decoder::Vector { simd, lanes } => {
            let block = if lanes {
                DrawBlock::new(&bits)
            } else {
                DrawBlock::scalar(&bits)
            };
            vector::decode(simd, block, start, end, out)
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
use super::vector;

#[cfg(not(target_arch = "x86_64"))]
mod vector {
    use super::*;

    pub fn supported(_: Simd) -> bool {
        false
    }

    pub fn decode(_: Simd, _: DrawBlock, _: u64, _: u64, _: &mut [f16]) -> ChunkDecode {
        unreachable!("the vector decoder is only offered on x86_64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::NumpyRng;

    #[test]
    fn every_decoder_decodes_the_same_chunk() {
        let decoders = Decoder::available();
        if decoders.len() == 1 {
            eprintln!("SKIPPED: this CPU runs only the scalar decoder");
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
            for &decoder in &decoders[1..] {
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
