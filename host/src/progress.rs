//! Progress bars on stderr (drawn only when stderr is a terminal).

use indicatif::{ProgressBar, ProgressStyle};

pub fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} ({elapsed}, eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// A callback for [`powhost_core::WeightPool::draw`]-style `(done, total)` progress that
/// shows a bar only for pools big enough to take a while.
pub fn pool_progress(pool_size: usize) -> impl Fn(usize, usize) + Sync {
    let bar = (pool_size > 50_000_000).then(|| bar(0, "weight pool"));
    move |done, total| {
        if let Some(bar) = &bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            if done == total {
                bar.finish_and_clear();
            }
        }
    }
}
