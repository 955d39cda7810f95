//! An MSNP byte stream, whole and cut: same commands, byte-exact, within limits.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| msn_http_fuzzing::msnp_framer(data));
