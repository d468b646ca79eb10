//! Response shapes, with the reference handler's keys in its order.

use serde::Serialize;

/// The fields every response echoes from the request.
pub struct Header<'a> {
    pub public_key: &'a str,
    pub block_hash: &'a str,
    pub block_height: i64,
}

/// The one-shot response (docs/spec/REQUESTS.md §1.4): the valid nonces (`dist < r_target`, strict,
/// docs/spec/COMPUTATION.md §6.5) in request order, with their distances.
pub fn batch(h: &Header, nonces: &[i64], dist: &[f64], r_target: f64) -> String {
    #[derive(Serialize)]
    struct Batch<'a> {
        public_key: &'a str,
        block_hash: &'a str,
        block_height: i64,
        nonces: Vec<i64>,
        dist: Vec<f64>,
        node_id: i64,
        total_computed: usize,
        total_valid: usize,
    }
    let (valid_nonces, valid_dist) = valid(nonces, dist, r_target);
    to_json(&Batch {
        public_key: h.public_key,
        block_hash: h.block_hash,
        block_height: h.block_height,
        total_computed: nonces.len(),
        total_valid: valid_nonces.len(),
        nonces: valid_nonces,
        dist: valid_dist,
        node_id: 0,
    })
}

/// Running totals of a stream.
#[derive(Default)]
pub struct StreamTotals {
    pub batches: u64,
    pub computed: u64,
    pub valid: u64,
}

/// One streamed batch, updating `totals`.
pub fn stream_batch(
    h: &Header,
    nonces: &[i64],
    dist: &[f64],
    r_target: f64,
    totals: &mut StreamTotals,
    next_nonce: i64,
) -> String {
    #[derive(Serialize)]
    struct StreamBatch<'a> {
        public_key: &'a str,
        block_hash: &'a str,
        block_height: i64,
        nonces: Vec<i64>,
        dist: Vec<f64>,
        node_id: i64,
        batch_number: u64,
        batch_computed: usize,
        batch_valid: usize,
        total_computed: u64,
        total_valid: u64,
        next_nonce: i64,
    }
    let (valid_nonces, valid_dist) = valid(nonces, dist, r_target);
    totals.batches += 1;
    totals.computed += nonces.len() as u64;
    totals.valid += valid_nonces.len() as u64;
    to_json(&StreamBatch {
        public_key: h.public_key,
        block_hash: h.block_hash,
        block_height: h.block_height,
        batch_computed: nonces.len(),
        batch_valid: valid_nonces.len(),
        nonces: valid_nonces,
        dist: valid_dist,
        node_id: 0,
        batch_number: totals.batches,
        total_computed: totals.computed,
        total_valid: totals.valid,
        next_nonce,
    })
}

fn valid(nonces: &[i64], dist: &[f64], r_target: f64) -> (Vec<i64>, Vec<f64>) {
    nonces
        .iter()
        .zip(dist)
        .filter(|&(_, &d)| d < r_target)
        .map(|(&n, &d)| (n, d))
        .unzip()
}

fn to_json(value: &impl Serialize) -> String {
    // Serialising plain structs of numbers and strings cannot fail; distances are finite.
    serde_json::to_string(value).unwrap_or_else(|e| {
        format!(
            r#"{{"error": "could not serialise the response: {e}", "error_type": "RuntimeError"}}"#
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_keeps_strictly_smaller_distances_in_order() {
        let h = Header {
            public_key: "pk",
            block_hash: "bh",
            block_height: 3,
        };
        let body = batch(&h, &[4, 5, 6], &[1.5, 1.3, 1.4], 1.4);
        assert_eq!(
            body,
            r#"{"public_key":"pk","block_hash":"bh","block_height":3,"nonces":[5],"dist":[1.3],"node_id":0,"total_computed":3,"total_valid":1}"#
        );
    }

    #[test]
    fn stream_totals_accumulate() {
        let h = Header {
            public_key: "pk",
            block_hash: "bh",
            block_height: 3,
        };
        let mut t = StreamTotals::default();
        stream_batch(&h, &[0, 1], &[1.0, 1.5], 1.4, &mut t, 2);
        let body = stream_batch(&h, &[2, 3], &[1.0, 1.1], 1.4, &mut t, 4);
        assert!(body.ends_with(r#""batch_number":2,"batch_computed":2,"batch_valid":2,"total_computed":4,"total_valid":3,"next_nonce":4}"#), "{body}");
    }
}
