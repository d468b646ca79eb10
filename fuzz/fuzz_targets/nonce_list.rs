#![no_main]
//! See `powhost::fuzzing::nonce_list` for what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| powhost::fuzzing::nonce_list(data));
