//! A seeded model built for one block hash and loaded on a backend: what the compute service
//! and `fingerprint` build on.

use crate::progress::Progress;
use anyhow::Result;
use powhost_core::parameter_table::pool_size_of;
use powhost_core::{Backend, ForwardPass, ModelParams, ModelWeights};
use std::sync::Arc;

/// A model built for one block and loaded on a backend.
pub struct LoadedModel {
    pub weights: Arc<ModelWeights>,
    pub forward: Box<dyn ForwardPass>,
}

impl LoadedModel {
    /// Build the seeded model and load it on `backend`, refusing before any large allocation
    /// when it cannot fit with `batch` nonces in flight.
    pub fn new(
        backend: &dyn Backend,
        params: &ModelParams,
        block_hash: &str,
        batch: usize,
        progress: &dyn Progress,
    ) -> Result<Self> {
        let weights = build_weights(
            params,
            block_hash,
            backend.working_memory_bytes(params, batch),
            progress,
        )?;
        Self::load(backend, weights)
    }

    /// Load weights already built (shared by several backends) on `backend`.
    pub fn load(backend: &dyn Backend, weights: Arc<ModelWeights>) -> Result<Self> {
        let forward = backend.load(weights.clone())?;
        Ok(Self { weights, forward })
    }
}

/// Build the seeded model, refusing before any large allocation when it (plus
/// `extra_bytes` of backend memory) cannot fit.
pub fn build_weights(
    params: &ModelParams,
    block_hash: &str,
    extra_bytes: u64,
    progress: &dyn Progress,
) -> Result<Arc<ModelWeights>> {
    let (_, pool_size) = pool_size_of(params);
    let counter = progress.counter("weight pool", pool_size as u64);
    Ok(Arc::new(ModelWeights::build(
        params,
        block_hash,
        extra_bytes,
        &|done: usize, _total: usize| counter.set(done as u64),
    )?))
}

/// Nonces per forward pass: the user's batch (at least 1: the command line checks it), else
/// the backend's preference (a GPU's free memory), else about 1024 rows of activations;
/// never more than there are nonces (the memory check counts a whole batch).
pub fn choose_batch(
    requested: Option<usize>,
    backend: &dyn Backend,
    params: &ModelParams,
    nonces: usize,
) -> usize {
    let batch = requested
        .or_else(|| backend.preferred_batch(params))
        .unwrap_or((1024 / params.seq_len).clamp(1, 256));
    batch.clamp(1, nonces.max(1))
}
