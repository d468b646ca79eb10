//! The forward pass on one or more CUDA devices: a replica of the pool and kernels per
//! device, a batch split between them.

use crate::KERNELS;
use anyhow::{Context, Result, anyhow, ensure};
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, sys::cublasOperation_t};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, CudaView, LaunchConfig, PushKernelArg,
};
use half::f16;
use powhost_core::parameter_table::{Parameter, Placement};
use powhost_core::{ForwardPass, ModelWeights};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The compiled kernels of `kernels.cu`.
struct Kernels {
    rms_norm: CudaFunction,
    rope: CudaFunction,
    attention: CudaFunction,
    add_residual: CudaFunction,
    silu_mul: CudaFunction,
    last_rows: CudaFunction,
}

/// One device's copy of the model.
pub struct Replica {
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    kernels: Kernels,
    weights: Arc<ModelWeights>,
    pool: CudaSlice<f16>,
    /// Tile-placed parameters made contiguous (small models only).
    tiles: HashMap<String, CudaSlice<f16>>,
    /// RoPE `(cos, sin)` as f32 pairs, `[pos][j]`.
    rope: CudaSlice<f32>,
}

fn cuda<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> anyhow::Error + '_ {
    move |e| anyhow!("CUDA: {what}: {e:?}")
}

/// out[rows, n] = x[rows, k] · Wᵀ for row-major x, W [n, k] and out, as cuBLAS's
/// column-major product: outᵀ (n × rows) = (W as stored, k × n)ᵀ · (x as stored, k × rows).
fn xwt_config(rows: usize, n: usize, k: usize) -> GemmConfig<f16> {
    GemmConfig {
        transa: cublasOperation_t::CUBLAS_OP_T,
        transb: cublasOperation_t::CUBLAS_OP_N,
        m: n as i32,
        n: rows as i32,
        k: k as i32,
        alpha: f16::ONE,
        lda: k as i32,
        ldb: k as i32,
        beta: f16::ZERO,
        ldc: n as i32,
    }
}

/// A launch of one thread per element, 256 per block.
fn one_thread_each(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.div_ceil(256).max(1) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl Replica {
    pub fn new(ctx: Arc<CudaContext>, weights: Arc<ModelWeights>) -> Result<Self> {
        let stream = ctx.default_stream();
        let ptx = cudarc::nvrtc::compile_ptx(KERNELS).map_err(cuda("compiling kernels.cu"))?;
        let module = ctx.load_module(ptx).map_err(cuda("loading the kernels"))?;
        let f = |name: &str| module.load_function(name).map_err(cuda("finding a kernel"));
        let kernels = Kernels {
            rms_norm: f("rms_norm")?,
            rope: f("rope")?,
            attention: f("attention")?,
            add_residual: f("add_residual")?,
            silu_mul: f("silu_mul")?,
            last_rows: f("last_rows")?,
        };
        let gather = f("gather_tile")?;
        let blas = CudaBlas::new(stream.clone()).map_err(cuda("starting cuBLAS"))?;
        let pool = stream
            .clone_htod(weights.pool.values())
            .map_err(cuda("uploading the weight pool"))?;
        let rope_values: Vec<f32> = weights.rope.values.iter().map(|v| v.to_f32()).collect();
        let rope = stream
            .clone_htod(&rope_values)
            .map_err(cuda("uploading the RoPE table"))?;
        let mut tiles = HashMap::new();
        let pool_size = weights.table.pool_size;
        for p in &weights.table.parameters {
            if let Placement::Tile { shift } = p.placement {
                let mut out = stream
                    .alloc_zeros::<f16>(p.numel)
                    .map_err(cuda("allocating a tiled parameter"))?;
                let mut launch = stream.launch_builder(&gather);
                let (numel, shift) = (p.numel, shift % p.numel);
                launch
                    .arg(&mut out)
                    .arg(&pool)
                    .arg(&numel)
                    .arg(&shift)
                    .arg(&pool_size);
                // SAFETY: the arguments match gather_tile's signature; out holds numel values.
                unsafe { launch.launch(one_thread_each(p.numel)) }
                    .map_err(cuda("gathering a tiled parameter"))?;
                tiles.insert(p.name.clone(), out);
            }
        }
        stream.synchronize().map_err(cuda("loading the model"))?;
        Ok(Self {
            stream,
            blas,
            kernels,
            weights,
            pool,
            tiles,
            rope,
        })
    }

    /// A parameter as a device view: an offset into the pool, or its gathered tile.
    fn weight(&self, p: &Parameter) -> CudaView<'_, f16> {
        match p.placement {
            Placement::Slice { start } => self.pool.slice(start..start + p.numel),
            Placement::Tile { .. } => self.tiles[&p.name].slice(..),
        }
    }

    /// out[rows, n] = ⟂(x[rows, k] · Wᵀ): column-major, that is outᵀ (n × rows) =
    /// Wᵀ-as-stored (k × n)ᵀ · xᵀ-as-stored (k × rows).
    fn matmul(
        &self,
        x: &CudaSlice<f16>,
        rows: usize,
        w: &Parameter,
        out: &mut CudaSlice<f16>,
    ) -> Result<()> {
        let (n, k) = (w.shape[0], w.shape[1]);
        let cfg = xwt_config(rows, n, k);
        let weight = self.weight(w);
        // SAFETY: the shapes above match the buffers: W is n × k, x rows × k, out rows × n.
        unsafe { self.blas.gemm(cfg, &weight, x, out) }
            .map_err(|e| anyhow!("CUDA: cuBLAS GEMM for {}: {e:?}", w.name))
    }

    fn rms_norm(
        &self,
        x: &CudaSlice<f16>,
        rows: usize,
        w: &Parameter,
        out: &mut CudaSlice<f16>,
    ) -> Result<()> {
        let p = &self.weights.params;
        let weight = self.weight(w);
        let (rows_u, dim, eps) = (rows as u32, p.dim as u32, p.norm_eps as f32);
        let mut launch = self.stream.launch_builder(&self.kernels.rms_norm);
        launch
            .arg(x)
            .arg(out)
            .arg(&weight)
            .arg(&rows_u)
            .arg(&dim)
            .arg(&eps);
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the arguments match rms_norm's signature and the buffers' sizes.
        unsafe { launch.launch(cfg) }.map_err(cuda("rms_norm"))?;
        Ok(())
    }

    fn elementwise(
        &self,
        kernel: &CudaFunction,
        a: &mut CudaSlice<f16>,
        b: &CudaSlice<f16>,
        n: usize,
        what: &str,
    ) -> Result<()> {
        let mut launch = self.stream.launch_builder(kernel);
        launch.arg(a).arg(b).arg(&n);
        // SAFETY: (a, b, n) is the signature of add_residual and silu_mul; both hold n values.
        unsafe { launch.launch(one_thread_each(n)) }.map_err(cuda(what))?;
        Ok(())
    }

    /// out[b, :] = x[(b + 1)·seq_len − 1, :]: each nonce's last position.
    fn last_rows(
        &self,
        x: &CudaSlice<f16>,
        out: &mut CudaSlice<f16>,
        batch: usize,
        width: usize,
    ) -> Result<()> {
        let (batch_u, width_u, seq) = (
            batch as u32,
            width as u32,
            self.weights.params.seq_len as u32,
        );
        let mut launch = self.stream.launch_builder(&self.kernels.last_rows);
        launch.arg(out).arg(x).arg(&batch_u).arg(&width_u).arg(&seq);
        // SAFETY: matches last_rows' signature; out holds at least batch × width values.
        unsafe { launch.launch(one_thread_each(batch * width)) }.map_err(cuda("last_rows"))?;
        Ok(())
    }

    /// Last-position logits for `batch` inputs.
    fn forward(&self, inputs: &[f16], batch: usize) -> Result<Vec<f32>> {
        let w = &*self.weights;
        let p = &w.params;
        let (s, dim, hd) = (p.seq_len, p.dim, p.head_dim());
        let (q_width, kv_width, hidden) = (p.n_heads * hd, p.n_kv_heads * hd, p.ffn_hidden());
        let rows = batch * s;
        ensure!(
            inputs.len() == rows * dim,
            "inputs are not batch × seq_len × dim"
        );
        let st = &self.stream;
        let alloc = |n: usize| {
            st.alloc_zeros::<f16>(n.max(1))
                .map_err(cuda("allocating activations"))
        };
        let mut h = st.clone_htod(inputs).map_err(cuda("uploading inputs"))?;
        let mut xn = alloc(rows * dim)?;
        let mut q = alloc(rows * q_width)?;
        let mut k = alloc(rows * kv_width)?;
        let mut v = alloc(rows * kv_width)?;
        let mut o = alloc(rows * q_width)?;
        let mut a = alloc(rows * hidden)?;
        let mut b = alloc(rows * hidden)?;
        let mut probs = st
            .alloc_zeros::<f32>(rows * p.n_heads * s)
            .map_err(cuda("allocating attention scratch"))?;
        let mut logits = alloc(batch * p.vocab_size)?;
        let kern = &self.kernels;

        // The last layer carries each nonce's last position only, beyond k and v.
        let mut h_last = alloc(batch * dim)?;
        for l in 0..p.n_layers {
            let lp = w.layer(l);
            let last = l + 1 == p.n_layers;
            let q_rows = if last { batch } else { rows };
            self.rms_norm(&h, rows, lp.attention_norm, &mut xn)?;
            self.matmul(&xn, rows, lp.wk, &mut k)?;
            self.matmul(&xn, rows, lp.wv, &mut v)?;
            if last {
                self.last_rows(&xn, &mut o, batch, dim)?;
                self.matmul(&o, q_rows, lp.wq, &mut q)?;
            } else {
                self.matmul(&xn, rows, lp.wq, &mut q)?;
            }
            for (x, width, n, last_only) in [
                (&mut q, q_width, q_rows, last),
                (&mut k, kv_width, rows, false),
            ] {
                let (n_u, width_u, half, seq, last_u) = (
                    n as u32,
                    width as u32,
                    (hd / 2) as u32,
                    s as u32,
                    last_only as u32,
                );
                let mut launch = st.launch_builder(&kern.rope);
                launch
                    .arg(x)
                    .arg(&self.rope)
                    .arg(&n_u)
                    .arg(&width_u)
                    .arg(&half)
                    .arg(&seq)
                    .arg(&last_u);
                // SAFETY: matches rope's signature; x holds n × width values.
                unsafe { launch.launch(one_thread_each(n * width / 2)) }.map_err(cuda("rope"))?;
            }
            {
                let (rows_u, seq, nh, nkv, hd_u, scale, last_u) = (
                    q_rows as u32,
                    s as u32,
                    p.n_heads as u32,
                    p.n_kv_heads as u32,
                    hd as u32,
                    (hd as f32).sqrt(),
                    last as u32,
                );
                let mut launch = st.launch_builder(&kern.attention);
                launch
                    .arg(&q)
                    .arg(&k)
                    .arg(&v)
                    .arg(&mut o)
                    .arg(&mut probs)
                    .arg(&rows_u)
                    .arg(&seq)
                    .arg(&nh)
                    .arg(&nkv)
                    .arg(&hd_u)
                    .arg(&scale)
                    .arg(&last_u);
                // SAFETY: matches attention's signature and buffer sizes.
                unsafe { launch.launch(one_thread_each(q_rows * p.n_heads)) }
                    .map_err(cuda("attention"))?;
            }
            let h_cur = if last {
                self.last_rows(&h, &mut h_last, batch, dim)?;
                &mut h_last
            } else {
                &mut h
            };
            self.matmul(&o, q_rows, lp.wo, &mut xn)?;
            self.elementwise(&kern.add_residual, h_cur, &xn, q_rows * dim, "add_residual")?;
            self.rms_norm(h_cur, q_rows, lp.ffn_norm, &mut xn)?;
            self.matmul(&xn, q_rows, lp.w1, &mut a)?;
            self.matmul(&xn, q_rows, lp.w3, &mut b)?;
            self.elementwise(&kern.silu_mul, &mut a, &b, q_rows * hidden, "silu_mul")?;
            self.matmul(&a, q_rows, lp.w2, &mut xn)?;
            self.elementwise(&kern.add_residual, h_cur, &xn, q_rows * dim, "add_residual")?;
        }
        self.rms_norm(&h_last, batch, w.final_norm(), &mut xn)?;
        self.matmul(&xn, batch, w.output(), &mut logits)?;
        let out = st
            .clone_dtoh(&logits)
            .map_err(cuda("reading the logits back"))?;
        Ok(out[..batch * p.vocab_size]
            .iter()
            .map(|v| v.to_f32())
            .collect())
    }
}

/// The model on every device; a batch is split evenly between them.
pub struct CudaForward {
    weights: Arc<ModelWeights>,
    replicas: Vec<Mutex<Replica>>,
}

impl CudaForward {
    pub fn new(weights: Arc<ModelWeights>, replicas: Vec<Replica>) -> Self {
        Self {
            weights,
            replicas: replicas.into_iter().map(Mutex::new).collect(),
        }
    }
}

impl ForwardPass for CudaForward {
    fn overlaps_host_work(&self) -> bool {
        true
    }

    fn last_position_logits(&self, inputs: &[f16], batch: usize) -> Result<Vec<f32>> {
        let per_nonce = self.weights.params.seq_len * self.weights.params.dim;
        let per_device = batch.div_ceil(self.replicas.len()).max(1);
        let parts: Vec<Result<Vec<f32>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = inputs
                .chunks(per_device * per_nonce)
                .zip(&self.replicas)
                .map(|(part, replica)| {
                    scope.spawn(move || {
                        let replica = replica
                            .lock()
                            .map_err(|_| anyhow!("a CUDA worker panicked"))?;
                        replica.forward(part, part.len() / per_nonce)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| anyhow!("a CUDA worker panicked"))
                        .and_then(|r| r)
                })
                .collect()
        });
        let mut out = Vec::with_capacity(batch * self.weights.params.vocab_size);
        for part in parts {
            out.extend(part.context("the CUDA forward pass")?);
        }
        Ok(out)
    }
}

/// cuBLAS f16 GEMM speed (f32 accumulation, as the forward pass runs it) for `m × k` times
/// `(n × k)ᵀ` on one device: best of five after a warm-up, in GFLOP/s.
pub fn gemm_peak_gflops(ctx: Arc<CudaContext>, m: usize, k: usize, n: usize) -> Result<f64> {
    let stream = ctx.default_stream();
    let blas = CudaBlas::new(stream.clone()).map_err(cuda("starting cuBLAS"))?;
    let x = stream
        .alloc_zeros::<f16>(m * k)
        .map_err(cuda("allocating"))?;
    let w = stream
        .alloc_zeros::<f16>(n * k)
        .map_err(cuda("allocating"))?;
    let mut out = stream
        .alloc_zeros::<f16>(m * n)
        .map_err(cuda("allocating"))?;
    let cfg = xwt_config(m, n, k);
    let mut best = f64::MAX;
    for i in 0..6 {
        let start = std::time::Instant::now();
        // SAFETY: the shapes match the buffers: w is n × k, x m × k, out m × n.
        unsafe { blas.gemm(cfg, &w, &x, &mut out) }.map_err(|e| anyhow!("CUDA: GEMM: {e:?}"))?;
        stream.synchronize().map_err(cuda("GEMM"))?;
        if i > 0 {
            best = best.min(start.elapsed().as_secs_f64());
        }
    }
    Ok(2.0 * (m * k * n) as f64 / best / 1e9)
}
