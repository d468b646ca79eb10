//! The ProofBatch's field names, shared by the validator plugin and the host's `serve`.

/// The fields of a ProofBatch (docs/spec/PROTOCOLS.md §A3): what the validator takes beside
/// its settings, and what `serve`'s `/api/v1/pow/validate` keeps of a body.
pub const PROOF_BATCH_FIELDS: &[&str] = &[
    "public_key",
    "block_hash",
    "block_height",
    "nonces",
    "dist",
    "node_id",
];
