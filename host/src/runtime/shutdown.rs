//! The time a transport has after a stop signal (`--flush-timeout`), all told, so that a
//! supervisor's kill never lands before the undelivered results are kept: work in flight
//! finishes its batch until `abort_at`, is then aborted (a compute call stops at its next
//! forward pass and hands over what it has), and delivery goes on until `deadline`, when the
//! posts still in flight are cut and what is left is kept (delivery/undelivered.rs).

use std::time::{Duration, Instant};

/// The share of the flush time kept for aborted work to end and its results to be posted.
const ABORT_SHARE: u32 = 3;
/// That share at most.
const ABORT_RESERVE_MAX: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug)]
pub struct ShutdownBudget {
    pub abort_at: Instant,
    pub deadline: Instant,
}

impl ShutdownBudget {
    /// The budget of a shutdown that starts now and must end within `flush_timeout`.
    pub fn starting_now(flush_timeout: Duration) -> Self {
        let now = Instant::now();
        let reserve = (flush_timeout / ABORT_SHARE).min(ABORT_RESERVE_MAX);
        Self {
            abort_at: now + flush_timeout - reserve,
            deadline: now + flush_timeout,
        }
    }

    /// What is left until the deadline.
    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aborted_work_gets_a_third_of_the_flush_time_up_to_two_seconds() {
        let b = ShutdownBudget::starting_now(Duration::from_secs(3));
        assert_eq!(b.deadline - b.abort_at, Duration::from_secs(1));
        let b = ShutdownBudget::starting_now(Duration::from_secs(30));
        assert_eq!(b.deadline - b.abort_at, Duration::from_secs(2));
        let b = ShutdownBudget::starting_now(Duration::ZERO);
        assert_eq!(b.deadline, b.abort_at);
        assert!(b.left() <= Duration::from_millis(1));
    }
}
