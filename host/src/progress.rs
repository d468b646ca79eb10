//! Progress of long work, observed from below and drawn (or not) from above: the compute
//! service and the model build report to a [`Progress`]; the commands give them bars on stderr,
//! servers give them [`Silent`].

use indicatif::{ProgressBar, ProgressStyle};

/// Something that watches long work.
pub trait Progress: Send + Sync {
    /// A counter for `total` units of `what` ("nonces", "weight pool"); the work is over when
    /// the counter is dropped.
    fn counter(&self, what: &'static str, total: u64) -> Box<dyn Counter>;
}

/// One piece of work being counted.
pub trait Counter: Send + Sync {
    fn set(&self, done: u64);
}

/// Observes nothing: for servers, where calls overlap.
pub struct Silent;

impl Progress for Silent {
    fn counter(&self, _: &'static str, _: u64) -> Box<dyn Counter> {
        Box::new(Silent)
    }
}

impl Counter for Silent {
    fn set(&self, _: u64) {}
}

/// Bars on stderr (drawn only when stderr is a terminal). A weight pool gets one only when it
/// is big enough to take a while.
pub struct Bars;

/// Pools up to this many values are drawn in well under a second: no bar.
const POOL_BAR_FROM: u64 = 50_000_000;

impl Progress for Bars {
    fn counter(&self, what: &'static str, total: u64) -> Box<dyn Counter> {
        if what == "weight pool" && total <= POOL_BAR_FROM {
            return Box::new(Silent);
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} ({elapsed}, eta {eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(what);
        Box::new(Bar(bar))
    }
}

struct Bar(ProgressBar);

impl Counter for Bar {
    fn set(&self, done: u64) {
        self.0.set_position(done);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
