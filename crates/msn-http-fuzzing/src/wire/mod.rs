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

/// Where a decoder is in the message it reads: in the head, or so far into the body.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Position {
    pub(crate) in_head: bool,
    pub(crate) body_len: u64,
}

impl Position {
    pub(crate) const START: Position = Position { in_head: true, body_len: 0 };

    /// The head ended.
    pub(crate) fn head(&mut self) {
        assert!(self.in_head, "a second head inside one message");
        *self = Position { in_head: false, body_len: 0 };
    }

    /// Body bytes: never in the head, never none, never past `limit` in all.
    pub(crate) fn body(&mut self, len: usize, limit: u64) {
        assert!(!self.in_head && len > 0, "{len} body bytes, in the head: {}", self.in_head);
        self.body_len += len as u64;
        assert!(self.body_len <= limit, "body limit broken");
    }

    /// The message ended after a head; the next starts with its own. Returns the body length.
    pub(crate) fn complete(&mut self) -> u64 {
        assert!(!self.in_head, "a message complete without a head");
        std::mem::replace(self, Position::START).body_len
    }
}

/// What a decoder reported, owned: heads (as `H`), body bytes with consecutive pieces merged
/// (so that whole and cut input give the same list), and message ends with their body length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event<H> {
    Head(H),
    Body(Vec<u8>),
    Complete(u64),
}

impl<H> Event<H> {
    /// Adds body bytes to `events`, merged with the body bytes just before them.
    pub(crate) fn push_body(events: &mut Vec<Self>, bytes: &[u8]) {
        match events.last_mut() {
            Some(Event::Body(merged)) => merged.extend_from_slice(bytes),
            _ => events.push(Event::Body(bytes.to_vec())),
        }
    }
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
