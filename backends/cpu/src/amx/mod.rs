//! The float16 GEMM on the AMX tiles: each f16 operand split exactly into two bf16
//! ([`crate::bf16_split`]), the four products accumulated in f32 by `tdpbf16ps`.
//!
//! - [`detect`]: may this process use the tiles (CPUID, XCR0, Linux's permission)?
//! - [`kernel`]: the micro-kernel (inline assembly) behind [`MicroKernel`].
//! - [`emulated`]: the same micro-kernel in portable Rust, for tests on any processor.
//! - [`gemm`]: splitting, packing and blocking around either kernel.
//! - [`packed`]: the weights packed per model (or per block) and the path's `x · Wᵀ`.
//! - [`self_check`]: the tile kernel against its emulation, before the path is chosen.

#[cfg(test)]
mod contract_tests;
pub mod detect;
pub mod emulated;
pub mod gemm;
pub mod kernel;
pub mod packed;
pub mod self_check;
#[cfg(test)]
mod summation_orders;
#[cfg(test)]
mod tests;

pub use detect::Amx;
pub use emulated::EmulatedKernel;
pub use kernel::{MicroKernel, TileKernel};
pub use packed::{AmxWeights, packed_model_bytes};
