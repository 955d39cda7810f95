//! The tunnel to an `https://` gateway through an HTTP proxy: the `CONNECT` request, and the
//! proxy's answer read from input cut at any byte. What flows through the tunnel afterwards
//! (TLS, then the gateway's requests in origin-form) is not this module's business.

use std::fmt;
use std::mem::MaybeUninit;

use crate::Endpoint;
use crate::error::{ConfigError, HttpError};

use super::request_encoder::proxy_authorization;
use super::{HeadBuffer, MAX_HEADERS, head_fault};

/// Appends `CONNECT host:port HTTP/1.1` for `authority` to `out`, with its `Host` field and,
/// for `credentials` (user, password), `Proxy-Authorization: Basic`.
///
/// ```
/// use msn_http_core::Endpoint;
/// use msn_http_core::wire::encode_connect;
///
/// let gateway = Endpoint::parse("gateway.messenger.hotmail.com:443", 443)?;
/// let mut out = Vec::new();
/// encode_connect(&mut out, &gateway, Some(("Aladdin", "open sesame")))?;
/// assert_eq!(
///     out,
///     b"CONNECT gateway.messenger.hotmail.com:443 HTTP/1.1\r\n\
///       Host: gateway.messenger.hotmail.com:443\r\n\
///       Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode_connect(
    out: &mut Vec<u8>,
    authority: &Endpoint,
    credentials: Option<(&str, &str)>,
) -> Result<(), ConfigError> {
    let authorization = credentials.map(|(user, password)| proxy_authorization(user, password));
    let authorization = authorization.transpose()?;
    let authority = authority.to_string();
    out.extend_from_slice(b"CONNECT ");
    out.extend_from_slice(authority.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(field) = authorization {
        out.extend_from_slice(&field);
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Why a proxy did not open the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TunnelError {
    /// The proxy's answer is not valid HTTP, or its head is larger than the limit.
    Http(HttpError),
    /// `407 Proxy Authentication Required`.
    ProxyAuthentication {
        /// Whether the `CONNECT` carried credentials (so they were refused).
        credentials_sent: bool,
    },
    /// Any other answer than a `2xx`: the proxy refuses the tunnel (`403` for a port it does
    /// not allow, `502`/`504` when it cannot reach the gateway, ...).
    Refused {
        /// The proxy's status code.
        status: u16,
    },
    /// The proxy closed the connection before its answer was whole.
    Closed,
}

impl fmt::Display for TunnelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(e) => write!(f, "the proxy's answer to CONNECT is not valid HTTP: {e}"),
            Self::ProxyAuthentication { credentials_sent: false } => {
                f.write_str("the proxy requires authentication, and no credentials are configured")
            }
            Self::ProxyAuthentication { credentials_sent: true } => {
                f.write_str("the proxy refused the configured credentials")
            }
            Self::Refused { status } => write!(f, "the proxy refused the tunnel: HTTP {status}"),
            Self::Closed => f.write_str("the proxy closed the connection before answering CONNECT"),
        }
    }
}

impl std::error::Error for TunnelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Http(e) => Some(e),
            _ => None,
        }
    }
}

/// Reads a proxy's answer to [`encode_connect`]'s request.
///
/// Feed it what the proxy sends until it returns `Ok(true)`: the tunnel is open, and what is
/// left in the input already belongs to the gateway. Interim `1xx` answers are skipped.
/// Never buffers more than the head limit.
///
/// ```
/// use msn_http_core::wire::{TunnelDecoder, TunnelError};
///
/// let mut tunnel = TunnelDecoder::new(16 * 1024, false);
/// let mut input: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03";
/// assert_eq!(tunnel.decode(&mut input), Ok(true));
/// assert_eq!(input, b"\x16\x03\x03"); // the gateway's first TLS bytes
///
/// let mut refused = TunnelDecoder::new(16 * 1024, false);
/// let mut input: &[u8] = b"HTTP/1.1 407 Proxy Authentication Required\r\n";
/// assert_eq!(refused.decode(&mut input), Ok(false));
/// let mut input: &[u8] = b"Proxy-Authenticate: Basic realm=\"x\"\r\n\r\n";
/// assert_eq!(
///     refused.decode(&mut input),
///     Err(TunnelError::ProxyAuthentication { credentials_sent: false })
/// );
/// ```
#[derive(Clone, Debug)]
pub struct TunnelDecoder {
    head: HeadBuffer,
    max_head_bytes: usize,
    /// Bytes of the interim (`1xx`) answers so far: they count against the head limit, so a
    /// proxy that sends them without end is refused.
    interim_bytes: usize,
    credentials_sent: bool,
}

impl TunnelDecoder {
    /// A decoder that accepts answer heads of at most `max_head_bytes` (see
    /// [`HttpLimits::max_head_bytes`](super::HttpLimits::max_head_bytes)); `credentials_sent`
    /// says whether the request carried `Proxy-Authorization`, for the error a `407` makes.
    pub fn new(max_head_bytes: usize, credentials_sent: bool) -> Self {
        Self { head: HeadBuffer::default(), max_head_bytes, interim_bytes: 0, credentials_sent }
    }

    /// Consumes answer bytes from the front of `input`: `Ok(true)` once the tunnel is open
    /// (`input` then starts with the first byte after the answer), `Ok(false)` when all of
    /// `input` was taken and more is needed.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<bool, TunnelError> {
        loop {
            let (mut status, mut len) = (0, 0);
            let limit = self.max_head_bytes;
            let whole = self
                .head
                .read(
                    input,
                    limit.saturating_sub(self.interim_bytes),
                    |bytes| answer_status(bytes, &mut status, &mut len),
                    |_| HttpError::HeadTooLarge { limit },
                )
                .map_err(TunnelError::Http)?;
            if !whole {
                return Ok(false);
            }
            match status {
                101 => return Err(TunnelError::Http(HttpError::UnexpectedUpgrade)),
                100..=199 => self.interim_bytes += len,
                200..=299 => return Ok(true),
                407 => {
                    let credentials_sent = self.credentials_sent;
                    return Err(TunnelError::ProxyAuthentication { credentials_sent });
                }
                status => return Err(TunnelError::Refused { status }),
            }
        }
    }

    /// The error for a connection that ended before [`decode`](Self::decode) returned
    /// `Ok(true)`.
    pub fn decode_eof(&self) -> TunnelError {
        TunnelError::Closed
    }
}

/// Reads a complete answer head's status code and length; `None` while it is partial. The
/// fields are checked for syntax only: a `2xx` to `CONNECT` has no body whatever it says
/// (RFC 9110, 9.3.6), and a refusal ends the connection.
fn answer_status(
    bytes: &[u8],
    status: &mut u16,
    head_len: &mut usize,
) -> Result<Option<usize>, HttpError> {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .parse_response_with_uninit_headers(&mut response, bytes, &mut fields)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(head_fault(e)),
    };
    *status = response.code.expect("a complete response head has a status code");
    *head_len = len;
    Ok(Some(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::HeadFault;

    /// Feeds `wire` in pieces of `step` bytes; the outcome and the bytes left after the answer.
    fn decode(wire: &[u8], step: usize, credentials_sent: bool) -> Result<Vec<u8>, TunnelError> {
        let mut tunnel = TunnelDecoder::new(256, credentials_sent);
        let mut pieces = wire.chunks(step.max(1));
        while let Some(piece) = pieces.next() {
            let mut input = piece;
            if tunnel.decode(&mut input)? {
                let mut rest = input.to_vec();
                pieces.for_each(|piece| rest.extend_from_slice(piece));
                return Ok(rest);
            }
            assert!(input.is_empty(), "a partial answer takes all it is given");
        }
        Err(tunnel.decode_eof())
    }

    #[test]
    fn the_request_names_the_gateway_in_authority_form() {
        let basic_me = "Proxy-Authorization: Basic bWU6\r\n";
        let cases = [
            ("gw.example.net:443", None, "gw.example.net:443", ""),
            ("[2001:db8::1]:8443", None, "[2001:db8::1]:8443", ""),
            ("10.0.0.1:443", Some(("me", "")), "10.0.0.1:443", basic_me),
        ];
        for (authority, credentials, host, auth) in cases {
            let mut out = b"kept".to_vec();
            encode_connect(&mut out, &Endpoint::parse(authority, 443).unwrap(), credentials)
                .unwrap();
            let want = format!("keptCONNECT {host} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n");
            assert_eq!(String::from_utf8(out).unwrap(), want, "{authority}");
        }
        let gateway = Endpoint::parse("gw:443", 443).unwrap();
        for bad in [("a:b", "c"), ("a", "new\r\nline")] {
            assert_eq!(
                encode_connect(&mut Vec::new(), &gateway, Some(bad)),
                Err(ConfigError::InvalidCredentials),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn answers_cut_at_any_byte_give_the_same_outcome() {
        let tls = b"\x16\x03\x01\x00\x05hello";
        let open = [
            &b"HTTP/1.1 200 Connection established\r\n\r\n"[..],
            b"HTTP/1.0 200 OK\r\nProxy-Agent: squid\r\n\r\n",
            // A 2xx to CONNECT has no body, whatever its fields say.
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1  200  ok\r\n\r\n",
        ];
        for answer in open {
            let wire = [answer, tls].concat();
            for step in 1..=wire.len() {
                assert_eq!(decode(&wire, step, false), Ok(tls.to_vec()), "{answer:?} / {step}");
            }
        }
        let auth = |credentials_sent| TunnelError::ProxyAuthentication { credentials_sent };
        let status = |status| TunnelError::Refused { status };
        let http = TunnelError::Http;
        let refused: [(&[u8], bool, TunnelError); 7] = [
            (
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\
               Proxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 0\r\n\r\n",
                false,
                auth(false),
            ),
            (b"HTTP/1.1 407 Nope\r\n\r\n", true, auth(true)),
            (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden", false, status(403)),
            (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", false, status(502)),
            (b"HTTP/1.1 301 Moved\r\nLocation: /\r\n\r\n", false, status(301)),
            (
                b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
                false,
                http(HttpError::UnexpectedUpgrade),
            ),
            (
                b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
                false,
                http(HttpError::MalformedHead(HeadFault::Version)),
            ),
        ];
        for (wire, credentials_sent, want) in refused {
            for step in 1..=wire.len() {
                assert_eq!(decode(wire, step, credentials_sent), Err(want), "{wire:?} / {step}");
            }
        }
    }

    #[test]
    fn a_proxy_that_stops_or_never_ends_its_head_is_an_error() {
        let half = b"HTTP/1.1 200 Connection established\r\nVia: 1.1 p\r\n";
        for step in [1, 7, half.len()] {
            assert_eq!(decode(half, step, false), Err(TunnelError::Closed), "{step}");
        }
        let endless =
            [&b"HTTP/1.1 200 OK\r\n"[..], &b"X-Pad: aaaaaaaaaaaaaaaa\r\n".repeat(20)].concat();
        for step in [1, 64, endless.len()] {
            assert_eq!(
                decode(&endless, step, false),
                Err(TunnelError::Http(HttpError::HeadTooLarge { limit: 256 })),
                "{step}"
            );
        }
        // Interim answers count against the head limit: a proxy cannot send them without end.
        let interim = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(50);
        for step in [1, 9, interim.len()] {
            assert_eq!(
                decode(&interim, step, false),
                Err(TunnelError::Http(HttpError::HeadTooLarge { limit: 256 })),
                "{step}"
            );
        }
    }

    #[test]
    fn errors_read_as_sentences() {
        let cases = [
            (
                TunnelError::ProxyAuthentication { credentials_sent: false },
                "the proxy requires authentication, and no credentials are configured",
            ),
            (
                TunnelError::ProxyAuthentication { credentials_sent: true },
                "the proxy refused the configured credentials",
            ),
            (TunnelError::Refused { status: 403 }, "the proxy refused the tunnel: HTTP 403"),
            (TunnelError::Closed, "the proxy closed the connection before answering CONNECT"),
            (
                TunnelError::Http(HttpError::HeadTooLarge { limit: 9 }),
                "the proxy's answer to CONNECT is not valid HTTP: HTTP head larger than 9 bytes",
            ),
        ];
        for (error, want) in cases {
            assert_eq!(error.to_string(), want);
        }
    }
}
