//! A seeded model built for one block hash and loaded on a backend: what every command and
//! the compute service build on.

use crate::progress;
use anyhow::Result;
use powhost_core::parameter_table::pool_size_of;
use powhost_core::poc::compute_distances;
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
    ) -> Result<Self> {
        let weights = build_weights(
            params,
            block_hash,
            backend.working_memory_bytes(params, batch),
        )?;
        let forward = backend.load(weights.clone())?;
        Ok(Self { weights, forward })
    }

    /// The distances of `nonces` in order, with a progress bar.
    pub fn distances(&self, public_key: &str, nonces: &[i64], batch: usize) -> Result<Vec<f64>> {
        let bar = progress::bar(nonces.len() as u64, "nonces");
        let dist = compute_distances(
            &*self.forward,
            &self.weights,
            public_key,
            nonces,
            batch,
            &|done| bar.set_position(done as u64),
        )?;
        bar.finish_and_clear();
        Ok(dist)
    }
}

/// Build the seeded model, refusing before any large allocation when it (plus
/// `extra_bytes` of backend memory) cannot fit.
pub fn build_weights(
    params: &ModelParams,
    block_hash: &str,
    extra_bytes: u64,
) -> Result<Arc<ModelWeights>> {
    let (_, pool_size) = pool_size_of(params);
    let progress = progress::pool_progress(pool_size);
    Ok(Arc::new(ModelWeights::build(
        params,
        block_hash,
        extra_bytes,
        &progress,
    )?))
}

/// Nonces per forward pass: the user's `--batch` (at least 1: the command line checks it),
/// else the backend's preference (a GPU's free memory), else about 1024 rows of activations;
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
