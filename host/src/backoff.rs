//! The one retry backoff: a failed POST of a result, a platform that could not be reached.
//! The wait doubles from half a second up to a cap.

use std::time::Duration;

/// The first wait after a failure.
pub const FIRST: Duration = Duration::from_millis(500);

/// Waits that double from [`FIRST`] after each failure, up to `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub max: Duration,
}

impl Backoff {
    pub fn up_to(max: Duration) -> Self {
        Self { max }
    }

    /// The wait after `failures` failures in a row (1 for the first).
    pub fn after(&self, failures: u32) -> Duration {
        let doublings = failures.clamp(1, 17) - 1;
        FIRST.saturating_mul(1 << doublings).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_from_half_a_second_to_its_cap() {
        let backoff = Backoff::up_to(Duration::from_secs(30));
        assert_eq!(backoff.after(0), Duration::from_millis(500));
        assert_eq!(backoff.after(1), Duration::from_millis(500));
        assert_eq!(backoff.after(2), Duration::from_secs(1));
        assert_eq!(backoff.after(3), Duration::from_secs(2));
        assert_eq!(backoff.after(40), Duration::from_secs(30));
        assert_eq!(
            Backoff::up_to(Duration::from_secs(4)).after(30),
            Duration::from_secs(4)
        );
    }
}
