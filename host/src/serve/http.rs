//! What every endpoint shares: JSON bodies read with or without a Content-Type header and
//! under the size limit, JSON responses, and errors that say what to fix.

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
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }
    pub fn busy(what: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the server is busy: {what}; retry later (or give the server more compute slots or a longer queue)"
            ),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, json!({ "detail": self.detail }))
    }
}

/// The body as JSON, whatever the Content-Type says (the node software sends none). Larger
/// than `limit` bytes: 413; not JSON: 422 naming the line and column; nothing arriving for
/// `idle` (`--idle-timeout`): 408, so a client that stops mid-body cannot hold a connection,
/// or the server's shutdown, for good.
pub async fn read_json(
    body: Body,
    limit: usize,
    idle: std::time::Duration,
) -> Result<Value, ApiError> {
    let bytes = collect_body(body, limit, idle).await?;
    parse_json_body(&bytes)
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

/// The body as a JSON object.
pub async fn read_object(
    body: Body,
    limit: usize,
    idle: std::time::Duration,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    as_object(read_json(body, limit, idle).await?)
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

/// The whole body, at most `limit` bytes, each piece arriving within `idle` of the last.
pub async fn collect_body(
    body: Body,
    limit: usize,
    idle: std::time::Duration,
) -> Result<Vec<u8>, ApiError> {
    use http_body_util::BodyExt;
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
    // A declared length over the limit is refused before anything is read.
    if axum::body::HttpBody::size_hint(&body).lower() > limit as u64 {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
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
            Ok(None) => return Ok(bytes),
            Ok(Some(Err(e))) => {
                return Err(ApiError::bad_request(format!(
                    "the request body could not be read: {e}"
                )));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if bytes.len().saturating_add(data.len()) > limit {
                return Err(too_large());
            }
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
