//! The two other orders of `tdpbf16ps`'s f32 additions that Intel documents, as kernels
//! beside the emulation's (see [`super::emulated`]): the tests check that tiles summing in
//! either order pass what the tile kernel must pass (the comparison with the emulation, the
//! self-check, the conformance goldens), and report on a processor with AMX which order its
//! tiles follow.

use super::emulated::{Tile, run};
use super::kernel::{MicroKernel, TileBlock};

/// `tdpbf16ps c, a, b` in the order of the SDM's pseudocode: per element, the even and the
/// odd products of the 16 pairs in two f32 sums from zero, their sum added to `c`.
fn dot_product_sdm_order(c: &mut [f32], a: &Tile<f32>, b: &Tile<f32>) {
    for (i, a_row) in a.iter().enumerate() {
        for j in 0..16 {
            let (mut even, mut odd) = (0f32, 0f32);
            for p in 0..16 {
                even += a_row[2 * p] * b[p][2 * j];
                odd += a_row[2 * p + 1] * b[p][2 * j + 1];
            }
            c[i * 16 + j] += even + odd;
        }
    }
}

/// `tdpbf16ps c, a, b` in the order of the Intrinsics Guide's pseudocode: per element, each
/// of the 32 products added to `c` in turn.
fn dot_product_guide_order(c: &mut [f32], a: &Tile<f32>, b: &Tile<f32>) {
    for (i, a_row) in a.iter().enumerate() {
        for j in 0..16 {
            for p in 0..16 {
                c[i * 16 + j] += a_row[2 * p] * b[p][2 * j];
                c[i * 16 + j] += a_row[2 * p + 1] * b[p][2 * j + 1];
            }
        }
    }
}

/// The kernel with `tdpbf16ps` summed in one documented order: a model beside the
/// emulation's, to learn on a processor with AMX which order its tiles follow (the tests
/// report each model).
#[derive(Clone, Copy, Debug)]
pub struct OrderKernel {
    name: &'static str,
    dot_product: fn(&mut [f32], &Tile<f32>, &Tile<f32>),
}

/// The SDM's order.
pub const SDM_ORDER: OrderKernel = OrderKernel {
    name: "amx emulated in the SDM's order",
    dot_product: dot_product_sdm_order,
};

/// The Intrinsics Guide's order.
pub const GUIDE_ORDER: OrderKernel = OrderKernel {
    name: "amx emulated in the Intrinsics Guide's order",
    dot_product: dot_product_guide_order,
};

impl MicroKernel for OrderKernel {
    fn run(&self, block: TileBlock<'_>) {
        run(block, self.dot_product);
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn peak_gflops(&self) -> Option<f64> {
        None
    }
}

mod tests {
    use super::*;
    use crate::{CpuBackend, GemmPath};
    use powhost_core::conformance::{check_forward_golden, golden};
    use std::sync::Arc;

    /// The conformance goldens that the tiles must pass (`tests/amx.rs`), on tiles summing in
    /// either documented order: within the agreement budget, no verdict flipped.
    #[test]
    fn the_goldens_pass_in_either_documented_order() {
        let models: [Arc<dyn MicroKernel>; 2] = [Arc::new(SDM_ORDER), Arc::new(GUIDE_ORDER)];
        for model in models {
            let backend = CpuBackend::with_gemm(GemmPath::Amx(model.clone()));
            for (preset, batch) in [("tiny", 16), ("small", 16), ("devtest", 64)] {
                let golden = golden(&format!("forward_{preset}.json"));
                let report = check_forward_golden(&backend, &golden, batch)
                    .unwrap_or_else(|e| panic!("{preset} on {}: {e:#}", model.name()));
                println!("{preset} on {}: {report:?}", model.name());
            }
        }
    }
}
