//! A platform that gets in the way: job-takes answered 429, result POSTs refused, the
//! platform not there yet, an answer too large to read.

use crate::common::receiver::Received;
use crate::platform::{Endpoint, Platform, platform_env};
use crate::{Worker, tiny_input, worker_command};
use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn job_take_429s_are_waited_out() {
    let platform = Platform::start();
    platform.script().take_429 = 1;
    platform.add_job("job-1", tiny_input());
    let _worker = Worker::start(&platform, &[]);
    platform.wait_for("the result", 60, |p| !p.results("job-1").is_empty());
    let takes: Vec<Received> = platform
        .seen()
        .into_iter()
        .filter(|s| s.is("job-take"))
        .collect();
    assert_eq!(takes[0].answered, 429);
    let gap = takes[1].at - takes[0].at;
    assert!(
        gap >= Duration::from_millis(4900),
        "asked again after {gap:?}, the SDK waits 5 s"
    );
}

#[test]
fn refused_result_posts_are_retried_and_delivered_exactly_once() {
    let platform = Platform::start();
    platform.script().refuse_output = 5;
    platform.add_job("job-r", tiny_input());
    let _worker = Worker::start(&platform, &[]);
    platform.wait_for("the result", 60, |p| !p.results("job-r").is_empty());
    std::thread::sleep(Duration::from_secs(1));
    let posts: Vec<Received> = platform
        .seen()
        .into_iter()
        .filter(|s| s.is("job-done"))
        .collect();
    let answers: Vec<u16> = posts.iter().map(|p| p.answered).collect();
    assert_eq!(answers, [500, 500, 500, 500, 500, 200]);
    // Every attempt is the same result, with the same id for a receiver to drop repeats.
    assert!(posts.iter().all(|p| p.body == posts[0].body));
    assert!(
        posts
            .iter()
            .all(|p| p.headers["x-powhost-batch-id"] == posts[0].headers["x-powhost-batch-id"])
    );
}

#[test]
fn an_unreachable_platform_is_retried_until_it_answers() {
    // A port with nobody on it, for now.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let env = platform_env(&format!("http://{addr}"));
    let mut worker = Worker::start_with(env, &[], &[]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker gave up"
    );
    let platform = Platform::at(addr);
    platform.add_job("job-late", tiny_input());
    platform.wait_for("the result", 60, |p| !p.results("job-late").is_empty());
}

/// A platform answer beyond the worker's bound (256 MiB) is refused unread (it used to be read
/// whole, without limit); the worker backs off and takes the next job.
#[test]
fn an_oversized_platform_answer_is_refused_and_the_worker_goes_on() {
    let platform = Platform::start();
    platform.script().huge_take = Some(257 << 20);
    platform.add_job("job-after", tiny_input());
    let mut worker = worker_command(platform.env(), &[], &[("LOG_LEVEL", "warn")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    platform.wait_for("the next job's result", 60, |p| {
        !p.results("job-after").is_empty()
    });
    let _ = worker.kill();
    let out = worker.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("larger than 256 MiB"), "{log}");
}
