//! The GPU forward pass of docs/spec/COMPUTATION.md §5, written once: the sequence of steps,
//! the buffers they use and their shapes. Each GPU backend (wgpu, CUDA) implements [`GpuSteps`]
//! with its own kernels; [`last_position_logits`] runs the same sequence on every one of them,
//! so the tests that run it on one backend (wgpu on lavapipe in CI) also check the order,
//! shapes and buffer use the others run.
//!
//! (The CPU backend keeps its own sequence: it runs a group of nonces per core with in-place
//! steps.)

use crate::model::ModelWeights;
use crate::parameter_table::Parameter;
use anyhow::{Result, ensure};
use half::f16;

/// How attention reads its query rows: every position of every nonce (`rows = batch ·
/// seq_len`), or only each nonce's last position (`rows = batch`, the last layer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionRows {
    pub rows: usize,
    pub last_only: bool,
}

/// The steps a GPU backend provides. Buffers hold f16 activations unless said otherwise
/// (a backend may store them wider, holding f16-representable values); every length is in
/// elements. `&mut` marks the buffers a step writes.
pub trait GpuSteps {
    type Buffer;

    /// A zeroed buffer of `len` f16 activations.
    fn activations(&mut self, what: &'static str, len: usize) -> Result<Self::Buffer>;
    /// A zeroed buffer of `len` f32 values (attention's probabilities).
    fn scratch_f32(&mut self, what: &'static str, len: usize) -> Result<Self::Buffer>;
    /// A buffer holding these f16 values.
    fn upload(&mut self, what: &'static str, values: &[f16]) -> Result<Self::Buffer>;
    /// The first `len` values of an activation buffer, widened to f32. Runs every step
    /// recorded before it.
    fn read(&mut self, buffer: &Self::Buffer, len: usize) -> Result<Vec<f32>>;

    /// `out[rows, n] = ⟂(x[rows, k] · Wᵀ)` for the weight `w` of shape `[n, k]`: f32 products
    /// and accumulation.
    fn matmul(
        &mut self,
        x: &Self::Buffer,
        rows: usize,
        w: &Parameter,
        out: &mut Self::Buffer,
    ) -> Result<()>;
    /// RMSNorm of `rows` rows of `w.numel` values: `⟂(⟂(x · 1/sqrt(mean(x²) + eps)) · w)`.
    fn rms_norm(
        &mut self,
        x: &Self::Buffer,
        rows: usize,
        w: &Parameter,
        eps: f32,
        out: &mut Self::Buffer,
    ) -> Result<()>;
    /// RoPE in place on `rows` rows of `width` values (heads of `2 · half_dim`): row `r` is
    /// position `r mod seq_len`, or `seq_len − 1` for every row when `last_only`.
    fn rope(
        &mut self,
        x: &mut Self::Buffer,
        rows: usize,
        width: usize,
        last_only: bool,
    ) -> Result<()>;
    /// Causal grouped-query attention: `q` is `[rows, n_heads·hd]`, `k` and `v` are
    /// `[batch·seq_len, n_kv_heads·hd]`, `out` is shaped like `q`; `probs` is f32 scratch of
    /// `rows · n_heads · seq_len`.
    fn attention(
        &mut self,
        q: &Self::Buffer,
        k: &Self::Buffer,
        v: &Self::Buffer,
        out: &mut Self::Buffer,
        probs: &mut Self::Buffer,
        rows: AttentionRows,
    ) -> Result<()>;
    /// `out[b, :] = x[(b + 1)·seq_len − 1, :]` for `batch` nonces of rows of `width`.
    fn last_rows(
        &mut self,
        x: &Self::Buffer,
        out: &mut Self::Buffer,
        batch: usize,
        width: usize,
    ) -> Result<()>;
    /// `h = ⟂(h + d)` over the first `len` values.
    fn add_residual(&mut self, h: &mut Self::Buffer, d: &Self::Buffer, len: usize) -> Result<()>;
    /// `a = ⟂(⟂(silu(a)) · b)` over the first `len` values.
    fn silu_mul(&mut self, a: &mut Self::Buffer, b: &Self::Buffer, len: usize) -> Result<()>;
}

/// docs/spec/COMPUTATION.md §5 for `batch` nonce inputs (`[batch · seq_len, dim]` f16): the
/// last position's logits, `vocab_size` f32 each.
pub fn last_position_logits<S: GpuSteps>(
    steps: &mut S,
    weights: &ModelWeights,
    inputs: &[f16],
    batch: usize,
) -> Result<Vec<f32>> {
    let p = &weights.params;
    let (s, dim, hd) = (p.seq_len, p.dim, p.head_dim());
    let (q_width, kv_width, hidden) = (p.n_heads * hd, p.n_kv_heads * hd, p.ffn_hidden());
    let rows = batch * s;
    let eps = p.norm_eps as f32;
    ensure!(
        inputs.len() == rows * dim,
        "inputs are not batch × seq_len × dim"
    );

    let mut h = steps.upload("h", inputs)?;
    let mut xn = steps.activations("xn", rows * dim)?;
    let mut q = steps.activations("q", rows * q_width)?;
    let mut k = steps.activations("k", rows * kv_width)?;
    let mut v = steps.activations("v", rows * kv_width)?;
    let mut o = steps.activations("o", rows * q_width)?;
    let mut a = steps.activations("ffn a", rows * hidden)?;
    let mut b = steps.activations("ffn b", rows * hidden)?;
    // Scores, exponentials and probabilities: the exponentials are not rounded, so f32.
    let mut probs = steps.scratch_f32("attention probabilities", rows * p.n_heads * s)?;
    let mut logits = steps.activations("logits", batch * p.vocab_size)?;
    // The last layer carries each nonce's last position only, beyond k and v.
    let mut h_last = steps.activations("h, last positions", batch * dim)?;

    for l in 0..p.n_layers {
        let lp = weights.layer(l);
        let last = l + 1 == p.n_layers;
        let q_rows = if last { batch } else { rows };
        // 1. xn = RMSNorm(h); 2. k and v for every position, q for the rows that go on.
        steps.rms_norm(&h, rows, lp.attention_norm, eps, &mut xn)?;
        steps.matmul(&xn, rows, lp.wk, &mut k)?;
        steps.matmul(&xn, rows, lp.wv, &mut v)?;
        if last {
            steps.last_rows(&xn, &mut o, batch, dim)?;
            steps.matmul(&o, q_rows, lp.wq, &mut q)?;
        } else {
            steps.matmul(&xn, rows, lp.wq, &mut q)?;
        }
        // 3. RoPE on q and k.
        steps.rope(&mut q, q_rows, q_width, last)?;
        steps.rope(&mut k, rows, kv_width, false)?;
        // 4–6. attention.
        let attention_rows = AttentionRows {
            rows: q_rows,
            last_only: last,
        };
        steps.attention(&q, &k, &v, &mut o, &mut probs, attention_rows)?;
        // 7. h = h + o·woᵀ.
        let h_cur = if last {
            steps.last_rows(&h, &mut h_last, batch, dim)?;
            &mut h_last
        } else {
            &mut h
        };
        steps.matmul(&o, q_rows, lp.wo, &mut xn)?;
        steps.add_residual(h_cur, &xn, q_rows * dim)?;
        // 8. the SwiGLU feed-forward.
        steps.rms_norm(h_cur, q_rows, lp.ffn_norm, eps, &mut xn)?;
        steps.matmul(&xn, q_rows, lp.w1, &mut a)?;
        steps.matmul(&xn, q_rows, lp.w3, &mut b)?;
        steps.silu_mul(&mut a, &b, q_rows * hidden)?;
        steps.matmul(&a, q_rows, lp.w2, &mut xn)?;
        steps.add_residual(h_cur, &xn, q_rows * dim)?;
    }
    // The final norm and the output projection.
    steps.rms_norm(&h_last, batch, weights.final_norm(), eps, &mut xn)?;
    steps.matmul(&xn, batch, weights.output(), &mut logits)?;
    steps.read(&logits, batch * p.vocab_size)
}

#[cfg(test)]
mod tests {
    //! The sequence run on a recorder that checks every step's reads and writes against the
    //! buffers' lengths and the model's shapes, as a device would fault on them.
    use super::*;
    use crate::params::ModelParams;

    #[derive(Debug)]
    struct Buf {
        name: &'static str,
        len: usize,
        f32: bool,
    }

    struct Recorder<'a> {
        weights: &'a ModelWeights,
        log: Vec<String>,
    }

    fn fits(b: &Buf, len: usize, what: &str) -> Result<()> {
        ensure!(!b.f32, "{what}: {} is f32 scratch, not activations", b.name);
        ensure!(
            len <= b.len,
            "{what}: needs {len} values of {}, which holds {}",
            b.name,
            b.len
        );
        Ok(())
    }

    impl GpuSteps for Recorder<'_> {
        type Buffer = Buf;
        fn activations(&mut self, name: &'static str, len: usize) -> Result<Buf> {
            Ok(Buf {
                name,
                len,
                f32: false,
            })
        }
        fn scratch_f32(&mut self, name: &'static str, len: usize) -> Result<Buf> {
            Ok(Buf {
                name,
                len,
                f32: true,
            })
        }
        fn upload(&mut self, name: &'static str, values: &[f16]) -> Result<Buf> {
            Ok(Buf {
                name,
                len: values.len(),
                f32: false,
            })
        }
        fn read(&mut self, b: &Buf, len: usize) -> Result<Vec<f32>> {
            fits(b, len, "read")?;
            self.log.push(format!("read {} {len}", b.name));
            Ok(vec![0.0; len])
        }
        fn matmul(&mut self, x: &Buf, rows: usize, w: &Parameter, out: &mut Buf) -> Result<()> {
            let (n, k) = (w.shape[0], w.shape[1]);
            fits(x, rows * k, "matmul input")?;
            fits(out, rows * n, "matmul output")?;
            self.log.push(format!(
                "matmul {} {rows}x{k} {} -> {}",
                x.name, w.name, out.name
            ));
            Ok(())
        }
        fn rms_norm(
            &mut self,
            x: &Buf,
            rows: usize,
            w: &Parameter,
            eps: f32,
            out: &mut Buf,
        ) -> Result<()> {
            ensure!(
                w.numel == self.weights.params.dim && eps == self.weights.params.norm_eps as f32
            );
            fits(x, rows * w.numel, "rms_norm input")?;
            fits(out, rows * w.numel, "rms_norm output")?;
            self.log.push(format!(
                "rms_norm {} {rows} {} -> {}",
                x.name, w.name, out.name
            ));
            Ok(())
        }
        fn rope(&mut self, x: &mut Buf, rows: usize, width: usize, last_only: bool) -> Result<()> {
            ensure!(width % self.weights.params.head_dim() == 0);
            fits(x, rows * width, "rope")?;
            self.log.push(format!(
                "rope {} {rows}x{width} last_only={last_only}",
                x.name
            ));
            Ok(())
        }
        fn attention(
            &mut self,
            q: &Buf,
            k: &Buf,
            v: &Buf,
            out: &mut Buf,
            probs: &mut Buf,
            r: AttentionRows,
        ) -> Result<()> {
            let p = &self.weights.params;
            let hd = p.head_dim();
            let kv_rows = if r.last_only {
                r.rows * p.seq_len
            } else {
                r.rows
            };
            fits(q, r.rows * p.n_heads * hd, "attention q")?;
            fits(k, kv_rows * p.n_kv_heads * hd, "attention k")?;
            fits(v, kv_rows * p.n_kv_heads * hd, "attention v")?;
            fits(out, r.rows * p.n_heads * hd, "attention output")?;
            ensure!(
                probs.f32 && probs.len >= r.rows * p.n_heads * p.seq_len,
                "attention probs"
            );
            self.log.push(format!(
                "attention {} {} {} -> {} {r:?}",
                q.name, k.name, v.name, out.name
            ));
            Ok(())
        }
        fn last_rows(&mut self, x: &Buf, out: &mut Buf, batch: usize, width: usize) -> Result<()> {
            fits(
                x,
                batch * self.weights.params.seq_len * width,
                "last_rows input",
            )?;
            fits(out, batch * width, "last_rows output")?;
            self.log
                .push(format!("last_rows {} -> {}", x.name, out.name));
            Ok(())
        }
        fn add_residual(&mut self, h: &mut Buf, d: &Buf, len: usize) -> Result<()> {
            fits(h, len, "add_residual")?;
            fits(d, len, "add_residual")?;
            self.log
                .push(format!("add_residual {} += {}", h.name, d.name));
            Ok(())
        }
        fn silu_mul(&mut self, a: &mut Buf, b: &Buf, len: usize) -> Result<()> {
            fits(a, len, "silu_mul")?;
            fits(b, len, "silu_mul")?;
            self.log.push(format!("silu_mul {} *= {}", a.name, b.name));
            Ok(())
        }
    }

    #[test]
    fn every_step_stays_inside_its_buffers() {
        for preset in ["tiny", "small", "devtest"] {
            let params = ModelParams::preset(preset).unwrap();
            let weights = ModelWeights::build(&params, "00", 0, &|_, _| {}).unwrap();
            for batch in [1, 3] {
                let mut rec = Recorder {
                    weights: &weights,
                    log: Vec::new(),
                };
                let inputs = vec![f16::ZERO; batch * params.seq_len * params.dim];
                let logits = last_position_logits(&mut rec, &weights, &inputs, batch).unwrap();
                assert_eq!(logits.len(), batch * params.vocab_size);
                // 15 steps a layer (the last one 17, with its two gathers), then norm, output, read.
                assert_eq!(rec.log.len(), 15 * params.n_layers + 2 + 3, "{preset}");
                assert_eq!(
                    rec.log.last().unwrap(),
                    &format!("read logits {}", batch * params.vocab_size)
                );
            }
        }
    }

    #[test]
    fn the_last_layer_carries_last_positions_only() {
        let params = ModelParams::preset("tiny").unwrap();
        let weights = ModelWeights::build(&params, "00", 0, &|_, _| {}).unwrap();
        let mut rec = Recorder {
            weights: &weights,
            log: Vec::new(),
        };
        let inputs = vec![f16::ZERO; 2 * params.seq_len * params.dim];
        last_position_logits(&mut rec, &weights, &inputs, 2).unwrap();
        let last = params.n_layers - 1;
        let wq = format!("layers.{last}.attention.wq.weight");
        assert!(
            rec.log
                .iter()
                .any(|l| l == &format!("matmul o 2x{} {wq} -> q", params.dim)),
            "{:#?}",
            rec.log
        );
        assert!(
            rec.log
                .iter()
                .any(|l| l.contains("AttentionRows { rows: 2, last_only: true }"))
        );
        assert!(
            rec.log
                .iter()
                .any(|l| l == "last_rows h -> h, last positions")
        );
    }

    #[test]
    fn wrong_input_length_is_an_error() {
        let params = ModelParams::preset("tiny").unwrap();
        let weights = ModelWeights::build(&params, "00", 0, &|_, _| {}).unwrap();
        let mut rec = Recorder {
            weights: &weights,
            log: Vec::new(),
        };
        assert!(last_position_logits(&mut rec, &weights, &[f16::ZERO; 3], 1).is_err());
    }
}
