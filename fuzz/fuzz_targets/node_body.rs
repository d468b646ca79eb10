#![no_main]
//! See `powhost::fuzzing::node_body` for what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| powhost::fuzzing::node_body(data));
