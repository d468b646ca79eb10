#![no_main]
//! The runpod plugin's request parsing, natively: a request that parses, written back as JSON
//! (`Request::to_json`), parses to the same request. Findings are replayed by the plugin's
//! test `fuzz_inputs_round_trip` from `fuzz/regressions/runpod_request/`.

use powhost_plugin_runpod::request::{Request, parse};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        powhost_plugin_kit::check_round_trip(text, parse, Request::to_json, "runpod_request");
    }
});
