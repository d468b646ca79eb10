//! One POST attempt, and the HTTP client that makes it.
//!
//! A result is delivered only when its POST is answered 2xx. A 301, 302 or 303 is not
//! followed: an HTTP client following one turns the POST into a body-less GET, which the
//! receiver may well answer 200 without ever having seen the result. Such an answer is a
//! failed attempt (retried, the `Location` in the log). A 307 or 308 keeps the method and
//! the body by definition, so it is followed, a few hops at most.

use super::{DeliveryConfig, Outbox, Post, USER_AGENT, redacted};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use std::time::Duration;

/// 307/308 hops followed for one POST at most.
const MAX_REDIRECTS: usize = 5;

/// The client every POST of the outbox goes through: its timeouts, the redirect rule above,
/// and mutual TLS when configured (mtls.rs).
pub(super) fn build(config: &DeliveryConfig) -> anyhow::Result<reqwest::Client> {
    let redirects = Policy::custom(|attempt| {
        let keeps_the_post = matches!(
            attempt.status(),
            StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
        );
        if keeps_the_post && attempt.previous().len() <= MAX_REDIRECTS {
            attempt.follow()
        } else {
            // The 3xx comes back as the answer, and counts as a failure.
            attempt.stop()
        }
    });
    let builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .redirect(redirects);
    let builder = match &config.mtls {
        Some(mtls) => mtls.apply(builder)?,
        None => builder,
    };
    Ok(builder.build()?)
}

impl Outbox {
    /// POST `post` once, as delivery `id`: Ok when answered 2xx, else why not.
    pub(super) async fn post(&self, id: &str, post: &Post) -> Result<(), String> {
        let mut request = self.client.post(&post.url).header("X-Powhost-Batch-Id", id);
        if !post
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in &post.headers {
            request = request.header(*name, value);
        }
        let response = request
            .body(post.body.clone())
            .send()
            .await
            .map_err(|e| send_error(&e, self.config.timeout))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        self.state().refused += 1;
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(|l| {
                    response
                        .url()
                        .join(l)
                        .map_or(l.to_string(), |u| u.to_string())
                })
                .unwrap_or_else(|| "nowhere (no Location)".to_string());
            return Err(format!(
                "HTTP {status}, redirecting to {}: not followed, as it would turn the POST into a GET; only a 2xx answer delivers",
                redacted(&location)
            ));
        }
        Err(format!("HTTP {status}"))
    }
}

/// Why a request got no answer, in one phrase: "no answer within 10 s", or the error with
/// its causes; the URL in it has its secrets redacted.
pub fn send_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("no answer within {:.1} s", timeout.as_secs_f64())
    } else {
        error_text(e)
    }
}

/// A request's error with its causes, the URL in it with its secrets redacted.
pub fn error_text(e: &reqwest::Error) -> String {
    let message = with_causes(e);
    match e.url() {
        Some(url) => message.replace(url.as_str(), &redacted(url.as_str())),
        None => message,
    }
}

/// An error with its causes: reqwest's own message leaves them out (connection refused, …).
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    message
}
