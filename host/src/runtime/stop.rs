//! One way to stop work: a tree of stop tokens, process → transport → job → plugin call.
//!
//! A token stops with one of two strengths. *Finish* lets the batch in flight complete and be
//! delivered, then stops before the next one (the first Ctrl-C or SIGTERM, a server's
//! shutdown, the platform's job-stop, a reader that went away). *Abort* also interrupts a
//! multi-pass compute call between forward passes (`/cancel`, a `/runsync` caller that hung
//! up, a phase change under generation). A token may carry a deadline (the request's time
//! limit), which interrupts like an abort but is reported as a deadline. A child sees every
//! stop of its ancestors and its own; stopping a child leaves its parent running.

use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why work should stop before its next batch, as a plugin is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Finished or aborted by a caller, a signal or a shutdown.
    Cancelled,
    /// The request's time limit passed.
    Deadline,
}

/// A node of the stop tree. Cloning gives another handle to the same node.
#[derive(Clone, Debug, Default)]
pub struct Stop {
    finish: CancellationToken,
    abort: CancellationToken,
    deadline: Option<Instant>,
}

impl Stop {
    /// A root: stops only when told to.
    pub fn new() -> Self {
        Self::default()
    }

    /// A child: stops when this node stops (with the same strength), or when told to itself.
    pub fn child(&self) -> Self {
        Self {
            finish: self.finish.child_token(),
            abort: self.abort.child_token(),
            deadline: self.deadline,
        }
    }

    /// A child that also stops at `deadline` (or at this node's, if that is earlier).
    pub fn child_until(&self, deadline: Instant) -> Self {
        let mut child = self.child();
        child.deadline = Some(self.deadline.map_or(deadline, |d| d.min(deadline)));
        child
    }

    /// Stop after the batch in flight, which completes and is delivered.
    pub fn finish(&self) {
        self.finish.cancel();
    }

    /// Stop now: a compute call in progress stops between forward passes.
    pub fn abort(&self) {
        self.abort.cancel();
    }

    /// Whether this node was told to stop, with either strength (the deadline aside).
    pub fn is_stopping(&self) -> bool {
        self.finish.is_cancelled() || self.abort.is_cancelled()
    }

    /// Whether this node was aborted.
    pub fn is_aborted(&self) -> bool {
        self.abort.is_cancelled()
    }

    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Whether a compute call should stop between forward passes: aborted, or past the
    /// deadline. A finish lets the call run to its end.
    pub fn interrupted(&self) -> bool {
        self.is_aborted() || self.past_deadline()
    }

    /// Why the work should stop before its next batch, if it should.
    pub fn reason(&self) -> Option<StopReason> {
        if self.is_stopping() {
            Some(StopReason::Cancelled)
        } else if self.past_deadline() {
            Some(StopReason::Deadline)
        } else {
            None
        }
    }

    /// Resolves once this node is told to stop, with either strength.
    pub async fn stopping(&self) {
        tokio::select! {
            _ = self.finish.cancelled() => {}
            _ = self.abort.cancelled() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_child_sees_its_parents_stop_and_not_the_other_way() {
        let root = Stop::new();
        let job = root.child();
        let sibling = root.child();
        job.abort();
        assert!(job.interrupted() && job.is_stopping());
        assert!(!root.is_stopping() && !sibling.is_stopping());
        root.finish();
        assert!(sibling.is_stopping());
        // A finish lets the batch in flight complete: no interruption.
        assert!(!sibling.interrupted());
        assert_eq!(sibling.reason(), Some(StopReason::Cancelled));
    }

    #[test]
    fn a_deadline_interrupts_and_is_reported_as_such() {
        let root = Stop::new();
        let past = root.child_until(Instant::now() - Duration::from_millis(1));
        assert!(past.interrupted());
        assert_eq!(past.reason(), Some(StopReason::Deadline));
        assert!(!past.is_stopping());
        // A grandchild keeps the earlier deadline.
        let later = past.child_until(Instant::now() + Duration::from_secs(60));
        assert!(later.interrupted());
        let open = root.child_until(Instant::now() + Duration::from_secs(60));
        assert_eq!(open.reason(), None);
        // A stop outranks the deadline in the reason given.
        past.finish();
        assert_eq!(past.reason(), Some(StopReason::Cancelled));
    }

    #[tokio::test]
    async fn waiting_resolves_on_the_stop_itself() {
        let root = Stop::new();
        let job = root.child();
        let waiter = tokio::spawn({
            let job = job.clone();
            async move { job.stopping().await }
        });
        root.finish();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("a finish wakes the waiter")
            .unwrap();
        let other = Stop::new();
        let aborted = tokio::spawn({
            let job = other.child();
            async move { job.stopping().await }
        });
        other.abort();
        tokio::time::timeout(Duration::from_secs(5), aborted)
            .await
            .expect("an abort wakes the waiter")
            .unwrap();
    }
}
