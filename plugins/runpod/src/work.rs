//! Which nonces a request asks for: a list (one response) or a stream of batches, in every
//! form a published version of the seed handler sends (docs/spec/REQUESTS.md §1).

use powhost_plugin_kit::{
    Fields, MAX_NONCES, RequestError, boolean, integer, nonce_list, optional,
};

/// Most nonces one streaming batch may hold: beyond this the request is almost certainly a
/// mistake, and its distances would not fit a reply.
pub const MAX_BATCH_SIZE: u64 = 1_000_000;
/// The seed handler's first streaming version: `"streaming": true` with `batch_size` and
/// `start_nonce` left out means batches of 16 from nonce 0.
pub const DEFAULT_STREAM_BATCH_SIZE: u64 = 16;

/// Which nonces to compute.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// These nonces, in this order; one response.
    Nonces(Vec<i64>),
    /// Consecutive nonces from `start_nonce`, `batch_size` at a time, one emitted result per
    /// batch, until `max_batches` batches (when given), the time limit or a cancellation.
    Stream {
        start_nonce: i64,
        batch_size: u64,
        max_batches: Option<u64>,
    },
}

/// Which work the request asks for. Every published version of the seed handler is taken:
/// `nonces` (one response); `start_nonce` + `batch_size` (the later versions: a stream); and
/// `"streaming": true` with optional `start_nonce` (0), `batch_size` (16) and `max_batches`
/// (the first streaming version). `"streaming": false` is the one-shot `nonces` form.
pub(crate) fn work(input: &Fields) -> Result<Work, RequestError> {
    let streaming = match optional(input, "streaming") {
        None => None,
        Some(raw) => Some(boolean(raw.get(), "streaming")?),
    };
    let nonces = input.get("nonces");
    let start = input.get("start_nonce");
    let batch = input.get("batch_size");
    // The seed handler: `max_batches` absent or None means until the time limit.
    let max_batches = match optional(input, "max_batches") {
        None => None,
        Some(raw) => {
            let n = integer(raw.get(), "max_batches")?;
            if n < 0 {
                return Err(RequestError::value(format!(
                    "`max_batches` must be 0 or more (leave it out to stream until the time limit), got {n}"
                )));
            }
            Some(n as u64)
        }
    };
    match streaming {
        Some(true) => {
            if nonces.is_some() {
                return Err(RequestError::value(
                    "`streaming` is true, so the nonces come from `start_nonce` and `batch_size`: leave `nonces` out (or set `streaming` to false)",
                ));
            }
            let start_nonce = match start {
                Some(raw) => integer(raw.get(), "start_nonce")?,
                None => 0,
            };
            let batch_size = match batch {
                Some(raw) => batch_size(raw.get())?,
                None => DEFAULT_STREAM_BATCH_SIZE,
            };
            return Ok(Work::Stream {
                start_nonce,
                batch_size,
                max_batches,
            });
        }
        Some(false) if start.is_some() || batch.is_some() => {
            return Err(RequestError::value(
                "`streaming` is false, so the request lists `nonces`: leave `start_nonce` and `batch_size` out (or set `streaming` to true)",
            ));
        }
        _ => {}
    }
    match (nonces, start, batch) {
        (Some(raw), None, None) => {
            if max_batches.is_some() {
                return Err(RequestError::value(
                    "`max_batches` only applies to a stream: leave it out when listing `nonces`",
                ));
            }
            let list = nonce_list(raw.get(), "nonces", MAX_NONCES)?;
            if list.is_empty() {
                return Err(RequestError::value(
                    "`nonces` is empty: list at least one nonce (or use start_nonce + batch_size to stream)",
                ));
            }
            Ok(Work::Nonces(list))
        }
        (None, Some(start), Some(batch)) => Ok(Work::Stream {
            start_nonce: integer(start.get(), "start_nonce")?,
            batch_size: batch_size(batch.get())?,
            max_batches,
        }),
        (Some(_), _, _) => Err(RequestError::value(
            "give either `nonces` or `start_nonce` + `batch_size` (streaming), not both",
        )),
        (None, Some(_), None) => Err(RequestError::missing(
            "batch_size",
            "streaming needs `batch_size` beside `start_nonce` (or `\"streaming\": true`, which defaults it to 16)",
        )),
        (None, None, Some(_)) => Err(RequestError::missing(
            "start_nonce",
            "streaming needs `start_nonce` beside `batch_size` (or `\"streaming\": true`, which defaults it to 0)",
        )),
        (None, None, None) => Err(RequestError::missing(
            "nonces",
            "the nonces to compute (or `start_nonce` + `batch_size` to stream)",
        )),
    }
}

fn batch_size(text: &str) -> Result<u64, RequestError> {
    let batch_size = integer(text, "batch_size")?;
    if batch_size < 1 || batch_size as u64 > MAX_BATCH_SIZE {
        return Err(RequestError::value(format!(
            "`batch_size` must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}"
        )));
    }
    Ok(batch_size as u64)
}
