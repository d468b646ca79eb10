//! The parameter table and where each parameter lives in the weight pool
//! (docs/spec/COMPUTATION.md §2.5, §3).

use crate::params::ModelParams;
use sha2::{Digest, Sha256};

/// Where a parameter's elements come from in the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// `n <= pool_size`: the contiguous slice `pool[start .. start + n]`.
    Slice { start: usize },
    /// `n > pool_size`: element `i` is `pool[((i + shift) mod n) mod pool_size]`.
    Tile { shift: usize },
}

/// One parameter: a view into the pool, never a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    pub shape: Vec<usize>,
    pub numel: usize,
    /// `int(first 8 hex digits of SHA-256(block_hash + "_" + name), 16)`.
    pub name_hash: u32,
    pub placement: Placement,
}

impl Parameter {
    /// The pool index of element `i` (the tile branch computed by index).
    #[inline]
    pub fn pool_index(&self, i: usize, pool_size: usize) -> usize {
        match self.placement {
            Placement::Slice { start } => start + i,
            Placement::Tile { shift } => ((i + shift) % self.numel) % pool_size,
        }
    }

    pub fn branch(&self) -> &'static str {
        match self.placement {
            Placement::Slice { .. } => "slice",
            Placement::Tile { .. } => "tile",
        }
    }
}

/// The table of all parameters in the reference's order, with the pool arithmetic done.
#[derive(Clone, Debug)]
pub struct ParameterTable {
    pub parameters: Vec<Parameter>,
    pub total_params: u64,
    pub pool_size: usize,
}

fn name_hash(block_hash: &str, name: &str) -> u32 {
    let digest = Sha256::digest(format!("{block_hash}_{name}").as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Names and shapes in the reference's order.
pub fn parameter_shapes(p: &ModelParams) -> Vec<(String, Vec<usize>)> {
    let hd = p.head_dim();
    let hidden = p.ffn_hidden();
    let mut out = vec![(
        "tok_embeddings.weight".to_string(),
        vec![p.vocab_size, p.dim],
    )];
    for l in 0..p.n_layers {
        let pre = format!("layers.{l}");
        out.push((
            format!("{pre}.attention.wq.weight"),
            vec![p.n_heads * hd, p.dim],
        ));
        out.push((
            format!("{pre}.attention.wk.weight"),
            vec![p.n_kv_heads * hd, p.dim],
        ));
        out.push((
            format!("{pre}.attention.wv.weight"),
            vec![p.n_kv_heads * hd, p.dim],
        ));
        out.push((
            format!("{pre}.attention.wo.weight"),
            vec![p.dim, p.n_heads * hd],
        ));
        out.push((format!("{pre}.feed_forward.w1.weight"), vec![hidden, p.dim]));
        out.push((format!("{pre}.feed_forward.w2.weight"), vec![p.dim, hidden]));
        out.push((format!("{pre}.feed_forward.w3.weight"), vec![hidden, p.dim]));
        out.push((format!("{pre}.attention_norm.weight"), vec![p.dim]));
        out.push((format!("{pre}.ffn_norm.weight"), vec![p.dim]));
    }
    out.push(("norm.weight".to_string(), vec![p.dim]));
    out.push(("output.weight".to_string(), vec![p.vocab_size, p.dim]));
    out
}

/// `total` and `pool_size = max(50000, int(total * 0.05))` without building the table
/// (cheap: used for the memory check before anything large exists).
pub fn pool_size_of(p: &ModelParams) -> (u64, usize) {
    let hd = p.head_dim() as u128;
    let (dim, hidden) = (p.dim as u128, p.ffn_hidden() as u128);
    let per_layer = (p.n_heads as u128 * hd) * dim * 2
        + (p.n_kv_heads as u128 * hd) * dim * 2
        + hidden * dim * 3
        + dim * 2;
    let total = 2 * p.vocab_size as u128 * dim + p.n_layers as u128 * per_layer + dim;
    let total = u64::try_from(total).unwrap_or(u64::MAX);
    // The reference computes int(total * 0.05) in float64.
    let pool = ((total as f64 * 0.05) as u64).max(50_000);
    (total, usize::try_from(pool).unwrap_or(usize::MAX))
}

impl ParameterTable {
    pub fn new(params: &ModelParams, block_hash: &str) -> Self {
        let (total_params, pool_size) = pool_size_of(params);
        let parameters = parameter_shapes(params)
            .into_iter()
            .map(|(name, shape)| {
                let numel: usize = shape.iter().product();
                let h = name_hash(block_hash, &name);
                let placement = if numel <= pool_size {
                    Placement::Slice {
                        start: h as usize % (pool_size - numel + 1),
                    }
                } else {
                    Placement::Tile {
                        shift: h as usize % numel,
                    }
                };
                Parameter {
                    name,
                    shape,
                    numel,
                    name_hash: h,
                    placement,
                }
            })
            .collect();
        Self {
            parameters,
            total_params,
            pool_size,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }
}
