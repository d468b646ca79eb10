//! A source of the stream's 64-bit draws, in order: a PCG64 stepped one draw at a time, or a
//! block of draws generated ahead ([`super::DrawBlock`]). The ziggurat reads either.

pub trait Draws {
    fn next_u64(&mut self) -> u64;

    /// numpy's `next_double`: the top 53 bits as a fraction of 2^53.
    #[inline(always)]
    fn next_double(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
}
