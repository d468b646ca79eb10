//! How much one request may carry: the limits every plugin (and the host) refuses beyond.

/// Most nonces one request may list (a nonce list, a batch to validate, one compute call):
/// beyond this the request is almost certainly a mistake, and its distances would not fit a
/// reply. The host refuses longer lists too (its `--nonces` and its compute calls).
pub const MAX_NONCES: usize = 10_000_000;

/// Longest text field (a block hash is 64 hex digits, a public key under 100 characters): a
/// longer one is a mistake, refused before it travels into seeds and logs.
pub const MAX_TEXT_BYTES: usize = 4096;
