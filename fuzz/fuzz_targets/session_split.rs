//! One response fed to a client Session whole and cut: the same events and state.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    msn_http_fuzzing::session_split(data, std::time::Instant::now())
});
