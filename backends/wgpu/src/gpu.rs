//! The adapter, device and compiled kernels, and the few operations the forward pass is
//! made of: buffers, a dispatch, a readback.

use anyhow::{Context, Result, anyhow, bail};
use wgpu::util::DeviceExt;

const KERNELS: &str = include_str!("kernels.wgsl");

/// The compiled kernels of `kernels.wgsl`.
pub(crate) struct Kernels {
    pub matmul: wgpu::ComputePipeline,
    pub rms_norm: wgpu::ComputePipeline,
    pub rope: wgpu::ComputePipeline,
    pub attention: wgpu::ComputePipeline,
    pub add_residual: wgpu::ComputePipeline,
    pub silu_mul: wgpu::ComputePipeline,
    pub last_rows: wgpu::ComputePipeline,
    pub round_f16: wgpu::ComputePipeline,
}

pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    pub(crate) limits: wgpu::Limits,
    /// Most bytes of the pool one dispatch binds: the adapter's storage binding limit, or
    /// less when set for tests (`WgpuBackend::with_pool_window_limit`).
    pub(crate) pool_window_limit: u64,
    /// Activations stored as f16 (the adapter has SHADER_F16), else as f32.
    pub(crate) f16_storage: bool,
    pub(crate) kernels: Kernels,
}

impl Gpu {
    pub fn with_pool_window_limit(bytes: u64) -> Result<Self> {
        let mut gpu = Self::new()?;
        gpu.pool_window_limit = gpu.pool_window_limit.min(bytes);
        Ok(gpu)
    }

    /// The first adapter, storing activations as f16 where it has SHADER_F16 (unless
    /// `POWHOST_WGPU_F16=0`).
    pub fn new() -> Result<Self> {
        Self::open(std::env::var("POWHOST_WGPU_F16").map_or(true, |v| v != "0"))
    }

    /// Like `new`, with f16 activation storage only if `f16_storage` and the adapter has it.
    pub fn open(f16_storage: bool) -> Result<Self> {
        let adapter = adapter()?;
        let f16_storage = f16_storage && adapter.features().contains(wgpu::Features::SHADER_F16);
        let info = adapter.get_info();
        // Ask for the adapter's own limits: the storage binding size bounds the batch.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("powhost"),
            required_features: if f16_storage {
                wgpu::Features::SHADER_F16
            } else {
                wgpu::Features::empty()
            },
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .with_context(|| format!("opening the wgpu device {}", info.name))?;
        log::info!(
            "wgpu adapter: {} ({:?}, {:?}, driver {}), storage bindings up to {} MiB, activations in {}",
            info.name,
            info.backend,
            info.device_type,
            info.driver,
            limits.max_storage_buffer_binding_size >> 20,
            if f16_storage { "f16" } else { "f32" }
        );
        let kernels = checked(&device, "compiling the WGSL kernels", || {
            Kernels::compile(&device, f16_storage)
        })?;
        Ok(Self {
            device,
            queue,
            info,
            pool_window_limit: binding_limit(&limits),
            f16_storage,
            limits,
            kernels,
        })
    }

    /// Run `f` with wgpu's validation and out-of-memory errors captured and returned as
    /// an error saying `what` failed (by default wgpu panics on them).
    pub(crate) fn checked<R>(&self, what: &str, f: impl FnOnce() -> Result<R>) -> Result<R> {
        checked(&self.device, what, f)
    }

    pub fn is_hardware(&self) -> bool {
        !matches!(
            self.info.device_type,
            wgpu::DeviceType::Cpu | wgpu::DeviceType::Other
        )
    }

    /// The adapter's name, e.g. `NVIDIA GeForce RTX 4090`.
    pub fn adapter_name(&self) -> &str {
        &self.info.name
    }

    pub fn description(&self) -> String {
        format!(
            "{} ({:?} via {:?}, driver {}, {} activations)",
            self.info.name,
            self.info.device_type,
            self.info.backend,
            self.info.driver,
            if self.f16_storage { "f16" } else { "f32" }
        )
    }

    /// A storage buffer holding `data`, refused when larger than one binding may be.
    pub(crate) fn storage_with(&self, label: &str, data: &[u8]) -> Result<wgpu::Buffer> {
        self.check_binding(label, data.len() as u64)?;
        Ok(self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: data,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            }))
    }

    /// Bytes per stored activation.
    pub(crate) fn act_bytes(&self) -> usize {
        if self.f16_storage { 2 } else { 4 }
    }

    /// f16 values as the kernels store activations.
    pub(crate) fn act_data(&self, values: &[half::f16]) -> Vec<u8> {
        let mut out = Vec::with_capacity(values.len() * 4 + 2);
        for v in values {
            if self.f16_storage {
                out.extend_from_slice(&v.to_bits().to_le_bytes());
            } else {
                out.extend_from_slice(&v.to_f32().to_le_bytes());
            }
        }
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out
    }

    /// A zeroed buffer for `len` activations.
    pub(crate) fn activations(&self, label: &str, len: usize) -> Result<wgpu::Buffer> {
        self.zeroed(
            label,
            (len.max(1) * self.act_bytes()).div_ceil(4) as u64 * 4,
        )
    }

    /// A zeroed f32 storage buffer of `len` elements.
    pub(crate) fn storage(&self, label: &str, len: usize) -> Result<wgpu::Buffer> {
        self.zeroed(label, (len.max(1) * 4) as u64)
    }

    fn zeroed(&self, label: &str, size: u64) -> Result<wgpu::Buffer> {
        self.check_binding(label, size)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    /// The weight pool: one buffer, which may be larger than one binding (dispatches bind
    /// windows of it), but not larger than the adapter's largest buffer.
    pub(crate) fn pool_buffer(&self, data: &[u8]) -> Result<wgpu::Buffer> {
        let max = self.limits.max_buffer_size;
        if data.len() as u64 > max {
            bail!(
                "the weight pool needs {} MiB but {} allows buffers of at most {} MiB",
                data.len() >> 20,
                self.info.name,
                max >> 20
            );
        }
        Ok(self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("weight pool"),
                contents: data,
                usage: wgpu::BufferUsages::STORAGE,
            }))
    }

    fn check_binding(&self, label: &str, bytes: u64) -> Result<()> {
        let max = binding_limit(&self.limits);
        if bytes > max {
            bail!(
                "the wgpu buffer `{label}` needs {} MiB but {} binds at most {} MiB; use a smaller --batch (or a smaller model on this adapter)",
                bytes >> 20,
                self.info.name,
                max >> 20
            );
        }
        Ok(())
    }

    pub(crate) fn uniform<T: bytemuck::Pod>(&self, value: &T) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("args"),
                contents: bytemuck::bytes_of(value),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// Record one dispatch of `pipeline` with `buffers` bound whole, in order (binding 0, 1, …).
    pub(crate) fn dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[&wgpu::Buffer],
        workgroups: (u32, u32),
    ) {
        let resources = buffers.iter().map(|b| b.as_entire_binding()).collect();
        self.dispatch_bound(encoder, pipeline, resources, workgroups);
    }

    /// Record one dispatch with these bindings (whole buffers or windows), in order.
    pub(crate) fn dispatch_bound(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        resources: Vec<wgpu::BindingResource<'_>>,
        workgroups: (u32, u32),
    ) {
        let entries: Vec<wgpu::BindGroupEntry> = resources
            .into_iter()
            .enumerate()
            .map(|(i, resource)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource,
            })
            .collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(workgroups.0, workgroups.1, 1);
    }

    /// Workgroups for `len` elements at 256 per workgroup, spread over two dimensions when
    /// one would exceed the per-dimension limit (the kernels index `x + y·width`).
    pub(crate) fn elementwise_groups(&self, len: usize) -> (u32, u32) {
        let groups = len.div_ceil(256).max(1) as u64;
        let max = self.limits.max_compute_workgroups_per_dimension.max(1) as u64;
        if groups <= max {
            (groups as u32, 1)
        } else {
            (max as u32, groups.div_ceil(max) as u32)
        }
    }

    /// Submit `encoder`, then copy `len` activations of `buffer` back to the host as f32.
    pub(crate) fn read_activations(
        &self,
        encoder: wgpu::CommandEncoder,
        buffer: &wgpu::Buffer,
        len: usize,
    ) -> Result<Vec<f32>> {
        let bytes = self.read_bytes(encoder, buffer, (len * self.act_bytes()).div_ceil(4) * 4)?;
        Ok(if self.f16_storage {
            bytes
                .chunks_exact(2)
                .take(len)
                .map(|b| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
                .collect()
        } else {
            bytemuck::cast_slice::<u8, f32>(&bytes).to_vec()
        })
    }

    /// Submit `encoder`, then copy `len` f32 values of `buffer` back to the host.
    pub(crate) fn read_f32(
        &self,
        encoder: wgpu::CommandEncoder,
        buffer: &wgpu::Buffer,
        len: usize,
    ) -> Result<Vec<f32>> {
        let bytes = self.read_bytes(encoder, buffer, len * 4)?;
        Ok(bytemuck::cast_slice::<u8, f32>(&bytes).to_vec())
    }

    fn read_bytes(
        &self,
        mut encoder: wgpu::CommandEncoder,
        buffer: &wgpu::Buffer,
        len: usize,
    ) -> Result<Vec<u8>> {
        let size = len as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: size.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging
            .slice(..size)
            .map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map_err(|e| anyhow!("waiting for the wgpu device: {e}"))?;
        rx.recv()
            .context("the wgpu readback never completed")?
            .map_err(|e| anyhow!("reading results back from the wgpu device: {e}"))?;
        let view = staging
            .slice(..size)
            .get_mapped_range()
            .map_err(|e| anyhow!("mapping the wgpu readback buffer: {e}"))?;
        let out = view.to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }
}

impl Kernels {
    /// Each section of `kernels.wgsl` is compiled as its own module with the shared
    /// functions in front: sections reuse binding numbers, which one module cannot.
    fn compile(device: &wgpu::Device, f16_storage: bool) -> Result<Self> {
        let act = if f16_storage {
            "enable f16;\nalias act = f16;\n"
        } else {
            "alias act = f32;\n"
        };
        let sections: Vec<&str> = KERNELS.split("\n// ---- ").collect();
        let shared = sections
            .get(1)
            .context("kernels.wgsl has no shared section")?;
        let module_of = |name: &str| -> Result<wgpu::ShaderModule> {
            let section = sections
                .iter()
                .find(|s| s.starts_with(name))
                .with_context(|| format!("kernels.wgsl has no `{name}` section"))?;
            let source = format!("{act}// ---- {shared}\n// ---- {section}");
            Ok(device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            }))
        };
        let pipeline = |module: &wgpu::ShaderModule, entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let matmul = module_of("matmul")?;
        let norm = module_of("RMSNorm")?;
        let rope = module_of("RoPE")?;
        let attention = module_of("attention")?;
        let elementwise = module_of("elementwise")?;
        let rounding = module_of("rounding test")?;
        Ok(Self {
            matmul: pipeline(&matmul, "matmul"),
            rms_norm: pipeline(&norm, "rms_norm"),
            rope: pipeline(&rope, "rope"),
            attention: pipeline(&attention, "attention"),
            add_residual: pipeline(&elementwise, "add_residual"),
            silu_mul: pipeline(&elementwise, "silu_mul"),
            last_rows: pipeline(&elementwise, "last_rows"),
            round_f16: pipeline(&rounding, "round_f16"),
        })
    }
}

fn checked<R>(device: &wgpu::Device, what: &str, f: impl FnOnce() -> Result<R>) -> Result<R> {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let result = f();
    let validation = pollster::block_on(validation.pop());
    let oom = pollster::block_on(oom.pop());
    if let Some(e) = oom {
        bail!("{what}: the wgpu device ran out of memory ({e}); use a smaller --batch");
    }
    if let Some(e) = validation {
        bail!("{what}: wgpu refused it: {e}");
    }
    result
}

/// The adapter wgpu offers first (`WGPU_ADAPTER_NAME`, `WGPU_BACKEND` choose).
fn adapter() -> Result<wgpu::Adapter> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }))
    .map_err(|e| {
        anyhow!(
            "no wgpu adapter: {e}. Install a Vulkan driver (on Debian without a GPU: \
             `apt-get install mesa-vulkan-drivers libvulkan1`) or use --backend cpu"
        )
    })
}

/// The adapter's name when it is a hardware GPU, without opening a device or compiling
/// anything: what `--backend auto` asks first.
pub fn hardware_adapter() -> Option<String> {
    let info = adapter().ok()?.get_info();
    (!matches!(
        info.device_type,
        wgpu::DeviceType::Cpu | wgpu::DeviceType::Other
    ))
    .then_some(info.name)
}

fn binding_limit(limits: &wgpu::Limits) -> u64 {
    limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size)
}
