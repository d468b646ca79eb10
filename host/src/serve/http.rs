//! What every endpoint shares: JSON bodies read with or without a Content-Type header, under
//! the size limit and charged to the memory budget, JSON responses, and errors that say what
//! to fix.

use super::memory_budget::{MemoryBudget, MemoryCharge};

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A response with a JSON body.
pub fn json_response(status: StatusCode, body: Value) -> Response {
    json_text(status, body.to_string())
}

pub fn ok(body: Value) -> Response {
    json_response(StatusCode::OK, body)
}

/// 200 with JSON text written elsewhere (key order kept).
pub fn ok_text(json: String) -> Response {
    json_text(StatusCode::OK, json)
}

fn json_text(status: StatusCode, json: String) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json,
    )
        .into_response()
}

/// A refused request, in FastAPI's shape (`{"detail": …}`), which the node software and the
/// serverless tooling both log as is.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    /// Seconds after which a refused request may succeed (503s): the Retry-After header.
    pub retry_after: Option<u32>,
}

/// What a busy server asks its clients to wait before retrying, in seconds.
const RETRY_AFTER_SECONDS: u32 = 5;

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }
    pub fn busy(what: &str) -> Self {
        Self::unavailable(format!(
            "the server is busy: {what}; retry later (or give the server more compute slots or a longer queue)"
        ))
    }
    /// 503 with Retry-After: the request may succeed later, unchanged.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            retry_after: Some(RETRY_AFTER_SECONDS),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json_response(self.status, json!({ "detail": self.detail }));
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// What a request body may be: at most `max` bytes, each piece arriving within `idle`
/// (`--idle-timeout`) of the last, and charged to `memory` before it is read (by its
/// Content-Length) or as it arrives (without one).
#[derive(Clone, Copy)]
pub struct BodyLimits<'a> {
    pub max: usize,
    pub idle: std::time::Duration,
    pub memory: &'a MemoryBudget,
}

/// The body as JSON, whatever the Content-Type says (the node software sends none), and its
/// charge to the memory budget, to be held while the request's data lives. Larger than the
/// limit: 413; over the memory budget: 503 (413 when it alone is); not JSON: 422 naming the
/// line and column; nothing arriving for the idle time: 408, so a client that stops mid-body
/// cannot hold a connection, or the server's shutdown, for good.
pub async fn read_json(
    body: Body,
    limits: BodyLimits<'_>,
) -> Result<(Value, MemoryCharge), ApiError> {
    let (bytes, charge) = collect_body(body, limits).await?;
    Ok((parse_json_body(&bytes)?, charge))
}

/// A whole body as JSON: empty is 422, so is anything that is not JSON.
pub fn parse_json_body(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::unprocessable(
            "the request body is empty; send a JSON object",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::unprocessable(format!("the request body is not valid JSON: {e}")))
}

/// The body as a JSON object, and its charge to the memory budget.
pub async fn read_object(
    body: Body,
    limits: BodyLimits<'_>,
) -> Result<(serde_json::Map<String, Value>, MemoryCharge), ApiError> {
    let (value, charge) = read_json(body, limits).await?;
    Ok((as_object(value)?, charge))
}

/// A JSON object, or 422 naming what it is instead.
pub fn as_object(value: Value) -> Result<serde_json::Map<String, Value>, ApiError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(ApiError::unprocessable(format!(
            "the request body must be a JSON object, got {}",
            kind(&other)
        ))),
    }
}

/// The whole body, within `limits`, and its charge to the memory budget.
pub async fn collect_body(
    body: Body,
    limits: BodyLimits<'_>,
) -> Result<(Vec<u8>, MemoryCharge), ApiError> {
    use http_body_util::BodyExt;
    let BodyLimits {
        max: limit,
        idle,
        memory,
    } = limits;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than {} MiB; split it, or raise --max-body",
                limit >> 20
            ),
        )
    };
    let mut body = body;
    let hint = axum::body::HttpBody::size_hint(&body);
    // A declared length over the limit is refused before anything is read.
    if hint.lower() > limit as u64 {
        return Err(too_large());
    }
    // So is one the memory budget cannot hold now; without a declared length, the body is
    // charged as it arrives.
    let mut charge = memory.charge();
    memory.cover(&mut charge, hint.exact().unwrap_or(0))?;
    let mut bytes = Vec::with_capacity(hint.exact().unwrap_or(0) as usize);
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body stopped arriving (nothing for {:.1} s, --idle-timeout); send it whole",
                        idle.as_secs_f64()
                    ),
                ));
            }
            Ok(None) => return Ok((bytes, charge)),
            Ok(Some(Err(e))) => {
                return Err(ApiError::bad_request(format!(
                    "the request body could not be read: {e}"
                )));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            let len = bytes.len().saturating_add(data.len());
            if len > limit {
                return Err(too_large());
            }
            memory.cover(&mut charge, len as u64)?;
            bytes.extend_from_slice(&data);
        }
    }
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
