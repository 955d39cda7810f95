//! Incremental decoding of gateway requests, for the server side: the head through `httparse`,
//! the target and its `Action`/`Server`/`IP`/`SessionID`/`Lifespan` query, then the body by
//! `Content-Length` or chunks.

use std::fmt;

use crate::error::HttpError;

use super::query::{GatewayQuery, QueryError, Slot, parse_query};
use super::{
    BodyDecoder, BodyKind, BodyStep, FramingHeaders, HeadBuffer, HttpLimits, HttpVersion,
    MAX_HEADERS, TargetForm, head_fault,
};

/// The longest `Origin` header value kept for CORS.
pub(crate) const MAX_ORIGIN_LEN: usize = 512;

/// What one call to [`RequestDecoder::decode`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestStep<'a> {
    /// The input is used up; feed more.
    NeedMore,
    /// The head is complete: read it with [`RequestDecoder::head`].
    Head,
    /// Body bytes, never empty, borrowed from the input.
    Body(&'a [u8]),
    /// The request is complete. Input left over belongs to the next request.
    Complete,
}

/// The request method, as far as the gateway cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `POST`: every gateway request.
    Post,
    /// `OPTIONS`: a CORS preflight (or `OPTIONS *`).
    Options,
    /// Anything else (answered with `405`).
    Other,
}

/// A request the gateway cannot serve; [`status`](Self::status) is the HTTP answer. After any of
/// these the connection is closed: the decoder cannot tell where the next request starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The head or body is not valid HTTP/1.x, or breaks a limit.
    Http(HttpError),
    /// The request line did not end within the head size limit (`414`).
    UriTooLong {
        /// The configured head limit, in bytes.
        limit: usize,
    },
    /// An `HTTP/x.y` version other than 1.0 and 1.1 (`505`).
    VersionNotSupported,
    /// Both `Content-Length` and `Transfer-Encoding`: a request smuggling risk (`400`).
    AmbiguousFraming,
    /// An HTTP/1.1 request without `Host`, or with two (`400`).
    InvalidHost,
    /// An `Expect` other than `100-continue` (`417`).
    ExpectationFailed,
}

impl RequestError {
    /// The status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Http(e) => match e {
                HttpError::HeadTooLarge { .. } | HttpError::TooManyHeaders => 431,
                HttpError::BodyTooLarge { .. } => 413,
                HttpError::UnsupportedTransferEncoding => 501,
                HttpError::UnsupportedContentEncoding => 415,
                _ => 400,
            },
            Self::UriTooLong { .. } => 414,
            Self::VersionNotSupported => 505,
            Self::ExpectationFailed => 417,
            Self::AmbiguousFraming | Self::InvalidHost => 400,
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(e) => write!(f, "bad request: {e}"),
            Self::UriTooLong { limit } => write!(f, "request line longer than {limit} bytes"),
            Self::VersionNotSupported => f.write_str("HTTP version not supported"),
            Self::AmbiguousFraming => {
                f.write_str("both Content-Length and Transfer-Encoding in a request")
            }
            Self::InvalidHost => f.write_str("missing or repeated Host header"),
            Self::ExpectationFailed => f.write_str("unsupported Expect header"),
        }
    }
}

impl std::error::Error for RequestError {}

impl From<HttpError> for RequestError {
    fn from(e: HttpError) -> Self {
        Self::Http(e)
    }
}

/// The parts of a request head the gateway needs. Buffers are reused between requests.
#[derive(Clone, Debug)]
pub struct RequestHead {
    method: Method,
    version: HttpVersion,
    keep_alive: bool,
    body: BodyKind,
    length_given: bool,
    expect_continue: bool,
    form: TargetForm,
    target_valid: bool,
    path: String,
    query: GatewayQuery,
    query_error: Option<QueryError>,
    origin: Slot,
}

impl RequestHead {
    fn new() -> Self {
        Self {
            method: Method::Other,
            version: HttpVersion::Http11,
            keep_alive: false,
            body: BodyKind::Empty,
            length_given: false,
            expect_continue: false,
            form: TargetForm::Origin,
            target_valid: false,
            path: String::new(),
            query: GatewayQuery::default(),
            query_error: None,
            origin: Slot::default(),
        }
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// HTTP/1.0 or 1.1.
    pub fn version(&self) -> HttpVersion {
        self.version
    }

    /// Whether the client lets the connection carry another request after this one.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// How the body is delimited ([`BodyKind::Empty`] when no framing header was given).
    pub fn body_kind(&self) -> BodyKind {
        self.body
    }

    /// Whether `Content-Length` or `Transfer-Encoding: chunked` was given (a `POST` without
    /// either deserves `411 Length Required`).
    pub fn length_given(&self) -> bool {
        self.length_given
    }

    /// Whether an HTTP/1.1 client waits for `100 Continue` before sending the body.
    pub fn expects_continue(&self) -> bool {
        self.expect_continue
    }

    /// Whether the target was origin form (`/path?query`) or absolute form
    /// (`http://host/path?query`, through a proxy).
    pub fn target_form(&self) -> TargetForm {
        self.form
    }

    /// The path of the target (`*` for `OPTIONS *`), or `None` when the target is in no form a
    /// gateway serves.
    pub fn path(&self) -> Option<&str> {
        self.target_valid.then_some(self.path.as_str())
    }

    /// The gateway parameters of the query, or why they were refused.
    pub fn query(&self) -> Result<&GatewayQuery, QueryError> {
        match self.query_error {
            Some(e) => Err(e),
            None => Ok(&self.query),
        }
    }

    /// The `Origin` header (browsers send it; CORS answers depend on it). A value longer than
    /// 512 bytes, or with bytes other than visible ASCII, is not kept.
    pub fn origin(&self) -> Option<&str> {
        self.origin.get()
    }
}

#[derive(Clone, Debug)]
enum State {
    Head,
    Body(BodyDecoder),
    Complete,
    Failed(RequestError),
}

/// Decodes one request at a time from bytes that may arrive in pieces of any size.
///
/// Memory is bounded: at most `max_head_bytes` of a head are buffered (and only when a head
/// arrives in pieces); body bytes are handed out as slices of the input, never buffered.
/// Errors are sticky: after one, every call returns it again.
///
/// ```
/// use msn_http_core::wire::{HttpLimits, QueryAction, RequestDecoder, RequestStep};
///
/// let mut decoder = RequestDecoder::new(HttpLimits::default());
/// let mut input: &[u8] = b"POST /gateway/gateway.dll?Action=poll&SessionID=1.2 HTTP/1.1\r\n\
///     Host: gw\r\nContent-Length: 0\r\n\r\n";
/// assert_eq!(decoder.decode(&mut input), Ok(RequestStep::Head));
/// let query = decoder.head().query().unwrap();
/// assert_eq!((query.action(), query.session_id()), (Some(QueryAction::Poll), Some("1.2")));
/// assert_eq!(decoder.decode(&mut input), Ok(RequestStep::Complete));
/// ```
#[derive(Clone, Debug)]
pub struct RequestDecoder {
    limits: HttpLimits,
    state: State,
    head_buf: HeadBuffer,
    head: RequestHead,
    started: bool,
}

impl RequestDecoder {
    /// A decoder with the given limits, expecting a request.
    pub fn new(limits: HttpLimits) -> Self {
        Self {
            limits,
            state: State::Head,
            head_buf: HeadBuffer::default(),
            head: RequestHead::new(),
            started: false,
        }
    }

    /// Expect the next request (after [`RequestStep::Complete`]). Releases a large head buffer.
    pub fn reset(&mut self) {
        self.state = State::Head;
        self.head_buf.clear(Some(1024));
        self.started = false;
    }

    /// The head of the current request, valid after [`RequestStep::Head`].
    pub fn head(&self) -> &RequestHead {
        &self.head
    }

    /// Whether any byte of the current request has arrived.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Whether the current request is complete.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete)
    }

    /// Bytes of a head held while waiting for its end.
    pub fn buffered(&self) -> usize {
        self.head_buf.len()
    }

    /// Heap bytes the decoder keeps between requests.
    pub(crate) fn heap_capacity(&self) -> usize {
        let head = &self.head;
        self.head_buf.capacity()
            + head.path.capacity()
            + head.query.heap_capacity()
            + head.origin.value.capacity()
    }

    /// Decodes from the front of `input`, advancing it past what was used. Call again until it
    /// returns [`RequestStep::NeedMore`] or [`RequestStep::Complete`].
    pub fn decode<'a>(&mut self, input: &mut &'a [u8]) -> Result<RequestStep<'a>, RequestError> {
        let step = self.step(input);
        if let Err(e) = step {
            self.state = State::Failed(e);
        }
        step
    }

    fn step<'a>(&mut self, input: &mut &'a [u8]) -> Result<RequestStep<'a>, RequestError> {
        match &mut self.state {
            State::Failed(e) => Err(*e),
            State::Complete => Ok(RequestStep::Complete),
            State::Body(body) => Ok(match body.decode(input)? {
                BodyStep::Data(data) => RequestStep::Body(data),
                BodyStep::NeedMore => RequestStep::NeedMore,
                BodyStep::Done => {
                    self.state = State::Complete;
                    RequestStep::Complete
                }
            }),
            State::Head => {
                if input.is_empty() {
                    return Ok(RequestStep::NeedMore);
                }
                self.started = true;
                if !self.read_head(input)? {
                    return Ok(RequestStep::NeedMore);
                }
                let body = BodyDecoder::new(self.head.body, self.limits.max_body_bytes)?;
                self.state = if body.is_done() { State::Complete } else { State::Body(body) };
                Ok(RequestStep::Head)
            }
        }
    }

    /// Accumulates and parses a head; `true` once one is complete.
    fn read_head(&mut self, input: &mut &[u8]) -> Result<bool, RequestError> {
        let limit = self.limits.max_head_bytes;
        let head = &mut self.head;
        self.head_buf.read(
            input,
            limit,
            |bytes| parse_head(bytes, head),
            |held| too_large(held, limit),
        )
    }
}

/// `414` when not even the request line fitted, `431` otherwise.
fn too_large(buffered: &[u8], limit: usize) -> RequestError {
    let start = buffered.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(buffered.len());
    match memchr::memchr(b'\n', &buffered[start..]) {
        None => RequestError::UriTooLong { limit },
        Some(_) => RequestError::Http(HttpError::HeadTooLarge { limit }),
    }
}

/// Parses a complete head into `head`; `None` if `bytes` holds only part of one.
fn parse_head(bytes: &[u8], head: &mut RequestHead) -> Result<Option<usize>, RequestError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    let len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::Version) if names_other_version(bytes) => {
            return Err(RequestError::VersionNotSupported);
        }
        Err(e) => return Err(head_fault(e).into()),
    };
    let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version)
    else {
        return Ok(None);
    };
    let version = HttpVersion::from_minor(minor);
    let mut framing = FramingHeaders::default();
    let mut hosts = 0;
    head.expect_continue = false;
    head.origin.clear();
    for field in request.headers.iter() {
        framing.observe(field.name, field.value)?;
        if field.name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if field.name.eq_ignore_ascii_case("origin") {
            if head.origin.present {
                return Err(HttpError::DuplicateHeader("Origin").into());
            }
            let value = field.value.trim_ascii();
            if value.len() <= MAX_ORIGIN_LEN && value.iter().all(u8::is_ascii_graphic) {
                head.origin.present = true;
                head.origin.value.extend(value.iter().map(|&b| char::from(b)));
            }
        } else if field.name.eq_ignore_ascii_case("expect") && version == HttpVersion::Http11 {
            // An HTTP/1.0 client cannot expect anything (RFC 9110 §10.1.1).
            if field.value.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
                head.expect_continue = true;
            } else {
                return Err(RequestError::ExpectationFailed);
            }
        }
    }
    if (version == HttpVersion::Http11 && hosts != 1) || hosts > 1 {
        return Err(RequestError::InvalidHost);
    }
    if framing.transfer_encoding && framing.content_length.is_some() {
        return Err(RequestError::AmbiguousFraming);
    }
    if framing.transfer_encoding && !framing.chunked {
        // Without `chunked` last a request has no knowable length (RFC 9112 §6.3).
        return Err(HttpError::UnsupportedTransferEncoding.into());
    }
    head.method = match method {
        "POST" => Method::Post,
        "OPTIONS" => Method::Options,
        _ => Method::Other,
    };
    head.version = version;
    head.keep_alive = framing.keep_alive(version);
    head.length_given = framing.chunked || framing.content_length.is_some();
    head.body = match (framing.chunked, framing.content_length) {
        (true, _) => BodyKind::Chunked,
        (false, Some(0) | None) => BodyKind::Empty,
        (false, Some(len)) => BodyKind::Length(len),
    };
    read_target(target, head);
    Ok(Some(len))
}

/// Whether a request line that failed on its version names an `HTTP/` version we do not speak
/// (as opposed to being garbage).
fn names_other_version(bytes: &[u8]) -> bool {
    let start = bytes.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(bytes.len());
    let rest = &bytes[start..];
    let line = match memchr::memchr(b'\n', rest) {
        Some(end) => &rest[..end],
        None => rest,
    };
    // Method, target, version: a line with more parts (a space inside the target) is malformed,
    // whatever it ends with.
    let mut parts = line.trim_ascii_end().split(|&b| b == b' ');
    let (Some(_), Some(_), Some(last), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    last.len() > 5
        && last[..5].eq_ignore_ascii_case(b"HTTP/")
        && last[5..].iter().all(|&b| b.is_ascii_digit() || b == b'.')
}

/// Splits the target into its form, path and query, and decodes the query.
fn read_target(target: &str, head: &mut RequestHead) {
    head.path.clear();
    head.query.clear();
    head.query_error = None;
    head.form = TargetForm::Origin;
    let (path, query) = match split_target(target) {
        Some((form, path, query)) => {
            head.form = form;
            (path, query)
        }
        None => {
            head.target_valid = false;
            return;
        }
    };
    head.target_valid = true;
    head.path.push_str(path);
    if let Err(e) = parse_query(query, &mut head.query) {
        head.query_error = Some(e);
    }
}

fn split_target(target: &str) -> Option<(TargetForm, &str, &str)> {
    // A fragment never belongs in a request; drop it rather than read it as query.
    let target = target.split_once('#').map_or(target, |(t, _)| t);
    if target == "*" {
        return Some((TargetForm::Origin, "*", ""));
    }
    let (form, rest) = if target.starts_with('/') {
        (TargetForm::Origin, target)
    } else if target
        .as_bytes()
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"http://"))
    {
        // Seven ASCII bytes end on a character boundary.
        let after = &target[7..];
        let end = after.find(['/', '?']).unwrap_or(after.len());
        if end == 0 {
            return None;
        }
        (TargetForm::Absolute, &after[end..])
    } else {
        return None;
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    Some((form, if path.is_empty() { "/" } else { path }, query))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::QueryAction;

    fn limits() -> HttpLimits {
        HttpLimits { max_head_bytes: 512, max_body_bytes: 64 }
    }

    /// Action, IP and SessionID of a decoded query.
    type SeenQuery = (Option<QueryAction>, Option<String>, Option<String>);

    /// Everything a decoded request says, for comparing decodes.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Seen {
        method: Method,
        path: Option<String>,
        query: Result<SeenQuery, QueryError>,
        body: Vec<u8>,
        keep_alive: bool,
        complete: bool,
    }

    /// Decodes one request fed in pieces of `step` bytes; returns it and the leftover length.
    fn decode(wire: &[u8], step: usize) -> Result<(Seen, usize), RequestError> {
        let mut d = RequestDecoder::new(limits());
        let mut body = Vec::new();
        let mut left = 0;
        for piece in wire.chunks(step.max(1)) {
            let mut input = piece;
            loop {
                match d.decode(&mut input)? {
                    RequestStep::NeedMore => break,
                    RequestStep::Head => {}
                    RequestStep::Body(b) => body.extend_from_slice(b),
                    RequestStep::Complete => {
                        left += input.len();
                        break;
                    }
                }
            }
        }
        let head = d.head();
        let query = head
            .query()
            .map(|q| (q.action(), q.ip().map(str::to_owned), q.session_id().map(str::to_owned)));
        Ok((
            Seen {
                method: head.method(),
                path: head.path().map(str::to_owned),
                query,
                body,
                keep_alive: head.keep_alive(),
                complete: d.is_complete(),
            },
            left,
        ))
    }

    #[test]
    fn requests_decode_the_same_at_every_split() {
        let wire = b"\r\nPOST http://gw.example:80/gateway/gateway.dll?Action=open&Server=NS&IP=messenger.hotmail.com HTTP/1.1\r\n\
Host: gw.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nVER 1\r\n3\r\n 2\n\r\n0\r\n\r\nNEXT";
        let (whole, left) = decode(wire, wire.len()).unwrap();
        assert_eq!(left, 4);
        assert_eq!(whole.body, b"VER 1 2\n");
        assert_eq!(whole.path.as_deref(), Some("/gateway/gateway.dll"));
        assert_eq!(
            whole.query,
            Ok((Some(QueryAction::Open), Some("messenger.hotmail.com".into()), None))
        );
        assert!(whole.complete && whole.keep_alive);
        for step in 1..wire.len() {
            assert_eq!(decode(wire, step).unwrap(), (whole.clone(), 4), "{step}");
        }
    }

    #[test]
    fn targets_in_every_form() {
        let cases = [
            ("/gateway/gateway.dll?a=b", Some((TargetForm::Origin, "/gateway/gateway.dll", "a=b"))),
            ("HTTP://h:1/x", Some((TargetForm::Absolute, "/x", ""))),
            ("http://h?q=1", Some((TargetForm::Absolute, "/", "q=1"))),
            ("*", Some((TargetForm::Origin, "*", ""))),
            ("/p#frag?x", Some((TargetForm::Origin, "/p", ""))),
            ("http:///x", None),
            ("gateway.dll", None),
            ("https://h/x", None),
            ("aa\u{e9}\u{e9}\u{e9}", None),
            ("http://h/\u{e9}?IP=x", Some((TargetForm::Absolute, "/\u{e9}", "IP=x"))),
        ];
        for (target, want) in cases {
            assert_eq!(split_target(target), want, "{target}");
        }
    }

    #[test]
    fn bad_requests_map_to_statuses() {
        let long_line = format!("POST /{} HTTP/1.1\r\n\r\n", "a".repeat(600));
        let long_head = format!("POST / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n", "a".repeat(600));
        let cases: Vec<(&[u8], u16)> = vec![
            (b"POST / HTTP/2.0\r\n\r\n", 505),
            (b"POST /a b HTTP/1.1\r\n\r\n", 400),
            (b"POST /a HTTP/1.1 x\r\n\r\n", 400),
            (b"hello world\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65\r\n\r\n", 413),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\n\r\n", 415),
            (b"POST / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n", 413),
            (long_line.as_bytes(), 414),
            (long_head.as_bytes(), 431),
        ];
        for (wire, want) in cases {
            for step in [1, 7, wire.len()] {
                let got = decode(wire, step).map(|_| ()).map_err(|e| e.status());
                assert_eq!(got, Err(want), "{} step {step}", String::from_utf8_lossy(wire));
            }
        }
        let mut many = b"POST / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for _ in 0..=MAX_HEADERS {
            many.extend_from_slice(b"A: b\r\n");
        }
        many.extend_from_slice(b"\r\n");
        let mut d = RequestDecoder::new(HttpLimits::default());
        let err = d.decode(&mut many.as_slice()).unwrap_err();
        assert_eq!(err.status(), 431);
        assert_eq!(d.decode(&mut &b"more"[..]), Err(err), "errors are sticky");
    }

    #[test]
    fn head_details_are_read() {
        let wire = b"OPTIONS /gateway/gateway.dll HTTP/1.0\r\nOrigin: https://app.example\r\nExpect: 100-continue\r\nProxy-Connection: Keep-Alive\r\n\r\n";
        let mut d = RequestDecoder::new(limits());
        let mut input: &[u8] = wire;
        assert_eq!(d.decode(&mut input), Ok(RequestStep::Head));
        let head = d.head();
        assert_eq!(head.method(), Method::Options);
        assert_eq!(head.version(), HttpVersion::Http10);
        assert!(head.keep_alive());
        assert!(!head.expects_continue(), "ignored in HTTP/1.0");
        assert!(!head.length_given());
        assert_eq!(head.origin(), Some("https://app.example"));
        assert_eq!(d.decode(&mut input), Ok(RequestStep::Complete));

        d.reset();
        let mut input: &[u8] =
            b"POST /x?IP=a HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(d.decode(&mut input), Ok(RequestStep::Head));
        assert!(d.head().expects_continue() && d.head().length_given());
        assert_eq!(d.head().origin(), None, "cleared between requests");
        assert_eq!(d.decode(&mut input), Ok(RequestStep::Body(b"ok")));
        assert_eq!(d.decode(&mut input), Ok(RequestStep::Complete));
    }
}
