//! Generated nonces on their way to the node software: valid nonces accumulate per
//! destination and are sealed into one ProofBatch every callback interval (the reference
//! merges a node's batches between sends under the first one's header), which the outbox
//! then delivers to `{url}/generated`.

use crate::delivery::{Outbox, join};
use serde::Serialize;
use std::sync::Mutex;

/// Which ProofBatch generated nonces belong to.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedFor {
    /// The init request's `url`: batches go to `{url}/generated`.
    pub url: String,
    pub public_key: String,
    pub block_hash: String,
    pub block_height: i64,
    pub node_id: i64,
}

struct OpenBatch {
    to: GeneratedFor,
    nonces: Vec<i64>,
    dist: Vec<f64>,
}

/// ProofBatches being filled, one per destination.
#[derive(Default)]
pub struct ProofBatches {
    open: Mutex<Vec<OpenBatch>>,
}

impl ProofBatches {
    fn open(&self) -> std::sync::MutexGuard<'_, Vec<OpenBatch>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Valid nonces of one computed batch; sent with the next seal.
    pub fn add(&self, to: &GeneratedFor, nonces: &[i64], dist: &[f64]) {
        if nonces.is_empty() {
            return;
        }
        let mut open = self.open();
        match open.iter_mut().find(|b| &b.to == to) {
            Some(batch) => {
                batch.nonces.extend_from_slice(nonces);
                batch.dist.extend_from_slice(dist);
            }
            None => open.push(OpenBatch {
                to: to.clone(),
                nonces: nonces.to_vec(),
                dist: dist.to_vec(),
            }),
        }
    }

    /// Batches holding nonces not yet sealed.
    pub fn pending(&self) -> usize {
        self.open().len()
    }

    /// Seal what accumulated into ProofBatches, one per destination, and hand them to the
    /// outbox.
    pub fn seal_into(&self, outbox: &Outbox) {
        let open = std::mem::take(&mut *self.open());
        for batch in open {
            let (url, body, what) = batch.seal();
            outbox.add(url, body, what);
        }
    }
}

impl OpenBatch {
    /// (url, body, what) of the ProofBatch, keys in the reference's order.
    fn seal(self) -> (String, String, String) {
        #[derive(Serialize)]
        struct ProofBatch<'a> {
            public_key: &'a str,
            block_hash: &'a str,
            block_height: i64,
            nonces: &'a [i64],
            dist: &'a [f64],
            node_id: i64,
        }
        let body = serde_json::to_string(&ProofBatch {
            public_key: &self.to.public_key,
            block_hash: &self.to.block_hash,
            block_height: self.to.block_height,
            nonces: &self.nonces,
            dist: &self.dist,
            node_id: self.to.node_id,
        })
        .expect("a ProofBatch serialises");
        (
            join(&self.to.url, "generated"),
            body,
            format!("ProofBatch of {} nonces", self.nonces.len()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_nonces_merge_per_destination() {
        let batches = ProofBatches::default();
        let to = GeneratedFor {
            url: "http://x".into(),
            public_key: "pk".into(),
            block_hash: "bh".into(),
            block_height: 1,
            node_id: 2,
        };
        let other = GeneratedFor {
            node_id: 3,
            ..to.clone()
        };
        batches.add(&to, &[2, 5], &[1.3, 1.2]);
        batches.add(&to, &[], &[]);
        batches.add(&other, &[7], &[1.0]);
        batches.add(&to, &[8], &[1.1]);
        assert_eq!(batches.pending(), 2);
        let sealed: Vec<_> = std::mem::take(&mut *batches.open())
            .into_iter()
            .map(OpenBatch::seal)
            .collect();
        assert_eq!(batches.pending(), 0);
        assert_eq!(sealed.len(), 2);
        assert_eq!(sealed[0].0, "http://x/generated");
        assert_eq!(
            sealed[0].1,
            r#"{"public_key":"pk","block_hash":"bh","block_height":1,"nonces":[2,5,8],"dist":[1.3,1.2,1.1],"node_id":2}"#
        );
        assert_eq!(sealed[0].2, "ProofBatch of 3 nonces");
        assert!(sealed[1].1.contains(r#""nonces":[7]"#));
    }
}
