//! The RoPE table (spec §5): cos/sin per position and frequency, stored in f16 as the
//! reference does, handed to backends widened to f32.

use crate::params::ModelParams;
use half::f16;

/// Scaled-RoPE constants (LLaMA 3.1's `apply_scaling`).
const SCALE_FACTOR: f64 = 8.0;
const LOW_FREQ_WAVELEN: f64 = 8192.0;
const HIGH_FREQ_WAVELEN: f64 = 2048.0;
const OLD_CONTEXT_LEN: f64 = 8192.0;

/// `cos` and `sin` for positions `0..seq_len` and pairs `0..hd/2`, laid out
/// `[pos][j][cos, sin]` (the goldens' layout).
#[derive(Clone, Debug)]
pub struct RopeTable {
    pub half_dim: usize,
    pub values: Vec<f16>,
}

/// f32 operations computed in f64 and rounded once: correctly rounded (as glibc's powf,
/// cosf and sinf are in practice), so the result does not depend on this platform's libm.
fn freq(j: usize, hd: usize, theta: f64, scaled: bool) -> f32 {
    let e = (2 * j) as f32 / hd as f32;
    let pow = (theta as f32 as f64).powf(e as f64) as f32;
    let f = 1.0f32 / pow;
    if !scaled {
        return f;
    }
    let f = f as f64;
    let wavelen = 2.0 * std::f64::consts::PI / f;
    let scaled = if wavelen < HIGH_FREQ_WAVELEN {
        f
    } else if wavelen > LOW_FREQ_WAVELEN {
        f / SCALE_FACTOR
    } else {
        let smooth = (OLD_CONTEXT_LEN / wavelen - 1.0) / 3.0;
        (1.0 - smooth) * f / SCALE_FACTOR + smooth * f
    };
    scaled as f32
}

impl RopeTable {
    pub fn new(params: &ModelParams) -> Self {
        let hd = params.head_dim();
        let half_dim = hd / 2;
        let freqs: Vec<f32> = (0..half_dim)
            .map(|j| freq(j, hd, params.rope_theta, params.use_scaled_rope))
            .collect();
        let mut values = Vec::with_capacity(params.seq_len * half_dim * 2);
        for p in 0..params.seq_len {
            for &f in &freqs {
                let a = p as f32 * f;
                values.push(f16::from_f32((a as f64).cos() as f32));
                values.push(f16::from_f32((a as f64).sin() as f32));
            }
        }
        Self { half_dim, values }
    }

    /// `(cos, sin)` widened to f32.
    #[inline]
    pub fn cos_sin(&self, pos: usize, j: usize) -> (f32, f32) {
        let i = (pos * self.half_dim + j) * 2;
        (self.values[i].to_f32(), self.values[i + 1].to_f32())
    }
}
