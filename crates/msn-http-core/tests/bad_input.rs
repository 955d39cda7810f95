//! Hostile and garbage gateway responses, one per table row, each with the exact typed outcome it
//! must produce, fed to an opened session whole and again byte by byte.

mod support;

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use FrameError::{InvalidCommand, LineTooLong, PayloadTooLarge};
use HeadFault::{HeaderName, HeaderValue, NewLine, Status, Version};
use HttpError::{
    BodyTooLarge, ChunkLineTooLong, ConflictingContentLength, DuplicateHeader, HeadTooLarge,
    InvalidChunkSize, InvalidChunkTerminator, InvalidContentLength, TooManyHeaders,
    UnexpectedUpgrade, UnsupportedContentEncoding, UnsupportedTransferEncoding,
};
use MessengerFault::{Head, Value};
use MessengerHeaderError::{Empty, EmptySessionId, InvalidSessionId, MissingSessionId, Syntax};
use msn_http_core::AddressError;
use msn_http_core::client::{ClientConfig, CloseReason, Closed, Connection, Recovery, RequestKind};
use msn_http_core::error::{
    FrameError, HeadFault, HttpError, MessengerHeaderError, NetworkError, RemoteError, SessionError,
};
use msn_http_core::msnp::FramerLimits;
use msn_http_core::wire::{HttpLimits, MAX_HEADERS, MAX_SESSION_ID_LEN};
use support::{Ev, Harness};

const MAX_HEAD: usize = 1024;
const MAX_BODY: u64 = 128;
const MAX_LINE: usize = 32;
const MAX_PAYLOAD: usize = 48;
/// The command queued for [`Setup::Send`] rows.
const SEND: &[u8] = b"CHG 2 NLN\r\n";
const MESSENGER: &str = "X-MSN-Messenger: SessionID=s2; GW-IP=gw.test";
const CHUNKED: &str = "Transfer-Encoding: chunked";
const LEN_2: &str = "Content-Length: 2";
/// The start of a gzip stream.
const GZIP: &[u8] = b"\x1f\x8b";

/// Small limits, so that every limit can be crossed by a short row.
fn config() -> ClientConfig {
    let mut config = support::config();
    config.http_limits = HttpLimits { max_head_bytes: MAX_HEAD, max_body_bytes: MAX_BODY };
    config.framer_limits =
        FramerLimits { max_line_bytes: MAX_LINE, max_payload_bytes: MAX_PAYLOAD };
    config
}

/// What the session is doing when the row's bytes arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    /// A poll is in flight.
    Poll,
    /// A request carrying [`SEND`] is in flight (unconfirmed policy: the default, `Ask`).
    Send,
    /// Nothing is in flight.
    Idle,
}

struct Row {
    name: &'static str,
    setup: Setup,
    wire: Vec<u8>,
    /// The connection ends after the bytes.
    eof: bool,
    want: Vec<Ev>,
    /// Further checks on the session after the outcome.
    then: Option<fn(&mut Harness)>,
}

fn row(name: &'static str, wire: impl Into<Vec<u8>>, want: Vec<Ev>) -> Row {
    Row { name, setup: Setup::Poll, wire: wire.into(), eof: false, want, then: None }
}

impl Row {
    fn setup(mut self, setup: Setup) -> Row {
        self.setup = setup;
        self
    }

    fn eof(mut self) -> Row {
        self.eof = true;
        self
    }

    fn then(mut self, check: fn(&mut Harness)) -> Row {
        self.then = Some(check);
        self
    }
}

/// A status line, header lines and a body, joined with CRLF.
fn response(status: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{status}\r\n").into_bytes();
    for header in headers {
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A `200` carrying a good `X-MSN-Messenger` header, then `headers`.
fn ok_with(headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut all = vec![MESSENGER];
    all.extend_from_slice(headers);
    response("HTTP/1.1 200 OK", &all, body)
}

/// A `200` with the given `X-MSN-Messenger` value and a `Content-Length` body.
fn ok_messenger(value: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\nX-MSN-Messenger: ".to_vec();
    out.extend_from_slice(value);
    out.extend_from_slice(format!("\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// Exactly `len` bytes (at least 7) of whole MSNP commands.
fn commands(len: usize) -> Vec<u8> {
    assert!(len >= 7);
    let (count, extra) = (len / 7, len % 7);
    let mut out = b"ILN 1\r\n".repeat(count - 1);
    out.extend_from_slice(format!("ILN 1{}\r\n", "0".repeat(extra)).as_bytes());
    assert_eq!(out.len(), len);
    out
}

/// The command events `commands(len)` gives.
fn command_events(len: usize) -> Vec<Ev> {
    let bytes = commands(len);
    bytes.split_inclusive(|&b| b == b'\n').map(|c| Ev::Command(c.to_vec())).collect()
}

fn closed(reason: CloseReason, unsent_bytes: usize, incomplete_inbound_bytes: usize) -> Ev {
    Ev::Closed(Closed { reason, unsent_bytes, incomplete_inbound_bytes })
}

/// The session failed on `error` with nothing left over.
fn failed(error: impl Into<SessionError>) -> Vec<Ev> {
    vec![closed(CloseReason::Failed(error.into()), 0, 0)]
}

fn http(error: HttpError) -> Vec<Ev> {
    failed(error)
}

fn malformed(fault: HeadFault) -> Vec<Ev> {
    http(HttpError::MalformedHead(fault))
}

fn messenger(error: MessengerHeaderError) -> Vec<Ev> {
    failed(RemoteError::MessengerHeader(error))
}

fn msnp(error: FrameError, incomplete: usize) -> Vec<Ev> {
    let reason = CloseReason::Failed(RemoteError::Msnp(error).into());
    vec![closed(reason, 0, incomplete)]
}

fn warning(error: RemoteError) -> Ev {
    Ev::Warning(error.into())
}

/// After a warning: still open, still at the configured gateway, and the next poll goes there.
fn keeps_gateway(h: &mut Harness) {
    assert_eq!(h.session.gateway(), &support::gateway());
    h.advance(Duration::from_secs(2));
    let (poll, destination, _) = h.transmit().expect("the next poll");
    assert_eq!(poll.kind(), RequestKind::Poll);
    assert_eq!(poll.param("SessionID"), Some("s2"));
    assert_eq!(poll.header("Host"), Some("gw.test"));
    assert_eq!(destination, support::gateway());
}

/// After unsolicited bytes the connection is not trusted: the next request connects anew.
fn next_is_fresh(h: &mut Harness) {
    h.advance(Duration::from_secs(2));
    let (poll, _, connection) = h.transmit().expect("the next poll");
    assert_eq!(poll.kind(), RequestKind::Poll);
    assert_eq!(connection, Connection::Fresh);
}

/// A failed poll is made again at once, on the same connection (the error response was
/// complete).
fn poll_again(h: &mut Harness) {
    poll_again_on(h, Connection::Reuse);
}

/// A failed poll is made again at once, on a new connection (the old one dropped).
fn poll_again_fresh(h: &mut Harness) {
    poll_again_on(h, Connection::Fresh);
}

fn poll_again_on(h: &mut Harness, want: Connection) {
    assert_eq!(h.session.poll_timeout(), Some(h.now), "the retry is due now");
    let (poll, _, connection) = h.transmit().expect("the poll again");
    assert_eq!(poll.kind(), RequestKind::Poll);
    assert_eq!(poll.param("SessionID"), Some("s1"));
    assert_eq!(connection, want);
}

/// A failed send waits for the caller's decision, polling meanwhile (a poll carries no
/// command), then carries the same bytes.
fn send_after_decision(h: &mut Harness) {
    assert_eq!(h.session.awaiting_decision(), Some(SEND.len()));
    assert_eq!(h.session.poll_timeout(), Some(h.now), "polling goes on");
    let (poll, _, _) = h.transmit().expect("a poll while the caller decides");
    assert_eq!((poll.kind(), poll.body.as_slice()), (RequestKind::Poll, &b""[..]));
    h.feed(&support::ok("SessionID=s1; GW-IP=gw.test", b""));
    assert!(h.transmit().is_none(), "no command before the decision");
    assert!(h.session.poll_timeout().is_some(), "the next poll is scheduled");
    h.session.resend_unconfirmed();
    let send = h.request();
    assert_eq!(send.kind(), RequestKind::Send);
    assert_eq!(send.body, SEND);
}

/// Dropping the failed send leaves nothing queued; the session still polls, at once.
fn discard_then_poll(h: &mut Harness) {
    assert_eq!(h.session.discard_unconfirmed(), SEND.len());
    assert_eq!(h.session.queued_bytes(), 0);
    assert_eq!(h.session.poll_timeout(), Some(h.now), "the retry is due now");
    let (poll, _, connection) = h.transmit().expect("a poll, not silence");
    assert_eq!(poll.kind(), RequestKind::Poll);
    assert_eq!(connection, Connection::Reuse);
}

/// Heads refused as malformed, byte for byte as they arrive.
const MALFORMED_HEADS: &[(&str, &[u8], HeadFault)] = &[
    // Status lines.
    ("not HTTP at all", b"garbage\r\n\r\n", Version),
    ("TLS handshake", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n", Version),
    ("blank lines, then HTTP/2.0", b"\r\n\r\nHTTP/2.0 200 OK\r\n\r\n", Version),
    ("HTTP/2.0", b"HTTP/2.0 200 OK\r\n\r\n", Version),
    ("HTTP/1.2", b"HTTP/1.2 200 OK\r\n\r\n", Version),
    ("no status code", b"HTTP/1.1 OK\r\n\r\n", Status),
    ("two-digit status", b"HTTP/1.1 20 OK\r\n\r\n", Status),
    ("four-digit status", b"HTTP/1.1 2000 OK\r\n\r\n", Status),
    ("letters in status", b"HTTP/1.1 2x0 OK\r\n\r\n", Status),
    ("negative status", b"HTTP/1.1 -200 OK\r\n\r\n", Status),
    ("CR not followed by LF in the status line", b"HTTP/1.1 200 OK\rX-A: b\r\n\r\n", Status),
    // Header lines.
    ("header line without a colon", b"HTTP/1.1 200 OK\r\nbroken header\r\n\r\n", HeaderName),
    ("NUL in a header value", b"HTTP/1.1 200 OK\r\nX-Note: a\0b\r\n\r\n", HeaderValue),
    ("NUL in a header name", b"HTTP/1.1 200 OK\r\nX-N\0te: ab\r\n\r\n", HeaderName),
    ("CR inside a header value", b"HTTP/1.1 200 OK\r\nX-A: b\rX-B: c\r\n\r\n", HeaderValue),
    ("CR not followed by LF after the headers", b"HTTP/1.1 200 OK\r\nX-A: b\r\n\rX\r\n", NewLine),
];

/// `200`s with a good `X-MSN-Messenger`, then these header lines and this body, whose body
/// cannot be framed: each is refused with its error.
const BAD_FRAMING: &[(&str, &[&str], &[u8], HttpError)] = &[
    // Content-Length.
    ("negative Content-Length", &["Content-Length: -1"], b"", InvalidContentLength),
    (
        "Content-Length past u64",
        &["Content-Length: 18446744073709551616"],
        b"",
        InvalidContentLength,
    ),
    ("non-numeric Content-Length", &["Content-Length: twelve"], b"", InvalidContentLength),
    ("empty Content-Length", &["Content-Length:"], b"", InvalidContentLength),
    ("Content-Length list", &["Content-Length: 5, 5"], b"ILN 1", InvalidContentLength),
    (
        "conflicting Content-Length",
        &["Content-Length: 5", "Content-Length: 6"],
        b"ILN 1\r",
        ConflictingContentLength,
    ),
    // Chunked bodies.
    ("non-hex chunk size", &[CHUNKED], b"zz\r\n", InvalidChunkSize),
    ("chunk size past u64", &[CHUNKED], b"10000000000000000\r\n", InvalidChunkSize),
    ("missing chunk size", &[CHUNKED], b"\r\nILN 1\r\n", InvalidChunkSize),
    ("negative chunk size", &[CHUNKED], b"-7\r\nILN 1\r\n", InvalidChunkSize),
    ("endless chunk-size line", &[CHUNKED], &[b'0'; 200], ChunkLineTooLong),
    ("chunk size over max_body_bytes", &[CHUNKED], b"81\r\n", BodyTooLarge { limit: MAX_BODY }),
    // Codings.
    ("Transfer-Encoding gzip", &["Transfer-Encoding: gzip"], GZIP, UnsupportedTransferEncoding),
    (
        "Transfer-Encoding chunked, gzip",
        &["Transfer-Encoding: chunked, gzip"],
        b"2\r\n\x1f\x8b\r\n",
        UnsupportedTransferEncoding,
    ),
    ("Content-Encoding gzip", &["Content-Encoding: gzip", LEN_2], GZIP, UnsupportedContentEncoding),
    (
        "Content-Encoding deflate",
        &["Content-Encoding: deflate", LEN_2],
        b"\x78\x9c",
        UnsupportedContentEncoding,
    ),
    (
        "two X-MSN-Messenger headers",
        &["x-msn-messenger: SessionID=s3", "Content-Length: 0"],
        b"",
        DuplicateHeader("X-MSN-Messenger"),
    ),
];

/// `200`s whose `X-MSN-Messenger` value (and nothing else) is bad, and how each is refused.
const BAD_MESSENGER_VALUES: &[(&str, &[u8], MessengerFault)] = &[
    ("NUL in the messenger header", b"SessionID=s\x002; GW-IP=gw.test", Head(HeaderValue)),
    ("empty X-MSN-Messenger", b"", Value(Empty)),
    ("X-MSN-Messenger without SessionID", b"GW-IP=gw.test", Value(MissingSessionId)),
    ("empty SessionID", b"SessionID=; GW-IP=gw.test", Value(EmptySessionId)),
    ("SessionID with a space", b"SessionID=s 2; GW-IP=gw.test", Value(InvalidSessionId)),
    ("SessionID with a tab", b"SessionID=s\t2; GW-IP=gw.test", Value(InvalidSessionId)),
    ("SessionID with a control byte", b"SessionID=s\x012; GW-IP=gw.test", Head(HeaderValue)),
    ("SessionID with DEL", b"SessionID=s\x7f2; GW-IP=gw.test", Head(HeaderValue)),
    (
        "SessionID with a non-ASCII byte",
        b"SessionID=s\xe92; GW-IP=gw.test",
        Value(InvalidSessionId),
    ),
    ("X-MSN-Messenger without key", b"=s2; SessionID=s2", Value(Syntax)),
];

/// Which check refuses a bad `X-MSN-Messenger` value: the HTTP head's or the value's own.
#[derive(Clone, Copy)]
enum MessengerFault {
    Head(HeadFault),
    Value(MessengerHeaderError),
}

/// MSNP streams inside a `200` that cannot be framed, with the bytes left incomplete.
const BAD_MSNP: &[(&str, &[u8], FrameError, usize)] = &[
    ("empty MSNP line", b"\r\n", InvalidCommand, 2),
    (
        "over-long MSNP line without CRLF",
        &[b'A'; MAX_LINE + 2],
        LineTooLong { limit: MAX_LINE },
        MAX_LINE + 2,
    ),
    (
        "MSNP payload over max_payload_bytes",
        b"MSG 1 N 49\r\n",
        PayloadTooLarge { len: 49, limit: MAX_PAYLOAD },
        12,
    ),
    (
        "MSNP payload length past u64",
        b"MSG 1 N 99999999999999999999\r\n",
        PayloadTooLarge { len: u64::MAX, limit: MAX_PAYLOAD },
        30,
    ),
];

fn rows() -> Vec<Row> {
    let long_id = format!("SessionID={}", "7".repeat(MAX_SESSION_ID_LEN + 1));
    let mut big_head = b"HTTP/1.1 200 OK\r\n".to_vec();
    while big_head.len() <= MAX_HEAD {
        big_head.extend_from_slice(b"X-Padding: 0123456789abcdef0123456789abcdef\r\n");
    }
    big_head.extend_from_slice(b"\r\n");
    let mut many_headers = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        many_headers.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    many_headers.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    assert!(many_headers.len() < MAX_HEAD, "too many, but not too large");

    let mut chunked_over = b"40\r\n".to_vec();
    chunked_over.extend_from_slice(&commands(64));
    chunked_over.extend_from_slice(b"\r\n41\r\n");
    let mut close_delimited_over = commands(MAX_BODY as usize);
    close_delimited_over.push(b'X');
    let too_large = || http(HttpError::BodyTooLarge { limit: MAX_BODY });
    let unsolicited = support::ok("SessionID=s9", b"ILN 1\r\n");
    let failed_send = || {
        let error = RemoteError::ServerError(503).into();
        vec![Ev::Failed(RequestKind::Send, error, Recovery::AwaitingDecision)]
    };
    let bad_gateway = |error| vec![warning(RemoteError::InvalidGatewayAddress(error))];

    let mut rows: Vec<Row> =
        MALFORMED_HEADS
            .iter()
            .map(|&(name, wire, fault)| row(name, wire, malformed(fault)))
            .chain(BAD_FRAMING.iter().map(|&(name, headers, body, error)| {
                row(name, ok_with(headers, body), http(error))
            }))
            .chain(BAD_MESSENGER_VALUES.iter().map(|&(name, value, fault)| {
                let want = match fault {
                    MessengerFault::Head(fault) => malformed(fault),
                    MessengerFault::Value(error) => messenger(error),
                };
                row(name, ok_messenger(value, b""), want)
            }))
            .chain(BAD_MSNP.iter().map(|&(name, body, error, incomplete)| {
                row(name, support::ok("SessionID=s2", body), msnp(error, incomplete))
            }))
            .collect();
    rows.extend([
        // Heads too large.
        row("endless blank lines", "\r\n".repeat(MAX_HEAD), http(HeadTooLarge { limit: MAX_HEAD })),
        row("head over max_head_bytes", big_head, http(HeadTooLarge { limit: MAX_HEAD })),
        row("too many header fields", many_headers, http(TooManyHeaders)),
        // Bodies that fail part way.
        row(
            "chunk data not followed by CRLF",
            ok_with(&[CHUNKED], b"9\r\nCHL 0 1\r\nXY"),
            [vec![Ev::command("CHL 0 1\r\n")], http(InvalidChunkTerminator)].concat(),
        ),
        row(
            "Content-Length over max_body_bytes",
            ok_with(&["Content-Length: 129"], &commands(129)),
            too_large(),
        ),
        row(
            "chunks adding up past max_body_bytes",
            ok_with(&[CHUNKED], &chunked_over),
            [command_events(64), too_large()].concat(),
        ),
        row(
            "close-delimited body over max_body_bytes",
            response("HTTP/1.0 200 OK", &[MESSENGER], &close_delimited_over),
            [command_events(MAX_BODY as usize), too_large()].concat(),
        ),
        // X-MSN-Messenger.
        row(
            "200 without X-MSN-Messenger",
            response("HTTP/1.1 200 OK", &["Content-Length: 7"], b"ILN 1\r\n"),
            failed(RemoteError::MissingMessengerHeader),
        ),
        row(
            "over-long SessionID",
            ok_messenger(long_id.as_bytes(), b""),
            messenger(MessengerHeaderError::SessionIdTooLong),
        ),
        // The MSNP stream inside the body.
        row(
            "NUL in an MSNP command name",
            support::ok("SessionID=s2", b"ILN 1\r\nCH\0 1\r\n"),
            [vec![Ev::command("ILN 1\r\n")], msnp(InvalidCommand, 7)].concat(),
        ),
        row(
            "NUL in MSNP arguments is passed through",
            support::ok("SessionID=s2", b"ILN 1 a\0b\r\n"),
            vec![Ev::command("ILN 1 a\0b\r\n")],
        )
        .then(keeps_gateway),
        // Statuses.
        row(
            "101 Switching Protocols",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            http(UnexpectedUpgrade),
        ),
        row(
            "302 redirect",
            response(
                "HTTP/1.1 302 Found",
                &["Location: http://portal.test/", "Content-Length: 0"],
                b"",
            ),
            failed(RemoteError::UnexpectedStatus(302)),
        ),
        row(
            "304 Not Modified",
            response("HTTP/1.1 304 Not Modified", &[MESSENGER], b""),
            failed(RemoteError::UnexpectedStatus(304)),
        ),
        row(
            "404 with a body",
            response("HTTP/1.1 404 Not Found", &["Content-Length: 9"], b"not found"),
            failed(RemoteError::UnexpectedStatus(404)),
        ),
        row(
            "407 proxy authentication",
            response(
                "HTTP/1.1 407 Proxy Authentication Required",
                &["Proxy-Authenticate: Basic realm=\"x\"", "Content-Length: 0"],
                b"",
            ),
            failed(RemoteError::ProxyAuthenticationRequired),
        ),
        row(
            "400 ends the session",
            support::status(400, "Bad Request"),
            vec![closed(CloseReason::SessionRejected, 0, 0)],
        ),
        row(
            "500 on a poll",
            response("HTTP/1.1 500 Oops", &["Content-Length: 5"], b"<h1/>"),
            vec![Ev::Failed(
                RequestKind::Poll,
                RemoteError::ServerError(500).into(),
                Recovery::Resending,
            )],
        )
        .then(poll_again),
        row("503 on a send", support::status(503, "Service Unavailable"), failed_send())
            .setup(Setup::Send)
            .then(send_after_decision),
        row(
            "503 on a send, then discarded",
            support::status(503, "Service Unavailable"),
            failed_send(),
        )
        .setup(Setup::Send)
        .then(discard_then_poll),
        row(
            "100 Continue, then the connection drops",
            "HTTP/1.1 100 Continue\r\n\r\n",
            vec![Ev::Failed(
                RequestKind::Poll,
                NetworkError::ConnectionClosed { response_started: false }.into(),
                Recovery::Resending,
            )],
        )
        .eof()
        .then(poll_again_fresh),
        row(
            "connection drops inside a body",
            ok_with(&["Content-Length: 20"], b"ILN 1\r\nILN"),
            [
                vec![Ev::command("ILN 1\r\n")],
                vec![closed(
                    CloseReason::Failed(
                        NetworkError::ConnectionClosed { response_started: true }.into(),
                    ),
                    0,
                    3,
                )],
            ]
            .concat(),
        )
        .eof(),
        row(
            "fatal error with a send unconfirmed",
            "HTTP/1.1 2OO OK\r\n\r\n",
            vec![closed(
                CloseReason::Failed(HttpError::MalformedHead(Status).into()),
                SEND.len(),
                0,
            )],
        )
        .setup(Setup::Send),
        // Bytes nobody asked for.
        row(
            "bytes while no request is in flight",
            unsolicited.clone(),
            vec![warning(RemoteError::UnsolicitedData { len: unsolicited.len() })],
        )
        .setup(Setup::Idle)
        .then(next_is_fresh),
        row(
            "bytes after a complete response",
            [support::ok("SessionID=s2", b"ILN 1\r\n"), b"HTTP/1.1 200".to_vec()].concat(),
            vec![Ev::command("ILN 1\r\n"), warning(RemoteError::UnsolicitedData { len: 12 })],
        )
        .then(next_is_fresh),
        // Where the next request goes.
        row(
            "GW-IP with port 99999",
            support::ok("SessionID=s2; GW-IP=gw.test:99999", b"ILN 1\r\n"),
            [bad_gateway(AddressError::InvalidPort), vec![Ev::command("ILN 1\r\n")]].concat(),
        )
        .then(keeps_gateway),
        row(
            "GW-IP with a space",
            support::ok("SessionID=s2; GW-IP=gw test", b""),
            bad_gateway(AddressError::InvalidHost),
        )
        .then(keeps_gateway),
        row(
            "X-MSN-Host with a path",
            ok_with(&["X-MSN-Host: gw.test/evil", "Content-Length: 0"], b""),
            bad_gateway(AddressError::InvalidHost),
        )
        .then(keeps_gateway),
        row(
            "a good response still works after all that",
            support::ok("SessionID=s2", b"VER 1 MSNP8\r\n"),
            vec![Ev::command("VER 1 MSNP8\r\n")],
        )
        .then(keeps_gateway),
    ]);
    rows
}

/// An opened session in the state `setup` asks for, with no events left.
fn start(setup: Setup) -> Harness {
    let mut h = Harness::ns(config());
    h.open("s1");
    assert_eq!(h.take_events(), [Ev::Established("s1".into()), Ev::command("VER 1 MSNP8\r\n")]);
    match setup {
        Setup::Poll => {
            h.advance(Duration::from_secs(2));
            assert_eq!(h.request().kind(), RequestKind::Poll);
        }
        Setup::Send => {
            h.session.send(SEND).expect("queued");
            assert_eq!(h.request().kind(), RequestKind::Send);
        }
        Setup::Idle => assert_eq!(h.session.in_flight(), None),
    }
    h
}

/// Feeds the row in pieces of `step` bytes (all at once for `None`), draining after each.
fn run(row: &Row, step: Option<usize>) -> (Vec<Ev>, Harness) {
    let mut h = start(row.setup);
    match step {
        None => h.feed(&row.wire),
        Some(step) => {
            for piece in row.wire.chunks(step) {
                h.feed(piece);
            }
        }
    }
    if row.eof {
        h.eof();
    }
    (h.take_events(), h)
}

/// How many warnings unsolicited bytes make depends on when the caller drains; their total
/// does not. Merges adjacent ones.
fn merge_unsolicited(events: Vec<Ev>) -> Vec<Ev> {
    let mut out: Vec<Ev> = Vec::new();
    for event in events {
        if let (
            Some(Ev::Warning(SessionError::Remote(RemoteError::UnsolicitedData { len: total }))),
            Ev::Warning(SessionError::Remote(RemoteError::UnsolicitedData { len })),
        ) = (out.last_mut(), &event)
        {
            *total += len;
            continue;
        }
        out.push(event);
    }
    out
}

/// Checks what the session does after the outcome.
fn after(row: &Row, h: &mut Harness) {
    if h.session.is_closed() {
        assert!(h.transmit().is_none(), "no request after the end");
        assert_eq!(h.session.poll_timeout(), None);
        h.feed(b"HTTP/1.1 200 OK\r\n\r\n");
        h.eof();
        h.advance(Duration::from_secs(60));
        assert_eq!(h.take_events(), [], "input after the end is ignored");
    }
    if let Some(check) = row.then {
        check(h);
    }
}

#[test]
fn every_row_gives_its_typed_outcome_whole_and_byte_by_byte() {
    let rows = rows();
    let mut names: Vec<&str> = rows.iter().map(|r| r.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), rows.len(), "row names are unique");

    let mut failures = Vec::new();
    for row in &rows {
        let closes = matches!(row.want.last(), Some(Ev::Closed(_)));
        for step in [None, Some(1)] {
            let (events, mut h) = run(row, step);
            let events = match step {
                Some(_) => merge_unsolicited(events),
                None => events,
            };
            if events != row.want {
                failures.push(format!(
                    "{} (step {step:?}):\n    got  {events:?}\n    want {:?}",
                    row.name, row.want
                ));
                continue;
            }
            assert_eq!(h.session.is_closed(), closes, "{}", row.name);
            // Collect a failed check and go on, so one run reports every bad row.
            let checked = std::panic::catch_unwind(AssertUnwindSafe(|| after(row, &mut h)));
            if let Err(panic) = checked {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(format!("{} (step {step:?}): after: {message}", row.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_split_of_a_fatal_row_gives_the_same_outcome() {
    // Byte by byte and whole are the extremes; every other cut of a few rows in between.
    let rows = rows();
    for name in [
        "chunk data not followed by CRLF",
        "NUL in an MSNP command name",
        "conflicting Content-Length",
        "close-delimited body over max_body_bytes",
    ] {
        let row = rows.iter().find(|r| r.name == name).expect("row exists");
        for step in 2..row.wire.len() {
            let (events, _) = run(row, Some(step));
            assert_eq!(events, row.want, "{name}, step {step}");
        }
    }
}

#[test]
fn a_discarded_open_leaves_nothing_due_until_the_next_command() {
    let mut h = Harness::ns(config());
    h.session.send(b"VER 1 MSNP8 CVR0\r\n").expect("queued");
    assert_eq!(h.request().kind(), RequestKind::Open);
    h.feed(&support::status(503, "Service Unavailable"));
    assert_eq!(
        h.take_events(),
        [Ev::Failed(
            RequestKind::Open,
            RemoteError::ServerError(503).into(),
            Recovery::AwaitingDecision,
        )]
    );
    assert_eq!(h.session.discard_unconfirmed(), 18);
    assert!(h.transmit().is_none());
    // No session yet, so no poll: a deadline here would only spin the driver.
    assert_eq!(h.session.poll_timeout(), None);
    h.session.send(b"VER 2 MSNP8 CVR0\r\n").expect("queued");
    let open = h.request();
    assert_eq!(open.kind(), RequestKind::Open);
    assert_eq!(open.body, b"VER 2 MSNP8 CVR0\r\n");
}
