//! The node software's signature on its control requests, checked as the network's engine
//! checks it (python-ecdsa in its `pow/service/auth.py`): `X-Signature` is base64 of a
//! 64-byte r‖s ECDSA secp256k1 signature over SHA-256 of the raw request body, under the key
//! in `SIGNER_PUBKEY`. Keys and signatures are decoded as Python's `base64.b64decode` decodes
//! them, and high-s signatures are accepted, as python-ecdsa accepts them: a node that
//! passes the reference passes here, and nothing else does (tests/golden/signatures.json,
//! made with python-ecdsa, holds the reference's verdicts).

use k256::ecdsa::signature::Verifier;
use k256::ecdsa::{Signature, VerifyingKey};
use std::fmt;

/// The key control requests must be signed with.
#[derive(Clone)]
pub struct SignerKey(VerifyingKey);

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let compressed = self.0.to_encoded_point(true);
        write!(f, "SignerKey({})", hex(compressed.as_bytes()))
    }
}

impl SignerKey {
    /// A key as the reference reads `SIGNER_PUBKEY`: base64 of a secp256k1 point, 33 bytes
    /// compressed, 64 raw (x‖y), or 65 uncompressed (04‖x‖y) or hybrid (06/07‖x‖y). The
    /// error says what is wrong with it.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = python_b64decode(text.as_bytes()).ok_or_else(|| {
            "it is not base64 (write the key's bytes in standard base64, with its `=` padding)"
                .to_string()
        })?;
        let sec1 = match (bytes.len(), bytes.first()) {
            (33, Some(0x02 | 0x03)) => bytes,
            (33, _) => {
                return Err(
                    "its 33 bytes are not a compressed key (the first byte must be 02 or 03)"
                        .into(),
                );
            }
            (64, _) => [&[0x04], &bytes[..]].concat(),
            (65, Some(0x04)) => bytes,
            // A hybrid key states the parity of y in its prefix; it must agree with y.
            (65, Some(prefix @ (0x06 | 0x07))) => {
                if (prefix & 1) != (bytes[64] & 1) {
                    return Err("its hybrid prefix disagrees with the parity of y".into());
                }
                [&[0x04], &bytes[1..]].concat()
            }
            (65, _) => {
                return Err(
                    "its 65 bytes are not an uncompressed key (the first byte must be 04, 06 or 07)"
                        .into(),
                );
            }
            (n, _) => {
                return Err(format!(
                    "it is {n} bytes; a secp256k1 public key is 33 bytes (compressed), 64 (raw x||y) or 65 (uncompressed)"
                ));
            }
        };
        VerifyingKey::from_sec1_bytes(&sec1)
            .map(Self)
            .map_err(|_| "it is not a point on the secp256k1 curve".into())
    }

    /// Whether `signature` (the `X-Signature` header's bytes) is this key's signature of
    /// `body`.
    pub fn verifies(&self, body: &[u8], signature: &[u8]) -> bool {
        let Some(bytes) = python_b64decode(signature) else {
            return false;
        };
        // Exactly r‖s, 32 bytes each, 0 < r, s < n: python-ecdsa's default decoding, which
        // refuses DER.
        let Ok(signature) = Signature::from_slice(&bytes) else {
            return false;
        };
        // k256 accepts only low-s signatures; (r, n − s) verifies exactly when (r, s) does,
        // and python-ecdsa accepts both.
        let signature = signature.normalize_s().unwrap_or(signature);
        self.0.verify(body, &signature).is_ok()
    }
}

/// Python's `base64.b64decode(text)`, which the reference uses on keys and signatures:
/// characters outside the standard alphabet are skipped, padding that completes a quantum
/// ends the input (whatever follows), and data that stops mid-quantum without its padding
/// is an error, as is any non-ASCII character. `None` where Python raises.
pub fn python_b64decode(text: &[u8]) -> Option<Vec<u8>> {
    if !text.is_ascii() {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut quad_pos, mut pads, mut left) = (0usize, 0usize, 0u8);
    for &c in text {
        if c == b'=' {
            // Padding counts only after two characters of a quantum.
            if quad_pos >= 2 {
                pads += 1;
                if quad_pos + pads >= 4 {
                    return Some(out);
                }
            }
            continue;
        }
        let Some(v) = sextet(c) else { continue };
        pads = 0;
        match quad_pos {
            0 => left = v,
            1 => {
                out.push((left << 2) | (v >> 4));
                left = v & 0x0f;
            }
            2 => {
                out.push((left << 4) | (v >> 2));
                left = v & 0x03;
            }
            _ => out.push((left << 6) | v),
        }
        quad_pos = (quad_pos + 1) % 4;
    }
    (quad_pos == 0).then_some(out)
}

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::golden;

    #[test]
    fn base64_is_decoded_as_python_decodes_it() {
        for case in golden("signatures.json")["b64decode"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let expected = case["decoded_hex"].as_str();
            let decoded = python_b64decode(text.as_bytes()).map(|b| hex(&b));
            assert_eq!(decoded.as_deref(), expected, "b64decode({text:?})");
        }
    }

    #[test]
    fn keys_are_read_as_the_reference_reads_them() {
        let keys = golden("signatures.json")["keys"].clone();
        for case in keys.as_array().unwrap() {
            let text = case["signer_pubkey"].as_str().unwrap();
            let parsed = SignerKey::from_base64(text);
            assert_eq!(
                parsed.is_ok(),
                case["accepted"].as_bool().unwrap(),
                "{}: {parsed:?}",
                case["what"]
            );
        }
    }

    #[test]
    fn bad_keys_are_refused_saying_what_is_wrong() {
        let why = |text: &str| SignerKey::from_base64(text).unwrap_err();
        assert!(
            why("not base64 at all!").contains("not base64"),
            "{}",
            why("x")
        );
        assert!(why("AAAA").contains("it is 3 bytes"));
        let off_curve = format!("Ag{}", "A".repeat(42)); // 02 ‖ x = 0: x³ + 7 = 7, no square
        assert!(
            why(&off_curve).contains("not a point"),
            "{}",
            why(&off_curve)
        );
        assert!(why(&format!("BA{}", "A".repeat(42))).contains("not a compressed key"));
    }

    #[test]
    fn signatures_get_the_reference_verdicts() {
        let vectors = golden("signatures.json")["signatures"].clone();
        let mut checked = 0;
        for case in vectors.as_array().unwrap() {
            let key = SignerKey::from_base64(case["signer_pubkey"].as_str().unwrap()).unwrap();
            let signature = case["signature"].as_str().unwrap();
            if signature.is_empty() {
                continue; // "Missing signature": the middleware's, before any check
            }
            let body = case["body"].as_str().unwrap().as_bytes();
            let expected = case["expected"].as_str().unwrap() == "ok";
            assert_eq!(
                key.verifies(body, signature.as_bytes()),
                expected,
                "{} ({} key)",
                case["what"],
                case["key_encoding"]
            );
            checked += 1;
        }
        assert!(checked >= 80, "only {checked} vectors");
    }
}
