//! The forward pass of docs/spec/COMPUTATION.md §5, step by step, for a batch of nonces.

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
    pub fn new(weights: Arc<ModelWeights>, gemm: &crate::GemmPath) -> Self {
        let store = gemm.weight_store(&weights, crate::WIDEN_POOL_LIMIT_BYTES);
        Self::with_store(weights, store)
    }

    /// The forward pass multiplying by the weights as `store` holds them.
    pub fn with_store(weights: Arc<ModelWeights>, store: WeightStore) -> Self {
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
        // Every buffer is allocated once per call and reused by each layer: mainnet's FFN
        // buffers are 50 MB each, and fresh ones per layer would cost page faults by the
        // million.
        let mut buf = Buffers::new(rows, dim, q_width, kv_width, hidden);

        // The residual stream h, [rows, dim] (the last layer keeps the last positions only).
        let mut h = vec![0f32; rows * dim];
        inputs.convert_to_f32_slice(&mut h);

        for l in 0..p.n_layers {
            let lp = w.layer(l);
            let (attention_norm, ffn_norm) = &self.norms[l];
            // In the last layer only the last position of each nonce goes on: k and v still
            // need every position, nothing else does.
            let last_only = l + 1 == p.n_layers;
            let q_rows = if last_only { batch } else { rows };
            let Buffers {
                xn,
                q,
                k,
                v,
                o,
                a,
                b,
            } = &mut buf;
            let (q, o) = (&mut q[..q_rows * q_width], &mut o[..q_rows * q_width]);

            // 1. xn = RMSNorm(h)
            ops::rms_norm(&h, dim, attention_norm, p.norm_eps, xn);
            // 2. q, k, v
            ops::matmul_xwt(&self.store, w, xn, rows, lp.wk, k);
            ops::matmul_xwt(&self.store, w, xn, rows, lp.wv, v);
            if last_only {
                keep_last_rows(xn, batch, s, dim);
            }
            ops::matmul_xwt(&self.store, w, &xn[..q_rows * dim], q_rows, lp.wq, q);
            // 3. RoPE on q and k
            let q_pos = |row: usize| if last_only { s - 1 } else { row % s };
            ops::rope(q, q_width, &self.rope, q_pos);
            ops::rope(k, kv_width, &self.rope, |row| row % s);
            // 4–6. attention
            let shape = AttentionShape {
                seq_len: s,
                n_heads: p.n_heads,
                n_kv_heads: p.n_kv_heads,
                head_dim: hd,
                last_only,
            };
            ops::attention(&shape, q, k, v, o);
            // 7. h = h + o·woᵀ
            if last_only {
                keep_last_rows(&mut h, batch, s, dim);
                h.truncate(q_rows * dim);
            }
            let delta = &mut xn[..q_rows * dim];
            ops::matmul_xwt(&self.store, w, o, q_rows, lp.wo, delta);
            ops::add_residual(&mut h, delta);
            // 8. the SwiGLU feed-forward
            let xn = &mut xn[..q_rows * dim];
            ops::rms_norm(&h, dim, ffn_norm, p.norm_eps, xn);
            let (a, b) = (&mut a[..q_rows * hidden], &mut b[..q_rows * hidden]);
            ops::matmul_xwt(&self.store, w, xn, q_rows, lp.w1, a);
            ops::matmul_xwt(&self.store, w, xn, q_rows, lp.w3, b);
            ops::silu_mul(a, b);
            ops::matmul_xwt(&self.store, w, a, q_rows, lp.w2, xn);
            ops::add_residual(&mut h, xn);
        }

        // The final norm and the output projection, last positions only.
        let xn = &mut buf.xn[..batch * dim];
        ops::rms_norm(&h, dim, &self.final_norm, p.norm_eps, xn);
        let mut logits = vec![0f32; batch * p.vocab_size];
        ops::matmul_xwt(&self.store, w, xn, batch, w.output(), &mut logits);
        logits
    }
}

/// The activations of one forward pass, sized for every position.
struct Buffers {
    xn: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    o: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
}

impl Buffers {
    fn new(rows: usize, dim: usize, q_width: usize, kv_width: usize, hidden: usize) -> Self {
        Self {
            xn: vec![0f32; rows * dim],
            q: vec![0f32; rows * q_width],
            k: vec![0f32; rows * kv_width],
            v: vec![0f32; rows * kv_width],
            o: vec![0f32; rows * q_width],
            a: vec![0f32; rows * hidden],
            b: vec![0f32; rows * hidden],
        }
    }
}

/// Move each nonce's last-position row to the front: `[batch, width]` out of
/// `[batch·seq_len, width]`, in place (row `b` comes from a later row, so none is overwritten
/// before it is read).
fn keep_last_rows(x: &mut [f32], batch: usize, seq_len: usize, width: usize) {
    for b in 0..batch {
        let from = ((b + 1) * seq_len - 1) * width;
        x.copy_within(from..from + width, b * width);
    }
}
