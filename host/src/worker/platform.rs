//! The serverless platform as its workers see it (docs/spec/PROTOCOLS.md §B1): the URLs and key
//! it hands a worker in the environment, and the requests the platform's own SDK makes with
//! them, query parameters and headers included.

use super::job_ids;
use anyhow::{Result, bail};
use std::time::Duration;

/// The SDK version whose wire behaviour the worker reproduces; sent as `runpod_version`
/// in the heartbeat, as the SDK sends its own.
pub const SDK_VERSION: &str = "1.12.0";

/// The SDK's default heartbeat interval.
const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct Platform {
    /// `RUNPOD_POD_ID` (else a fresh uuid, as the SDK does).
    pub worker_id: String,
    /// The job-take URL with `$ID` replaced by the worker id.
    job_take: String,
    /// Output and stream URL templates with `$RUNPOD_POD_ID` replaced; `$ID` is the job's.
    output: String,
    stream: String,
    /// The heartbeat URL, when the platform asked for heartbeats (the SDK pings only with
    /// an API key and a pod id).
    ping: Option<String>,
    /// Where a failed device is reported (the ping URL: the SDK reports with a key alone).
    unhealthy: Option<String>,
    pub api_key: Option<String>,
    pub ping_interval: Duration,
}

impl Platform {
    /// The platform's environment; says which variables are missing, and what to use instead.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let missing: Vec<&str> = ["RUNPOD_WEBHOOK_GET_JOB", "RUNPOD_WEBHOOK_POST_OUTPUT"]
            .into_iter()
            .filter(|name| var(name).is_none())
            .collect();
        if !missing.is_empty() {
            bail!(
                "powhost worker takes its jobs from the serverless platform, which gives its workers {} in the environment, and {} set here; to handle a request locally, run `powhost run request.json`",
                ["RUNPOD_WEBHOOK_GET_JOB", "RUNPOD_WEBHOOK_POST_OUTPUT"].join(" and "),
                if missing.len() == 1 {
                    format!("{} is not", missing[0])
                } else {
                    "neither is".to_string()
                }
            );
        }
        let pod_id = var("RUNPOD_POD_ID");
        let worker_id = pod_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let api_key = var("RUNPOD_AI_API_KEY");
        let ping_interval = match var("RUNPOD_PING_INTERVAL") {
            None => DEFAULT_PING_INTERVAL,
            Some(text) => match text.trim().parse::<u64>() {
                Ok(ms) if ms >= 1 => Duration::from_millis(ms),
                _ => bail!(
                    "RUNPOD_PING_INTERVAL must be a whole number of milliseconds (at least 1), got `{text}`"
                ),
            },
        };
        let output = var("RUNPOD_WEBHOOK_POST_OUTPUT").unwrap();
        let stream = var("RUNPOD_WEBHOOK_POST_STREAM").unwrap_or_else(|| {
            log::warn!(
                "RUNPOD_WEBHOOK_POST_STREAM is not set: streamed batches go to the output URL"
            );
            output.clone()
        });
        let unhealthy = match (var("RUNPOD_WEBHOOK_PING"), &api_key) {
            (Some(url), Some(_)) => Some(url.replace("$RUNPOD_POD_ID", &worker_id)),
            _ => None,
        };
        let ping = match (var("RUNPOD_WEBHOOK_PING"), &api_key, &pod_id) {
            (Some(url), Some(_), Some(_)) => Some(url.replace("$RUNPOD_POD_ID", &worker_id)),
            (Some(_), _, _) => {
                log::warn!(
                    "no heartbeat: the platform's SDK sends one only with RUNPOD_AI_API_KEY and RUNPOD_POD_ID set"
                );
                None
            }
            (None, _, _) => None,
        };
        let platform = Self {
            job_take: var("RUNPOD_WEBHOOK_GET_JOB")
                .unwrap()
                .replace("$ID", &worker_id),
            output: output.replace("$RUNPOD_POD_ID", &worker_id),
            stream: stream.replace("$RUNPOD_POD_ID", &worker_id),
            ping,
            unhealthy,
            worker_id,
            api_key,
            ping_interval,
        };
        for (name, url) in [
            ("RUNPOD_WEBHOOK_GET_JOB", &platform.job_take),
            ("RUNPOD_WEBHOOK_POST_OUTPUT", &platform.output),
            ("RUNPOD_WEBHOOK_POST_STREAM", &platform.stream),
        ] {
            if let Err(why) = crate::delivery::check_url(&url.replace("$ID", "job")) {
                bail!("{name} {why}");
            }
        }
        Ok(platform)
    }

    /// Where to ask for up to `wanted` jobs: job-take, or job-take-batch for more than one.
    pub fn take_url(&self, wanted: usize, batch: bool, job_in_progress: bool) -> String {
        let mut url = if batch {
            self.job_take.replace("/job-take/", "/job-take-batch/")
        } else {
            self.job_take.clone()
        };
        if batch {
            url = with_query(&url, &[("batch_size", &wanted.to_string())]);
        }
        with_query(
            &url,
            &[("job_in_progress", if job_in_progress { "1" } else { "0" })],
        )
    }

    /// The job-stop channel (SDK ≥ 1.10): the job-take URL with `/job-stop/`.
    pub fn stop_url(&self) -> String {
        self.job_take.replace("/job-take/", "/job-stop/")
    }

    /// A job's final result: the output URL with `isStream=true` after a stream.
    pub fn output_url(&self, job: &str, is_stream: bool) -> String {
        with_query(
            &self.output.replace("$ID", &job_ids::in_url(job)),
            &[("isStream", if is_stream { "true" } else { "false" })],
        )
    }

    /// One streamed chunk: the stream URL, `isStream=false` (as the SDK sends it).
    pub fn stream_url(&self, job: &str) -> String {
        with_query(
            &self.stream.replace("$ID", &job_ids::in_url(job)),
            &[("isStream", "false")],
        )
    }

    /// The heartbeat, naming the jobs in progress (none: no `job_id`).
    pub fn ping_url(&self, jobs: &[String]) -> Option<String> {
        let ping = self.ping.as_ref()?;
        let ids = jobs.join(",");
        let mut pairs = Vec::new();
        if !jobs.is_empty() {
            pairs.push(("job_id", ids.as_str()));
        }
        pairs.push(("runpod_version", SDK_VERSION));
        Some(with_query(ping, &pairs))
    }

    /// The report of a device that failed a startup check (SDK ≥ 1.11): one heartbeat GET with
    /// `status=unhealthy`, the check's name and the reason (its first 256 characters), so that
    /// the platform replaces the worker; none without the ping URL and the key.
    pub fn unhealthy_url(&self, check: &str, reason: &str) -> Option<String> {
        let url = self.unhealthy.as_ref()?;
        let reason: String = reason.chars().take(256).collect();
        Some(with_query(
            url,
            &[
                ("status", "unhealthy"),
                ("check", check),
                ("reason", &reason),
                ("runpod_version", SDK_VERSION),
            ],
        ))
    }

    /// Headers of the worker's GETs (job-take, job-stop, heartbeat).
    pub fn get_headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![("Content-Type", "application/json".to_string())];
        if let Some(key) = &self.api_key {
            headers.push(("Authorization", key.clone()));
        }
        headers
    }

    /// Headers of a result POST, as the SDK sends them: its form Content-Type (the body is
    /// JSON all the same), the raw key, the job id (left out when it cannot be a header value:
    /// such a job is only answered with an error, job_ids.rs).
    pub fn post_headers(&self, job: &str) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            (
                "Content-Type",
                "application/x-www-form-urlencoded".to_string(),
            ),
            ("charset", "utf-8".to_string()),
        ];
        if job_ids::fits_header(job) {
            headers.push(("X-Request-ID", job.to_string()));
        }
        if let Some(key) = &self.api_key {
            headers.push(("Authorization", key.clone()));
        }
        headers
    }
}

/// `url` with these query parameters appended (encoded as the SDK's HTTP client does).
fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.query_pairs_mut().extend_pairs(pairs);
            parsed.to_string()
        }
        // check_url refused such URLs at start; keep the text as it is.
        Err(_) => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The environment of the capture in docs/spec/PROTOCOLS.md §B4.1.
    fn capture_env() -> HashMap<&'static str, String> {
        HashMap::from([
            (
                "RUNPOD_WEBHOOK_GET_JOB",
                "http://h/v2/ep/job-take/$ID?gpu=test".to_string(),
            ),
            (
                "RUNPOD_WEBHOOK_POST_OUTPUT",
                "http://h/v2/ep/job-done/$RUNPOD_POD_ID/$ID?gpu=test".to_string(),
            ),
            (
                "RUNPOD_WEBHOOK_POST_STREAM",
                "http://h/v2/ep/job-stream/$RUNPOD_POD_ID/$ID?gpu=test".to_string(),
            ),
            (
                "RUNPOD_WEBHOOK_PING",
                "http://h/v2/ep/ping/$RUNPOD_POD_ID?gpu=test".to_string(),
            ),
            ("RUNPOD_AI_API_KEY", "test-api-key".to_string()),
            ("RUNPOD_POD_ID", "pod-s".to_string()),
            ("RUNPOD_PING_INTERVAL", "1000".to_string()),
        ])
    }

    fn platform(env: &HashMap<&'static str, String>) -> Result<Platform> {
        Platform::from_env(|k| env.get(k).cloned())
    }

    #[test]
    fn urls_are_the_sdks() {
        let p = platform(&capture_env()).unwrap();
        assert_eq!(p.worker_id, "pod-s");
        assert_eq!(p.ping_interval, Duration::from_secs(1));
        assert_eq!(
            p.take_url(1, false, false),
            "http://h/v2/ep/job-take/pod-s?gpu=test&job_in_progress=0"
        );
        assert_eq!(
            p.take_url(3, true, true),
            "http://h/v2/ep/job-take-batch/pod-s?gpu=test&batch_size=3&job_in_progress=1"
        );
        assert_eq!(p.stop_url(), "http://h/v2/ep/job-stop/pod-s?gpu=test");
        assert_eq!(
            p.output_url("job-1", false),
            "http://h/v2/ep/job-done/pod-s/job-1?gpu=test&isStream=false"
        );
        assert_eq!(
            p.output_url("job-s", true),
            "http://h/v2/ep/job-done/pod-s/job-s?gpu=test&isStream=true"
        );
        assert_eq!(
            p.stream_url("job-s"),
            "http://h/v2/ep/job-stream/pod-s/job-s?gpu=test&isStream=false"
        );
        assert_eq!(
            p.ping_url(&[]).unwrap(),
            "http://h/v2/ep/ping/pod-s?gpu=test&runpod_version=1.12.0"
        );
        assert_eq!(
            p.ping_url(&["job-1".into()]).unwrap(),
            "http://h/v2/ep/ping/pod-s?gpu=test&job_id=job-1&runpod_version=1.12.0"
        );
        assert!(
            p.post_headers("job-1")
                .contains(&("Authorization", "test-api-key".into()))
        );
        // Ids keep their characters in a URL; one that no header takes goes without it.
        assert_eq!(
            p.output_url("a/b?c", false),
            "http://h/v2/ep/job-done/pod-s/a%2Fb%3Fc?gpu=test&isStream=false"
        );
        assert!(
            !p.post_headers("a\nb")
                .iter()
                .any(|(name, _)| *name == "X-Request-ID")
        );
    }

    #[test]
    fn a_failed_device_is_reported_as_the_sdk_does() {
        let p = platform(&capture_env()).unwrap();
        let long = "x".repeat(300);
        let url = p.unhealthy_url("selftest", &format!("é{long}")).unwrap();
        let parsed = reqwest::Url::parse(&url).unwrap();
        let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        assert_eq!(parsed.path(), "/v2/ep/ping/pod-s");
        assert_eq!(pairs[0], ("gpu".into(), "test".into()));
        assert_eq!(pairs[1], ("status".into(), "unhealthy".into()));
        assert_eq!(pairs[2], ("check".into(), "selftest".into()));
        assert_eq!(pairs[3].1.chars().count(), 256, "256 characters, not bytes");
        assert!(pairs[3].1.starts_with("éx"));
        assert_eq!(pairs[4], ("runpod_version".into(), SDK_VERSION.into()));
        // The SDK reports with the key alone (no pod id needed); without the key, not at all.
        let mut env = capture_env();
        env.remove("RUNPOD_POD_ID");
        assert!(platform(&env).unwrap().unhealthy_url("c", "r").is_some());
        env.remove("RUNPOD_AI_API_KEY");
        assert!(platform(&env).unwrap().unhealthy_url("c", "r").is_none());
    }

    #[test]
    fn a_missing_or_bad_environment_is_one_sentence() {
        let e = platform(&HashMap::new()).unwrap_err().to_string();
        assert!(e.contains("neither is set"), "{e}");
        assert!(e.contains("powhost run"), "{e}");
        let mut env = capture_env();
        env.remove("RUNPOD_WEBHOOK_POST_OUTPUT");
        let e = platform(&env).unwrap_err().to_string();
        assert!(e.contains("RUNPOD_WEBHOOK_POST_OUTPUT is not set"), "{e}");
        let mut env = capture_env();
        env.insert("RUNPOD_PING_INTERVAL", "soon".into());
        let e = platform(&env).unwrap_err().to_string();
        assert!(e.contains("RUNPOD_PING_INTERVAL"), "{e}");
        let mut env = capture_env();
        env.insert("RUNPOD_WEBHOOK_GET_JOB", "job-take/$ID".into());
        let e = platform(&env).unwrap_err().to_string();
        assert!(e.contains("RUNPOD_WEBHOOK_GET_JOB"), "{e}");
        // No key: no heartbeat, as the SDK.
        let mut env = capture_env();
        env.remove("RUNPOD_AI_API_KEY");
        assert!(platform(&env).unwrap().ping_url(&[]).is_none());
    }
}
