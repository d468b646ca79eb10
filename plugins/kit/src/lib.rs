//! What powhost's plugins share: the WIT bindings of wit/pow.wit (generated once, here), the
//! handler wrapper every plugin exports through, and request fields checked one by one, each
//! failure a Python-style error type (as the network's reference handlers report them) and a
//! sentence that names the field and says what to fix. The field checks make no host calls, so
//! they are unit-tested natively.
//!
//! A plugin states only its own logic:
//!
//! ```ignore
//! struct Mine;
//! impl powhost_plugin_kit::Handler for Mine {
//!     fn info() -> PluginInfo { … }
//!     fn handle(request: &str) -> Result<String, RequestError> { … }
//! }
//! powhost_plugin_kit::export_handler!(Mine);
//! ```
//!
//! The bindings (feature `bindings`, on by default) are left out where only the checks and
//! limits are wanted, as in the host, which takes [`MAX_NONCES`] from here.
//!
//! One module per concept: [`RequestError`] and the words errors use (`errors`), the request
//! limits (`limits`), field checks (`fields`, and `nonce_list` for the one list decoded element
//! by element; `numbers` for number literals no field can hold), the model params (`params`), the ProofBatch's fields (`proof_batch`), the WIT
//! bindings (`bindings`), the handler wrapper (`handler`), compute failures as Python-style
//! errors (`compute_errors`), and the fuzz round trips (`round_trip`). Everything is used from
//! the crate root.

#[cfg(feature = "bindings")]
pub mod bindings;
#[cfg(feature = "bindings")]
mod compute_errors;
mod errors;
mod fields;
#[cfg(feature = "bindings")]
mod handler;
mod limits;
mod nonce_list;
mod numbers;
mod params;
mod proof_batch;
mod round_trip;

pub use errors::{RequestError, kind_of, kind_of_text};
pub use fields::{
    Fields, boolean, devices, integer, integer_field, number_list, object, object_field, optional,
    positive_number, reject_unknown, required, text_field,
};
pub use limits::{MAX_NONCES, MAX_TEXT_BYTES};
pub use nonce_list::nonce_list;
#[cfg(feature = "bindings")]
pub use params::fill_params;
pub use params::{PARAMS_FIELDS, PartialParams, params};
pub use proof_batch::PROOF_BATCH_FIELDS;
#[doc(hidden)]
pub use round_trip::{check_round_trip, fuzz_inputs, replay_round_trip};

#[cfg(feature = "bindings")]
pub use bindings::gonka::pow::types::{
    BackendInfo, ComputeError, ComputeErrorKind, Level, ModelParams, PluginInfo, Reply,
    ReplyStatus, StopReason, Task,
};
#[cfg(feature = "bindings")]
pub use bindings::gonka::pow::{compute, log, session};
#[cfg(feature = "bindings")]
pub use compute_errors::{compute_error, compute_failed};
#[cfg(feature = "bindings")]
pub use handler::{Handler, reply};
