//! Client Session under arbitrary operations, checked against the resend policy.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    msn_http_fuzzing::client_session(data, std::time::Instant::now())
});
