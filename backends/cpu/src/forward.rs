//! The forward pass of spec §5, step by step, for a batch of nonces.

use crate::ops::{self, AttentionShape, RopeTableF32};
use crate::weights::WeightStore;
use half::f16;
use half::slice::HalfFloatSliceExt;
use powhost_core::ModelWeights;
use std::sync::Arc;

pub struct CpuForward {
    pub(crate) weights: Arc<ModelWeights>,
    store: WeightStore,
    /// Norm weights widened once: per layer (attention_norm, ffn_norm), then the final norm.
    norms: Vec<(Vec<f32>, Vec<f32>)>,
    final_norm: Vec<f32>,
    rope: RopeTableF32,
    /// One single-thread pool per core: big batches are split into one group of nonces per
    /// core, each run start to finish on its own core with sequential GEMMs. That avoids
    /// synchronising the cores at every step, which costs more than the parallel GEMM gains.
    group_pools: Vec<rayon::ThreadPool>,
}

impl CpuForward {
    pub fn new(weights: Arc<ModelWeights>) -> Self {
        let store = WeightStore::new(&weights, crate::WIDEN_POOL_LIMIT_BYTES);
        let norms = (0..weights.params.n_layers)
            .map(|l| {
                let lp = weights.layer(l);
                (
                    store.vector(&weights, lp.attention_norm),
                    store.vector(&weights, lp.ffn_norm),
                )
            })
            .collect();
        let final_norm = store.vector(&weights, weights.final_norm());
        let rope = RopeTableF32::new(&weights.rope);
        let group_pools = (0..rayon::current_num_threads())
            .filter_map(|_| rayon::ThreadPoolBuilder::new().num_threads(1).build().ok())
            .collect();
        Self {
            weights,
            store,
            norms,
            final_norm,
            rope,
            group_pools,
        }
    }

    /// Last-position logits (`batch × vocab`) for `batch` inputs of `[seq_len, dim]`.
    pub fn forward(&self, inputs: &[f16], batch: usize) -> Vec<f32> {
        let groups = self.group_pools.len();
        // Below two nonces per core, splitting would leave cores idle: parallelise inside
        // each step instead.
        if groups < 2 || batch < 2 * groups {
            return self.forward_group(inputs, batch);
        }
        let per_input = inputs.len() / batch;
        let per_group = batch.div_ceil(groups);
        let parts: Vec<Vec<f32>> = std::thread::scope(|scope| {
            let handles: Vec<_> = inputs
                .chunks(per_group * per_input)
                .zip(&self.group_pools)
                .map(|(part, pool)| {
                    scope.spawn(move || {
                        pool.install(|| self.forward_group(part, part.len() / per_input))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("forward pass thread panicked"))
                .collect()
        });
        parts.concat()
    }

    /// The forward pass for one group of nonces on the current rayon pool.
    fn forward_group(&self, inputs: &[f16], batch: usize) -> Vec<f32> {
        let w = &*self.weights;
        let p = &w.params;
        let (s, dim, hd) = (p.seq_len, p.dim, p.head_dim());
        let (q_width, kv_width, hidden) = (p.n_heads * hd, p.n_kv_heads * hd, p.ffn_hidden());
        let rows = batch * s;

        // The residual stream h, [rows, dim].
        let mut h = vec![0f32; rows * dim];
        inputs.convert_to_f32_slice(&mut h);

        for l in 0..p.n_layers {
            let lp = w.layer(l);
            let (attention_norm, ffn_norm) = &self.norms[l];
            // In the last layer only the last position of each nonce goes on: k and v still
            // need every position, nothing else does.
            let last_only = l + 1 == p.n_layers;
            let q_rows = if last_only { batch } else { rows };

            // 1. xn = RMSNorm(h)
            let mut xn = vec![0f32; rows * dim];
            ops::rms_norm(&h, dim, attention_norm, p.norm_eps, &mut xn);
            // 2. q, k, v
            let mut k = vec![0f32; rows * kv_width];
            let mut v = vec![0f32; rows * kv_width];
            ops::matmul_xwt(&self.store, w, &xn, rows, lp.wk, &mut k);
            ops::matmul_xwt(&self.store, w, &xn, rows, lp.wv, &mut v);
            let xq = if last_only {
                last_rows(&xn, batch, s, dim)
            } else {
                xn
            };
            let mut q = vec![0f32; q_rows * q_width];
            ops::matmul_xwt(&self.store, w, &xq, q_rows, lp.wq, &mut q);
            // 3. RoPE on q and k
            let q_pos = |row: usize| if last_only { s - 1 } else { row % s };
            ops::rope(&mut q, q_width, &self.rope, q_pos);
            ops::rope(&mut k, kv_width, &self.rope, |row| row % s);
            // 4–6. attention
            let mut o = vec![0f32; q_rows * q_width];
            let shape = AttentionShape {
                batch,
                seq_len: s,
                n_heads: p.n_heads,
                n_kv_heads: p.n_kv_heads,
                head_dim: hd,
                last_only,
            };
            ops::attention(&shape, &q, &k, &v, &mut o);
            // 7. h = h + o·woᵀ
            if last_only {
                h = last_rows(&h, batch, s, dim);
            }
            let mut attn = vec![0f32; q_rows * dim];
            ops::matmul_xwt(&self.store, w, &o, q_rows, lp.wo, &mut attn);
            ops::add_residual(&mut h, &attn);
            // 8. the SwiGLU feed-forward
            let mut xn = vec![0f32; q_rows * dim];
            ops::rms_norm(&h, dim, ffn_norm, p.norm_eps, &mut xn);
            let mut a = vec![0f32; q_rows * hidden];
            let mut b = vec![0f32; q_rows * hidden];
            ops::matmul_xwt(&self.store, w, &xn, q_rows, lp.w1, &mut a);
            ops::matmul_xwt(&self.store, w, &xn, q_rows, lp.w3, &mut b);
            ops::silu_mul(&mut a, &b);
            let mut ffn = vec![0f32; q_rows * dim];
            ops::matmul_xwt(&self.store, w, &a, q_rows, lp.w2, &mut ffn);
            ops::add_residual(&mut h, &ffn);
        }

        // The final norm and the output projection, last positions only.
        let mut xn = vec![0f32; batch * dim];
        ops::rms_norm(&h, dim, &self.final_norm, p.norm_eps, &mut xn);
        let mut logits = vec![0f32; batch * p.vocab_size];
        ops::matmul_xwt(&self.store, w, &xn, batch, w.output(), &mut logits);
        logits
    }
}

/// The rows of each nonce's last position: `[batch, width]` out of `[batch·seq_len, width]`.
fn last_rows(x: &[f32], batch: usize, seq_len: usize, width: usize) -> Vec<f32> {
    (0..batch)
        .flat_map(|b| &x[((b + 1) * seq_len - 1) * width..][..width])
        .copied()
        .collect()
}
