#![no_main]
//! The runpod plugin's request parsing, natively: a request that parses, written back as JSON
//! (`Request::to_json`), parses to the same request. Its findings are replayed by the
//! plugin's test `fuzz_inputs_round_trip` from `fuzz/regressions/runpod_request/`.

use powhost_plugin_runpod::request::parse;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(request) = parse(text) {
        let again = parse(&request.to_json())
            .unwrap_or_else(|e| panic!("{request:?} written back is refused: {e:?}"));
        assert_eq!(again, request);
    }
});
