//! Usage errors: a command line the command cannot use (a name that names nothing, a value out
//! of range, flags that contradict each other) exits 2, as clap's own; a failure of the work
//! itself exits 1. Most flag values are checked by clap as the command line is parsed
//! (cli.rs); what needs more than one flag, or a file, is checked by the command and marked
//! here.

use std::fmt;

/// An error that is the command line's fault.
#[derive(Debug)]
pub struct UsageError(anyhow::Error);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for UsageError {}

/// `error` marked as a usage error.
pub fn usage(error: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(UsageError(error))
}

/// Return a usage error: `usage_error!("…{}", x)`.
macro_rules! usage_error {
    ($($arg:tt)*) => {
        return Err($crate::usage::usage(anyhow::anyhow!($($arg)*)))
    };
}
pub(crate) use usage_error;

/// Whether `error`, or an error it wraps, is a usage error.
pub fn is_usage(error: &anyhow::Error) -> bool {
    error.chain().any(|e| e.is::<UsageError>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_usage_error_is_found_under_context_and_reads_as_before() {
        let e = usage(anyhow::anyhow!("inner").context("outer"));
        assert!(is_usage(&e));
        assert_eq!(format!("{e:#}"), "outer: inner");
        let wrapped = Err::<(), _>(e).context("while starting").unwrap_err();
        assert!(is_usage(&wrapped));
        assert!(!is_usage(&anyhow::anyhow!("a failure of the work")));
    }
}
