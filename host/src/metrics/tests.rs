use super::exposition::parse;
use super::*;
use crate::delivery::OutboxStats;

fn live() -> Live {
    Live {
        jobs: vec![JobCount {
            status: "in_progress".into(),
            jobs: 2,
        }],
        callbacks: Some(OutboxStats {
            pending: 1,
            delivered: 3,
            refused: 4,
            retried: 5,
            oldest_pending_seconds: 1.5,
            ..Default::default()
        }),
    }
}

#[test]
fn the_exposition_passes_the_strict_reader_and_says_what_was_counted() {
    let m = Metrics::new();
    m.set_build_info("cpu", "a \"quoted\" device\\with a backslash");
    m.nonces_computed("cpu", 8);
    m.nonces_valid("cpu", 3);
    let timer = m.batch_timer("cpu");
    timer.batch_done();
    timer.batch_done();
    m.model_built("cpu", 0.25);
    m.model_block_height(42);
    m.plugin_call("runpod", PluginOutcome::Answered);
    m.plugin_call("runpod", PluginOutcome::ErrorReply);
    m.plugin_call("runpod", PluginOutcome::Failed("time_limit"));
    m.selftest(true, Some(2.5e-7));
    let text = m.render(live());
    let e = parse(&text).unwrap_or_else(|why| panic!("{why}\n{text}"));
    let cpu = [("backend", "cpu")];
    assert_eq!(e.value("powhost_nonces_computed_total", &cpu), 8.0);
    assert_eq!(e.value("powhost_nonces_valid_total", &cpu), 3.0);
    assert_eq!(e.value("powhost_batch_seconds_count", &cpu), 2.0);
    assert_eq!(e.value("powhost_model_build_seconds_sum", &cpu), 0.25);
    assert_eq!(e.value("powhost_model_block_height", &[]), 42.0);
    let runpod = [("plugin", "runpod")];
    assert_eq!(e.value("powhost_plugin_calls_total", &runpod), 3.0);
    assert_eq!(e.value("powhost_plugin_error_replies_total", &runpod), 1.0);
    let timed_out = [("plugin", "runpod"), ("kind", "time_limit")];
    assert_eq!(e.value("powhost_plugin_failures_total", &timed_out), 1.0);
    assert_eq!(e.value("powhost_selftest_passed", &[]), 1.0);
    assert_eq!(e.value("powhost_selftest_max_abs_diff", &[]), 2.5e-7);
    let build = [
        ("version", env!("CARGO_PKG_VERSION")),
        ("backend", "cpu"),
        ("device", "a \"quoted\" device\\with a backslash"),
    ];
    assert_eq!(e.value("powhost_build_info", &build), 1.0);
    assert_eq!(e.value("powhost_jobs", &[("status", "in_progress")]), 2.0);
    assert_eq!(e.value("powhost_callbacks_delivered_total", &[]), 3.0);
    assert_eq!(e.value("powhost_callbacks_refused_total", &[]), 4.0);
    assert_eq!(e.value("powhost_callbacks_retried_total", &[]), 5.0);
    assert_eq!(e.value("powhost_callbacks_pending", &[]), 1.0);
    assert_eq!(
        e.value("powhost_callbacks_oldest_pending_age_seconds", &[]),
        1.5
    );
    assert!(e.value("powhost_process_resident_memory_bytes", &[]) > 1e6);
    assert_eq!(e.types["powhost_batch_seconds"], "histogram");
}

#[test]
fn a_failed_selftest_shows_as_zero_and_keeps_its_difference() {
    let m = Metrics::new();
    m.selftest(true, Some(1e-7));
    m.selftest(false, Some(0.3));
    m.selftest(false, None);
    let e = parse(&m.render(Live::default())).unwrap();
    assert_eq!(e.value("powhost_selftest_passed", &[]), 0.0);
    assert_eq!(e.value("powhost_selftest_max_abs_diff", &[]), 0.3);
    assert_eq!(e.value("powhost_selftest_checks_total", &[]), 3.0);
}

#[test]
fn the_strict_reader_refuses_what_breaks_the_format() {
    let ok = "# TYPE a_total counter\na_total{x=\"1\"} 2\n";
    assert!(parse(ok).is_ok());
    for (bad, why) in [
        ("# TYPE a_total counter\na_total 2", "newline"),
        ("a 1\n", "without a TYPE"),
        ("# TYPE a counter\na 1\n", "_total"),
        ("# TYPE a gauge\n# TYPE a gauge\na 1\n", "second TYPE"),
        ("# TYPE a wobbly\na 1\n", "unknown type"),
        ("# TYPE a gauge\na{x=\"1} 1\n", "unterminated"),
        ("# TYPE a gauge\na{x=\"\\q\"} 1\n", "bad escape"),
        ("# TYPE a gauge\na{1x=\"1\"} 1\n", "bad label name"),
        ("# TYPE a gauge\na{x=\"1\"x=\"2\"} 1\n", "expected `,`"),
        ("# TYPE a gauge\na one\n", "not a number"),
        ("# TYPE a gauge\na 1\na 2\n", "same series"),
        ("# TYPE a_total counter\na_total -1\n", "negative"),
        (
            "# TYPE a gauge\n# TYPE b gauge\na{x=\"1\"} 1\nb 1\na{x=\"2\"} 1\n",
            "not together",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
            "not increasing",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 2\n",
            "+Inf bucket",
        ),
    ] {
        let err = parse(bad).expect_err(bad);
        assert!(err.contains(why), "{bad:?}: {err}");
    }
}
