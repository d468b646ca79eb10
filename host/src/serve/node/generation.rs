//! The generation loop and the nonce arithmetic it walks.

use super::super::App;
use super::init::InitRequest;
use super::proof_batches::GeneratedFor;
use super::{Phase, Shared};
use crate::compute_service::{FailureKind, Task};
use std::sync::atomic::Ordering;

/// The nonces of node `node_id` of `node_count`, worker group `group` of `groups`
/// (docs/spec/COMPUTATION.md §8): `node_id + group·node_count + x·groups·node_count`, x = 0, 1, ….
#[derive(Clone, Debug)]
pub struct NonceSequence {
    first: i64,
    step: i64,
    next_x: i64,
}

impl NonceSequence {
    pub fn new(node_id: i64, node_count: i64, group: i64, groups: i64) -> Option<Self> {
        Some(Self {
            first: node_id.checked_add(group.checked_mul(node_count)?)?,
            step: groups.checked_mul(node_count)?,
            next_x: 0,
        })
    }

    /// The next `n` nonces, or those of them below the largest 64-bit integer, without moving
    /// past them (a stopped batch is computed again); empty once none is left.
    pub fn peek(&self, n: usize) -> Vec<i64> {
        (0..n as i64)
            .map_while(|i| {
                self.next_x
                    .checked_add(i)?
                    .checked_mul(self.step)?
                    .checked_add(self.first)
            })
            .collect()
    }

    pub fn advance(&mut self, n: usize) {
        self.next_x += n as i64;
    }
}

/// The generation loop (docs/spec/PROTOCOLS.md §A5–A6): build the model, then while the phase is
/// GENERATE compute this node's next batch and add its valid nonces to the ProofBatches;
/// otherwise wait for the phase to change. Ends when the controller or the server stops.
///
/// Worker groups: the reference runs one worker per GPU group g of G on the sequence
/// `node_id + g·node_count + x·G·node_count`; together the G sequences are exactly
/// `node_id + m·node_count`, m = 0, 1, …, which is what this one loop computes in order,
/// while the backend spreads each batch over its devices.
pub(super) fn generate(init: &InitRequest, shared: &Shared, app: &App) {
    let task = Task {
        block_hash: init.block_hash.clone(),
        public_key: init.public_key.clone(),
        params: init.params.clone(),
        devices: Vec::new(),
    };
    let fail = |message: String| {
        log::error!("{message}");
        *shared.failure.lock().unwrap() = Some(message);
    };
    if let Err(e) = app.host.compute.prepare(&task) {
        return fail(format!(
            "building the model for block {} failed: {e}",
            init.block_hash
        ));
    }
    shared.model_ready.store(true, Ordering::SeqCst);
    let batch = app.host.compute.batch_for(&task.params);
    let Some(mut sequence) = NonceSequence::new(init.node_id.max(0), init.node_count.max(1), 0, 1)
    else {
        return fail("the nonce sequence overflows 64-bit integers".into());
    };
    let to = GeneratedFor {
        url: init.url.clone(),
        public_key: init.public_key.clone(),
        block_hash: init.block_hash.clone(),
        block_height: init.block_height,
        node_id: init.node_id,
    };
    let assigned = init.node_id >= 0 && init.node_count >= 1;
    while !shared.stop.is_stopping() {
        // Taken before the phase is looked at, so that a change in between aborts it.
        let stop = shared.next_batch();
        {
            let phase = shared.phase_lock();
            if *phase != Phase::Generate || !assigned {
                let _phase = shared.changed.wait_while(phase, |p| {
                    (*p != Phase::Generate || !assigned) && !shared.stop.is_stopping()
                });
                continue;
            }
        }
        let nonces = sequence.peek(batch);
        if nonces.is_empty() {
            let message = format!(
                "every nonce of node {} of {} below 2^63 is computed: the next would pass the largest 64-bit integer",
                init.node_id, init.node_count
            );
            log::warn!("generation ended: {message}");
            *shared.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
            return;
        }
        match app.host.compute.distances(&task, &nonces, &stop) {
            Ok(dist) => {
                sequence.advance(nonces.len());
                let (valid_nonces, valid_dist): (Vec<i64>, Vec<f64>) = nonces
                    .iter()
                    .zip(&dist)
                    .filter(|&(_, &d)| d < init.r_target)
                    .unzip();
                shared
                    .computed
                    .fetch_add(nonces.len() as u64, Ordering::Relaxed);
                shared
                    .valid
                    .fetch_add(valid_nonces.len() as u64, Ordering::Relaxed);
                let metrics = &app.host.metrics;
                metrics.nonces_valid(app.host.compute.backend().name(), valid_nonces.len());
                app.proof_batches.add(&to, &valid_nonces, &valid_dist);
            }
            // A phase change or stop before the batch started: it is computed when
            // generation resumes.
            Err(e) if e.kind == FailureKind::Stopped => {}
            Err(e) => return fail(format!("generation stopped: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_sequences_follow_the_spec() {
        let s = NonceSequence::new(2, 3, 0, 1).unwrap();
        assert_eq!(s.peek(4), vec![2, 5, 8, 11]);
        let mut s = NonceSequence::new(1, 4, 1, 2).unwrap();
        assert_eq!(s.peek(3), vec![5, 13, 21]);
        s.advance(3);
        assert_eq!(s.peek(1), vec![29]);
        // The G groups' sequences together are node_id + m·node_count, each once.
        let mut all: Vec<i64> = (0..3)
            .flat_map(|g| NonceSequence::new(2, 5, g, 3).unwrap().peek(10))
            .collect();
        all.sort();
        assert_eq!(all, (0..30).map(|m| 2 + 5 * m).collect::<Vec<_>>());
        assert!(NonceSequence::new(1, i64::MAX, 2, 1).is_none());
    }

    #[test]
    fn the_nonces_below_the_largest_integer_are_all_given_then_none() {
        // Past i64::MAX: the nonces that fit, then none; never a wrap.
        let mut s = NonceSequence::new(i64::MAX - 1, 1, 0, 1).unwrap();
        assert_eq!(s.peek(5), vec![i64::MAX - 1, i64::MAX]);
        s.advance(2);
        assert!(s.peek(5).is_empty());
        // A node_count of 2^62 leaves node 3 two nonces.
        let mut s = NonceSequence::new(3, 1 << 62, 0, 1).unwrap();
        assert_eq!(s.peek(100), vec![3, 3 + (1 << 62)]);
        s.advance(2);
        assert!(s.peek(100).is_empty());
    }
}
