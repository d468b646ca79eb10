//! The steps of the forward pass (docs/spec/COMPUTATION.md §5) on CUDA ([`GpuSteps`]; the
//! sequence is core's `gpu_forward`): a replica of the pool and kernels per device, a batch
//! split between them.

use anyhow::{Context, Result, anyhow, ensure};
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, sys::cublasOperation_t};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, CudaView, LaunchConfig, PushKernelArg,
};
use half::f16;
use powhost_core::gpu_forward::{self, AttentionRows, GpuSteps};
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
        let arch = ctx.compute_capability().ok().and_then(|(major, minor)| {
            let name = format!("sm_{major}{minor}");
            crate::ARCHITECTURES.iter().copied().find(|a| *a == name)
        });
        let ptx = crate::compile_kernels(arch)?;
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

    /// Last-position logits for `batch` inputs: core's GPU sequence on this replica.
    pub fn forward(&mut self, inputs: &[f16], batch: usize) -> Result<Vec<f32>> {
        let weights = self.weights.clone();
        gpu_forward::last_position_logits(self, &weights, inputs, batch)
    }

    fn elementwise(
        &self,
        kernel: &CudaFunction,
        a: &mut CudaSlice<f16>,
        b: &CudaSlice<f16>,
        n: usize,
        what: &str,
    ) -> Result<()> {
        let n = n as u64;
        let mut launch = self.stream.launch_builder(kernel);
        launch.arg(a).arg(b).arg(&n);
        // SAFETY: (a, b, n) is the signature of add_residual and silu_mul (n an unsigned
        // 64-bit count); both hold at least n values (core's sequence sizes them).
        unsafe { launch.launch(one_thread_each(n as usize)) }.map_err(cuda(what))?;
        Ok(())
    }
}

/// [`GpuSteps`] on one CUDA device: cuBLAS GEMMs and the kernels of `kernels.cu`, all on the
/// replica's stream.
impl GpuSteps for Replica {
    type Buffer = DeviceBuffer;

    fn activations(&mut self, what: &'static str, len: usize) -> Result<DeviceBuffer> {
        self.stream
            .alloc_zeros::<f16>(len.max(1))
            .map(DeviceBuffer::F16)
            .map_err(|e| anyhow!("CUDA: allocating {what} ({len} values): {e:?}"))
    }

    fn scratch_f32(&mut self, what: &'static str, len: usize) -> Result<DeviceBuffer> {
        self.stream
            .alloc_zeros::<f32>(len.max(1))
            .map(DeviceBuffer::F32)
            .map_err(|e| anyhow!("CUDA: allocating {what} ({len} values): {e:?}"))
    }

    fn upload(&mut self, what: &'static str, values: &[f16]) -> Result<DeviceBuffer> {
        self.stream
            .clone_htod(values)
            .map(DeviceBuffer::F16)
            .map_err(|e| anyhow!("CUDA: uploading {what}: {e:?}"))
    }

    fn read(&mut self, buffer: &DeviceBuffer, len: usize) -> Result<Vec<f32>> {
        let values = self
            .stream
            .clone_dtoh(buffer.f16()?)
            .map_err(cuda("reading a buffer back"))?;
        ensure!(
            len <= values.len(),
            "reading {len} values of a buffer of {}",
            values.len()
        );
        Ok(values[..len].iter().map(|v| v.to_f32()).collect())
    }

    /// out[rows, n] = ⟂(x[rows, k] · Wᵀ): column-major, that is outᵀ (n × rows) =
    /// Wᵀ-as-stored (k × n)ᵀ · xᵀ-as-stored (k × rows).
    fn matmul(
        &mut self,
        x: &DeviceBuffer,
        rows: usize,
        w: &Parameter,
        out: &mut DeviceBuffer,
    ) -> Result<()> {
        let (n, k) = (w.shape[0], w.shape[1]);
        let (x, out) = (x.f16()?, out.f16_mut()?);
        ensure!(
            x.len() >= rows * k && out.len() >= rows * n,
            "GEMM for {}: buffers too small for {rows} rows",
            w.name
        );
        let cfg = xwt_config(rows, n, k);
        let weight = self.weight(w);
        // SAFETY: checked above: W is n × k, x holds rows × k values and out rows × n.
        unsafe { self.blas.gemm(cfg, &weight, x, out) }
            .map_err(|e| anyhow!("CUDA: cuBLAS GEMM for {}: {e:?}", w.name))
    }

    fn rms_norm(
        &mut self,
        x: &DeviceBuffer,
        rows: usize,
        w: &Parameter,
        eps: f32,
        out: &mut DeviceBuffer,
    ) -> Result<()> {
        let weight = self.weight(w);
        let (rows_u, dim) = (rows as u32, w.numel as u32);
        let (x, out) = (x.f16()?, out.f16_mut()?);
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

    fn rope(
        &mut self,
        x: &mut DeviceBuffer,
        rows: usize,
        width: usize,
        last_only: bool,
    ) -> Result<()> {
        let p = &self.weights.params;
        let (rows_u, width_u, half, seq, last_u) = (
            rows as u32,
            width as u32,
            (p.head_dim() / 2) as u32,
            p.seq_len as u32,
            last_only as u32,
        );
        let x = x.f16_mut()?;
        let mut launch = self.stream.launch_builder(&self.kernels.rope);
        launch
            .arg(x)
            .arg(&self.rope)
            .arg(&rows_u)
            .arg(&width_u)
            .arg(&half)
            .arg(&seq)
            .arg(&last_u);
        // SAFETY: matches rope's signature; x holds rows × width values.
        unsafe { launch.launch(one_thread_each(rows * width / 2)) }.map_err(cuda("rope"))?;
        Ok(())
    }

    fn attention(
        &mut self,
        q: &DeviceBuffer,
        k: &DeviceBuffer,
        v: &DeviceBuffer,
        out: &mut DeviceBuffer,
        probs: &mut DeviceBuffer,
        rows: AttentionRows,
    ) -> Result<()> {
        let p = &self.weights.params;
        let hd = p.head_dim();
        let (rows_u, seq, nh, nkv, hd_u, score_divisor, last_u) = (
            rows.rows as u32,
            p.seq_len as u32,
            p.n_heads as u32,
            p.n_kv_heads as u32,
            hd as u32,
            (hd as f32).sqrt(),
            rows.last_only as u32,
        );
        let (q, k, v, out) = (q.f16()?, k.f16()?, v.f16()?, out.f16_mut()?);
        let probs = probs.f32_mut()?;
        let mut launch = self.stream.launch_builder(&self.kernels.attention);
        launch
            .arg(q)
            .arg(k)
            .arg(v)
            .arg(out)
            .arg(probs)
            .arg(&rows_u)
            .arg(&seq)
            .arg(&nh)
            .arg(&nkv)
            .arg(&hd_u)
            .arg(&score_divisor)
            .arg(&last_u);
        // SAFETY: matches attention's signature and the
        // buffers' sizes, which core's sequence gives.
        unsafe { launch.launch(one_thread_each(rows.rows * p.n_heads)) }
            .map_err(cuda("attention"))?;
        Ok(())
    }

    /// out[b, :] = x[(b + 1)·seq_len − 1, :]: each nonce's last position.
    fn last_rows(
        &mut self,
        x: &DeviceBuffer,
        out: &mut DeviceBuffer,
        batch: usize,
        width: usize,
    ) -> Result<()> {
        let (batch_u, width_u, seq) = (
            batch as u32,
            width as u32,
            self.weights.params.seq_len as u32,
        );
        let (x, out) = (x.f16()?, out.f16_mut()?);
        let mut launch = self.stream.launch_builder(&self.kernels.last_rows);
        launch.arg(out).arg(x).arg(&batch_u).arg(&width_u).arg(&seq);
        // SAFETY: matches last_rows' signature; out holds at least batch × width values.
        unsafe { launch.launch(one_thread_each(batch * width)) }.map_err(cuda("last_rows"))?;
        Ok(())
    }

    fn add_residual(&mut self, h: &mut DeviceBuffer, d: &DeviceBuffer, len: usize) -> Result<()> {
        let (h, d) = (h.f16_mut()?, d.f16()?);
        self.elementwise(&self.kernels.add_residual, h, d, len, "add_residual")
    }

    fn silu_mul(&mut self, a: &mut DeviceBuffer, b: &DeviceBuffer, len: usize) -> Result<()> {
        let (a, b) = (a.f16_mut()?, b.f16()?);
        self.elementwise(&self.kernels.silu_mul, a, b, len, "silu_mul")
    }
}

/// A device buffer of the forward pass: f16 activations, or f32 scratch.
pub enum DeviceBuffer {
    F16(CudaSlice<f16>),
    F32(CudaSlice<f32>),
}

impl DeviceBuffer {
    fn f16(&self) -> Result<&CudaSlice<f16>> {
        match self {
            Self::F16(b) => Ok(b),
            Self::F32(_) => Err(anyhow!("an f32 buffer was passed where f16 activations go")),
        }
    }

    fn f16_mut(&mut self) -> Result<&mut CudaSlice<f16>> {
        match self {
            Self::F16(b) => Ok(b),
            Self::F32(_) => Err(anyhow!("an f32 buffer was passed where f16 activations go")),
        }
    }

    fn f32_mut(&mut self) -> Result<&mut CudaSlice<f32>> {
        match self {
            Self::F32(b) => Ok(b),
            Self::F16(_) => Err(anyhow!(
                "f16 activations were passed where f32 scratch goes"
            )),
        }
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
                        let mut replica = replica
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
