//! Request bytes for the gateway, whole and cut: same requests, limits held, documented statuses.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| msn_http_fuzzing::request_decoder(data));
