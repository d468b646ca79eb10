//! A worker whose device failed at startup tells the platform before it exits, as the
//! platform's SDK (≥ 1.11) does after a failed fitness check: one heartbeat GET with
//! `status=unhealthy`, so the platform replaces the worker instead of sending it jobs.

use super::Platform;
use std::time::Duration;

/// The SDK's bound on the report: it may delay the exit by this much, never prevent it.
const REPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// Report the failed `check` with its `reason`; best effort (a report that does not go out
/// is logged), never longer than [`REPORT_TIMEOUT`].
pub fn report_unhealthy(platform: &Platform, check: &str, reason: &str) {
    let Some(url) = platform.unhealthy_url(check, reason) else {
        return;
    };
    let send = async {
        let client = reqwest::Client::builder()
            .user_agent(crate::delivery::USER_AGENT)
            .timeout(REPORT_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        let mut request = client.get(&url);
        for (name, value) in platform.get_headers() {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| crate::delivery::with_causes(&e))?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            status => Err(format!("answered HTTP {status}")),
        }
    };
    let sent = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| runtime.block_on(send));
    match sent {
        Ok(()) => log::info!("reported to the platform: unhealthy ({check})"),
        Err(why) => log::warn!("the platform could not be told this worker is unhealthy ({why})"),
    }
}
