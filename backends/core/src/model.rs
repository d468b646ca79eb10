//! Everything seeded about one model (params + block hash): the parameter table, the weight
//! pool, the RoPE table and the target. Backends build their compute model from this.

use crate::memory;
use crate::parameter_table::{Parameter, ParameterTable, pool_size_of};
use crate::params::ModelParams;
use crate::rope::RopeTable;
use crate::streams;
use crate::weight_pool::WeightPool;
use anyhow::Result;
use std::time::Instant;

pub struct ModelWeights {
    pub params: ModelParams,
    pub block_hash: String,
    pub table: ParameterTable,
    pub pool: WeightPool,
    pub rope: RopeTable,
    /// The unit target vector of this block (docs/spec/COMPUTATION.md §6.3), shared by every nonce.
    pub target: Vec<f64>,
    /// How long the pool took to draw.
    pub pool_seconds: f64,
}

/// The per-layer parameters, by role.
pub struct LayerParameters<'a> {
    pub wq: &'a Parameter,
    pub wk: &'a Parameter,
    pub wv: &'a Parameter,
    pub wo: &'a Parameter,
    pub w1: &'a Parameter,
    pub w2: &'a Parameter,
    pub w3: &'a Parameter,
    pub attention_norm: &'a Parameter,
    pub ffn_norm: &'a Parameter,
}

/// Bytes of the pool in f16, plus the draw's few percent of slack.
pub fn pool_memory_bytes(params: &ModelParams) -> u64 {
    let (_, pool_size) = pool_size_of(params);
    (pool_size as u64).saturating_mul(2).saturating_mul(26) / 25
}

impl ModelWeights {
    /// Build the model's seeded data. `extra_bytes` is what the caller will need besides
    /// (its backend's working memory): the sum is checked against the machine before any
    /// large allocation.
    pub fn build(
        params: &ModelParams,
        block_hash: &str,
        extra_bytes: u64,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Self> {
        params.validate()?;
        memory::check_fits(
            pool_memory_bytes(params).saturating_add(extra_bytes),
            "this model",
        )?;
        let table = ParameterTable::new(params, block_hash);
        let start = Instant::now();
        let pool = WeightPool::draw(block_hash, table.pool_size, progress);
        let pool_seconds = start.elapsed().as_secs_f64();
        log::info!(
            "weight pool: {} values drawn in {:.2} s",
            table.pool_size,
            pool_seconds
        );
        Ok(Self {
            params: params.clone(),
            block_hash: block_hash.to_string(),
            rope: RopeTable::new(params),
            target: streams::target(params.vocab_size, block_hash),
            table,
            pool,
            pool_seconds,
        })
    }

    fn param(&self, name: &str) -> &Parameter {
        self.table
            .get(name)
            .unwrap_or_else(|| panic!("parameter table lacks {name}"))
    }

    pub fn layer(&self, l: usize) -> LayerParameters<'_> {
        // Layer l's 9 entries follow tok_embeddings in a fixed order.
        let base = 1 + 9 * l;
        let p = &self.table.parameters[base..base + 9];
        debug_assert!(p[0].name == format!("layers.{l}.attention.wq.weight"));
        LayerParameters {
            wq: &p[0],
            wk: &p[1],
            wv: &p[2],
            wo: &p[3],
            w1: &p[4],
            w2: &p[5],
            w3: &p[6],
            attention_norm: &p[7],
            ffn_norm: &p[8],
        }
    }

    pub fn final_norm(&self) -> &Parameter {
        self.param("norm.weight")
    }

    pub fn output(&self) -> &Parameter {
        self.param("output.weight")
    }
}
