//! Compute as plugins see it: distances for a task, with typed failures, on one backend,
//! reusing the built model while the block hash and params stay the same.

use crate::model::{LoadedModel, choose_batch};
use crate::progress;
use powhost_core::model::pool_memory_bytes;
use powhost_core::poc::compute_distances_until;
use powhost_core::{Backend, ModelParams, memory};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Most nonces one compute call may ask for (the same bound as `powhost distances`).
pub const MAX_NONCES: usize = crate::nonce_list::MAX_NONCES as usize;

/// What a task fixes besides the nonces.
#[derive(Clone, Debug)]
pub struct Task {
    pub block_hash: String,
    pub public_key: String,
    pub params: ModelParams,
    /// Empty: the backend's own choice.
    pub devices: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    InvalidParams,
    TooLarge,
    InvalidTask,
    DeviceUnavailable,
    BackendFailed,
    Stopped,
}

/// A failed compute call: its kind and one sentence saying what to fix.
#[derive(Clone, Debug)]
pub struct ComputeFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl ComputeFailure {
    fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for ComputeFailure {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ComputeFailure {}

/// Why work should stop: a caller's cancellation, or the request's time limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Cancelled,
    Deadline,
}

/// Shared by the host's signal handler (or an HTTP cancel) and the work in flight.
#[derive(Clone, Debug, Default)]
pub struct StopSignal {
    cancelled: Arc<AtomicBool>,
    /// Stop at the plugin's next batch, letting the forward passes in flight finish: the
    /// batch being computed is delivered (a worker's shutdown, the platform's job-stop).
    finish: Option<Arc<AtomicBool>>,
    deadline: Option<Instant>,
}

impl StopSignal {
    pub fn new(cancelled: Arc<AtomicBool>, deadline: Option<Instant>) -> Self {
        Self {
            cancelled,
            finish: None,
            deadline,
        }
    }

    /// Never cancelled outright: stops after the batch in flight once `finish` is set (or at
    /// the deadline).
    pub fn finishing_on(finish: Arc<AtomicBool>, deadline: Option<Instant>) -> Self {
        Self::new(Arc::default(), deadline).and_finishing_on(finish)
    }

    /// This signal, and besides: stop after the batch in flight once `finish` is set (a
    /// server's shutdown, which lets jobs deliver what they are computing).
    pub fn and_finishing_on(mut self, finish: Arc<AtomicBool>) -> Self {
        self.finish = Some(finish);
        self
    }

    /// Whether the work in flight should stop now, between forward passes: it was
    /// cancelled, or its deadline (the request's time limit) has passed.
    pub fn interrupted(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed) || self.past_deadline()
    }

    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Why the plugin should stop before its next batch, if it should.
    pub fn reason(&self) -> Option<StopReason> {
        let finishing = self
            .finish
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed));
        if self.cancelled.load(Ordering::Relaxed) || finishing {
            Some(StopReason::Cancelled)
        } else if self.past_deadline() {
            Some(StopReason::Deadline)
        } else {
            None
        }
    }
}

struct CachedModel {
    block_hash: String,
    params: ModelParams,
    model: LoadedModel,
}

/// One backend and the model last built on it.
pub struct ComputeService {
    backend: Box<dyn Backend>,
    /// Nonces per forward pass (`--batch`), else chosen per model.
    batch: Option<usize>,
    cache: Mutex<Option<Arc<CachedModel>>>,
    /// Draw a progress bar per call (off where many calls run at once, as in `serve`).
    progress: bool,
}

impl ComputeService {
    pub fn new(backend: Box<dyn Backend>, batch: Option<usize>) -> Self {
        Self {
            backend,
            batch,
            cache: Mutex::new(None),
            progress: true,
        }
    }

    /// No progress bars: for servers, where calls overlap.
    pub fn without_progress(mut self) -> Self {
        self.progress = false;
        self
    }

    /// Build (or find) the task's model now, so the first request does not wait for it.
    pub fn prepare(&self, task: &Task) -> Result<(), ComputeFailure> {
        self.check_task(task, &[])?;
        self.check_params(&task.params)?;
        self.model_for(task).map(drop)
    }

    /// Nonces per forward pass for these params.
    pub fn batch_for(&self, params: &ModelParams) -> usize {
        self.model_batch(params)
    }

    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// Device names a task may list.
    pub fn devices(&self) -> Vec<String> {
        self.backend.devices()
    }

    /// Consistency first, then whether the model and a batch of working memory fit: the
    /// checks a model build makes, without building anything.
    pub fn check_params(&self, params: &ModelParams) -> Result<(), ComputeFailure> {
        params
            .validate()
            .map_err(|e| ComputeFailure::new(FailureKind::InvalidParams, format!("{e:#}")))?;
        if self.is_cached(params) {
            // Built already: it fits (and /proc/meminfo need not be read per request).
            return Ok(());
        }
        let batch = self.model_batch(params);
        let bytes = pool_memory_bytes(params)
            .saturating_add(self.backend.working_memory_bytes(params, batch));
        memory::check_fits(bytes, "this model")
            .map_err(|e| ComputeFailure::new(FailureKind::TooLarge, format!("{e:#}")))
    }

    /// The distance of every nonce, in order. Stops between forward passes when `stop` is
    /// cancelled or its deadline passes (a `finish` request lets the call run to its end).
    pub fn distances(
        &self,
        task: &Task,
        nonces: &[i64],
        stop: &StopSignal,
    ) -> Result<Vec<f64>, ComputeFailure> {
        self.check_task(task, nonces)?;
        self.check_params(&task.params)?;
        let cached = self.model_for(task)?;
        let batch = self.model_batch(&task.params).min(nonces.len().max(1));
        let bar = if self.progress {
            progress::bar(nonces.len() as u64, "nonces")
        } else {
            indicatif::ProgressBar::hidden()
        };
        let out = compute_distances_until(
            &*cached.model.forward,
            &cached.model.weights,
            &task.public_key,
            nonces,
            batch,
            &|done| bar.set_position(done as u64),
            &|| stop.interrupted(),
        )
        .map_err(|e| ComputeFailure::new(FailureKind::BackendFailed, format!("{e:#}")));
        bar.finish_and_clear();
        let out = out?;
        if out.len() < nonces.len() {
            let why = match stop.reason() {
                Some(StopReason::Deadline) => "the request's time limit (--time-limit) passed",
                _ => "cancelled",
            };
            return Err(ComputeFailure::new(
                FailureKind::Stopped,
                format!("{why} after {} of {} nonces", out.len(), nonces.len()),
            ));
        }
        Ok(out)
    }

    fn check_task(&self, task: &Task, nonces: &[i64]) -> Result<(), ComputeFailure> {
        let invalid = |m: String| Err(ComputeFailure::new(FailureKind::InvalidTask, m));
        if task.block_hash.is_empty() {
            return invalid("the block hash must not be empty".into());
        }
        if task.public_key.is_empty() {
            return invalid("the public key must not be empty".into());
        }
        if nonces.len() > MAX_NONCES {
            return invalid(format!(
                "{} nonces in one call is more than the {MAX_NONCES} allowed; split the work",
                nonces.len()
            ));
        }
        let served = self.devices();
        for device in &task.devices {
            if !served.contains(device) {
                return Err(ComputeFailure::new(
                    FailureKind::DeviceUnavailable,
                    format!(
                        "device `{device}` is not available: this powhost computes on the {} backend, whose devices are: {}; name one of those or leave `devices` out",
                        self.backend.name(),
                        served.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn is_cached(&self, params: &ModelParams) -> bool {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.as_ref().is_some_and(|c| &c.params == params)
    }

    fn model_batch(&self, params: &ModelParams) -> usize {
        choose_batch(self.batch, &*self.backend, params, usize::MAX)
    }

    /// The cached model when the task matches it, else a newly built one (replacing it:
    /// one model at a time keeps memory bounded, as the reference does).
    fn model_for(&self, task: &Task) -> Result<Arc<CachedModel>, ComputeFailure> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cached) = &*cache
            && cached.block_hash == task.block_hash
            && cached.params == task.params
        {
            log::debug!("reusing the model for block hash {}", task.block_hash);
            return Ok(cached.clone());
        }
        // Free the old model before building the new one.
        *cache = None;
        let start = Instant::now();
        let model = LoadedModel::new(
            &*self.backend,
            &task.params,
            &task.block_hash,
            self.model_batch(&task.params),
        )
        .map_err(|e| ComputeFailure::new(FailureKind::BackendFailed, format!("{e:#}")))?;
        log::info!(
            "built the model for block hash {} on {} in {:.2} s",
            task.block_hash,
            self.backend.name(),
            start.elapsed().as_secs_f64()
        );
        let cached = Arc::new(CachedModel {
            block_hash: task.block_hash.clone(),
            params: task.params.clone(),
            model,
        });
        *cache = Some(cached.clone());
        Ok(cached)
    }
}
