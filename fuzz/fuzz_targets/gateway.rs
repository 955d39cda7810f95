//! Gateway under arbitrary client, backend and clock operations: limits and pairings held.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    msn_http_fuzzing::gateway(data, std::time::Instant::now())
});
