//! The stream's draws generated a block ahead, so that a decoder can look at all of them at
//! once (the weight pool's vectorised ziggurat decodes a candidate sample at every draw) and
//! still read them one by one ([`Draws`]) where a sample takes more than one draw.

use super::{Draws, Pcg64};

/// Draws generated per refill: small enough to stay in the L1 cache beside the ziggurat's
/// tables (8 KiB), large enough that refilling costs nothing. A multiple of every generator's
/// step.
const BLOCK: usize = 1024;
/// Room after the draws, so that a reader may load whole vectors of 8 past the last one.
const SPARE: usize = 8;
/// The most draws [`DrawBlock::buffered`] returns, with its spare room.
pub const DRAWS_ROOM: usize = BLOCK + SPARE;

enum Generator {
    #[cfg(target_arch = "x86_64")]
    Lanes(Box<super::Pcg64Lanes>),
    Scalar(Interleaved),
}

/// PCG64 in 4 interleaved lanes, each jumping 4 draws a step: one stream's steps wait on the
/// previous multiply, four independent ones keep the multiplier busy.
struct Interleaved {
    states: [u128; 4],
    mult: u128,
    plus: u128,
}

impl Interleaved {
    fn new(bits: &Pcg64) -> Self {
        let mut lane = bits.clone();
        let states = std::array::from_fn(|_| {
            lane.next_u64();
            lane.state()
        });
        let (mult, plus) = bits.jump(4);
        Self { states, mult, plus }
    }

    fn fill(&mut self, out: &mut [u64]) {
        for draws in out.chunks_exact_mut(4) {
            for (d, s) in draws.iter_mut().zip(&mut self.states) {
                *d = Pcg64::output(*s);
                *s = s.wrapping_mul(self.mult).wrapping_add(self.plus);
            }
        }
    }
}

impl Generator {
    fn fill(&mut self, out: &mut [u64]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Generator::Lanes(lanes) => lanes.fill(out),
            Generator::Scalar(lanes) => lanes.fill(out),
        }
    }
}

pub struct DrawBlock {
    generator: Generator,
    buf: Box<[u64; DRAWS_ROOM]>,
    /// The next draw to hand out.
    cursor: usize,
    /// Draws generated into `buf`.
    len: usize,
    /// How many times the block was refilled: a reader holding results computed from
    /// [`Self::buffered`] knows they are stale when this changed.
    refills: u64,
}

impl DrawBlock {
    /// The draws `bits` would give, generated in vector lanes where the CPU allows.
    pub fn new(bits: &Pcg64) -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(lanes) = super::Pcg64Lanes::new(bits) {
            return Self::with(Generator::Lanes(Box::new(lanes)));
        }
        Self::scalar(bits)
    }

    /// The same draws, generated one at a time (where lanes are not available; and to test).
    pub fn scalar(bits: &Pcg64) -> Self {
        Self::with(Generator::Scalar(Interleaved::new(bits)))
    }

    fn with(generator: Generator) -> Self {
        Self {
            generator,
            buf: Box::new([0; DRAWS_ROOM]),
            refills: 0,
            cursor: 0,
            len: 0,
        }
    }

    /// The draws generated and not yet handed out (at least one), followed by [`SPARE`]
    /// values that are not draws: room to load whole vectors of 8 past the end.
    #[inline(always)]
    pub fn buffered(&mut self) -> (&[u64], usize) {
        if self.cursor == self.len {
            self.refill();
        }
        (&self.buf[self.cursor..], self.len - self.cursor)
    }

    /// See the field.
    #[inline(always)]
    pub fn refills(&self) -> u64 {
        self.refills
    }

    /// Consume `n` draws already looked at with [`Self::buffered`].
    #[inline(always)]
    pub fn consume(&mut self, n: usize) {
        debug_assert!(self.cursor + n <= self.len);
        self.cursor += n;
    }

    /// The next block, once every draw of this one has been handed out.
    #[cold]
    fn refill(&mut self) {
        debug_assert_eq!(self.cursor, self.len);
        self.generator.fill(&mut self.buf[..BLOCK]);
        self.cursor = 0;
        self.len = BLOCK;
        self.refills += 1;
    }
}

impl Draws for DrawBlock {
    #[inline(always)]
    fn next_u64(&mut self) -> u64 {
        if self.cursor == self.len {
            self.refill();
        }
        let d = self.buf[self.cursor];
        self.cursor += 1;
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeedSequence;

    #[test]
    fn a_block_hands_out_the_streams_draws_however_it_is_read() {
        let seed = Pcg64::from_seed_sequence(&SeedSequence::new(&[1, 2]));
        for mut block in [DrawBlock::new(&seed), DrawBlock::scalar(&seed)] {
            let mut bits = seed.clone();
            // Mixed reads, crossing many refills, some right at a block's end.
            for i in 0..20_000usize {
                let (draws, n) = block.buffered();
                let mut expect = bits.clone();
                assert!(
                    draws[..n].iter().all(|&d| d == expect.next_u64()),
                    "read {i}"
                );
                let take = (i % 17).min(n);
                block.consume(take);
                (0..take).for_each(|_| {
                    bits.next_u64();
                });
                assert_eq!(block.next_u64(), bits.next_u64(), "read {i}");
            }
        }
    }
}
