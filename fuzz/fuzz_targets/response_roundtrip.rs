//! Gateway ResponseEncoder -> client ResponseDecoder + parse_messenger_header: the same values.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| msn_http_fuzzing::response_roundtrip(data));
