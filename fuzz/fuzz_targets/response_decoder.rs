//! Feeds arbitrary bytes to the response decoder, whole and one byte at a time, and checks
//! both give the same outcome.
#![no_main]

use libfuzzer_sys::fuzz_target;
use msn_http_core::wire::{HttpLimits, ResponseDecoder, ResponseStep};

fn decode(data: &[u8], step: usize) -> (Vec<u8>, Option<msn_http_core::error::HttpError>, bool) {
    let mut decoder =
        ResponseDecoder::new(HttpLimits { max_head_bytes: 1024, max_body_bytes: 4096 });
    let mut body = Vec::new();
    for piece in data.chunks(step) {
        let mut input = piece;
        loop {
            match decoder.decode(&mut input) {
                Ok(ResponseStep::Body(b)) => body.extend_from_slice(b),
                Ok(ResponseStep::Head) => {}
                Ok(ResponseStep::NeedMore) => break,
                Ok(ResponseStep::Complete) => return (body, None, true),
                Err(e) => return (body, Some(e), false),
            }
        }
    }
    (body, None, decoder.is_complete())
}

fuzz_target!(|data: &[u8]| {
    let whole = decode(data, data.len().max(1));
    let bytewise = decode(data, 1);
    assert_eq!(whole, bytewise);
});
