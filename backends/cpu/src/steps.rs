//! The CPU backend's ops as core's [`GpuSteps`]: the reference a GPU backend's steps are
//! compared with one by one (the op check), and a check that core's GPU sequence computes
//! what the CPU backend's own sequence does (bit for bit, `tests/gpu_sequence.rs`).

use crate::ops::{self, AttentionShape, RopeTableF32};
use crate::weights::WeightStore;
use anyhow::{Result, ensure};
use half::f16;
use powhost_core::ModelWeights;
use powhost_core::gpu_forward::{AttentionRows, GpuSteps};
use powhost_core::parameter_table::Parameter;
use std::sync::Arc;

/// Buffers are f32 vectors holding f16-representable values, as the CPU backend's are.
pub struct CpuSteps {
    weights: Arc<ModelWeights>,
    store: WeightStore,
    rope: RopeTableF32,
}

impl CpuSteps {
    pub fn new(weights: Arc<ModelWeights>) -> Self {
        Self {
            store: WeightStore::new(&weights, crate::WIDEN_POOL_LIMIT_BYTES),
            rope: RopeTableF32::new(&weights.rope),
            weights,
        }
    }
}

fn part(b: &[f32], len: usize, what: &str) -> Result<()> {
    ensure!(
        len <= b.len(),
        "{what}: {len} values of a buffer of {}",
        b.len()
    );
    Ok(())
}

impl GpuSteps for CpuSteps {
    type Buffer = Vec<f32>;

    fn activations(&mut self, _: &'static str, len: usize) -> Result<Vec<f32>> {
        Ok(vec![0.0; len])
    }

    fn scratch_f32(&mut self, _: &'static str, len: usize) -> Result<Vec<f32>> {
        Ok(vec![0.0; len])
    }

    fn upload(&mut self, _: &'static str, values: &[f16]) -> Result<Vec<f32>> {
        Ok(values.iter().map(|v| v.to_f32()).collect())
    }

    fn read(&mut self, b: &Vec<f32>, len: usize) -> Result<Vec<f32>> {
        part(b, len, "read")?;
        Ok(b[..len].to_vec())
    }

    fn matmul(
        &mut self,
        x: &Vec<f32>,
        rows: usize,
        w: &Parameter,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let (n, k) = (w.shape[0], w.shape[1]);
        part(x, rows * k, "matmul input")?;
        part(out, rows * n, "matmul output")?;
        ops::matmul_xwt(
            &self.store,
            &self.weights,
            &x[..rows * k],
            rows,
            w,
            &mut out[..rows * n],
        );
        Ok(())
    }

    fn rms_norm(
        &mut self,
        x: &Vec<f32>,
        rows: usize,
        w: &Parameter,
        eps: f32,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let len = rows * w.numel;
        part(x, len, "rms_norm input")?;
        part(out, len, "rms_norm output")?;
        let weight = self.store.vector(&self.weights, w);
        ops::rms_norm(&x[..len], w.numel, &weight, eps as f64, &mut out[..len]);
        Ok(())
    }

    fn rope(&mut self, x: &mut Vec<f32>, rows: usize, width: usize, last_only: bool) -> Result<()> {
        part(x, rows * width, "rope")?;
        let seq_len = self.weights.params.seq_len;
        let position = move |row: usize| {
            if last_only {
                seq_len - 1
            } else {
                row % seq_len
            }
        };
        ops::rope(&mut x[..rows * width], width, &self.rope, position);
        Ok(())
    }

    fn attention(
        &mut self,
        q: &Vec<f32>,
        k: &Vec<f32>,
        v: &Vec<f32>,
        out: &mut Vec<f32>,
        _probs: &mut Vec<f32>,
        rows: AttentionRows,
    ) -> Result<()> {
        let p = &self.weights.params;
        let hd = p.head_dim();
        let (q_len, batch) = (
            rows.rows * p.n_heads * hd,
            if rows.last_only {
                rows.rows
            } else {
                rows.rows / p.seq_len
            },
        );
        let kv_len = batch * p.seq_len * p.n_kv_heads * hd;
        part(q, q_len, "attention q")?;
        part(k, kv_len, "attention k")?;
        part(v, kv_len, "attention v")?;
        part(out, q_len, "attention output")?;
        let shape = AttentionShape {
            seq_len: p.seq_len,
            n_heads: p.n_heads,
            n_kv_heads: p.n_kv_heads,
            head_dim: hd,
            last_only: rows.last_only,
        };
        ops::attention(
            &shape,
            &q[..q_len],
            &k[..kv_len],
            &v[..kv_len],
            &mut out[..q_len],
        );
        Ok(())
    }

    fn last_rows(
        &mut self,
        x: &Vec<f32>,
        out: &mut Vec<f32>,
        batch: usize,
        width: usize,
    ) -> Result<()> {
        let s = self.weights.params.seq_len;
        part(x, batch * s * width, "last_rows input")?;
        part(out, batch * width, "last_rows output")?;
        for b in 0..batch {
            let from = ((b + 1) * s - 1) * width;
            out[b * width..(b + 1) * width].copy_from_slice(&x[from..from + width]);
        }
        Ok(())
    }

    fn add_residual(&mut self, h: &mut Vec<f32>, d: &Vec<f32>, len: usize) -> Result<()> {
        part(h, len, "add_residual")?;
        part(d, len, "add_residual")?;
        ops::add_residual(&mut h[..len], &d[..len]);
        Ok(())
    }

    fn silu_mul(&mut self, a: &mut Vec<f32>, b: &Vec<f32>, len: usize) -> Result<()> {
        part(a, len, "silu_mul")?;
        part(b, len, "silu_mul")?;
        ops::silu_mul(&mut a[..len], &b[..len]);
        Ok(())
    }
}
