//! The RoPE table (docs/spec/COMPUTATION.md §5.2): cos/sin per position and frequency, stored
//! in f16 as the reference does, handed to backends widened to f32.

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

/// `1 / theta^(2j/hd)` in f32 (pow computed in f64 and rounded once; equal to PyTorch's f32
/// pow for every preset's head size and theta).
pub fn base_freq(j: usize, hd: usize, theta: f64) -> f32 {
    let e = (2 * j) as f32 / hd as f32;
    let pow = (theta as f32 as f64).powf(e as f64) as f32;
    1.0f32 / pow
}

/// LLaMA 3.1's `apply_scaling` as the reference runs it: each frequency is a 0-d float32
/// tensor, so all of it is f32 arithmetic, and `c / t` with a Python number `c` is
/// PyTorch's `t.reciprocal() * c` (docs/spec/COMPUTATION.md §5.2). (In f64 it would differ from
/// the reference in one frequency of devtest's 16, and more at larger head sizes.)
pub fn scale_freq(freq: f32) -> f32 {
    let two_pi = (2.0 * std::f64::consts::PI) as f32;
    let wavelen = (1.0f32 / freq) * two_pi;
    if (wavelen as f64) < HIGH_FREQ_WAVELEN {
        freq
    } else if (wavelen as f64) > LOW_FREQ_WAVELEN {
        freq / SCALE_FACTOR as f32
    } else {
        let smooth = ((1.0f32 / wavelen) * OLD_CONTEXT_LEN as f32 - 1.0) / 3.0;
        // `(1 - smooth)` is `-smooth + 1` in PyTorch (`__rsub__`); same bits in IEEE.
        (1.0 - smooth) * freq / SCALE_FACTOR as f32 + smooth * freq
    }
}

fn freq(j: usize, hd: usize, theta: f64, scaled: bool) -> f32 {
    let f = base_freq(j, hd, theta);
    if scaled { scale_freq(f) } else { f }
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
