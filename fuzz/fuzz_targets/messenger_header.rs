//! An X-MSN-Messenger value: parses keep their promises; spacing after ';' changes nothing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| msn_http_fuzzing::messenger_header(data));
