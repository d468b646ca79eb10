//! What the host grants plugins: the `compute`, `session` and `log` interfaces of
//! `wit/pow.wit`. Time spent computing distances or writing emitted results is not charged
//! to the plugin's time limit; the cheap calls are, so a plugin cannot spin on them forever.

use super::State;
use super::gonka::pow::{compute, log as plugin_log, session, types};
use crate::compute_service::{ComputeFailure, FailureKind, Task};
use crate::runtime::stop::StopReason;
use powhost_core::ModelParams;
use std::time::Instant;

impl State {
    /// Run a long host call (compute, output), keeping its time off the plugin's clock —
    /// unless it starts after the caller cancelled or the deadline passed: from then on every
    /// call counts, so a plugin that ignores the stop runs out of plugin time instead of
    /// running on. A
    /// call already running when the cancellation lands stays off the clock (the plugin
    /// could not have acted on it sooner).
    fn host_call<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let started_cancelled = self.call.stop.interrupted();
        let start = Instant::now();
        let r = f(self);
        if !started_cancelled {
            self.host_time += start.elapsed();
        }
        r
    }
}

impl types::Host for State {}

impl compute::Host for State {
    fn preset(&mut self, name: String) -> Option<types::ModelParams> {
        ModelParams::preset(&name).ok().map(|p| to_wit(&p))
    }

    fn check_params(&mut self, params: types::ModelParams) -> Result<(), types::ComputeError> {
        let compute = self.call.compute.clone().ok_or_else(no_compute)?;
        compute
            .check_params(&from_wit(&params))
            .map_err(compute_error)
    }

    fn distances(
        &mut self,
        task: types::Task,
        nonces: Vec<i64>,
    ) -> Result<Vec<f64>, types::ComputeError> {
        self.host_call(|s| {
            let compute = s.call.compute.clone().ok_or_else(no_compute)?;
            let task = Task {
                block_hash: task.block_hash,
                public_key: task.public_key,
                params: from_wit(&task.params),
                devices: task.devices,
            };
            compute
                .distances(&task, &nonces, &s.call.stop)
                .map_err(compute_error)
        })
    }

    fn backend(&mut self) -> types::BackendInfo {
        match &self.call.compute {
            Some(c) => types::BackendInfo {
                name: c.backend().name().to_string(),
                description: c.backend().device_description(),
                devices: c.devices(),
            },
            None => types::BackendInfo {
                name: "none".into(),
                description: "no backend while loading the plugin".into(),
                devices: Vec::new(),
            },
        }
    }
}

impl session::Host for State {
    fn emit(&mut self, chunk: String) {
        self.host_call(|s| (s.call.emit)(&chunk))
    }

    fn stop_requested(&mut self) -> Option<types::StopReason> {
        self.call.stop.reason().map(|r| match r {
            StopReason::Cancelled => types::StopReason::Cancelled,
            StopReason::Deadline => types::StopReason::Deadline,
        })
    }
}

impl plugin_log::Host for State {
    fn log(&mut self, level: types::Level, message: String) {
        let level = match level {
            types::Level::Error => log::Level::Error,
            types::Level::Warn => log::Level::Warn,
            types::Level::Info => log::Level::Info,
            types::Level::Debug => log::Level::Debug,
            types::Level::Trace => log::Level::Trace,
        };
        log::log!(target: "plugin", level, "[{}] {}", self.plugin, message);
    }
}

fn no_compute() -> types::ComputeError {
    types::ComputeError {
        kind: types::ComputeErrorKind::BackendFailed,
        message: "compute is not available while the plugin is being loaded".into(),
    }
}

fn compute_error(e: ComputeFailure) -> types::ComputeError {
    types::ComputeError {
        kind: match e.kind {
            FailureKind::InvalidParams => types::ComputeErrorKind::InvalidParams,
            FailureKind::TooLarge => types::ComputeErrorKind::TooLarge,
            FailureKind::InvalidTask => types::ComputeErrorKind::InvalidTask,
            FailureKind::DeviceUnavailable => types::ComputeErrorKind::DeviceUnavailable,
            FailureKind::BackendFailed => types::ComputeErrorKind::BackendFailed,
            FailureKind::Stopped => types::ComputeErrorKind::Stopped,
        },
        message: e.message,
    }
}

fn to_wit(p: &ModelParams) -> types::ModelParams {
    // Presets are small enough for u32 fields.
    let u = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    types::ModelParams {
        dim: u(p.dim),
        n_layers: u(p.n_layers),
        n_heads: u(p.n_heads),
        n_kv_heads: u(p.n_kv_heads),
        vocab_size: u(p.vocab_size),
        ffn_dim_multiplier: p.ffn_dim_multiplier,
        multiple_of: u(p.multiple_of),
        norm_eps: p.norm_eps,
        rope_theta: p.rope_theta,
        use_scaled_rope: p.use_scaled_rope,
        seq_len: u(p.seq_len),
    }
}

fn from_wit(p: &types::ModelParams) -> ModelParams {
    ModelParams {
        dim: p.dim as usize,
        n_layers: p.n_layers as usize,
        n_heads: p.n_heads as usize,
        n_kv_heads: p.n_kv_heads as usize,
        vocab_size: p.vocab_size as usize,
        ffn_dim_multiplier: p.ffn_dim_multiplier,
        multiple_of: p.multiple_of as usize,
        norm_eps: p.norm_eps,
        rope_theta: p.rope_theta,
        use_scaled_rope: p.use_scaled_rope,
        seq_len: p.seq_len as usize,
    }
}
