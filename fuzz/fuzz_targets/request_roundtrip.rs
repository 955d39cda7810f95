//! Client RequestEncoder -> gateway RequestDecoder: the same query and body.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| msn_http_fuzzing::request_roundtrip(data));
