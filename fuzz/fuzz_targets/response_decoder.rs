//! Response bytes, whole and cut: same events, limits held, no byte lost.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| msn_http_fuzzing::response_decoder(data));
