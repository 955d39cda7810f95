//! Harnesses for the wire layer: the response and request decoders fed whole and in pieces,
//! the `X-MSN-Messenger` parser, the MSNP framer, and encoder → decoder round trips.

use msn_http_core::wire::HttpLimits;

use crate::split;

mod messenger;
mod msnp;
mod request;
mod response;
mod roundtrip;

pub use messenger::messenger_header;
pub use msnp::msnp_framer;
pub use request::request_decoder;
pub use response::response_decoder;
pub use roundtrip::{request_roundtrip, response_roundtrip};

/// Limits, the stream in pieces, and the stream whole.
pub(crate) type DecoderInput<'a> = (HttpLimits, Vec<&'a [u8]>, &'a [u8]);

/// The decoder targets' input: a limits byte (a head limit from `heads`; a body limit of 0, 16,
/// 256 or `max_body`), a cutting byte, then the stream; returns the limits, the stream cut
/// where the input says, and the stream whole.
pub(crate) fn limits_and_pieces(
    data: &[u8],
    heads: [usize; 4],
    max_body: u64,
) -> Option<DecoderInput<'_>> {
    let (&[cfg, cut_seed], stream) = data.split_first_chunk::<2>()?;
    let limits = HttpLimits {
        max_head_bytes: heads[usize::from(cfg & 3)],
        max_body_bytes: [0, 16, 256, max_body][usize::from(cfg >> 2 & 3)],
    };
    let pieces = split(stream, u64::from(cut_seed) << 32 | stream.len() as u64);
    Some((limits, pieces, stream))
}

/// What a decoder loop does after one `decode` call.
pub(crate) enum Next {
    /// Decode again from what is left of the piece.
    Decode,
    /// The decoder took the whole piece and wants more.
    NeedMore,
    /// Decoding ended (with an error): no more pieces.
    Stop,
}

/// Feeds `pieces` in order to `step`, which makes one `decode` call on what is left of the
/// piece, until it says [`Next::Stop`] or the pieces run out. Checks the decoder's promises
/// to every caller: it makes progress, and it wants more only once it has read everything.
pub(crate) fn feed(pieces: &[&[u8]], mut step: impl FnMut(&mut &[u8]) -> Next) {
    for piece in pieces {
        let mut input = *piece;
        for steps in 1.. {
            assert!(steps <= 4 * piece.len() + 16, "the decoder makes no progress");
            match step(&mut input) {
                Next::Decode => {}
                Next::NeedMore => {
                    // Bytes left unread here would be lost by every caller.
                    assert!(input.is_empty(), "NeedMore with {} bytes unread", input.len());
                    break;
                }
                Next::Stop => return,
            }
        }
    }
}
