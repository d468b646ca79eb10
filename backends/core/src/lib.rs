//! The seeded math of Gonka's Proof-of-Compute, shared by every backend
//! (`docs/spec/COMPUTATION.md`): numpy-compatible random streams, model params and presets, the
//! parameter table and weight pool, nonce inputs, permutations, the target, the RoPE table,
//! distances, and the [`Backend`] trait.

pub mod agreement;
pub mod backend;
// Also built for this crate's own tests, so that its unit tests run without the feature.
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod distance;
pub mod gpu_forward;
pub mod memory;
pub mod model;
pub mod numpy_sum;
pub mod parameter_table;
pub mod params;
pub mod poc;
pub mod rng;
pub mod rope;
pub mod streams;
pub mod weight_pool;

pub use backend::{Backend, ForwardPass, GpuDevice, GpuDriver};
pub use model::ModelWeights;
pub use params::ModelParams;
