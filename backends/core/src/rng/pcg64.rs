//! PCG64 (XSL-RR 128/64), as numpy seeds and steps it.

use super::{Draws, SeedSequence};

const MULTIPLIER: u128 = 0x2360_ED05_1FC6_5DA4_4385_DF64_9FCC_F645;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pcg64 {
    state: u128,
    inc: u128,
}

impl Pcg64 {
    pub fn from_seed_sequence(seq: &SeedSequence) -> Self {
        let w = seq.generate_state(8);
        let s: Vec<u128> = (0..4)
            .map(|k| (w[2 * k] as u128) | ((w[2 * k + 1] as u128) << 32))
            .collect();
        // The first u64 is the high half of each 128-bit value.
        let initstate = (s[0] << 64) | s[1];
        let initseq = (s[2] << 64) | s[3];
        let mut rng = Self {
            state: 0,
            inc: (initseq << 1) | 1,
        };
        rng.step();
        rng.state = rng.state.wrapping_add(initstate);
        rng.step();
        rng
    }

    pub fn state(&self) -> u128 {
        self.state
    }

    pub fn inc(&self) -> u128 {
        self.inc
    }

    #[inline(always)]
    fn step(&mut self) {
        self.state = self.state.wrapping_mul(MULTIPLIER).wrapping_add(self.inc);
    }

    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        Self::output(self.state)
    }

    #[inline(always)]
    pub fn next_double(&mut self) -> f64 {
        Draws::next_double(self)
    }

    /// Skip `delta` 64-bit draws in O(log delta): lets independent workers start decoding the
    /// same stream at different places.
    pub fn advance(&mut self, delta: u128) {
        let (mult, plus) = self.jump(delta);
        self.state = mult.wrapping_mul(self.state).wrapping_add(plus);
    }

    /// The affine map `state ↦ mult·state + plus` that steps this stream `delta` times
    /// (Brown's LCG jump-ahead).
    pub fn jump(&self, mut delta: u128) -> (u128, u128) {
        let (mut acc_mult, mut acc_plus) = (1u128, 0u128);
        let (mut cur_mult, mut cur_plus) = (MULTIPLIER, self.inc);
        while delta > 0 {
            if delta & 1 == 1 {
                acc_mult = acc_mult.wrapping_mul(cur_mult);
                acc_plus = acc_plus.wrapping_mul(cur_mult).wrapping_add(cur_plus);
            }
            cur_plus = cur_mult.wrapping_add(1).wrapping_mul(cur_plus);
            cur_mult = cur_mult.wrapping_mul(cur_mult);
            delta >>= 1;
        }
        (acc_mult, acc_plus)
    }

    /// numpy's output function (XSL-RR) of a stepped state.
    #[inline(always)]
    pub fn output(state: u128) -> u64 {
        let hi = (state >> 64) as u64;
        let lo = state as u64;
        (hi ^ lo).rotate_right((hi >> 58) as u32)
    }
}

impl Draws for Pcg64 {
    #[inline(always)]
    fn next_u64(&mut self) -> u64 {
        Pcg64::next_u64(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_matches_stepping() {
        let mut a = Pcg64::from_seed_sequence(&SeedSequence::new(&[1, 2, 3]));
        let mut b = a.clone();
        for _ in 0..1000 {
            a.next_u64();
        }
        b.advance(1000);
        assert_eq!(a, b);
        assert_eq!(a.next_u64(), b.next_u64());
    }
}
