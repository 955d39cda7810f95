//! Encoding gateway responses, for the server side: `200` answers carrying
//! `X-MSN-Messenger: SessionID=...; GW-IP=...[; Session=close]` and MSNP bytes, error answers,
//! `100 Continue`, and CORS headers and preflight answers for browser clients.

use crate::{AddressError, Endpoint};

/// The content type of every gateway body.
const MESSENGER_CONTENT_TYPE: &str = "application/x-msn-messenger";

/// What the `Connection` header of a response says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionHeader {
    /// No header: the HTTP/1.1 default, the connection persists.
    Omit,
    /// `Connection: keep-alive`, for an HTTP/1.0 client that asked to keep the connection.
    KeepAlive,
    /// `Connection: close`: the server closes the connection after this response.
    Close,
}

impl ConnectionHeader {
    /// The header that answers an HTTP/1.0 (`http10`) or 1.1 request whose connection may
    /// persist (`keep_alive`) or not.
    pub fn answering(http10: bool, keep_alive: bool) -> Self {
        match (keep_alive, http10) {
            (false, _) => Self::Close,
            (true, true) => Self::KeepAlive,
            (true, false) => Self::Omit,
        }
    }
}

/// A `200` answer of a gateway session.
#[derive(Clone, Copy, Debug)]
pub struct SessionResponse<'a> {
    /// The session ID the client sends next (visible ASCII, no `;`).
    pub session_id: &'a str,
    /// Adds `Session=close`: the body is the last of this session.
    pub session_close: bool,
    /// Persistence of the connection.
    pub connection: ConnectionHeader,
    /// `Access-Control-Allow-Origin` value for a browser client (`*` or its origin), if any.
    pub allow_origin: Option<&'a str>,
    /// The body, as pieces written one after the other.
    pub body: &'a [&'a [u8]],
}

/// Writes gateway responses into a caller-owned buffer; the `GW-IP` part of `X-MSN-Messenger`
/// is rendered once up front.
///
/// ```
/// use msn_http_core::wire::{ConnectionHeader, ResponseEncoder, SessionResponse};
///
/// let enc = ResponseEncoder::new("207.46.110.18").unwrap();
/// let mut out = Vec::new();
/// enc.encode_session(&mut out, &SessionResponse {
///     session_id: "954547325.13160",
///     session_close: false,
///     connection: ConnectionHeader::Omit,
///     allow_origin: None,
///     body: &[b"VER 5 MSNP7 CVR0\r\n"],
/// });
/// assert_eq!(
///     out,
///     b"HTTP/1.1 200 OK\r\nX-MSN-Messenger: SessionID=954547325.13160; GW-IP=207.46.110.18\r\n\
///       Content-Type: application/x-msn-messenger\r\nContent-Length: 18\r\n\r\nVER 5 MSNP7 CVR0\r\n"
/// );
/// ```
#[derive(Clone, Debug)]
pub struct ResponseEncoder {
    gw_ip: String,
}

impl ResponseEncoder {
    /// An encoder announcing `gw_ip` (this gateway's public `host[:port]`) as `GW-IP`. An empty
    /// value tells clients to keep the host they used.
    pub fn new(gw_ip: &str) -> Result<Self, AddressError> {
        if !gw_ip.is_empty() {
            Endpoint::parse(gw_ip, 80)?;
        }
        Ok(Self { gw_ip: gw_ip.to_owned() })
    }

    /// The announced `GW-IP`.
    pub fn gw_ip(&self) -> &str {
        &self.gw_ip
    }

    /// Appends a `200` answer of a session.
    pub fn encode_session(&self, out: &mut Vec<u8>, response: &SessionResponse<'_>) {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\nX-MSN-Messenger: SessionID=");
        out.extend_from_slice(response.session_id.as_bytes());
        out.extend_from_slice(b"; GW-IP=");
        out.extend_from_slice(self.gw_ip.as_bytes());
        if response.session_close {
            out.extend_from_slice(b"; Session=close");
        }
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(MESSENGER_CONTENT_TYPE.as_bytes());
        let len: usize = response.body.iter().map(|part| part.len()).sum();
        write_length(out, len);
        write_connection(out, response.connection);
        write_cors(out, response.allow_origin);
        out.extend_from_slice(b"\r\n");
        for part in response.body {
            out.extend_from_slice(part);
        }
    }

    /// Appends an answer with `status` and an empty body (errors, mostly). A `405` lists the
    /// allowed methods.
    pub fn encode_status(
        &self,
        out: &mut Vec<u8>,
        status: u16,
        connection: ConnectionHeader,
        allow_origin: Option<&str>,
    ) {
        write_status_line(out, status);
        if status == 405 {
            out.extend_from_slice(b"Allow: POST, OPTIONS\r\n");
        }
        out.extend_from_slice(b"Content-Length: 0\r\n");
        write_connection(out, connection);
        write_cors(out, allow_origin);
        out.extend_from_slice(b"\r\n");
    }

    /// Appends the `204` answer to `OPTIONS`, with the CORS preflight grant when `allow_origin`
    /// is given.
    pub fn encode_preflight(
        &self,
        out: &mut Vec<u8>,
        connection: ConnectionHeader,
        allow_origin: Option<&str>,
        max_age_secs: u32,
    ) {
        write_status_line(out, 204);
        out.extend_from_slice(b"Allow: POST, OPTIONS\r\n");
        write_connection(out, connection);
        if let Some(origin) = allow_origin {
            write_cors(out, Some(origin));
            out.extend_from_slice(
                b"Access-Control-Allow-Methods: POST, OPTIONS\r\n\
                  Access-Control-Allow-Headers: Content-Type\r\n\
                  Access-Control-Max-Age: ",
            );
            out.extend_from_slice(itoa::Buffer::new().format(max_age_secs).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Appends the interim `100 Continue` for a client that sent `Expect: 100-continue`.
    pub fn encode_continue(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
}

/// The reason phrase the gateway sends with `status`.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

fn write_status_line(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn write_length(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(b"\r\nContent-Length: ");
    out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn write_connection(out: &mut Vec<u8>, connection: ConnectionHeader) {
    match connection {
        ConnectionHeader::Omit => {}
        ConnectionHeader::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        ConnectionHeader::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
}

fn write_cors(out: &mut Vec<u8>, allow_origin: Option<&str>) {
    let Some(origin) = allow_origin else {
        return;
    };
    out.extend_from_slice(b"Access-Control-Allow-Origin: ");
    out.extend_from_slice(origin.as_bytes());
    out.extend_from_slice(b"\r\nAccess-Control-Expose-Headers: X-MSN-Messenger\r\n");
    if origin != "*" {
        // The answer depends on the request's Origin: caches must not share it.
        out.extend_from_slice(b"Vary: Origin\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{
        BodyKind, HttpLimits, ResponseDecoder, ResponseStep, parse_messenger_header,
    };

    fn decode(wire: &[u8]) -> (u16, Option<Vec<u8>>, Vec<u8>, bool) {
        let mut d = ResponseDecoder::new(HttpLimits::default());
        let mut input = wire;
        let mut body = Vec::new();
        loop {
            match d.decode(&mut input).unwrap() {
                ResponseStep::Head | ResponseStep::NeedMore => {}
                ResponseStep::Body(b) => body.extend_from_slice(b),
                ResponseStep::Complete => break,
            }
        }
        assert!(input.is_empty());
        let head = d.head();
        (head.status(), head.messenger().map(<[u8]>::to_vec), body, head.keep_alive())
    }

    #[test]
    fn session_answers_round_trip_through_the_client_decoder() {
        let enc = ResponseEncoder::new("gw.example.net:8080").unwrap();
        for close in [false, true] {
            let mut out = Vec::new();
            enc.encode_session(
                &mut out,
                &SessionResponse {
                    session_id: "18446744073709551615.4294967295",
                    session_close: close,
                    connection: ConnectionHeader::Close,
                    allow_origin: Some("https://a.example"),
                    body: &[b"MSG 1 N 3\r\n", b"abc"],
                },
            );
            let (status, messenger, body, keep_alive) = decode(&out);
            assert_eq!(
                (status, body.as_slice(), keep_alive),
                (200, &b"MSG 1 N 3\r\nabc"[..], false)
            );
            let messenger = messenger.unwrap();
            let header = parse_messenger_header(&messenger).unwrap();
            assert_eq!(header.session_id, Some("18446744073709551615.4294967295"));
            assert_eq!(header.gateway, Some("gw.example.net:8080"));
            assert_eq!(header.session_close, close);
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("\r\nAccess-Control-Allow-Origin: https://a.example\r\nAccess-Control-Expose-Headers: X-MSN-Messenger\r\nVary: Origin\r\n"));
        }
    }

    #[test]
    fn status_preflight_and_continue_answers_are_exact() {
        let enc = ResponseEncoder::new("").unwrap();
        let mut out = Vec::new();
        enc.encode_status(&mut out, 405, ConnectionHeader::Close, None);
        assert_eq!(
            out,
            b"HTTP/1.1 405 Method Not Allowed\r\nAllow: POST, OPTIONS\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        out.clear();
        enc.encode_preflight(&mut out, ConnectionHeader::KeepAlive, Some("*"), 600);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "HTTP/1.1 204 No Content\r\nAllow: POST, OPTIONS\r\nConnection: keep-alive\r\n\
             Access-Control-Allow-Origin: *\r\nAccess-Control-Expose-Headers: X-MSN-Messenger\r\n\
             Access-Control-Allow-Methods: POST, OPTIONS\r\nAccess-Control-Allow-Headers: Content-Type\r\n\
             Access-Control-Max-Age: 600\r\n\r\n"
        );
        let mut d = ResponseDecoder::new(HttpLimits::default());
        let mut input = out.as_slice();
        assert_eq!(d.decode(&mut input), Ok(ResponseStep::Head));
        assert_eq!((d.head().status(), d.head().body_kind()), (204, BodyKind::Empty));
        out.clear();
        enc.encode_continue(&mut out);
        assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn bad_gw_ip_is_refused() {
        assert!(ResponseEncoder::new("a;b").is_err());
        assert!(ResponseEncoder::new("host:0").is_err());
        assert_eq!(ResponseEncoder::new("[::1]:80").unwrap().gw_ip(), "[::1]:80");
        assert_eq!(ConnectionHeader::answering(true, true), ConnectionHeader::KeepAlive);
        assert_eq!(ConnectionHeader::answering(false, true), ConnectionHeader::Omit);
        assert_eq!(ConnectionHeader::answering(false, false), ConnectionHeader::Close);
    }
}
