//! The validation request (docs/spec/REQUESTS.md §2.1): a ProofBatch
//! (docs/spec/PROTOCOLS.md §A3) and the validator's settings, checked field by field. Pure Rust
//! with no host calls, so it is unit-tested natively.

/// Most nonces one batch may hold: the kit's (and the host's) limit.
pub use powhost_plugin_kit::MAX_NONCES;
use powhost_plugin_kit::{
    PROOF_BATCH_FIELDS, PartialParams, RequestError, devices, integer, integer_field, nonce_list,
    number_list, object, object_field, optional, params, positive_number, reject_unknown, required,
    text_field,
};

/// The network's defaults (docs/spec/PROTOCOLS.md §A3, the node software's init request).
pub const DEFAULT_R_TARGET: f64 = 1.4013564660458173;
pub const DEFAULT_FRAUD_THRESHOLD: f64 = 1e-7;

/// A checked request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub public_key: String,
    pub block_hash: String,
    pub block_height: i64,
    pub nonces: Vec<i64>,
    /// The distances the prover claimed, one per nonce.
    pub received_dist: Vec<f64>,
    pub node_id: i64,
    pub r_target: f64,
    pub fraud_threshold: f64,
    /// Missing fields are filled from `mainnet`, the network's model.
    pub params: PartialParams,
    pub devices: Vec<String>,
    /// Check a seeded random sample of the nonces instead of all of them.
    pub sample: Option<Sample>,
    /// Refuse a batch for any other block hash (the node's own, when the host serves one).
    pub expected_block_hash: Option<String>,
    /// Check the request and answer without computing anything.
    pub dry_run: bool,
}

/// A spot check: `k` nonces drawn from a ChaCha8 stream seeded with `seed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub k: usize,
    pub seed: u64,
}

/// What the request may hold beside the ProofBatch (`PROOF_BATCH_FIELDS`).
const SETTINGS: &[&str] = &[
    "r_target",
    "fraud_threshold",
    "params",
    "devices",
    "sample",
    "expected_block_hash",
    "dry_run",
];

impl Request {
    /// The request as JSON that `parse` reads back to the same request.
    pub fn to_json(&self) -> String {
        let mut v = serde_json::json!({
            "public_key": self.public_key, "block_hash": self.block_hash,
            "block_height": self.block_height, "nonces": self.nonces,
            "dist": self.received_dist, "node_id": self.node_id, "r_target": self.r_target,
            "fraud_threshold": self.fraud_threshold, "params": self.params.to_json(),
            "dry_run": self.dry_run,
        });
        if !self.devices.is_empty() {
            v["devices"] = self.devices.clone().into();
        }
        if let Some(s) = self.sample {
            v["sample"] = serde_json::json!({"k": s.k, "seed": s.seed});
        }
        if let Some(h) = &self.expected_block_hash {
            v["expected_block_hash"] = h.clone().into();
        }
        v.to_string()
    }
}

/// Parse and check one request.
pub fn parse(text: &str) -> Result<Request, RequestError> {
    let input = object(
        text,
        "(a ProofBatch: public_key, block_hash, block_height, nonces, dist)",
    )?;
    let known: Vec<&str> = PROOF_BATCH_FIELDS.iter().chain(SETTINGS).copied().collect();
    reject_unknown("the request", input.keys(), &known)?;
    let public_key = text_field(
        &input,
        "public_key",
        "the prover's public key the nonces are seeded with",
    )?;
    let block_hash = text_field(
        &input,
        "block_hash",
        "the block hash the model is seeded from",
    )?;
    let block_height = integer_field(
        &input,
        "block_height",
        "the PoC stage's block height, echoed back",
    )?;
    if block_height < 0 {
        return Err(RequestError::value(format!(
            "`block_height` must be 0 or more, got {block_height}"
        )));
    }
    let nonces = nonce_list(
        required(&input, "nonces", "the nonces to recompute")?.get(),
        "nonces",
        MAX_NONCES,
    )?;
    let received_dist = number_list(
        required(&input, "dist", "the distance claimed for each nonce")?,
        "dist",
        MAX_NONCES,
    )?;
    if nonces.len() != received_dist.len() {
        return Err(RequestError::value(format!(
            "`nonces` lists {} nonces but `dist` {} distances; give one claimed distance per nonce",
            nonces.len(),
            received_dist.len()
        )));
    }
    let node_id = match optional(&input, "node_id") {
        None => 0,
        Some(raw) => integer(raw.get(), "node_id")?,
    };
    let r_target = match optional(&input, "r_target") {
        None => DEFAULT_R_TARGET,
        Some(raw) => positive_number(raw, "r_target")?,
    };
    let fraud_threshold = match optional(&input, "fraud_threshold") {
        None => DEFAULT_FRAUD_THRESHOLD,
        Some(raw) => {
            let t = positive_number(raw, "fraud_threshold")?;
            if t > 1.0 {
                return Err(RequestError::value(format!(
                    "`fraud_threshold` is a probability and must be at most 1, got {t}"
                )));
            }
            t
        }
    };
    let params = match optional(&input, "params") {
        None => PartialParams::default(),
        Some(raw) => params(raw)?,
    };
    let devices = match optional(&input, "devices") {
        None => Vec::new(),
        Some(raw) => devices(raw)?,
    };
    let sample = match optional(&input, "sample") {
        None => None,
        Some(raw) => Some(sample(raw)?),
    };
    let expected_block_hash = match optional(&input, "expected_block_hash") {
        None => None,
        Some(_) => Some(text_field(&input, "expected_block_hash", "")?),
    };
    if let Some(expected) = &expected_block_hash
        && expected != &block_hash
    {
        return Err(RequestError::value(format!(
            "this batch is for block hash `{block_hash}`, but this validator was initialised for `{expected}`; send it to a node initialised for that block (POST /api/v1/pow/init/validate)"
        )));
    }
    let dry_run = match optional(&input, "dry_run") {
        None => false,
        Some(raw) => serde_json::from_str::<bool>(raw.get()).map_err(|_| {
            RequestError::wrong_type(
                "dry_run",
                "true or false",
                &powhost_plugin_kit::kind_of_text(raw.get()),
            )
        })?,
    };
    Ok(Request {
        public_key,
        block_hash,
        block_height,
        nonces,
        received_dist,
        node_id,
        r_target,
        fraud_threshold,
        params,
        devices,
        sample,
        expected_block_hash,
        dry_run,
    })
}

fn sample(raw: &serde_json::value::RawValue) -> Result<Sample, RequestError> {
    let fields = object_field(raw, "sample")?;
    reject_unknown("sample", fields.keys(), &["k", "seed"])?;
    let k = integer_field(&fields, "k", "how many nonces to check (sample.k)")?;
    if k < 1 {
        return Err(RequestError::value(format!(
            "`sample.k` must be at least 1, got {k}"
        )));
    }
    let seed = integer_field(
        &fields,
        "seed",
        "the seed the sample is drawn with (sample.seed)",
    )?;
    if seed < 0 {
        return Err(RequestError::value(format!(
            "`sample.seed` must be 0 or more, got {seed}"
        )));
    }
    Ok(Sample {
        k: k as usize,
        seed: seed as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#""public_key": "pk", "block_hash": "bh", "block_height": 3"#;

    fn err(fields: &str) -> RequestError {
        parse(&format!("{{{fields}}}")).unwrap_err()
    }

    #[test]
    fn a_proof_batch_parses_with_the_network_defaults() {
        let r = parse(&format!(
            r#"{{{OK}, "nonces": [4, 9], "dist": [1.2, 1.39], "node_id": 0}}"#
        ))
        .unwrap();
        assert_eq!(r.nonces, vec![4, 9]);
        assert_eq!(r.received_dist, vec![1.2, 1.39]);
        assert_eq!(r.r_target, DEFAULT_R_TARGET);
        assert_eq!(r.fraud_threshold, DEFAULT_FRAUD_THRESHOLD);
        assert_eq!(r.params, PartialParams::default());
        assert_eq!(r.sample, None);
        assert!(!r.dry_run);
        // An empty batch is a batch.
        assert!(parse(&format!(r#"{{{OK}, "nonces": [], "dist": []}}"#)).is_ok());
    }

    #[test]
    fn bad_fields_are_named() {
        let e = err(&format!(r#"{OK}, "nonces": [1, 2], "dist": [1.0]"#));
        assert!(
            e.message.contains("one claimed distance per nonce"),
            "{e:?}"
        );
        let e = err(&format!(r#"{OK}, "nonces": [1], "dist": ["1.0"]"#));
        assert_eq!(e.error_type, "TypeError");
        assert!(e.message.contains("dist[0]"), "{e:?}");
        let e = err(&format!(r#"{OK}, "nonces": [1.5], "dist": [1.0]"#));
        assert!(e.message.contains("nonces[0]"), "{e:?}");
        let e = err(&format!(r#"{OK}, "nonces": [1]"#));
        assert_eq!(e.error_type, "KeyError");
        let e = err(&format!(r#"{OK}, "nonces": [1], "dist": [1], "colour": 1"#));
        assert!(e.message.contains("unknown field `colour`"), "{e:?}");
        let e = err(&format!(
            r#"{OK}, "nonces": [1], "dist": [1], "fraud_threshold": 2"#
        ));
        assert!(e.message.contains("at most 1"), "{e:?}");
        let e = err(&format!(
            r#"{OK}, "nonces": [1], "dist": [1], "sample": {{"k": 0, "seed": 1}}"#
        ));
        assert!(e.message.contains("sample.k"), "{e:?}");
        let e = err(&format!(
            r#"{OK}, "nonces": [1], "dist": [1], "sample": {{"k": 2}}"#
        ));
        assert_eq!(e.error_type, "KeyError");
        let e = err(&format!(
            r#"{OK}, "nonces": [1], "dist": [1], "dry_run": "yes""#
        ));
        assert_eq!(e.error_type, "TypeError");
        assert_eq!(parse("[1]").unwrap_err().error_type, "TypeError");
        assert_eq!(parse("{").unwrap_err().error_type, "JSONDecodeError");
    }

    #[test]
    fn another_block_hash_is_refused_with_a_reason() {
        let e = err(&format!(
            r#"{OK}, "nonces": [1], "dist": [1], "expected_block_hash": "other""#
        ));
        assert!(e.message.contains("initialised for `other`"), "{e:?}");
        assert!(
            parse(&format!(
                r#"{{{OK}, "nonces": [1], "dist": [1], "expected_block_hash": "bh"}}"#
            ))
            .is_ok()
        );
    }

    /// The fuzz target `validator_request`'s check on its seeds and past findings: a request
    /// that parses, written back, parses to the same request.
    #[test]
    fn fuzz_inputs_round_trip() {
        powhost_plugin_kit::replay_round_trip("validator_request", parse, Request::to_json);
    }
}
