//! Who may call what. The node's control routes (`/api/v1/pow/*`, `/api/v1/gpu/*`) need
//! the node software's signature (signature.rs) when a signer key is configured, as the
//! network's engine requires it; the serverless job routes need the API key as a bearer
//! token when one is configured; the rest (`/api/v1/state`, `/api/v1/stop`, which the
//! reference leaves open, and the health and metrics routes a monitor reads) is open. Each
//! check runs before the body is parsed or anything is done (docs/spec/PROTOCOLS.md §A10).

use super::app::App;
use super::http::{ApiError, collect_body};
use super::signature::SignerKey;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// What a request must show, by route.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// Control requests must carry this key's signature (`X-Signature`); none: unchecked.
    pub signer: Option<SignerKey>,
    /// Serverless requests must carry `Authorization: Bearer KEY`; none: unchecked.
    pub api_key: Option<ApiKey>,
}

/// The serverless API key, kept as its SHA-256 digest: compared in constant time with the
/// digest of what a request offers, and never printed.
#[derive(Clone)]
pub struct ApiKey([u8; 32]);

impl ApiKey {
    pub fn new(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    fn matches(&self, offered: &[u8]) -> bool {
        let offered: [u8; 32] = Sha256::digest(offered).into();
        self.0.ct_eq(&offered).into()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(…)")
    }
}

/// The check a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    Signature,
    ApiKey,
    Open,
}

/// The routes the reference guards, and the serverless job routes. By path prefix, so that
/// a route added under them is guarded too.
pub fn guard_of(path: &str) -> Guard {
    const SIGNED: [&str; 2] = ["/api/v1/pow/", "/api/v1/gpu/"];
    const JOBS: [&str; 3] = ["/status/", "/stream/", "/cancel/"];
    if SIGNED.iter().any(|prefix| path.starts_with(prefix)) {
        Guard::Signature
    } else if path == "/run" || path == "/runsync" || JOBS.iter().any(|p| path.starts_with(p)) {
        Guard::ApiKey
    } else {
        Guard::Open
    }
}

/// The middleware: the route's check, then the handler.
pub async fn check_access(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let access = &app.config.access;
    let checked = match (
        guard_of(request.uri().path()),
        &access.signer,
        &access.api_key,
    ) {
        (Guard::Signature, Some(signer), _) => signed(&app, signer, request).await,
        (Guard::ApiKey, _, Some(key)) => match bearer_refusal(key, request.headers()) {
            None => Ok(request),
            Some(refused) => Err(refused),
        },
        _ => Ok(request),
    };
    match checked {
        Ok(request) => next.run(request).await,
        Err(refused) => refused,
    }
}

/// The request again, its body read whole, when it is signed by `signer`; else the
/// reference's 403. The signature covers the raw body (empty for a GET).
async fn signed(app: &App, signer: &SignerKey, request: Request) -> Result<Request, Response> {
    let forbidden = |detail: &str| ApiError::new(StatusCode::FORBIDDEN, detail).into_response();
    let signature = match request.headers().get("x-signature") {
        Some(value) if !value.is_empty() => value.as_bytes().to_vec(),
        _ => return Err(forbidden("Missing signature")),
    };
    let (parts, body) = request.into_parts();
    // Read within the memory budget like any body, so that an unsigned flood is refused
    // before it is read; the handler charges the same bytes again when it takes them.
    let (body, _charge) = collect_body(body, app.body_limits())
        .await
        .map_err(IntoResponse::into_response)?;
    if !signer.verifies(&body, &signature) {
        log::debug!(
            "{} {}: refused, the signature is not the signer's",
            parts.method,
            parts.uri.path()
        );
        return Err(forbidden("Invalid signature"));
    }
    Ok(Request::from_parts(parts, Body::from(body)))
}

/// 401 unless `authorization` is `Bearer KEY` with this key (the scheme's name in any case,
/// as RFC 7235 has it).
fn bearer_refusal(key: &ApiKey, headers: &axum::http::HeaderMap) -> Option<Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Some(unauthorized(
            "Unauthorized: send the API key as `Authorization: Bearer KEY`",
            false,
        ));
    };
    let bytes = value.as_bytes();
    let token = bytes
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
        .map(|_| bytes[7..].trim_ascii());
    match token {
        None => Some(unauthorized(
            "Unauthorized: the Authorization header must be `Bearer KEY`",
            false,
        )),
        Some(token) if key.matches(token) => None,
        Some(_) => Some(unauthorized("Unauthorized: the API key is not valid", true)),
    }
}

fn unauthorized(detail: &str, invalid_token: bool) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, detail).into_response();
    // RFC 6750: the scheme a client must use, and why a key offered was refused.
    let challenge = if invalid_token {
        r#"Bearer realm="powhost", error="invalid_token""#
    } else {
        r#"Bearer realm="powhost""#
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_guarded_routes_need_a_signature_and_jobs_the_key() {
        for path in [
            "/api/v1/pow/init",
            "/api/v1/pow/init/generate",
            "/api/v1/pow/init/validate",
            "/api/v1/pow/phase/generate",
            "/api/v1/pow/phase/validate",
            "/api/v1/pow/validate",
            "/api/v1/pow/status",
            "/api/v1/pow/stop",
            "/api/v1/gpu/devices",
            "/api/v1/gpu/driver",
        ] {
            assert_eq!(guard_of(path), Guard::Signature, "{path}");
        }
        for path in ["/run", "/runsync", "/status/x", "/stream/x", "/cancel/x"] {
            assert_eq!(guard_of(path), Guard::ApiKey, "{path}");
        }
        for path in [
            "/api/v1/state",
            "/api/v1/stop",
            "/health",
            "/livez",
            "/readyz",
            "/ping",
            "/metrics",
            "/running",
        ] {
            assert_eq!(guard_of(path), Guard::Open, "{path}");
        }
    }

    #[test]
    fn api_keys_match_only_themselves() {
        let key = ApiKey::new("s3cret");
        assert!(key.matches(b"s3cret"));
        assert!(!key.matches(b"s3cret "));
        assert!(!key.matches(b"S3cret"));
        assert!(!key.matches(b""));
        assert_eq!(format!("{key:?}"), "ApiKey(…)");
    }
}
