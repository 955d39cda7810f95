//! Error types, split by who is at fault: the remote peer (gateway or proxy), the network, or
//! the local caller.
//!
//! Every error type of the crate is here (those of the gateway and the request decoder
//! re-exported from where they are made).
//!
//! Errors from the peer and the network reach the caller as [`Event`](crate::client::Event)s
//! (non-fatal ones as warnings, fatal ones inside the final `Closed` event; fatal errors are
//! sticky). Mistakes of the local caller are returned directly by the call that made them
//! ([`SendError`], [`ConfigError`]).

use std::fmt;
use std::io;

use crate::Endpoint;
pub use crate::endpoint::AddressError;
pub use crate::gateway::{AcceptError, GatewayConfigError};
pub use crate::url::UrlError;
pub use crate::wire::TunnelError;
pub use crate::wire::query::QueryError;
pub use crate::wire::request_decoder::RequestError;

/// A malformed or unacceptable HTTP message, at the wire level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpError {
    /// The start line or a header is not valid HTTP/1.x.
    MalformedHead(HeadFault),
    /// The head did not end within the configured head size.
    HeadTooLarge {
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// More header fields than [`MAX_HEADERS`](crate::wire::MAX_HEADERS).
    TooManyHeaders,
    /// The body is larger than the configured body size.
    BodyTooLarge {
        /// The configured limit, in bytes.
        limit: u64,
    },
    /// `Content-Length` is not a plain decimal number that fits in 64 bits.
    InvalidContentLength,
    /// Several `Content-Length` fields disagree.
    ConflictingContentLength,
    /// A transfer coding other than `chunked` (we never ask for one).
    UnsupportedTransferEncoding,
    /// A content coding such as gzip (we never advertise one).
    UnsupportedContentEncoding,
    /// A chunk-size line is not a hexadecimal size that fits in 64 bits.
    InvalidChunkSize,
    /// A chunk-size line or trailer line is longer than the decoder accepts.
    ChunkLineTooLong,
    /// Chunk data is not followed by CRLF.
    InvalidChunkTerminator,
    /// `101 Switching Protocols`: the gateway protocol never upgrades.
    UnexpectedUpgrade,
    /// A header that must appear at most once appeared twice.
    DuplicateHeader(&'static str),
}

impl fmt::Display for HeadFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::HeaderName => "invalid header name",
            Self::HeaderValue => "invalid header value",
            Self::NewLine => "bad line ending",
            Self::Status => "invalid status line",
            Self::Token => "invalid method or target",
            Self::Version => "not HTTP/1.0 or HTTP/1.1",
        })
    }
}

/// Which part of an HTTP head was malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeadFault {
    /// An invalid header name.
    HeaderName,
    /// An invalid header value (for example a NUL byte).
    HeaderValue,
    /// A bad line ending.
    NewLine,
    /// An invalid status code or status line.
    Status,
    /// An invalid token (method or target).
    Token,
    /// Not `HTTP/1.0` or `HTTP/1.1`.
    Version,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MalformedHead(part) => write!(f, "malformed HTTP head: {part}"),
            Self::HeadTooLarge { limit } => write!(f, "HTTP head larger than {limit} bytes"),
            Self::TooManyHeaders => f.write_str("too many HTTP header fields"),
            Self::BodyTooLarge { limit } => write!(f, "HTTP body larger than {limit} bytes"),
            Self::InvalidContentLength => f.write_str("invalid Content-Length"),
            Self::ConflictingContentLength => f.write_str("conflicting Content-Length fields"),
            Self::UnsupportedTransferEncoding => f.write_str("unsupported Transfer-Encoding"),
            Self::UnsupportedContentEncoding => f.write_str("unsupported Content-Encoding"),
            Self::InvalidChunkSize => f.write_str("invalid chunk size"),
            Self::ChunkLineTooLong => f.write_str("chunk-size or trailer line too long"),
            Self::InvalidChunkTerminator => f.write_str("chunk data not followed by CRLF"),
            Self::UnexpectedUpgrade => f.write_str("unexpected 101 Switching Protocols"),
            Self::DuplicateHeader(name) => write!(f, "duplicate {name} header"),
        }
    }
}

impl std::error::Error for HttpError {}

/// A malformed `X-MSN-Messenger` header value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessengerHeaderError {
    /// The header value is empty.
    Empty,
    /// No `SessionID` key (and no `Session=close` either).
    MissingSessionId,
    /// `SessionID=` with nothing after it.
    EmptySessionId,
    /// A SessionID longer than [`MAX_SESSION_ID_LEN`](crate::wire::MAX_SESSION_ID_LEN).
    SessionIdTooLong,
    /// A SessionID holding a control character, space or non-ASCII byte.
    InvalidSessionId,
    /// The value does not follow the `key=value; key=value` grammar.
    Syntax,
}

impl fmt::Display for MessengerHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "empty X-MSN-Messenger header",
            Self::MissingSessionId => "X-MSN-Messenger without SessionID",
            Self::EmptySessionId => "empty SessionID",
            Self::SessionIdTooLong => "SessionID too long",
            Self::InvalidSessionId => "SessionID holds an invalid byte",
            Self::Syntax => "malformed X-MSN-Messenger header",
        })
    }
}

impl std::error::Error for MessengerHeaderError {}

/// An MSNP byte stream that cannot be framed into commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// A command line longer than the configured maximum without a line ending.
    LineTooLong {
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// A payload command announcing more bytes than the configured maximum.
    PayloadTooLarge {
        /// The announced payload length.
        len: u64,
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// An empty command line, or one whose command name is not 3 letters or digits.
    InvalidCommand,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LineTooLong { limit } => write!(f, "MSNP command line longer than {limit} bytes"),
            Self::PayloadTooLarge { len, limit } => {
                write!(f, "MSNP payload of {len} bytes exceeds the limit of {limit}")
            }
            Self::InvalidCommand => f.write_str("invalid MSNP command line"),
        }
    }
}

impl std::error::Error for FrameError {}

/// The gateway, or a proxy on the way, broke the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteError {
    /// The HTTP response could not be decoded.
    Http(HttpError),
    /// A 2xx response without an `X-MSN-Messenger` header (a transparent proxy or captive
    /// portal answering in the gateway's place, typically).
    MissingMessengerHeader,
    /// The `X-MSN-Messenger` header could not be parsed.
    MessengerHeader(MessengerHeaderError),
    /// `GW-IP` or `X-MSN-Host` named an unusable address; the session stays where it was.
    InvalidGatewayAddress(AddressError),
    /// A status the protocol has no use for (3xx, 4xx other than 400 and 407).
    UnexpectedStatus(u16),
    /// A 5xx status.
    ServerError(u16),
    /// `407`: the proxy wants credentials (or rejected the ones configured).
    ProxyAuthenticationRequired,
    /// Bytes arrived while no request was in flight, or after a complete response.
    UnsolicitedData {
        /// How many bytes were discarded.
        len: usize,
    },
    /// The MSNP stream inside the bodies could not be framed.
    Msnp(FrameError),
    /// The proxy did not open the tunnel to an `https://` gateway.
    Tunnel(TunnelError),
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(e) => write!(f, "gateway sent bad HTTP: {e}"),
            Self::MissingMessengerHeader => f.write_str("response without X-MSN-Messenger header"),
            Self::MessengerHeader(e) => write!(f, "gateway sent a bad header: {e}"),
            Self::InvalidGatewayAddress(e) => write!(f, "gateway named a bad address: {e}"),
            Self::UnexpectedStatus(code) => write!(f, "unexpected HTTP status {code}"),
            Self::ServerError(code) => write!(f, "gateway or proxy error: HTTP {code}"),
            Self::ProxyAuthenticationRequired => f.write_str("proxy authentication required"),
            Self::UnsolicitedData { len } => write!(f, "{len} unsolicited bytes from the gateway"),
            Self::Msnp(e) => write!(f, "gateway sent a bad MSNP stream: {e}"),
            Self::Tunnel(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RemoteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Http(e) => Some(e),
            Self::MessengerHeader(e) => Some(e),
            Self::InvalidGatewayAddress(e) => Some(e),
            Self::Msnp(e) => Some(e),
            Self::Tunnel(e) => Some(e),
            _ => None,
        }
    }
}

/// The network failed us: nothing here says the peer misbehaved.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetworkError {
    /// The adapter could not connect to `address` (the gateway, or the proxy when one is
    /// configured).
    ConnectFailed {
        /// What the operating system said (`ConnectionRefused`, `TimedOut`, ...).
        kind: io::ErrorKind,
        /// Where the connection was tried.
        address: Endpoint,
    },
    /// The connection ended before the response was complete.
    ConnectionClosed {
        /// Whether any byte of the response had arrived.
        response_started: bool,
    },
    /// No complete response within the request timeout.
    Timeout {
        /// Whether any byte of the response had arrived.
        response_started: bool,
    },
    /// Too many failed requests in a row; the session gives up.
    TooManyFailures {
        /// How many requests failed in a row.
        failures: u32,
        /// Why the last of them failed.
        last: Box<SessionError>,
    },
}

impl fmt::Display for NetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConnectFailed { kind, address } => {
                write!(f, "could not connect to {address}: {kind}")
            }
            Self::ConnectionClosed { response_started: true } => {
                f.write_str("the connection closed in the middle of a response")
            }
            Self::ConnectionClosed { response_started: false } => {
                f.write_str("the connection closed before any response")
            }
            Self::Timeout { response_started: true } => {
                f.write_str("the response stalled past the request timeout")
            }
            Self::Timeout { response_started: false } => {
                f.write_str("no response within the request timeout")
            }
            Self::TooManyFailures { failures, last } => {
                write!(f, "{failures} requests failed in a row; the last: {last}")
            }
        }
    }
}

impl std::error::Error for NetworkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::TooManyFailures { last, .. } => Some(last.as_ref()),
            _ => None,
        }
    }
}

/// What kind of TLS failure ended a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// The certificate is not trusted: an unknown issuer, expired, revoked, or malformed.
    BadCertificate,
    /// The certificate is valid but for other names than the host's.
    NameMismatch,
    /// The handshake did not complete within the request timeout.
    HandshakeTimeout,
    /// The handshake failed otherwise: the peer sent an alert, speaks no TLS, or offers
    /// nothing in common.
    Handshake,
}

/// A TLS connection to a gateway failed. Never retried: a certificate refused now is refused
/// again, and a retry that got through would only hide an attack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsError {
    /// What failed.
    pub kind: TlsErrorKind,
    /// The host whose certificate or handshake failed.
    pub host: String,
    /// The TLS library's own words for the cause.
    pub detail: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            TlsErrorKind::BadCertificate => "its certificate is not trusted",
            TlsErrorKind::NameMismatch => "its certificate is for another name",
            TlsErrorKind::HandshakeTimeout => "the handshake did not complete in time",
            TlsErrorKind::Handshake => "the handshake failed",
        };
        write!(f, "TLS with {} failed: {what} ({})", self.host, self.detail)
    }
}

impl std::error::Error for TlsError {}

/// An error of a session, by who is at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// The gateway or a proxy broke the protocol.
    Remote(RemoteError),
    /// The network failed.
    Network(NetworkError),
    /// TLS with an `https://` gateway failed.
    Tls(TlsError),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Remote(e) => e.fmt(f),
            Self::Network(e) => e.fmt(f),
            Self::Tls(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Remote(e) => Some(e),
            Self::Network(e) => Some(e),
            Self::Tls(e) => Some(e),
        }
    }
}

impl From<RemoteError> for SessionError {
    fn from(e: RemoteError) -> Self {
        Self::Remote(e)
    }
}

impl From<NetworkError> for SessionError {
    fn from(e: NetworkError) -> Self {
        Self::Network(e)
    }
}

impl From<HttpError> for SessionError {
    fn from(e: HttpError) -> Self {
        Self::Remote(RemoteError::Http(e))
    }
}

/// Why [`Session::send`](crate::client::Session::send) refused bytes. Nothing of a refused call
/// is queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The session has ended (or is ending after [`close`](crate::client::Session::close)).
    Closed,
    /// The outgoing queue would exceed its limit; drive the session and try again.
    QueueFull {
        /// Bytes already queued (including the request in flight).
        queued: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A request carrying earlier commands failed and it is unknown whether the gateway got
    /// them: they hold the head of the queue until the caller decides
    /// ([`Session::resend_unconfirmed`](crate::client::Session::resend_unconfirmed) or
    /// [`Session::discard_unconfirmed`](crate::client::Session::discard_unconfirmed)), so a
    /// caller waiting for room would wait forever. Returned by adapters instead of waiting.
    AwaitingDecision,
    /// `PNG` may not be sent through the gateway (the official server disconnects); the
    /// gateway session's polling keeps the connection alive instead.
    PingNotAllowed,
    /// The bytes are not well-formed MSNP commands (the framing error says how).
    Malformed(FrameError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("the session is closed"),
            Self::AwaitingDecision => f.write_str(
                "an earlier request's delivery is uncertain: resend or discard it before sending more",
            ),
            Self::QueueFull { queued, limit } => {
                write!(f, "outgoing queue full ({queued} of {limit} bytes)")
            }
            Self::PingNotAllowed => f.write_str("PNG is not allowed over the HTTP gateway"),
            Self::Malformed(e) => write!(f, "not a well-formed MSNP command: {e}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Malformed(e) => Some(e),
            _ => None,
        }
    }
}

impl From<FrameError> for SendError {
    fn from(e: FrameError) -> Self {
        Self::Malformed(e)
    }
}

/// A configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A header name or value holds a byte that would break the request (CR, LF, NUL, or a
    /// non-token byte in a name), or names a header the session writes itself.
    InvalidHeader(String),
    /// The gateway path must start with `/` and hold only URL-safe bytes.
    InvalidPath,
    /// The target MSNP server (`IP=` value) is empty or malformed.
    InvalidTarget(AddressError),
    /// A gateway or proxy URL that cannot be used.
    InvalidUrl(UrlError),
    /// Proxy credentials hold a byte that cannot go in a header.
    InvalidCredentials,
    /// A limit or duration that makes no sense (zero, or smaller than another it must exceed).
    InvalidLimit(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidHeader(name) => {
                write!(f, "invalid request header \"{}\"", name.escape_debug())
            }
            Self::InvalidPath => f.write_str("invalid gateway path"),
            Self::InvalidTarget(e) => write!(f, "invalid target server: {e}"),
            Self::InvalidUrl(e) => write!(f, "invalid URL: {e}"),
            Self::InvalidCredentials => f.write_str("invalid proxy credentials"),
            Self::InvalidLimit(name) => write!(f, "invalid setting: {name}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidTarget(e) => Some(e),
            Self::InvalidUrl(e) => Some(e),
            _ => None,
        }
    }
}
