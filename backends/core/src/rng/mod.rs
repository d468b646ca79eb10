//! numpy-compatible random streams (`docs/spec/NUMPY_RANDOM.md`).
//!
//! Every stream the PoC uses is `numpy.random.default_rng(SeedSequence(entropy(seed, k)))`.
//! Each stream here is a plain value ([`NumpyRng`]); there is no global state.

mod draw_block;
mod draws;
mod entropy;
mod pcg64;
#[cfg(target_arch = "x86_64")]
mod pcg64_lanes;
mod permutation;
mod seed_sequence;
mod ziggurat;
pub(crate) mod ziggurat_tables;

pub use draw_block::{DRAWS_ROOM, DrawBlock};
pub use draws::Draws;
pub use entropy::entropy;
pub use pcg64::Pcg64;
#[cfg(target_arch = "x86_64")]
pub use pcg64_lanes::Pcg64Lanes;
pub use seed_sequence::SeedSequence;
pub use ziggurat::{NormalSample, standard_normal_counted};

/// numpy's `Generator(PCG64(...))`: the bit generator plus the one-slot 32-bit buffer that
/// numpy keeps for `next_u32` (bounded integers in `permutation` draw 32 bits at a time).
#[derive(Clone, Debug)]
pub struct NumpyRng {
    bits: Pcg64,
    u32_buffer: Option<u32>,
}

impl NumpyRng {
    /// The stream `default_rng(SeedSequence(entropy(seed, num_hashes)))`.
    pub fn from_seed_str(seed: &str, num_hashes: usize) -> Self {
        let words = entropy(seed, num_hashes);
        Self::from_pcg(Pcg64::from_seed_sequence(&SeedSequence::new(&words)))
    }

    pub fn from_pcg(bits: Pcg64) -> Self {
        Self {
            bits,
            u32_buffer: None,
        }
    }

    pub fn pcg(&self) -> &Pcg64 {
        &self.bits
    }

    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        self.bits.next_u64()
    }

    /// numpy hands out the low half of a 64-bit draw first and keeps the high half.
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        if let Some(v) = self.u32_buffer.take() {
            return v;
        }
        let x = self.bits.next_u64();
        self.u32_buffer = Some((x >> 32) as u32);
        x as u32
    }

    #[inline(always)]
    pub fn next_double(&mut self) -> f64 {
        self.bits.next_double()
    }

    /// `standard_normal()` (numpy's 256-level ziggurat).
    #[inline(always)]
    pub fn standard_normal(&mut self) -> f64 {
        ziggurat::standard_normal(&mut self.bits)
    }

    /// `normal(loc, scale)`: `loc + scale * z`, two roundings, no FMA.
    #[inline(always)]
    pub fn normal(&mut self, loc: f64, scale: f64) -> f64 {
        loc + scale * self.standard_normal()
    }

    /// Fill `out` with `standard_normal` draws in order.
    pub fn fill_standard_normal(&mut self, out: &mut [f64]) {
        for v in out {
            *v = self.standard_normal();
        }
    }

    /// `permutation(n)`: numpy's Fisher–Yates with its masked-rejection bounded integers.
    pub fn permutation(&mut self, n: usize) -> Vec<u32> {
        permutation::permutation(self, n)
    }
}
