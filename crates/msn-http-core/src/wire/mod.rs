//! The HTTP layer of the gateway protocol: request encoding, incremental response decoding,
//! the `X-MSN-Messenger` header, and the `CONNECT` tunnel through a proxy.
//!
//! Everything here works on caller-owned buffers, accepts input cut at any byte, and turns bad
//! input into an [`HttpError`](crate::error::HttpError) rather than a panic or a large
//! allocation.

mod body;
mod connect;
mod framing;
mod head;
mod messenger;
pub(crate) mod query;
pub(crate) mod request_decoder;
mod request_encoder;
mod response_decoder;
mod response_encoder;

pub use body::BodyKind;
pub use connect::{TunnelDecoder, TunnelError, encode_connect};
pub use messenger::{MAX_SESSION_ID_LEN, MessengerHeader, parse_messenger_header};
pub use query::{GatewayQuery, MAX_IP_PARAM_LEN, QueryAction};
pub(crate) use request_decoder::MAX_ORIGIN_LEN;
pub use request_decoder::{Method, RequestDecoder, RequestHead, RequestStep};
pub use request_encoder::{
    DEFAULT_GATEWAY_PATH, Header, HeaderSet, RequestEncoder, RequestLine, ServerKind, TargetForm,
};
pub use response_decoder::{EofOutcome, ResponseDecoder, ResponseHead, ResponseStep};
pub use response_encoder::{ConnectionHeader, ResponseEncoder, SessionResponse};

pub(crate) use body::{BodyDecoder, BodyStep};
pub(crate) use framing::{FramingHeaders, head_fault};
pub(crate) use head::HeadBuffer;

/// The most header fields a head may carry; more is [`HttpError::TooManyHeaders`](crate::error::HttpError::TooManyHeaders).
pub const MAX_HEADERS: usize = 64;

/// Size limits for decoding HTTP messages. Exceeding one is a typed error, never a large
/// allocation: the decoder never buffers more than `max_head_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// The largest head (start line and header fields) accepted, in bytes. Default 16 KiB.
    pub max_head_bytes: usize,
    /// The largest body accepted, in bytes (after removing chunked framing). Default 1 MiB.
    pub max_body_bytes: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self { max_head_bytes: 16 * 1024, max_body_bytes: 1024 * 1024 }
    }
}

/// HTTP/1.0 or HTTP/1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpVersion {
    /// `HTTP/1.0`: connections close after each message unless keep-alive is asked for.
    Http10,
    /// `HTTP/1.1`: connections persist unless `Connection: close`.
    Http11,
}

impl HttpVersion {
    pub(crate) fn from_minor(minor: u8) -> Self {
        if minor == 0 { Self::Http10 } else { Self::Http11 }
    }
}
