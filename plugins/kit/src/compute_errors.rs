//! A failed host compute call as the RequestError the reference would raise.

use crate::errors::RequestError;
use crate::{ComputeError, ComputeErrorKind, StopReason, session};

/// A failed host compute call as a RequestError with the Python-style type the reference
/// would raise; `timed_out` (read only for `stopped`) says whether the request's time limit,
/// rather than the caller, stopped the work.
pub fn compute_error(e: ComputeError, timed_out: bool) -> RequestError {
    let error_type = match e.kind {
        ComputeErrorKind::InvalidParams | ComputeErrorKind::InvalidTask => "ValueError",
        ComputeErrorKind::TooLarge => "MemoryError",
        ComputeErrorKind::DeviceUnavailable => "DeviceError",
        ComputeErrorKind::BackendFailed => "RuntimeError",
        // Stopped by the request's time limit rather than by the caller.
        ComputeErrorKind::Stopped if timed_out => "TimeoutError",
        ComputeErrorKind::Stopped => "Cancelled",
    };
    RequestError::new(error_type, e.message)
}

/// [`compute_error`] for a call that just failed: for `stopped`, the host is asked whether the
/// request's time limit passed (TimeoutError) or the caller cancelled (Cancelled).
pub fn compute_failed(e: ComputeError) -> RequestError {
    let timed_out = e.kind == ComputeErrorKind::Stopped
        && matches!(session::stop_requested(), Some(StopReason::Deadline));
    compute_error(e, timed_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_errors_keep_their_python_types() {
        let e = |kind| ComputeError {
            kind,
            message: "why".into(),
        };
        for (kind, timed_out, want) in [
            (ComputeErrorKind::InvalidParams, false, "ValueError"),
            (ComputeErrorKind::InvalidTask, true, "ValueError"),
            (ComputeErrorKind::TooLarge, false, "MemoryError"),
            (ComputeErrorKind::DeviceUnavailable, false, "DeviceError"),
            (ComputeErrorKind::BackendFailed, true, "RuntimeError"),
            (ComputeErrorKind::Stopped, true, "TimeoutError"),
            (ComputeErrorKind::Stopped, false, "Cancelled"),
        ] {
            assert_eq!(
                compute_error(e(kind), timed_out),
                RequestError::new(want, "why"),
                "{kind:?}"
            );
        }
        // Only `stopped` asks the host (which a native test has not): the others never do.
        assert_eq!(
            compute_failed(e(ComputeErrorKind::TooLarge)).error_type,
            "MemoryError"
        );
    }
}
