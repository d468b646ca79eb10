#![no_main]
//! Arbitrary bytes as a request through the real plugin host to both built-in plugins: see
//! `powhost::fuzzing::plugin_request`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| powhost::fuzzing::plugin_request(data));
