//! The steps of docs/spec/COMPUTATION.md §5, one function each. "f16" arrays are f32 arrays holding
//! f16-representable values; `round_f16` is the ⟂ of the spec.

use crate::simd;
use crate::weights::WeightStore;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use powhost_core::ModelWeights;
use powhost_core::parameter_table::Parameter;
use powhost_core::rope::RopeTable;

/// The RoPE table widened once to f32 pairs `(cos, sin)`, `[pos][j]`.
pub struct RopeTableF32 {
    pub half_dim: usize,
    pub cos_sin: Vec<(f32, f32)>,
}

impl RopeTableF32 {
    pub fn new(t: &RopeTable) -> Self {
        let cos_sin = t
            .values
            .chunks_exact(2)
            .map(|p| (p[0].to_f32(), p[1].to_f32()))
            .collect();
        Self {
            half_dim: t.half_dim,
            cos_sin,
        }
    }
}
use rayon::prelude::*;

const PAR_CHUNK: usize = 1 << 14;

/// ⟂: round every value to f16 (nearest, ties to even) and widen it back, vectorised.
pub fn round_f16(values: &mut [f32]) {
    values.par_chunks_mut(PAR_CHUNK).for_each(|chunk| {
        simd::wide(
            #[inline(always)]
            || round_f16_here(chunk),
        )
    });
}

/// ⟂ on this thread; inline it into a `simd::wide` body to vectorise it.
#[inline(always)]
pub fn round_f16_here(values: &mut [f32]) {
    values.iter_mut().for_each(|v| *v = r16(*v));
}

/// ⟂ for one value: round an f32 to the nearest f16 (ties to even) and back, in f32 bit
/// arithmetic. Equal to `f16::from_f32(x).to_f32()` for every input (tested), but inlinable
/// and vectorisable, where the `half` call is an out-of-line F16C call per element.
#[inline(always)]
pub fn r16(x: f32) -> f32 {
    let bits = x.to_bits();
    let sign = bits & 0x8000_0000;
    let abs = bits & 0x7FFF_FFFF;
    if abs >= 0x3880_0000 {
        // |x| ≥ 2^-14, f16's smallest normal: keep 10 mantissa bits, round to nearest even.
        if abs >= 0x7F80_0000 {
            return x; // inf, NaN
        }
        let rounded = (abs + 0x0FFF + ((abs >> 13) & 1)) & !0x1FFF;
        if rounded > 0x477F_E000 {
            f32::from_bits(sign | 0x7F80_0000) // beyond 65504: overflows to inf
        } else {
            f32::from_bits(sign | rounded)
        }
    } else {
        // f16 subnormals are multiples of 2^-24, which is f32's ulp in [0.5, 1): adding
        // and removing 0.5 rounds to that grid, ties to even.
        let a = f32::from_bits(abs);
        f32::from_bits(sign | ((a + 0.5) - 0.5).to_bits())
    }
}

/// `out[m, n] = x[m, k] · Wᵀ ⟂` for a weight `W` of shape `[n, k]`: f32 products and
/// accumulation (faer GEMM), then rounded to f16.
pub fn matmul_xwt(
    store: &WeightStore,
    weights: &ModelWeights,
    x: &[f32],
    m: usize,
    w: &Parameter,
    out: &mut [f32],
) {
    let (n, k) = (w.shape[0], w.shape[1]);
    debug_assert_eq!(x.len(), m * k);
    debug_assert_eq!(out.len(), m * n);
    if let WeightStore::Amx(amx) = store {
        amx.matmul_xwt(weights, x, m, w, out);
        return round_f16(out);
    }
    let Some(wide) = store.widened(w) else {
        // A weight kept in f16: widened panel by panel beside its GEMM.
        return crate::streamed::matmul_xwt(weights, x, m, w, out);
    };
    let lhs = MatRef::from_row_major_slice(x, m, k);
    let rhs = MatRef::from_row_major_slice(wide, n, k).transpose();
    let dst = MatMut::from_row_major_slice_mut(out, m, n);
    matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::rayon(0));
    round_f16(out);
}

/// The f32 GEMM speed the forward pass is built on, for `m × k` times `(n × k)ᵀ`, in GFLOP/s:
/// measured as the forward pass runs its GEMMs, one sequential GEMM per core on every core at
/// once (each core runs its own group of nonces, or its own panels of a large weight), best
/// of three after an untimed round. faer's parallel GEMM, with its barriers between the
/// cores, read lower than the forward pass itself on mainnet's shapes.
pub fn gemm_peak_gflops(m: usize, k: usize, n: usize) -> f64 {
    let x: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.01).collect();
    let w: Vec<f32> = (0..n * k).map(|i| (i % 5) as f32 * 0.01).collect();
    let threads = rayon::current_num_threads();
    let outs: Vec<std::sync::Mutex<Vec<f32>>> = (0..threads)
        .map(|_| std::sync::Mutex::new(vec![0f32; m * n]))
        .collect();
    let lhs = MatRef::from_row_major_slice(&x, m, k);
    let rhs = MatRef::from_row_major_slice(&w, n, k).transpose();
    let round = || {
        let start = std::time::Instant::now();
        rayon::broadcast(|ctx| {
            let mut out = outs[ctx.index()].lock().unwrap_or_else(|e| e.into_inner());
            let dst = MatMut::from_row_major_slice_mut(&mut out, m, n);
            matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
        });
        start.elapsed().as_secs_f64()
    };
    round();
    let best = (0..3).map(|_| round()).fold(f64::MAX, f64::min);
    2.0 * (m * k * n * threads) as f64 / best / 1e9
}

/// RMSNorm (step 1): in f32 `y = x · 1/sqrt(mean(x²) + eps)` ⟂, then `y · w` ⟂.
pub fn rms_norm(x: &[f32], dim: usize, weight: &[f32], eps: f64, out: &mut [f32]) {
    let eps = eps as f32;
    out.par_chunks_mut(dim)
        .zip(x.par_chunks(dim))
        .for_each(|(o, row)| {
            simd::wide(
                #[inline(always)]
                || rms_norm_row(row, weight, eps, o),
            )
        });
}

#[inline(always)]
fn rms_norm_row(row: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    // The reference's f32 mean; an f64 sum rounded once is its best-rounded value.
    let sum_sq: f64 = row.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let mean = (sum_sq as f32) / row.len() as f32;
    let r = 1.0f32 / (mean + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(row).zip(weight) {
        *o = r16(r16(v * r) * w);
    }
}

/// RoPE (step 3) on rows `[rows, n_heads·hd]` whose positions `position(row)` gives:
/// pairs `(x0, x1)` become `(x0·c − x1·s, x1·c + x0·s)` in f32, each product rounded
/// separately (no FMA), then ⟂.
pub fn rope(
    x: &mut [f32],
    width: usize,
    rope: &RopeTableF32,
    position: impl Fn(usize) -> usize + Sync,
) {
    let half = rope.half_dim;
    x.par_chunks_mut(width).enumerate().for_each(|(row, v)| {
        let table = &rope.cos_sin[position(row) * half..][..half];
        simd::wide(
            #[inline(always)]
            || rope_row(v, table),
        )
    });
}

#[inline(always)]
fn rope_row(v: &mut [f32], table: &[(f32, f32)]) {
    for head in v.chunks_exact_mut(2 * table.len()) {
        for (pair, &(c, s)) in head.chunks_exact_mut(2).zip(table) {
            let (x0, x1) = (pair[0], pair[1]);
            let (a, b) = (x0 * c, x1 * s);
            let (d, e) = (x1 * c, x0 * s);
            pair[0] = r16(a - b);
            pair[1] = r16(d + e);
        }
    }
}

/// The shapes attention works on.
pub struct AttentionShape {
    pub seq_len: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Query positions per nonce: all `seq_len`, or only the last one (final layer).
    pub last_only: bool,
}

/// Steps 4–6: causal GQA attention per nonce and query head. `q` is `[batch·queries,
/// n_heads·hd]`, `k`/`v` are `[batch·seq_len, n_kv_heads·hd]`; `out` is shaped like `q`.
pub fn attention(shape: &AttentionShape, q: &[f32], k: &[f32], v: &[f32], out: &mut [f32]) {
    let AttentionShape {
        seq_len,
        n_heads,
        n_kv_heads,
        head_dim: hd,
        last_only,
    } = *shape;
    let queries = if last_only { 1 } else { seq_len };
    let (q_width, kv_width) = (n_heads * hd, n_kv_heads * hd);
    let n_rep = n_heads / n_kv_heads;
    // Scores are divided by sqrt(head_dim), as PyTorch's reference does.
    let score_divisor = (hd as f32).sqrt();
    // One task per (nonce, query position): its row of q and of out.
    out.par_chunks_mut(q_width)
        .enumerate()
        .for_each_init(Vec::new, |probs, (row, o_row)| {
            let (b, qi) = (row / queries, row % queries);
            let pos = if last_only { seq_len - 1 } else { qi };
            let q_row = &q[row * q_width..(row + 1) * q_width];
            // The nonce's keys and values up to the query's position (the causal mask).
            let seen = b * seq_len * kv_width..(b * seq_len + pos + 1) * kv_width;
            let (keys, values) = (&k[seen.clone()], &v[seen]);
            probs.resize(pos + 1, 0.0);
            simd::wide(
                #[inline(always)]
                || {
                    for h in 0..n_heads {
                        let columns = (h / n_rep) * hd..(h / n_rep + 1) * hd;
                        let head = Head {
                            keys,
                            values,
                            columns,
                            kv_width,
                            score_divisor,
                        };
                        let oh = &mut o_row[h * hd..(h + 1) * hd];
                        head.attend(&q_row[h * hd..(h + 1) * hd], probs, oh);
                    }
                },
            )
        });
}

/// One kv head of one nonce, as one query head reads it.
struct Head<'a> {
    /// `[positions, kv_width]`: the nonce's rows of k and v that the query sees.
    keys: &'a [f32],
    values: &'a [f32],
    /// The kv head's columns in a row.
    columns: std::ops::Range<usize>,
    kv_width: usize,
    score_divisor: f32,
}

impl Head<'_> {
    /// This head's columns of each row of `m` (the keys or the values).
    #[inline(always)]
    fn rows<'m>(&self, m: &'m [f32]) -> impl Iterator<Item = &'m [f32]> + use<'m> {
        let columns = self.columns.clone();
        m.chunks_exact(self.kv_width)
            .map(move |r| &r[columns.clone()])
    }

    /// Steps 5–6 for one query row `qh` of this head: `oh = softmax(q·kᵀ ⟂ / √hd ⟂) ⟂ · v ⟂`.
    #[inline(always)]
    fn attend(&self, qh: &[f32], probs: &mut [f32], oh: &mut [f32]) {
        // scores = q·kᵀ ⟂, then / sqrt(hd) ⟂ (f32 division); masked keys are skipped,
        // which is what −∞ does to the max and the exponentials.
        for (p, kr) in probs.iter_mut().zip(self.rows(self.keys)) {
            *p = dot_f32(qh, kr);
        }
        // A pass of its own, so that the roundings and divisions run a vector at a time.
        let mut max = f32::NEG_INFINITY;
        for p in probs.iter_mut() {
            *p = r16(r16(*p) / self.score_divisor);
            max = max.max(*p);
        }
        // softmax in f32 (the reference multiplies by the reciprocal of the sum) ⟂.
        let mut sum = 0f32;
        for p in probs.iter_mut() {
            *p = (*p - max).exp();
            sum += *p;
        }
        let inv = 1.0f32 / sum;
        probs.iter_mut().for_each(|p| *p = r16(*p * inv));
        // o = probs·v ⟂, each column summed over the positions in order; sixteen columns at a
        // time, so that the sums stay in a register instead of going through memory per key.
        for (chunk, oc) in oh.chunks_mut(LANES).enumerate() {
            let first = self.columns.start + chunk * LANES;
            let columns = first..first + oc.len();
            let values = self
                .values
                .chunks_exact(self.kv_width)
                .map(|r| &r[columns.clone()]);
            if let Ok(whole) = <&mut [f32; LANES]>::try_from(&mut *oc) {
                *whole = weighted_sum(probs, values);
            } else {
                oc.fill(0.0);
                for (&p, vr) in probs.iter().zip(values) {
                    for (o, &vv) in oc.iter_mut().zip(vr) {
                        *o += p * vv;
                    }
                }
            }
            oc.iter_mut().for_each(|o| *o = r16(*o));
        }
    }
}

/// Columns of attention's output summed together in a register.
const LANES: usize = 16;

/// `Σ_t p_t · v_t` over `LANES` columns, in position order.
#[inline(always)]
fn weighted_sum<'v>(probs: &[f32], values: impl Iterator<Item = &'v [f32]>) -> [f32; LANES] {
    let mut acc = [0f32; LANES];
    for (&p, vr) in probs.iter().zip(values) {
        let vr: &[f32; LANES] = vr.try_into().expect("LANES columns");
        for i in 0..LANES {
            acc[i] += p * vr[i];
        }
    }
    acc
}

/// An f32 dot product with 8 independent accumulators, so that it vectorises (the
/// accumulation order is free: docs/spec/COMPUTATION.md §5.1).
#[inline(always)]
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// `h = h + delta` in f32, ⟂ (steps 7 and 8).
pub fn add_residual(h: &mut [f32], delta: &[f32]) {
    h.par_chunks_mut(PAR_CHUNK)
        .zip(delta.par_chunks(PAR_CHUNK))
        .for_each(|(h, d)| {
            simd::wide(
                #[inline(always)]
                || {
                    for (h, &d) in h.iter_mut().zip(d) {
                        *h = r16(*h + d);
                    }
                },
            )
        });
}

/// Step 8's gate: `a ← (silu(a) ⟂) · b ⟂`, with `silu(a) = a / (1 + exp(−a))` in f32.
pub fn silu_mul(a: &mut [f32], b: &[f32]) {
    a.par_chunks_mut(PAR_CHUNK)
        .zip(b.par_chunks(PAR_CHUNK))
        .for_each(|(a, b)| crate::gate::silu_mul_chunk(a, b));
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    fn check(x: f32) {
        let want = f16::from_f32(x).to_f32();
        let got = r16(x);
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "r16({x:e} = {:#010x}) = {got:e}, half says {want:e}",
            x.to_bits()
        );
    }

    #[test]
    fn r16_equals_half_conversion() {
        // Every f32 whose low 9 bits are a fixed pattern (8 M values spread over the whole
        // range), plus every value near the rounding boundaries of every f16.
        for hi in 0..(1u32 << 23) {
            check(f32::from_bits((hi << 9) | 0x0AB));
        }
        for h in 0..=u16::MAX {
            let v = f16::from_bits(h).to_f32();
            if !v.is_finite() {
                continue;
            }
            for d in -4096i32..=4096 {
                check(f32::from_bits((v.to_bits() as i32).wrapping_add(d) as u32));
            }
        }
        for x in [
            0.0,
            -0.0,
            65504.0,
            65519.99,
            65520.0,
            -65520.0,
            5.96e-8,
            2.98e-8,
            2.9802322e-8,
            f32::MIN_POSITIVE,
            f32::INFINITY,
            f32::NAN,
        ] {
            check(x);
        }
    }
}
