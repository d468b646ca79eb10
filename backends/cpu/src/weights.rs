//! Weights as f32 views for the GEMMs, without per-parameter copies of the pool.

use powhost_core::ModelWeights;
use powhost_core::parameter_table::{Parameter, Placement};
use rayon::prelude::*;

pub enum WeightStore {
    /// The whole pool widened to f32 once: slice-branch weights are views into it.
    WidenedPool { pool: Vec<f32> },
    /// Large pools stay f16 only; weights are widened block by block when used.
    OnTheFly,
    /// The AMX path's weights (packed per model, or per block as `OnTheFly` widens them).
    Amx(crate::amx::AmxWeights),
}

impl WeightStore {
    pub fn new(weights: &ModelWeights, widen_limit_bytes: u64) -> Self {
        let pool = weights.pool.values();
        if pool.len() as u64 * 4 <= widen_limit_bytes {
            let mut out = vec![0f32; pool.len()];
            out.par_chunks_mut(1 << 16)
                .zip(pool.par_chunks(1 << 16))
                .for_each(|(o, i)| crate::simd::widen_f16(i, o));
            Self::WidenedPool { pool: out }
        } else {
            Self::OnTheFly
        }
    }

    /// `p` as one f32 slice, when it is widened ahead (a slice of a widened pool).
    pub fn widened(&self, p: &Parameter) -> Option<&[f32]> {
        match (self, p.placement) {
            (Self::WidenedPool { pool }, Placement::Slice { start }) => {
                Some(&pool[start..start + p.numel])
            }
            _ => None,
        }
    }

    /// A whole (small) parameter as f32: used for the norm weights.
    pub fn vector(&self, weights: &ModelWeights, p: &Parameter) -> Vec<f32> {
        let mut out = vec![0f32; p.numel];
        weights.pool.widen_into(p, &mut out);
        out
    }
}

/// Elements `first .. first + out.len()` of `p`, widened (exact) to f32 on this thread.
pub fn widen_rows_here(weights: &ModelWeights, p: &Parameter, first: usize, out: &mut [f32]) {
    let mut out = out;
    for run in weights.pool.runs(p, first, out.len()) {
        let (head, rest) = out.split_at_mut(run.len());
        crate::simd::widen_f16(run, head);
        out = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Widening by pool runs gives every element the f16 the pool defines for it, in both
    /// branches and from any starting element.
    #[test]
    fn widening_equals_the_elements_for_slices_and_tiles() {
        // small: the output projection takes the tile branch.
        let params = powhost_core::ModelParams::preset("small").unwrap();
        let weights = ModelWeights::build(&params, "0a1b", 0, &|_, _| {}).unwrap();
        let (layer, output) = (weights.layer(1), weights.output());
        assert!(matches!(output.placement, Placement::Tile { .. }));
        for p in [layer.w1, output] {
            for (first, len) in [
                (0, p.numel),
                (p.numel / 5 + 7, p.numel / 2),
                (p.numel - 3, 3),
            ] {
                let mut got = vec![f32::NAN; len];
                widen_rows_here(&weights, p, first, &mut got);
                for (k, g) in got.iter().enumerate() {
                    let want = weights.pool.element(p, first + k).to_f32();
                    assert_eq!(g.to_bits(), want.to_bits(), "{}[{}]", p.name, first + k);
                }
            }
        }
    }
}
