//! The one path from a task to distances, for the plugins and the commands alike: typed
//! failures, one backend, the built model reused while the block hash and params stay the same.

use crate::metrics::Metrics;
use crate::model::{LoadedModel, choose_batch};
use crate::nonce_list::MAX_NONCES;
use crate::progress::{Progress, Silent};
use crate::runtime::stop::{Stop, StopReason};
use powhost_core::model::pool_memory_bytes;
use powhost_core::poc::compute_distances_until;
use powhost_core::{Backend, ModelParams, ModelWeights, memory};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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

struct CachedModel {
    block_hash: String,
    params: ModelParams,
    model: LoadedModel,
}

/// The model last built, and the params of the one being built, if any. Its lock is held
/// only to look or swap, never across a build, so that a server's async threads asking
/// whether params fit never wait for the seconds a large model takes to build.
#[derive(Default)]
struct Cache {
    model: Option<Arc<CachedModel>>,
    building: Option<ModelParams>,
}

/// One backend and the model last built on it.
pub struct ComputeService {
    backend: Box<dyn Backend>,
    /// Nonces per forward pass, else chosen per model.
    batch: Option<usize>,
    cache: Mutex<Cache>,
    /// Held for a whole build: one model is built at a time (two would need twice the memory).
    build: Mutex<()>,
    /// Who watches model builds and calls (the commands draw bars; servers watch nothing).
    progress: Box<dyn Progress>,
    metrics: Arc<Metrics>,
}

/// What building a model took, for the benchmarks.
#[derive(Clone, Copy, Debug)]
pub struct BuildInfo {
    /// Drawing the weight pool.
    pub pool_seconds: f64,
    /// The whole build and load; 0 when the model was already built.
    pub seconds: f64,
}

impl ComputeService {
    /// A service that reports no progress; see [`Self::with_progress`].
    pub fn new(backend: Box<dyn Backend>, batch: Option<usize>) -> Self {
        Self {
            backend,
            batch,
            cache: Mutex::new(Cache::default()),
            build: Mutex::new(()),
            progress: Box::new(Silent),
            metrics: Arc::default(),
        }
    }

    /// Count nonces, forward passes and model builds in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Report model builds and calls to `progress`.
    pub fn with_progress(mut self, progress: Box<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// Build (or find) the task's model now, so the first request does not wait for it.
    pub fn prepare(&self, task: &Task) -> Result<BuildInfo, ComputeFailure> {
        self.check_task(task, &[])?;
        self.check_params(&task.params)?;
        let start = Instant::now();
        let cached = self.model_for(task)?;
        Ok(BuildInfo {
            pool_seconds: cached.model.weights.pool_seconds,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Use weights built elsewhere for the task's model (several backends computing the same
    /// model share one build).
    pub fn adopt(&self, task: &Task, weights: Arc<ModelWeights>) -> Result<(), ComputeFailure> {
        self.check_task(task, &[])?;
        let model = LoadedModel::load(&*self.backend, weights)
            .map_err(|e| ComputeFailure::new(FailureKind::BackendFailed, format!("{e:#}")))?;
        self.cache().model = Some(Arc::new(CachedModel {
            block_hash: task.block_hash.clone(),
            params: task.params.clone(),
            model,
        }));
        Ok(())
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
            // Built already, or being built (while it is, the memory it takes is no longer
            // available): it fits (and /proc/meminfo need not be read per request).
            return Ok(());
        }
        let batch = self.model_batch(params);
        let bytes = pool_memory_bytes(params)
            .saturating_add(self.backend.working_memory_bytes(params, batch));
        memory::check_fits(bytes, "this model")
            .map_err(|e| ComputeFailure::new(FailureKind::TooLarge, format!("{e:#}")))
    }

    /// The distance of every nonce, in order. Stops between forward passes when `stop` is
    /// aborted or its deadline passes (a finish lets the call run to its end).
    pub fn distances(
        &self,
        task: &Task,
        nonces: &[i64],
        stop: &Stop,
    ) -> Result<Vec<f64>, ComputeFailure> {
        self.check_task(task, nonces)?;
        self.check_params(&task.params)?;
        let cached = self.model_for(task)?;
        let batch = self.model_batch(&task.params).min(nonces.len().max(1));
        let counter = self.progress.counter("nonces", nonces.len() as u64);
        let timer = self.metrics.batch_timer(self.backend.name());
        let out = compute_distances_until(
            &*cached.model.forward,
            &cached.model.weights,
            &task.public_key,
            nonces,
            batch,
            &|done| {
                counter.set(done as u64);
                timer.batch_done();
            },
            &|| stop.interrupted(),
        )
        .map_err(|e| ComputeFailure::new(FailureKind::BackendFailed, format!("{e:#}")));
        drop(counter);
        let out = out?;
        self.metrics.nonces_computed(self.backend.name(), out.len());
        if out.len() < nonces.len() {
            let why = match stop.reason() {
                Some(StopReason::Deadline) => "the request's time limit passed",
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

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_cached(&self, params: &ModelParams) -> bool {
        let cache = self.cache();
        cache.model.as_ref().is_some_and(|c| &c.params == params)
            || cache.building.as_ref() == Some(params)
    }

    fn cached_for(&self, task: &Task) -> Option<Arc<CachedModel>> {
        self.cache()
            .model
            .as_ref()
            .filter(|c| c.block_hash == task.block_hash && c.params == task.params)
            .cloned()
    }

    fn model_batch(&self, params: &ModelParams) -> usize {
        choose_batch(self.batch, &*self.backend, params, usize::MAX)
    }

    /// The cached model when the task matches it, else a newly built one (replacing it:
    /// one model at a time keeps memory bounded, as the reference does).
    fn model_for(&self, task: &Task) -> Result<Arc<CachedModel>, ComputeFailure> {
        if let Some(cached) = self.cached_for(task) {
            log::debug!("reusing the model for block hash {}", task.block_hash);
            return Ok(cached);
        }
        let _build = self.build.lock().unwrap_or_else(|p| p.into_inner());
        // Another call may have built it while this one waited.
        if let Some(cached) = self.cached_for(task) {
            return Ok(cached);
        }
        {
            // Free the old model before building the new one.
            let mut cache = self.cache();
            cache.model = None;
            cache.building = Some(task.params.clone());
        }
        let start = Instant::now();
        let model = LoadedModel::new(
            &*self.backend,
            &task.params,
            &task.block_hash,
            self.model_batch(&task.params),
            &*self.progress,
        )
        .map_err(|e| ComputeFailure::new(FailureKind::BackendFailed, format!("{e:#}")));
        let mut cache = self.cache();
        cache.building = None;
        let model = model?;
        self.metrics
            .model_built(self.backend.name(), start.elapsed().as_secs_f64());
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
        cache.model = Some(cached.clone());
        Ok(cached)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tiny() -> (ComputeService, Task) {
        let backend = crate::backends::backend_by_name("cpu").unwrap();
        let task = Task {
            block_hash: "00".repeat(32),
            public_key: "pk".into(),
            params: ModelParams::preset("tiny").unwrap(),
            devices: Vec::new(),
        };
        (ComputeService::new(backend, Some(4)), task)
    }

    #[test]
    fn the_model_is_built_once_per_block_hash_and_params() {
        let (compute, task) = tiny();
        let first = compute.model_for(&task).unwrap();
        assert!(Arc::ptr_eq(&first, &compute.model_for(&task).unwrap()));
        let other = Task {
            block_hash: "11".repeat(32),
            ..task.clone()
        };
        let second = compute.model_for(&other).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        // One model at a time: the first is gone from the cache.
        assert!(!Arc::ptr_eq(&first, &compute.model_for(&task).unwrap()));
    }

    #[test]
    fn an_aborted_call_stops_between_forward_passes() {
        let (compute, task) = tiny();
        let nonces: Vec<i64> = (0..16).collect();
        let stop = Stop::new();
        stop.abort();
        let failure = compute.distances(&task, &nonces, &stop).unwrap_err();
        assert_eq!(failure.kind, FailureKind::Stopped);
        assert_eq!(failure.message, "cancelled after 0 of 16 nonces");
        let late = Stop::new().child_until(Instant::now() - Duration::from_millis(1));
        let failure = compute.distances(&task, &nonces, &late).unwrap_err();
        assert_eq!(
            failure.message,
            "the request's time limit passed after 0 of 16 nonces"
        );
    }

    #[test]
    fn a_finish_lets_the_call_run_to_its_end() {
        let (compute, task) = tiny();
        let nonces: Vec<i64> = (0..16).collect();
        let stop = Stop::new();
        stop.finish();
        let dist = compute.distances(&task, &nonces, &stop).unwrap();
        assert_eq!(dist.len(), 16);
        assert_eq!(
            dist,
            compute.distances(&task, &nonces, &Stop::new()).unwrap()
        );
    }

    #[test]
    fn tasks_the_backend_cannot_serve_are_refused_by_kind() {
        let (compute, task) = tiny();
        let on_gpu = Task {
            devices: vec!["cuda:0".into()],
            ..task.clone()
        };
        let e = compute.distances(&on_gpu, &[1], &Stop::new()).unwrap_err();
        assert_eq!(e.kind, FailureKind::DeviceUnavailable);
        let e = compute
            .distances(&task, &vec![0; MAX_NONCES + 1], &Stop::new())
            .unwrap_err();
        assert_eq!(e.kind, FailureKind::InvalidTask);
        let unkeyed = Task {
            public_key: String::new(),
            ..task
        };
        let e = compute.distances(&unkeyed, &[1], &Stop::new()).unwrap_err();
        assert_eq!(e.kind, FailureKind::InvalidTask);
    }
}
