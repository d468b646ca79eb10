//! The vectorised steps of `ops` against their scalar definitions, bit for bit.
//!
//! Each reference below is the step written as plainly as the spec says it, compiled for
//! baseline x86-64; `ops` runs the same arithmetic inside `simd::wide` (AVX-512 or AVX2 on a
//! CPU that has them). Any reordering, FMA contraction or lane mix-up shows as a differing
//! bit. The inputs are f16 values across f16's whole range, with zeros, subnormals and
//! values near overflow, as the buffers of the forward pass hold.

use crate::ops::{self, AttentionShape, RopeTableF32, r16};
use half::f16;

/// Deterministic f16 values: mostly moderate (as activations are), some anywhere in f16.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|i| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (state >> 33) as u32;
            let v = match i % 11 {
                // Anywhere in f16, subnormals and ±65504 included (no inf or NaN).
                0 => f16::from_bits((r & 0x7BFF) as u16 | ((r >> 16) as u16 & 0x8000)).to_f32(),
                1 => 0.0,
                _ => (r as f32 / u32::MAX as f32 - 0.5) * 8.0,
            };
            r16(v)
        })
        .collect()
}

fn assert_same_bits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
            "{what}[{i}]: {g:e} ({:#010x}), scalar {w:e} ({:#010x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

#[test]
fn round_f16_equals_the_f16_conversion_for_f32s_near_every_f16() {
    let mut xs: Vec<f32> = Vec::new();
    for h in 0..=u16::MAX {
        let v = f16::from_bits(h).to_f32();
        if v.is_finite() {
            let b = v.to_bits() as i32;
            xs.extend((-40..=40).map(|d| f32::from_bits(b.wrapping_add(d << 7) as u32)));
            xs.extend((-3..=3).map(|d| f32::from_bits(b.wrapping_add(d) as u32)));
        }
    }
    xs.extend([
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        65520.0,
        -65520.0,
        1e30,
    ]);
    let want: Vec<f32> = xs.iter().map(|&x| f16::from_f32(x).to_f32()).collect();
    let mut got = xs.clone();
    ops::round_f16(&mut got);
    assert_same_bits(&got, &want, "round_f16");
}

#[test]
fn rms_norm_equals_its_scalar_definition() {
    let (rows, dim, eps) = (37, 200, 1e-5f64);
    let x = values(rows * dim, 1);
    let w = values(dim, 2);
    let mut want = vec![0f32; rows * dim];
    for (o, row) in want.chunks_mut(dim).zip(x.chunks(dim)) {
        let sum_sq: f64 = row.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let r = 1.0f32 / ((sum_sq as f32) / dim as f32 + eps as f32).sqrt();
        for ((o, &v), &w) in o.iter_mut().zip(row).zip(&w) {
            *o = r16(r16(v * r) * w);
        }
    }
    let mut got = vec![0f32; rows * dim];
    ops::rms_norm(&x, dim, &w, eps, &mut got);
    assert_same_bits(&got, &want, "rms_norm");
}

#[test]
fn rope_equals_its_scalar_definition() {
    let (rows, heads, half, positions) = (23, 3, 14, 7);
    let width = heads * 2 * half;
    let table = values(positions * half * 2, 3);
    let rope = RopeTableF32 {
        half_dim: half,
        cos_sin: table.chunks(2).map(|p| (p[0], p[1])).collect(),
    };
    let x = values(rows * width, 4);
    let mut want = x.clone();
    for (row, v) in want.chunks_mut(width).enumerate() {
        let pos = row % positions;
        for head in v.chunks_mut(2 * half) {
            for j in 0..half {
                let (c, s) = rope.cos_sin[pos * half + j];
                let (x0, x1) = (head[2 * j], head[2 * j + 1]);
                head[2 * j] = r16(x0 * c - x1 * s);
                head[2 * j + 1] = r16(x1 * c + x0 * s);
            }
        }
    }
    let mut got = x;
    ops::rope(&mut got, width, &rope, |row| row % positions);
    assert_same_bits(&got, &want, "rope");
}

#[test]
fn residual_equals_its_scalar_definition() {
    let h = values(40_000, 5);
    let d = values(40_000, 6);
    let want: Vec<f32> = h.iter().zip(&d).map(|(&h, &d)| r16(h + d)).collect();
    let mut got = h;
    ops::add_residual(&mut got, &d);
    assert_same_bits(&got, &want, "add_residual");
}

/// Steps 4–6 as the spec writes them, one query head and position at a time.
fn attention_by_definition(s: &AttentionShape, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f32> {
    let hd = s.head_dim;
    let (q_width, kv_width) = (s.n_heads * hd, s.n_kv_heads * hd);
    let queries = if s.last_only { 1 } else { s.seq_len };
    let mut out = vec![0f32; q.len()];
    for row in 0..q.len() / q_width {
        let (b, qi) = (row / queries, row % queries);
        let pos = if s.last_only { s.seq_len - 1 } else { qi };
        for h in 0..s.n_heads {
            let g = h / (s.n_heads / s.n_kv_heads);
            let qh = &q[row * q_width + h * hd..][..hd];
            let key = |t: usize| &k[(b * s.seq_len + t) * kv_width + g * hd..][..hd];
            let value = |t: usize| &v[(b * s.seq_len + t) * kv_width + g * hd..][..hd];
            // The dot product in dot_f32's order: eight strided partial sums, then the tail.
            let dot = |a: &[f32], b: &[f32]| {
                let mut acc = [0f32; 8];
                let whole = a.len() / 8 * 8;
                for i in 0..whole {
                    acc[i % 8] += a[i] * b[i];
                }
                let tail: f32 = (whole..a.len()).map(|i| a[i] * b[i]).sum();
                acc.iter().sum::<f32>() + tail
            };
            let scores: Vec<f32> = (0..=pos)
                .map(|t| r16(r16(dot(qh, key(t))) / (hd as f32).sqrt()))
                .collect();
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = scores.iter().map(|&x| (x - max).exp()).collect();
            let inv = 1.0f32 / e.iter().sum::<f32>();
            let oh = &mut out[row * q_width + h * hd..][..hd];
            for (t, &e) in e.iter().enumerate() {
                let p = r16(e * inv);
                for (o, &vv) in oh.iter_mut().zip(value(t)) {
                    *o += p * vv;
                }
            }
            oh.iter_mut().for_each(|o| *o = r16(*o));
        }
    }
    out
}

#[test]
fn attention_equals_its_scalar_definition() {
    // Head sizes with and without a tail past the eight-lane chunks (mainnet's is 28), GQA
    // and not, every position and the last only.
    for (hd, n_heads, n_kv_heads, last_only) in [
        (28, 4, 4, false),
        (64, 8, 2, false),
        (20, 6, 3, true),
        (32, 2, 1, true),
    ] {
        let (batch, seq_len) = (4, 48);
        let shape = AttentionShape {
            seq_len,
            n_heads,
            n_kv_heads,
            head_dim: hd,
            last_only,
        };
        let q_rows = if last_only { batch } else { batch * seq_len };
        // Scaled down so that the scores stay in f16 and the softmax is not one-hot.
        let small = |n, seed| -> Vec<f32> {
            values(n, seed)
                .iter()
                .map(|&v| r16(v.clamp(-4.0, 4.0) * 0.75))
                .collect()
        };
        let q = small(q_rows * n_heads * hd, 7);
        let k = small(batch * seq_len * n_kv_heads * hd, 8);
        let v = values(batch * seq_len * n_kv_heads * hd, 9);
        let want = attention_by_definition(&shape, &q, &k, &v);
        let mut got = vec![0f32; q.len()];
        ops::attention(&shape, &q, &k, &v, &mut got);
        assert_same_bits(&got, &want, &format!("attention (hd {hd})"));
    }
}
