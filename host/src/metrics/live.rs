//! The series read at each scrape rather than counted as work is done: jobs by status, the
//! results still to deliver, and the process's resident memory.

use crate::delivery::OutboxStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::sync::Mutex;

/// How many jobs are in one status (`in_queue`, `in_progress`, `completed`, …).
#[derive(Clone, Debug)]
pub struct JobCount {
    pub status: String,
    pub jobs: u64,
}

/// What the transport knows at the time of a scrape.
#[derive(Debug, Default)]
pub struct Live {
    pub jobs: Vec<JobCount>,
    /// The outbox's results (serve's callbacks and webhooks, the worker's results).
    pub callbacks: Option<OutboxStats>,
}

#[derive(Debug, Default)]
pub(super) struct LiveCollector {
    now: Mutex<Live>,
}

impl LiveCollector {
    pub(super) fn set(&self, live: Live) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = live;
    }
}

impl Collector for LiveCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let live = self.now.lock().unwrap_or_else(|p| p.into_inner());
        if !live.jobs.is_empty() {
            let mut family = encoder.encode_descriptor(
                "jobs",
                "Jobs now, by status.",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for count in &live.jobs {
                let labels = [("status", count.status.as_str())];
                ConstGauge::new(count.jobs as i64).encode(family.encode_family(&labels)?)?;
            }
        }
        if let Some(stats) = &live.callbacks {
            counter(
                &mut encoder,
                "callbacks_delivered",
                "Results POSTed and answered 2xx.",
                stats.delivered,
            )?;
            counter(
                &mut encoder,
                "callbacks_refused",
                "Result POSTs answered with an HTTP error status (each is retried).",
                stats.refused,
            )?;
            counter(
                &mut encoder,
                "callbacks_retried",
                "Result POSTs that failed (refused, timed out, unreachable) and were scheduled again.",
                stats.retried,
            )?;
            gauge(
                &mut encoder,
                "callbacks_pending",
                "Results not yet delivered (in serve: with the ProofBatches still filling).",
                None,
                stats.pending as f64,
            )?;
            gauge(
                &mut encoder,
                "callbacks_oldest_pending_age",
                "How long the oldest undelivered result has waited (0: none).",
                Some(&prometheus_client::registry::Unit::Seconds),
                stats.oldest_pending_seconds,
            )?;
        }
        if let Some(bytes) = powhost_core::memory::resident_bytes() {
            gauge(
                &mut encoder,
                "process_resident_memory",
                "Resident memory of the powhost process.",
                Some(&prometheus_client::registry::Unit::Bytes),
                bytes as f64,
            )?;
        }
        Ok(())
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&prometheus_client::registry::Unit>,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}
