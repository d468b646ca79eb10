//! numpy's `standard_normal`: the 256-level float64 ziggurat (`random_standard_normal`).

use super::Draws;
use super::ziggurat_tables::{FI, INV_R, KI, R, WI};

/// One normal as decoded from the stream, with the number of 64-bit draws it used.
/// The parallel weight-pool draw needs the draw count to find sample boundaries.
#[derive(Clone, Copy, Debug)]
pub struct NormalSample {
    pub value: f64,
    pub draws: u32,
}

/// `standard_normal()`. Evaluated left to right with no FMA (Rust never contracts), and
/// `exp`/`ln_1p` from the platform libm, which on x86_64 Linux is glibc, as for numpy.
#[inline(always)]
pub fn standard_normal<D: Draws>(bits: &mut D) -> f64 {
    standard_normal_counted(bits).value
}

/// `standard_normal()` that also says how many 64-bit draws it consumed.
#[inline(always)]
pub fn standard_normal_counted<D: Draws>(bits: &mut D) -> NormalSample {
    let mut draws = 0u32;
    loop {
        let r = bits.next_u64();
        draws += 1;
        let idx = (r & 0xFF) as usize;
        let r = r >> 8;
        let sign = r & 1;
        let rabs = (r >> 1) & 0x000F_FFFF_FFFF_FFFF;
        // Negate by flipping the sign bit: a branch on a random bit would be mispredicted
        // half the time, costing more than the rest of the sample.
        let x = f64::from_bits((rabs as f64 * WI[idx]).to_bits() ^ (sign << 63));
        if rabs < KI[idx] {
            return NormalSample { value: x, draws };
        }
        if idx == 0 {
            // The tail beyond R.
            loop {
                let xx = -INV_R * (-bits.next_double()).ln_1p();
                let yy = -(-bits.next_double()).ln_1p();
                draws += 2;
                if yy + yy > xx * xx {
                    let v = R + xx;
                    let v = if (rabs >> 8) & 1 != 0 { -v } else { v };
                    return NormalSample { value: v, draws };
                }
            }
        } else {
            // The wedge between two rectangles.
            let u = bits.next_double();
            draws += 1;
            if (FI[idx - 1] - FI[idx]) * u + FI[idx] < (-0.5 * x * x).exp() {
                return NormalSample { value: x, draws };
            }
        }
    }
}
