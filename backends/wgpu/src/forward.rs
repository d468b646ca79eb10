//! The steps of the forward pass (docs/spec/COMPUTATION.md §5) on wgpu ([`GpuSteps`]; the
//! sequence is core's `gpu_forward`): one command buffer per batch, every step a kernel of
//! `kernels.wgsl`, the logits of the last positions read back.

use crate::gpu::Gpu;
use anyhow::{Result, ensure};
use half::f16;
use powhost_core::gpu_forward::{self, AttentionRows, GpuSteps};
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
    /// Scores are divided by this (√head_dim).
    score_divisor: f32,
    last_only: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct EltArgs {
    len: u32,
    width: u32,
    seq_len: u32,
    _pad: u32,
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
        pool_bytes.extend(
            weights
                .pool
                .values()
                .iter()
                .flat_map(|v| v.to_bits().to_le_bytes()),
        );
        while !pool_bytes.len().is_multiple_of(4) {
            pool_bytes.push(0);
        }
        let mut tile_bytes: Vec<u8> = Vec::new();
        let mut tile_starts = std::collections::HashMap::new();
        for param in &weights.table.parameters {
            if let Placement::Tile { .. } = param.placement {
                tile_starts.insert(param.name.clone(), tile_bytes.len() / 2);
                for run in weights.pool.runs(param, 0, param.numel) {
                    tile_bytes.extend(run.iter().flat_map(|v| v.to_bits().to_le_bytes()));
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
        eps: f32,
        out: &wgpu::Buffer,
    ) -> Result<()> {
        let (window, w_start) = self.weight_window(w, 0, w.numel)?;
        let args = self.gpu.uniform(&NormArgs {
            rows: rows as u32,
            dim: w.numel as u32,
            eps,
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
        self.gpu.checked("the wgpu forward pass", || {
            gpu_forward::last_position_logits(&mut self.steps(), &self.weights, inputs, batch)
        })
    }

    fn overlaps_host_work(&self) -> bool {
        self.gpu.is_hardware()
    }
}

impl WgpuForward {
    /// The steps of the forward pass on this model, recorded into one command buffer that is
    /// submitted when a buffer is read.
    pub fn steps(&self) -> WgpuSteps<'_> {
        WgpuSteps {
            model: self,
            enc: self.encoder(),
        }
    }

    fn encoder(&self) -> wgpu::CommandEncoder {
        self.gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
    }
}

/// [`GpuSteps`] on wgpu: each step is one or more dispatches recorded into `enc`.
pub struct WgpuSteps<'a> {
    model: &'a WgpuForward,
    enc: wgpu::CommandEncoder,
}

impl GpuSteps for WgpuSteps<'_> {
    type Buffer = wgpu::Buffer;

    fn activations(&mut self, what: &'static str, len: usize) -> Result<wgpu::Buffer> {
        self.model.gpu.activations(what, len)
    }

    fn scratch_f32(&mut self, what: &'static str, len: usize) -> Result<wgpu::Buffer> {
        self.model.gpu.storage(what, len)
    }

    fn upload(&mut self, what: &'static str, values: &[f16]) -> Result<wgpu::Buffer> {
        let gpu = &self.model.gpu;
        gpu.storage_with(what, &gpu.act_data(values))
    }

    fn read(&mut self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let enc = std::mem::replace(&mut self.enc, self.model.encoder());
        self.model.gpu.read_activations(enc, buffer, len)
    }

    fn matmul(
        &mut self,
        x: &wgpu::Buffer,
        rows: usize,
        w: &Parameter,
        out: &mut wgpu::Buffer,
    ) -> Result<()> {
        self.model.matmul(&mut self.enc, x, rows, w, out)
    }

    fn rms_norm(
        &mut self,
        x: &wgpu::Buffer,
        rows: usize,
        w: &Parameter,
        eps: f32,
        out: &mut wgpu::Buffer,
    ) -> Result<()> {
        self.model.rms_norm(&mut self.enc, x, rows, w, eps, out)
    }

    fn rope(
        &mut self,
        x: &mut wgpu::Buffer,
        rows: usize,
        width: usize,
        last_only: bool,
    ) -> Result<()> {
        let (gpu, p) = (&self.model.gpu, &self.model.weights.params);
        let args = gpu.uniform(&RopeArgs {
            rows: rows as u32,
            width: width as u32,
            half_dim: (p.head_dim() / 2) as u32,
            seq_len: p.seq_len as u32,
            last_only: last_only as u32,
            _pad: [0; 3],
        });
        let groups = gpu.elementwise_groups(rows * width / 2);
        gpu.dispatch(
            &mut self.enc,
            &gpu.kernels.rope,
            &[x, &self.model.rope, &args],
            groups,
        );
        Ok(())
    }

    fn attention(
        &mut self,
        q: &wgpu::Buffer,
        k: &wgpu::Buffer,
        v: &wgpu::Buffer,
        out: &mut wgpu::Buffer,
        probs: &mut wgpu::Buffer,
        rows: AttentionRows,
    ) -> Result<()> {
        let (gpu, p) = (&self.model.gpu, &self.model.weights.params);
        let hd = p.head_dim();
        let args = gpu.uniform(&AttnArgs {
            rows: rows.rows as u32,
            seq_len: p.seq_len as u32,
            n_heads: p.n_heads as u32,
            n_kv_heads: p.n_kv_heads as u32,
            head_dim: hd as u32,
            score_divisor: (hd as f32).sqrt(),
            last_only: rows.last_only as u32,
            _pad: 0,
        });
        gpu.dispatch(
            &mut self.enc,
            &gpu.kernels.attention,
            &[q, k, v, out, probs, &args],
            ((rows.rows * p.n_heads).div_ceil(64) as u32, 1),
        );
        Ok(())
    }

    fn last_rows(
        &mut self,
        x: &wgpu::Buffer,
        out: &mut wgpu::Buffer,
        batch: usize,
        width: usize,
    ) -> Result<()> {
        let args = EltArgs {
            len: (batch * width) as u32,
            width: width as u32,
            seq_len: self.model.weights.params.seq_len as u32,
            _pad: 0,
        };
        let kernel = &self.model.gpu.kernels.last_rows;
        self.model.elementwise(&mut self.enc, kernel, out, x, args);
        Ok(())
    }

    fn add_residual(&mut self, h: &mut wgpu::Buffer, d: &wgpu::Buffer, len: usize) -> Result<()> {
        let kernel = &self.model.gpu.kernels.add_residual;
        self.model
            .elementwise(&mut self.enc, kernel, h, d, EltArgs::len(len));
        Ok(())
    }

    fn silu_mul(&mut self, a: &mut wgpu::Buffer, b: &wgpu::Buffer, len: usize) -> Result<()> {
        let kernel = &self.model.gpu.kernels.silu_mul;
        self.model
            .elementwise(&mut self.enc, kernel, a, b, EltArgs::len(len));
        Ok(())
    }
}

impl EltArgs {
    fn len(len: usize) -> Self {
        Self {
            len: len as u32,
            width: 0,
            seq_len: 0,
            _pad: 0,
        }
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
