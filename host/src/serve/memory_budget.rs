//! Admission by bytes: the request bodies in flight and queued (and what they become while
//! they are handled) may hold at most `--memory-budget` bytes, all told, so that concurrent or
//! queued large requests are refused before they are read rather than after they have filled
//! the machine's memory. Compute slots and the queue (app.rs) bound the count; this bounds the
//! bytes.

use super::http::ApiError;
use axum::http::StatusCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many times over a body is held while its request is handled: the bytes read, the
/// parsed JSON, the request re-serialised for the plugin and the plugin's copy in its own
/// memory (measured: one 57 MB ProofBatch at `/pow/validate` took the server's peak resident
/// memory from 30 MB to 331 MB, 5.3 times the body).
pub const BODY_COPIES: u64 = 6;

/// The default budget: a quarter of the memory the system has available at start (the rest
/// is for the model and the plugins), or 2 GiB where that cannot be read.
pub fn default_budget() -> u64 {
    powhost_core::memory::available_bytes().map_or(2 << 30, |bytes| bytes / 4)
}

/// The bytes that requests may hold, and how many they hold now.
pub struct MemoryBudget {
    limit: u64,
    used: Arc<AtomicU64>,
}

/// What one request holds of the budget; given back when dropped (the request answered, its
/// job or validation done).
pub struct MemoryCharge {
    used: Arc<AtomicU64>,
    bytes: u64,
}

impl Drop for MemoryCharge {
    fn drop(&mut self) {
        self.used.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

impl MemoryBudget {
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            used: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The budget, in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes held now by requests in flight and queued.
    #[cfg(test)]
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }

    /// A charge of nothing yet, to be grown as the body is known.
    pub fn charge(&self) -> MemoryCharge {
        MemoryCharge {
            used: self.used.clone(),
            bytes: 0,
        }
    }

    /// Grow `charge` to cover a body of `body_bytes`: 413 when that alone is more than the
    /// budget, 503 (with Retry-After) when the budget cannot hold it beside the others now.
    pub fn cover(&self, charge: &mut MemoryCharge, body_bytes: u64) -> Result<(), ApiError> {
        let needed = body_bytes.saturating_mul(BODY_COPIES);
        if needed <= charge.bytes {
            return Ok(());
        }
        if needed > self.limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "this request needs about {} MiB of memory while it is handled (its body of {} MiB, {BODY_COPIES} times over: read, parsed and copied for the plugin), more than the whole memory budget of {} MiB; split it, or raise --memory-budget",
                    mib(needed),
                    mib(body_bytes),
                    mib(self.limit)
                ),
            ));
        }
        let more = needed - charge.bytes;
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                (used.saturating_add(more) <= self.limit).then_some(used + more)
            })
            .map_err(|used| {
                ApiError::unavailable(format!(
                    "the server is busy: the requests in flight and queued hold {} MiB of its {} MiB memory budget, and this one needs about {} MiB more; retry later (or raise --memory-budget)",
                    mib(used),
                    mib(self.limit),
                    mib(more)
                ))
            })?;
        charge.bytes = needed;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_admitted_while_the_budget_holds_them() {
        let budget = MemoryBudget::new(1000 * BODY_COPIES);
        let mut first = budget.charge();
        budget.cover(&mut first, 600).unwrap();
        // Growing to a size already covered charges nothing more.
        budget.cover(&mut first, 500).unwrap();
        assert_eq!(budget.used(), 600 * BODY_COPIES);
        let mut second = budget.charge();
        let busy = budget.cover(&mut second, 500).unwrap_err();
        assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.retry_after, Some(5));
        assert!(busy.detail.contains("memory budget"), "{}", busy.detail);
        // A refused charge holds nothing; one given back frees its bytes.
        assert_eq!(budget.used(), 600 * BODY_COPIES);
        drop(first);
        budget.cover(&mut second, 500).unwrap();
        assert_eq!(budget.used(), 500 * BODY_COPIES);
        drop(second);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_body_larger_than_the_whole_budget_is_413() {
        let budget = MemoryBudget::new(10 << 20);
        let mut charge = budget.charge();
        let too_large = budget.cover(&mut charge, 3 << 20).unwrap_err();
        assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(too_large.retry_after, None);
        assert!(
            too_large.detail.contains("18 MiB") && too_large.detail.contains("--memory-budget"),
            "{}",
            too_large.detail
        );
        assert_eq!(budget.used(), 0);
    }
}
