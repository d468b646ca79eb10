//! The forward pass of spec §5 on wgpu: one command buffer per batch, every step a kernel
//! of `kernels.wgsl`, the logits of the last positions read back.

use crate::gpu::Gpu;
use anyhow::{Result, ensure};
use half::f16;
use powhost_core::parameter_table::{Parameter, Placement};
use powhost_core::{ForwardPass, ModelWeights};
use std::sync::Arc;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulArgs {
    rows: u32,
    n: u32,
    k: u32,
    n_total: u32,
    col0: u32,
    w_start: u32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct NormArgs {
    rows: u32,
    dim: u32,
    eps: f32,
    w_start: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RopeArgs {
    rows: u32,
    width: u32,
    half_dim: u32,
    seq_len: u32,
    last_only: u32,
    _pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AttnArgs {
    rows: u32,
    seq_len: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    scale: f32,
    last_only: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct EltArgs {
    pub len: u32,
    pub width: u32,
    pub seq_len: u32,
    pub _pad: u32,
}

pub struct WgpuForward {
    gpu: Arc<Gpu>,
    weights: Arc<ModelWeights>,
    /// The f16 pool, two values per u32.
    pool: wgpu::Buffer,
    /// Tile-placed parameters made contiguous (they wrap around the pool, so no window of
    /// it holds them), two values per u32, and where each starts, in elements.
    tiles: Option<wgpu::Buffer>,
    tile_starts: std::collections::HashMap<String, usize>,
    /// RoPE `(cos, sin)` pairs as f32, `[pos][j]`.
    rope: wgpu::Buffer,
}

impl WgpuForward {
    pub fn new(gpu: Arc<Gpu>, weights: Arc<ModelWeights>) -> Result<Self> {
        let p = &weights.params;
        ensure!(
            weights.table.pool_size < u32::MAX as usize && p.vocab_size * p.dim < u32::MAX as usize,
            "the wgpu backend indexes the pool with 32-bit integers; this model is too large for it"
        );
        let mut pool_bytes: Vec<u8> = Vec::with_capacity(weights.pool.len() * 2 + 2);
        for v in weights.pool.values() {
            pool_bytes.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        while !pool_bytes.len().is_multiple_of(4) {
            pool_bytes.push(0);
        }
        let mut tile_bytes: Vec<u8> = Vec::new();
        let mut tile_starts = std::collections::HashMap::new();
        for param in &weights.table.parameters {
            if let Placement::Tile { .. } = param.placement {
                tile_starts.insert(param.name.clone(), tile_bytes.len() / 2);
                for i in 0..param.numel {
                    let v = weights.pool.element(param, i);
                    tile_bytes.extend_from_slice(&v.to_bits().to_le_bytes());
                }
                while !tile_bytes.len().is_multiple_of(4) {
                    tile_bytes.push(0);
                }
            }
        }
        let rope_values: Vec<f32> = weights.rope.values.iter().map(|v| v.to_f32()).collect();
        let (pool, tiles, rope) = gpu.checked("uploading the weight pool", || {
            Ok((
                gpu.pool_buffer(&pool_bytes)?,
                (!tile_bytes.is_empty())
                    .then(|| gpu.pool_buffer(&tile_bytes))
                    .transpose()?,
                gpu.storage_with("rope table", bytemuck::cast_slice(&rope_values))?,
            ))
        })?;
        Ok(Self {
            gpu,
            weights,
            pool,
            tiles,
            tile_starts,
            rope,
        })
    }

    /// The binding through which elements `first .. first + count` of `p` are read, and
    /// the first one's index in it: a window of the pool (or of the gathered tiles), so that
    /// no binding need hold the whole pool.
    fn weight_window(
        &self,
        p: &Parameter,
        first: usize,
        count: usize,
    ) -> Result<(wgpu::BindingResource<'_>, u32)> {
        let (buffer, start) = match p.placement {
            Placement::Slice { start } => (&self.pool, start),
            Placement::Tile { .. } => (
                self.tiles
                    .as_ref()
                    .expect("tile-placed parameters were gathered"),
                self.tile_starts[&p.name],
            ),
        };
        let align = self.gpu.limits.min_storage_buffer_offset_alignment.max(4) as u64;
        let byte_start = 2 * (start + first) as u64;
        let offset = byte_start / align * align;
        let rel = (byte_start - offset) / 2;
        let size = (2 * (rel + count as u64)).div_ceil(4) * 4;
        let limit = self.gpu.pool_window_limit;
        ensure!(
            size <= limit,
            "parameter {} needs a {} MiB window of the pool, over this adapter's {} MiB binding limit",
            p.name,
            size >> 20,
            limit >> 20
        );
        let binding = wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer,
            offset,
            size: std::num::NonZeroU64::new(size),
        });
        Ok((binding, rel as u32))
    }

    /// out[rows, n] = ⟂(x[rows, k] · Wᵀ), in column blocks whose weights fit one binding.
    fn matmul(
        &self,
        enc: &mut wgpu::CommandEncoder,
        x: &wgpu::Buffer,
        rows: usize,
        w: &Parameter,
        out: &wgpu::Buffer,
    ) -> Result<()> {
        let (n, k) = (w.shape[0], w.shape[1]);
        let align = self.gpu.limits.min_storage_buffer_offset_alignment.max(4) as u64;
        let fit = self.gpu.pool_window_limit.saturating_sub(align + 4) / (2 * k as u64);
        ensure!(
            fit >= 1,
            "one row of {} does not fit this adapter's binding limit",
            w.name
        );
        let block = (fit as usize).min(n);
        let mut col0 = 0;
        while col0 < n {
            let cols = block.min(n - col0);
            let (window, w_start) = self.weight_window(w, col0 * k, cols * k)?;
            let args = self.gpu.uniform(&MatmulArgs {
                rows: rows as u32,
                n: cols as u32,
                k: k as u32,
                n_total: n as u32,
                col0: col0 as u32,
                w_start,
                _pad: [0; 2],
            });
            let groups = (cols.div_ceil(32) as u32, rows.div_ceil(32) as u32);
            let bindings = vec![
                window,
                x.as_entire_binding(),
                out.as_entire_binding(),
                args.as_entire_binding(),
            ];
            self.gpu
                .dispatch_bound(enc, &self.gpu.kernels.matmul, bindings, groups);
            col0 += cols;
        }
        Ok(())
    }

    fn rms_norm(
        &self,
        enc: &mut wgpu::CommandEncoder,
        x: &wgpu::Buffer,
        rows: usize,
        w: &Parameter,
        out: &wgpu::Buffer,
    ) -> Result<()> {
        let p = &self.weights.params;
        let (window, w_start) = self.weight_window(w, 0, w.numel)?;
        let args = self.gpu.uniform(&NormArgs {
            rows: rows as u32,
            dim: p.dim as u32,
            eps: p.norm_eps as f32,
            w_start,
        });
        let bindings = vec![
            window,
            x.as_entire_binding(),
            out.as_entire_binding(),
            args.as_entire_binding(),
        ];
        self.gpu.dispatch_bound(
            enc,
            &self.gpu.kernels.rms_norm,
            bindings,
            (rows.div_ceil(64) as u32, 1),
        );
        Ok(())
    }

    fn elementwise(
        &self,
        enc: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        args: EltArgs,
    ) {
        let groups = self.gpu.elementwise_groups(args.len as usize);
        let args = self.gpu.uniform(&args);
        self.gpu.dispatch(enc, pipeline, &[a, b, &args], groups);
    }
}

impl ForwardPass for WgpuForward {
    fn last_position_logits(&self, inputs: &[f16], batch: usize) -> Result<Vec<f32>> {
        self.gpu
            .checked("the wgpu forward pass", || self.forward(inputs, batch))
    }

    fn overlaps_host_work(&self) -> bool {
        self.gpu.is_hardware()
    }
}

impl WgpuForward {
    fn forward(&self, inputs: &[f16], batch: usize) -> Result<Vec<f32>> {
        let gpu = &*self.gpu;
        let kern = &gpu.kernels;
        let w = &*self.weights;
        let p = &w.params;
        let (s, dim, hd) = (p.seq_len, p.dim, p.head_dim());
        let (q_width, kv_width, hidden) = (p.n_heads * hd, p.n_kv_heads * hd, p.ffn_hidden());
        let rows = batch * s;
        ensure!(
            inputs.len() == rows * dim,
            "inputs are not batch × seq_len × dim"
        );

        let h = gpu.storage_with("h", &gpu.act_data(inputs))?;
        let xn = gpu.activations("xn", rows * dim)?;
        let q = gpu.activations("q", rows * q_width)?;
        let k = gpu.activations("k", rows * kv_width)?;
        let v = gpu.activations("v", rows * kv_width)?;
        let o = gpu.activations("o", rows * q_width)?;
        let a = gpu.activations("ffn a", rows * hidden)?;
        let b = gpu.activations("ffn b", rows * hidden)?;
        // Scores, exponentials and probabilities: the exponentials are not rounded, so f32.
        let probs = gpu.storage("attention probabilities", rows * p.n_heads * s)?;
        let logits = gpu.activations("logits", batch * p.vocab_size)?;

        // The last layer carries each nonce's last position only, beyond k and v.
        let h_last = gpu.activations("h, last positions", batch * dim)?;
        let mut enc = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        let elt = |len: usize| EltArgs {
            len: len as u32,
            width: 0,
            seq_len: 0,
            _pad: 0,
        };
        let gather = |width: usize| EltArgs {
            len: (batch * width) as u32,
            width: width as u32,
            seq_len: s as u32,
            _pad: 0,
        };
        for l in 0..p.n_layers {
            let lp = w.layer(l);
            let last = l + 1 == p.n_layers;
            let q_rows = if last { batch } else { rows };
            // 1. xn = RMSNorm(h); 2. k, v for every position, q for those that go on
            self.rms_norm(&mut enc, &h, rows, lp.attention_norm, &xn)?;
            self.matmul(&mut enc, &xn, rows, lp.wk, &k)?;
            self.matmul(&mut enc, &xn, rows, lp.wv, &v)?;
            let q_in = if last {
                self.elementwise(&mut enc, &kern.last_rows, &o, &xn, gather(dim));
                &o
            } else {
                &xn
            };
            self.matmul(&mut enc, q_in, q_rows, lp.wq, &q)?;
            // 3. RoPE on q and k
            for (x, width, n, last_only) in
                [(&q, q_width, q_rows, last), (&k, kv_width, rows, false)]
            {
                let args = gpu.uniform(&RopeArgs {
                    rows: n as u32,
                    width: width as u32,
                    half_dim: (hd / 2) as u32,
                    seq_len: s as u32,
                    last_only: last_only as u32,
                    _pad: [0; 3],
                });
                let groups = gpu.elementwise_groups(n * width / 2);
                gpu.dispatch(&mut enc, &kern.rope, &[x, &self.rope, &args], groups);
            }
            // 4–6. attention
            let args = gpu.uniform(&AttnArgs {
                rows: q_rows as u32,
                seq_len: s as u32,
                n_heads: p.n_heads as u32,
                n_kv_heads: p.n_kv_heads as u32,
                head_dim: hd as u32,
                scale: (hd as f32).sqrt(),
                last_only: last as u32,
                _pad: 0,
            });
            gpu.dispatch(
                &mut enc,
                &kern.attention,
                &[&q, &k, &v, &o, &probs, &args],
                ((q_rows * p.n_heads).div_ceil(64) as u32, 1),
            );
            // 7. h = h + o·woᵀ
            let h_cur = if last {
                self.elementwise(&mut enc, &kern.last_rows, &h_last, &h, gather(dim));
                &h_last
            } else {
                &h
            };
            self.matmul(&mut enc, &o, q_rows, lp.wo, &xn)?;
            self.elementwise(&mut enc, &kern.add_residual, h_cur, &xn, elt(q_rows * dim));
            // 8. the SwiGLU feed-forward
            self.rms_norm(&mut enc, h_cur, q_rows, lp.ffn_norm, &xn)?;
            self.matmul(&mut enc, &xn, q_rows, lp.w1, &a)?;
            self.matmul(&mut enc, &xn, q_rows, lp.w3, &b)?;
            self.elementwise(&mut enc, &kern.silu_mul, &a, &b, elt(q_rows * hidden));
            self.matmul(&mut enc, &a, q_rows, lp.w2, &xn)?;
            self.elementwise(&mut enc, &kern.add_residual, h_cur, &xn, elt(q_rows * dim));
        }
        // The final norm and the output projection.
        self.rms_norm(&mut enc, &h_last, batch, w.final_norm(), &xn)?;
        self.matmul(&mut enc, &xn, batch, w.output(), &logits)?;
        gpu.read_activations(enc, &logits, batch * p.vocab_size)
    }
}

pub(crate) fn round_f16_on_device(gpu: &Gpu, values: &[f32]) -> Result<Vec<f32>> {
    gpu.checked("rounding on the wgpu device", || {
        let input = gpu.storage_with("round input", bytemuck::cast_slice(values))?;
        let out = gpu.storage("round output", values.len())?;
        let args = gpu.uniform(&[values.len() as u32, 0, 0, 0]);
        let mut enc = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        let groups = gpu.elementwise_groups(values.len());
        gpu.dispatch(
            &mut enc,
            &gpu.kernels.round_f16,
            &[&out, &input, &args],
            groups,
        );
        gpu.read_f32(enc, &out, values.len())
    })
}
