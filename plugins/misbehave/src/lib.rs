//! A deliberately bad plugin, for the host's sandbox tests. The request text picks the
//! misbehaviour (bare, or as `{"input": {"action": "trap"}}` for the HTTP endpoints); anything else is
//! echoed, so a test can check the host still serves.

use powhost_plugin_kit::{Handler, PluginInfo, RequestError, compute, session};
use std::time::{Duration, Instant, SystemTime};

struct Misbehave;

impl Handler for Misbehave {
    fn handle(request: &str) -> Result<String, RequestError> {
        match action(request) {
            "trap" => panic!("misbehaving on purpose"),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            // Spins on a cheap host call: that time counts against the plugin.
            "host-loop" => loop {
                let _ = compute::preset("tiny");
                let _ = session::stop_requested();
            },
            "emit-flood" => loop {
                session::emit("{\"flood\": true}");
                if session::stop_requested().is_some() {
                    return Ok(String::new());
                }
            },
            // What the clocks say, around an hour's sleep: the host must tell no time and
            // must not wait the hour.
            "clocks" => {
                let since_epoch = || {
                    SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(-1, |d| d.as_nanos() as i128)
                };
                let wall_before = since_epoch();
                let start = Instant::now();
                std::thread::sleep(Duration::from_secs(3600));
                let slept = start.elapsed().as_nanos();
                let wall_after = since_epoch();
                Ok(format!(
                    "{{\"wall_before_ns\": {wall_before}, \"wall_after_ns\": {wall_after}, \"monotonic_slept_ns\": {slept}}}"
                ))
            }
            other => Ok(format!("{{\"echo\": {:?}}}", other)),
        }
    }

    fn info() -> PluginInfo {
        PluginInfo {
            name: "misbehave".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "test fixture: traps, loops (in plugin code or on host calls), exhausts memory, floods or reads the clocks on request".into(),
        }
    }
}

powhost_plugin_kit::export_handler!(Misbehave);

/// `trap` from `trap` or from `{"input": {"action": "trap"}}` (no JSON parser in this fixture).
fn action(request: &str) -> &str {
    let request = request.trim();
    match request.split_once("\"action\":") {
        Some((_, rest)) => rest
            .trim()
            .trim_start_matches('"')
            .split('"')
            .next()
            .unwrap_or(""),
        None => request,
    }
}
