#![no_main]
//! See `powhost::fuzzing::params` for what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| powhost::fuzzing::params(data));
