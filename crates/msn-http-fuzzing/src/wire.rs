//! Harnesses for the wire layer: the response and request decoders fed whole and in pieces,
//! the `X-MSN-Messenger` parser, the MSNP framer, and encoder → decoder round trips.

use arbitrary::{Arbitrary, Unstructured};

use msn_http_core::Endpoint;
use msn_http_core::error::{FrameError, HttpError, MessengerHeaderError};
use msn_http_core::msnp::{Command, CommandFramer, FramerLimits, PayloadCommands};
use msn_http_core::wire::{
    BodyKind, ConnectionHeader, EofOutcome, Header, HeaderSet, HttpLimits, HttpVersion,
    MAX_IP_PARAM_LEN, MAX_SESSION_ID_LEN, MessengerHeader, Method, QueryAction, QueryError,
    RequestDecoder, RequestEncoder, RequestError, RequestLine, RequestStep, ResponseDecoder,
    ResponseEncoder, ResponseStep, ServerKind, SessionResponse, TargetForm, parse_messenger_header,
};

use crate::split;

// ---------------------------------------------------------------------------------------------
// Responses

/// What a response decoder reported, owned, with consecutive body pieces merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RespEvent {
    Head {
        status: u16,
        version: HttpVersion,
        keep_alive: bool,
        body: BodyKind,
        messenger: Option<Vec<u8>>,
        msn_host: Option<Vec<u8>>,
    },
    Body(Vec<u8>),
    Complete(u64),
}

/// How decoding a byte stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RespEnd {
    Failed { error: HttpError, in_head: bool },
    Eof(EofOutcome),
}

/// Decodes back-to-back responses fed as `pieces`, then EOF, checking the decoder's promises
/// on every step.
pub(crate) fn decode_responses(limits: HttpLimits, pieces: &[&[u8]]) -> (Vec<RespEvent>, RespEnd) {
    let mut d = ResponseDecoder::new(limits);
    let mut events: Vec<RespEvent> = Vec::new();
    let mut in_head = true;
    let mut body_len = 0u64;
    for piece in pieces {
        let mut input = *piece;
        let mut steps = 0usize;
        loop {
            steps += 1;
            assert!(steps <= 4 * piece.len() + 16, "the decoder makes no progress");
            let before = input.len();
            let step = d.decode(&mut input);
            assert!(input.len() <= before);
            match step {
                Err(error) => return (events, RespEnd::Failed { error, in_head }),
                Ok(ResponseStep::NeedMore) => {
                    // Bytes left unread here would be lost by every caller.
                    assert!(input.is_empty(), "NeedMore with {} bytes unread", input.len());
                    break;
                }
                Ok(ResponseStep::Head) => {
                    assert!(in_head, "a second head inside one response");
                    in_head = false;
                    body_len = 0;
                    let head = d.head();
                    let status = head.status();
                    // Three digits, of which httparse takes any (`083` too); interim ones are
                    // skipped.
                    assert!(status <= 999 && !(100..200).contains(&status), "status {status}");
                    if matches!(status, 204 | 304) {
                        assert_eq!(head.body_kind(), BodyKind::Empty);
                    }
                    if head.body_kind() == BodyKind::CloseDelimited {
                        assert!(!head.keep_alive(), "a close-delimited body ends the connection");
                    }
                    if let BodyKind::Length(n) = head.body_kind() {
                        assert!(n > 0 && n <= limits.max_body_bytes);
                    }
                    if let Some(value) = head.messenger() {
                        let _ = check_messenger(value);
                    }
                    events.push(RespEvent::Head {
                        status,
                        version: head.version(),
                        keep_alive: head.keep_alive(),
                        body: head.body_kind(),
                        messenger: head.messenger().map(<[u8]>::to_vec),
                        msn_host: head.msn_host().map(<[u8]>::to_vec),
                    });
                }
                Ok(ResponseStep::Body(bytes)) => {
                    assert!(!in_head && !bytes.is_empty());
                    assert!(before - input.len() >= bytes.len());
                    body_len += bytes.len() as u64;
                    assert!(body_len <= limits.max_body_bytes, "body limit broken");
                    assert_eq!(d.body_received(), body_len);
                    match d.head().body_kind() {
                        BodyKind::Empty => panic!("body bytes for an empty body"),
                        BodyKind::Length(n) => assert!(body_len <= n),
                        BodyKind::Chunked | BodyKind::CloseDelimited => {}
                    }
                    match events.last_mut() {
                        Some(RespEvent::Body(merged)) => merged.extend_from_slice(bytes),
                        _ => events.push(RespEvent::Body(bytes.to_vec())),
                    }
                }
                Ok(ResponseStep::Complete) => {
                    assert!(!in_head && d.is_complete());
                    assert_eq!(d.body_received(), body_len);
                    match d.head().body_kind() {
                        BodyKind::Empty => assert_eq!(body_len, 0),
                        BodyKind::Length(n) => assert_eq!(body_len, n),
                        BodyKind::Chunked => {}
                        BodyKind::CloseDelimited => panic!("close-delimited completes only at EOF"),
                    }
                    // Complete is sticky and reads nothing more.
                    let mut again = input;
                    assert_eq!(d.decode(&mut again), Ok(ResponseStep::Complete));
                    assert_eq!(again.len(), input.len());
                    events.push(RespEvent::Complete(body_len));
                    d.reset();
                    in_head = true;
                    body_len = 0;
                }
            }
        }
    }
    let outcome = d.finish();
    if outcome == EofOutcome::Complete {
        assert!(!in_head && d.is_complete());
        assert_eq!(d.head().body_kind(), BodyKind::CloseDelimited);
        assert_eq!(d.body_received(), body_len);
        events.push(RespEvent::Complete(body_len));
    }
    (events, RespEnd::Eof(outcome))
}

/// Errors that may be found later when a head arrives in pieces: a partial head is parsed
/// again only once a line ends in it, so a bad byte shows when its line does.
fn head_lag(end: RespEnd) -> bool {
    matches!(
        end,
        RespEnd::Failed { in_head: true, .. }
            | RespEnd::Eof(EofOutcome::Truncated { started: true })
    )
}

/// Whole and cut decodes must agree; only an error inside a head may show up later.
fn same_responses(whole: &(Vec<RespEvent>, RespEnd), cut: &(Vec<RespEvent>, RespEnd)) {
    assert_eq!(whole.0, cut.0, "events differ between whole and cut input");
    if whole.1 != cut.1 {
        let lag = (matches!(whole.1, RespEnd::Failed { in_head: true, .. }) && head_lag(cut.1))
            || (matches!(cut.1, RespEnd::Failed { in_head: true, .. }) && head_lag(whole.1));
        assert!(lag, "outcomes differ: whole {:?}, cut {:?}", whole.1, cut.1);
    }
}

/// Limits, the stream in pieces, and the stream whole.
type DecoderInput<'a> = (HttpLimits, Vec<&'a [u8]>, &'a [u8]);

/// The decoder targets' input: a limits byte (a head limit from `heads`; a body limit of 0, 16,
/// 256 or `max_body`), a cutting byte, then the stream; returns the limits, the stream cut
/// where the input says, and the stream whole.
fn limits_and_pieces(data: &[u8], heads: [usize; 4], max_body: u64) -> Option<DecoderInput<'_>> {
    let (&[cfg, cut_seed], stream) = data.split_first_chunk::<2>()?;
    let limits = HttpLimits {
        max_head_bytes: heads[usize::from(cfg & 3)],
        max_body_bytes: [0, 16, 256, max_body][usize::from(cfg >> 2 & 3)],
    };
    let pieces = split(stream, u64::from(cut_seed) << 32 | stream.len() as u64);
    Some((limits, pieces, stream))
}

/// Response bytes, whole and cut where the input says: same events, limits held, no byte lost.
///
/// Input: a limits byte, a cutting byte, then the response stream.
pub fn response_decoder(data: &[u8]) {
    let Some((limits, pieces, stream)) = limits_and_pieces(data, [32, 64, 256, 1024], 4096) else {
        return;
    };
    let whole = decode_responses(limits, &[stream]);
    same_responses(&whole, &decode_responses(limits, &pieces));
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    same_responses(&whole, &decode_responses(limits, &bytes));
}

// ---------------------------------------------------------------------------------------------
// X-MSN-Messenger

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Parses a header value and checks what a successful parse promises, including that the
/// canonical rendering of the result parses back to it.
fn check_messenger(value: &[u8]) -> Result<MessengerHeader<'_>, MessengerHeaderError> {
    let parsed = parse_messenger_header(value);
    if let Ok(h) = parsed {
        assert!(h.session_id.is_some() || h.session_close);
        if let Some(id) = h.session_id {
            assert!(!id.is_empty() && id.len() <= MAX_SESSION_ID_LEN);
            assert!(id.bytes().all(|b| b.is_ascii_graphic() && b != b';'), "{id:?}");
        }
        if let Some(gw) = h.gateway {
            assert!(!gw.contains(';'));
            assert!(!gw.bytes().next().is_some_and(is_space), "leading space in {gw:?}");
            assert!(!gw.bytes().last().is_some_and(is_space), "trailing space in {gw:?}");
        }
        let mut canonical = Vec::new();
        if let Some(id) = h.session_id {
            canonical.extend_from_slice(b"SessionID=");
            canonical.extend_from_slice(id.as_bytes());
        }
        if let Some(gw) = h.gateway {
            canonical.extend_from_slice(b"; GW-IP=");
            canonical.extend_from_slice(gw.as_bytes());
        }
        if h.session_close {
            canonical.extend_from_slice(b"; Session=close");
        }
        assert_eq!(parse_messenger_header(&canonical), Ok(h), "canonical form differs");
    }
    parsed
}

/// An `X-MSN-Messenger` value: a parse keeps its promises, and spacing after `;` changes
/// nothing.
pub fn messenger_header(data: &[u8]) {
    let parsed = check_messenger(data);
    let mut spaced = vec![b' '];
    for &b in data {
        spaced.push(b);
        if b == b';' {
            spaced.extend_from_slice(b" \t");
        }
    }
    spaced.push(b' ');
    assert_eq!(parse_messenger_header(&spaced), parsed, "spacing changed the meaning");
}

// ---------------------------------------------------------------------------------------------
// MSNP framing

#[derive(Debug, PartialEq, Eq)]
struct Framed {
    commands: Vec<Vec<u8>>,
    error: Option<FrameError>,
    /// Bytes held when the stream ended without an error.
    buffered: Option<usize>,
}

/// What every command the framer hands out must look like.
fn check_command(cmd: &Command<'_>, rules: &PayloadCommands, limits: FramerLimits) {
    let bytes = cmd.as_bytes();
    assert!(cmd.name().len() == 3 && cmd.name().bytes().all(|b| b.is_ascii_alphanumeric()));
    let line = cmd.line();
    assert!(line.len() <= limits.max_line_bytes && !line.contains(&b'\n'));
    let ending = if bytes[line.len()] == b'\r' { 2 } else { 1 };
    assert_eq!(bytes[line.len() + ending - 1], b'\n');
    let payload = &bytes[line.len() + ending..];
    match cmd.payload() {
        Some(p) => {
            assert_eq!(p, payload);
            assert!(p.len() <= limits.max_payload_bytes);
            assert!(rules.rules().iter().any(|r| r.name.as_slice() == cmd.name().as_bytes()));
            let last = line.trim_ascii_end().rsplit(|&b| b == b' ').next().unwrap_or_default();
            let announced: usize = std::str::from_utf8(last).unwrap_or("x").parse().unwrap_or(0);
            assert_eq!(announced, p.len(), "payload length differs from the line's");
        }
        None => assert!(payload.is_empty()),
    }
}

fn frame(stream: &[u8], pieces: &[&[u8]], rules: &PayloadCommands, limits: FramerLimits) -> Framed {
    let mut f = CommandFramer::new(rules.clone(), limits);
    let mut out = Framed { commands: Vec::new(), error: None, buffered: None };
    let mut pushed = 0usize;
    'pieces: for piece in pieces {
        f.push(piece);
        pushed += piece.len();
        assert_eq!(f.end(), pushed as u64);
        loop {
            match f.next_command() {
                Ok(Some(cmd)) => {
                    check_command(&cmd, rules, limits);
                    out.commands.push(cmd.as_bytes().to_vec());
                }
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e);
                    break 'pieces;
                }
            }
        }
    }
    let taken: usize = out.commands.iter().map(Vec::len).sum();
    // Byte-exact and in order: the commands are the stream's prefix.
    assert_eq!(out.commands.concat(), &stream[..taken]);
    if out.error.is_none() {
        assert_eq!(f.position(), taken as u64);
        assert_eq!(f.buffered(), stream.len() - taken);
        // What is held is at most one partial command.
        assert!(f.buffered() <= limits.max_line_bytes + 2 + limits.max_payload_bytes);
        out.buffered = Some(f.buffered());
    }
    out
}

/// An MSNP byte stream, whole and cut: the same commands, byte-exact, within limits.
///
/// Input: a settings byte (limits and payload rules), a cutting byte, then the stream.
pub fn msnp_framer(data: &[u8]) {
    let Some((&[cfg, cut_seed], stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let limits = FramerLimits {
        max_line_bytes: [8, 16, 64, 1024][usize::from(cfg & 3)],
        max_payload_bytes: [0, 8, 100, 4096][usize::from(cfg >> 2 & 3)],
    };
    let rules = match cfg >> 4 & 3 {
        0 | 1 => PayloadCommands::default(),
        2 => PayloadCommands::none(),
        _ => PayloadCommands::default().without("MSG").with("CHG", 2).with("NOT", 5),
    };
    let whole = frame(stream, &[stream], &rules, limits);
    let pieces = split(stream, u64::from(cut_seed) << 32 | stream.len() as u64);
    assert_eq!(whole, frame(stream, &pieces, &rules, limits), "cutting changed the commands");
}

// ---------------------------------------------------------------------------------------------
// Requests

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QueryView {
    pub(crate) action: Option<QueryAction>,
    pub(crate) server: Option<ServerKind>,
    pub(crate) ip: Option<String>,
    pub(crate) session_id: Option<String>,
    pub(crate) lifespan: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HeadView {
    pub(crate) method: Method,
    pub(crate) version: HttpVersion,
    pub(crate) keep_alive: bool,
    pub(crate) body: BodyKind,
    pub(crate) length_given: bool,
    pub(crate) expects_continue: bool,
    pub(crate) form: TargetForm,
    pub(crate) path: Option<String>,
    pub(crate) query: Result<QueryView, QueryError>,
    pub(crate) origin: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReqEvent {
    Head(Box<HeadView>),
    Body(Vec<u8>),
    Complete,
}

/// Statuses a refused request may be answered with.
const REQUEST_ERROR_STATUSES: [u16; 8] = [400, 413, 414, 415, 417, 431, 501, 505];

fn graphic_within(value: &str, max: usize) -> bool {
    value.len() <= max && value.bytes().all(|b| b.is_ascii_graphic())
}

/// Decodes back-to-back requests fed as `pieces`, checking the decoder's promises.
pub(crate) fn decode_requests(
    limits: HttpLimits,
    pieces: &[&[u8]],
) -> (Vec<ReqEvent>, Option<(RequestError, bool)>) {
    let mut d = RequestDecoder::new(limits);
    let mut events: Vec<ReqEvent> = Vec::new();
    let mut in_head = true;
    let mut body_len = 0u64;
    for piece in pieces {
        let mut input = *piece;
        let mut steps = 0usize;
        loop {
            steps += 1;
            assert!(steps <= 4 * piece.len() + 16, "the decoder makes no progress");
            assert!(d.buffered() <= limits.max_head_bytes);
            match d.decode(&mut input) {
                Err(e) => {
                    assert!(REQUEST_ERROR_STATUSES.contains(&e.status()), "{e:?}");
                    // Errors are sticky.
                    assert_eq!(d.decode(&mut &b"POST / HTTP/1.1\r\n"[..]), Err(e));
                    return (events, Some((e, in_head)));
                }
                Ok(RequestStep::NeedMore) => {
                    assert!(input.is_empty(), "NeedMore with {} bytes unread", input.len());
                    break;
                }
                Ok(RequestStep::Head) => {
                    assert!(in_head && d.started());
                    in_head = false;
                    body_len = 0;
                    events.push(ReqEvent::Head(Box::new(head_view(&d, limits))));
                    if d.is_complete() {
                        events.push(ReqEvent::Complete);
                    }
                }
                Ok(RequestStep::Body(bytes)) => {
                    assert!(!in_head && !bytes.is_empty());
                    body_len += bytes.len() as u64;
                    assert!(body_len <= limits.max_body_bytes, "body limit broken");
                    match events.last_mut() {
                        Some(ReqEvent::Body(merged)) => merged.extend_from_slice(bytes),
                        _ => events.push(ReqEvent::Body(bytes.to_vec())),
                    }
                }
                Ok(RequestStep::Complete) => {
                    assert!(!in_head && d.is_complete());
                    if let BodyKind::Length(n) = d.head().body_kind() {
                        assert_eq!(body_len, n);
                    }
                    if events.last() != Some(&ReqEvent::Complete) {
                        events.push(ReqEvent::Complete);
                    }
                    d.reset();
                    assert!(!d.started());
                    in_head = true;
                }
            }
        }
    }
    (events, None)
}

fn head_view(d: &RequestDecoder, limits: HttpLimits) -> HeadView {
    let head = d.head();
    let query = head.query().map(|q| {
        if let Some(ip) = q.ip() {
            assert!(graphic_within(ip, MAX_IP_PARAM_LEN), "IP {ip:?}");
        }
        if let Some(id) = q.session_id() {
            assert!(graphic_within(id, MAX_SESSION_ID_LEN), "SessionID {id:?}");
        }
        QueryView {
            action: q.action(),
            server: q.server(),
            ip: q.ip().map(str::to_owned),
            session_id: q.session_id().map(str::to_owned),
            lifespan: q.lifespan(),
        }
    });
    if let Some(origin) = head.origin() {
        assert!(graphic_within(origin, 512), "Origin {origin:?}");
    }
    if let BodyKind::Length(n) = head.body_kind() {
        assert!(n > 0 && n <= limits.max_body_bytes);
    }
    if head.body_kind() != BodyKind::Empty {
        assert!(head.length_given());
    }
    HeadView {
        method: head.method(),
        version: head.version(),
        keep_alive: head.keep_alive(),
        body: head.body_kind(),
        length_given: head.length_given(),
        expects_continue: head.expects_continue(),
        form: head.target_form(),
        path: head.path().map(str::to_owned),
        query,
        origin: head.origin().map(str::to_owned),
    }
}

type Decoded = (Vec<ReqEvent>, Option<(RequestError, bool)>);

fn same_requests(whole: &Decoded, cut: &Decoded) {
    assert_eq!(whole.0, cut.0, "events differ between whole and cut input");
    if whole.1 != cut.1 {
        // A bad byte in a partial head shows when its line ends (or never, at end of input).
        let lag = |a: &Option<(RequestError, bool)>, b: &Option<(RequestError, bool)>| {
            matches!(a, Some((_, true))) && matches!(b, None | Some((_, true)))
        };
        assert!(
            lag(&whole.1, &cut.1) || lag(&cut.1, &whole.1),
            "outcomes differ: whole {:?}, cut {:?}",
            whole.1,
            cut.1
        );
    }
}

/// Request bytes for the gateway, whole and cut: the same requests, limits held, statuses
/// from the documented set, errors sticky.
///
/// Input: a limits byte, a cutting byte, then the request stream.
pub fn request_decoder(data: &[u8]) {
    let Some((limits, pieces, stream)) = limits_and_pieces(data, [64, 128, 512, 4096], 65536)
    else {
        return;
    };
    let whole = decode_requests(limits, &[stream]);
    same_requests(&whole, &decode_requests(limits, &pieces));
}

// ---------------------------------------------------------------------------------------------
// Round trips

#[derive(Arbitrary, Debug)]
enum LineCase {
    OpenNs,
    OpenSb,
    Send,
    Poll,
}

#[derive(Arbitrary, Debug)]
enum HeadersCase {
    Official,
    ProxyFriendly,
    ContentType(String),
    Custom(Vec<(String, String)>),
}

#[derive(Arbitrary, Debug)]
enum HostCase {
    Known(u8),
    Text(String),
}

#[derive(Arbitrary, Debug)]
struct RequestCase {
    line: LineCase,
    value: String,
    lifespan: Option<u32>,
    absolute: bool,
    host: HostCase,
    port: u16,
    path: Option<String>,
    headers: HeadersCase,
    credentials: Option<(String, String)>,
    body: Vec<u8>,
    cut_seed: u64,
}

/// What the decoder must make of a query value the encoder escaped: the value itself when it
/// is visible ASCII within `max` bytes, else the error the first offending byte causes.
fn expected_value(value: &str, max: usize, name: &'static str) -> Result<String, QueryError> {
    for (i, b) in value.bytes().enumerate() {
        if !b.is_ascii_graphic() {
            return Err(QueryError::InvalidValue(name));
        }
        if i == max {
            return Err(QueryError::ValueTooLong(name));
        }
    }
    Ok(value.to_owned())
}

/// Client `RequestEncoder` → gateway `RequestDecoder`: the same query and body, whole or cut.
pub fn request_roundtrip(data: &[u8]) {
    let Ok(case) = RequestCase::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    const HOSTS: [&str; 5] = ["gw.test", "127.0.0.1", "[::1]", "2001:db8::1", "gw-2.example_x"];
    let text = match &case.host {
        HostCase::Known(i) => HOSTS[usize::from(*i) % HOSTS.len()],
        HostCase::Text(text) => text.as_str(),
    };
    let Ok(gateway) = Endpoint::parse(text, case.port.max(1)) else {
        return;
    };
    let (headers, custom) = match case.headers {
        HeadersCase::Official => (HeaderSet::official(), false),
        HeadersCase::ProxyFriendly => (HeaderSet::proxy_friendly(), false),
        HeadersCase::ContentType(ct) => (HeaderSet::official().with_content_type(&ct), false),
        HeadersCase::Custom(fields) => {
            let fields: Vec<Header> =
                fields.into_iter().take(16).map(|(n, v)| Header::new(n, v)).collect();
            (HeaderSet { before_host: fields, after_host: Vec::new() }, true)
        }
    };
    // Fields the decoder acts on may make a valid request refused; their effect is checked
    // elsewhere.
    let may_fail = headers.before_host.iter().chain(&headers.after_host).any(|h| {
        ["expect", "content-encoding", "origin"].iter().any(|n| h.name.eq_ignore_ascii_case(n))
    });
    let path = case.path.as_deref().unwrap_or(msn_http_core::wire::DEFAULT_GATEWAY_PATH);
    let credentials = case.credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
    let Ok(encoder) = RequestEncoder::new(path, &headers, credentials) else {
        return;
    };
    let line = match case.line {
        LineCase::OpenNs => RequestLine::Open { server: ServerKind::Notification, ip: &case.value },
        LineCase::OpenSb => RequestLine::Open { server: ServerKind::Switchboard, ip: &case.value },
        LineCase::Send => RequestLine::Send { session_id: &case.value },
        LineCase::Poll => RequestLine::Poll { session_id: &case.value, lifespan: case.lifespan },
    };
    let form = if case.absolute { TargetForm::Absolute } else { TargetForm::Origin };
    let mut wire = Vec::new();
    encoder.encode(&mut wire, &gateway, form, line, &case.body);

    let limits = HttpLimits { max_head_bytes: 1 << 16, max_body_bytes: 1 << 20 };
    let whole = decode_requests(limits, &[&wire]);
    same_requests(&whole, &decode_requests(limits, &split(&wire, case.cut_seed)));
    let (events, error) = whole;
    if let Some((e, _)) = error {
        assert!(may_fail, "the gateway refused what the client wrote: {e:?}");
        return;
    }
    let [ReqEvent::Head(head), rest @ ..] = events.as_slice() else {
        panic!("no head decoded: {events:?}");
    };
    let body: &[u8] = match rest {
        [ReqEvent::Complete] => &[],
        [ReqEvent::Body(body), ReqEvent::Complete] => body,
        other => panic!("not one whole request: {other:?}"),
    };
    assert_eq!(body, case.body.as_slice());
    assert_eq!((head.method, head.version, head.form), (Method::Post, HttpVersion::Http11, form));
    assert!(head.length_given);
    let kind = if case.body.is_empty() {
        BodyKind::Empty
    } else {
        BodyKind::Length(case.body.len() as u64)
    };
    assert_eq!(head.body, kind);
    assert_eq!(head.path.as_deref(), Some(path));
    if !custom {
        assert!(head.keep_alive);
    }
    let (action, server, ip, id, lifespan) = match line {
        RequestLine::Open { server, ip } => {
            (Some(QueryAction::Open), Some(server), Some(ip), None, None)
        }
        RequestLine::Send { session_id } => (None, None, None, Some(session_id), None),
        RequestLine::Poll { session_id, lifespan } => {
            (Some(QueryAction::Poll), None, None, Some(session_id), lifespan)
        }
    };
    let want = (|| {
        Ok(QueryView {
            action,
            server,
            ip: ip.map(|v| expected_value(v, MAX_IP_PARAM_LEN, "IP")).transpose()?,
            session_id: id
                .map(|v| expected_value(v, MAX_SESSION_ID_LEN, "SessionID"))
                .transpose()?,
            lifespan,
        })
    })();
    assert_eq!(head.query, want, "the query did not survive the trip");
}

#[derive(Arbitrary, Debug)]
enum GwIpCase {
    Known(u8),
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum AnswerCase {
    Session,
    ContinueThenSession,
    Status(u16),
    Preflight(u32),
}

#[derive(Arbitrary, Debug)]
struct ResponseCase {
    gw_ip: GwIpCase,
    session_id: Vec<u8>,
    session_close: bool,
    connection: u8,
    origin: Option<Vec<u8>>,
    body: Vec<Vec<u8>>,
    answer: AnswerCase,
    cut_seed: u64,
}

/// Maps bytes onto visible ASCII without `;`, as session IDs and origins are.
fn visible(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b'!' + b % 94 {
            b';' => ':',
            c => char::from(c),
        })
        .collect()
}

/// Gateway `ResponseEncoder` → client `ResponseDecoder` + `parse_messenger_header`: the same
/// status, ID, `GW-IP`, close flag, persistence and body, whole or cut.
pub fn response_roundtrip(data: &[u8]) {
    let Ok(case) = ResponseCase::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    const GW: [&str; 5] = ["", "207.46.110.18", "gw.test:8080", "[::1]:80", "2001:db8::1"];
    let gw_ip = match &case.gw_ip {
        GwIpCase::Known(i) => GW[usize::from(*i) % GW.len()],
        GwIpCase::Text(text) => text.as_str(),
    };
    let Ok(encoder) = ResponseEncoder::new(gw_ip) else {
        return;
    };
    let connection = match case.connection % 3 {
        0 => ConnectionHeader::Omit,
        1 => ConnectionHeader::KeepAlive,
        _ => ConnectionHeader::Close,
    };
    let origin = case.origin.as_deref().map(visible).filter(|o| !o.is_empty());
    let session_id = visible(&case.session_id);
    let body: Vec<&[u8]> = case.body.iter().map(Vec::as_slice).collect();
    let mut wire = Vec::new();
    let session_answer =
        matches!(case.answer, AnswerCase::Session | AnswerCase::ContinueThenSession);
    let status = match case.answer {
        AnswerCase::Session | AnswerCase::ContinueThenSession => {
            if matches!(case.answer, AnswerCase::ContinueThenSession) {
                encoder.encode_continue(&mut wire);
            }
            let response = SessionResponse {
                session_id: &session_id,
                session_close: case.session_close,
                connection,
                allow_origin: origin.as_deref(),
                body: &body,
            };
            encoder.encode_session(&mut wire, &response);
            200
        }
        AnswerCase::Status(status) => {
            // Interim and upgrade statuses are not answers.
            let status = 200 + status % 800;
            encoder.encode_status(&mut wire, status, connection, origin.as_deref());
            status
        }
        AnswerCase::Preflight(max_age) => {
            encoder.encode_preflight(&mut wire, connection, origin.as_deref(), max_age);
            204
        }
    };
    let limits = HttpLimits { max_head_bytes: 1 << 16, max_body_bytes: 1 << 20 };
    let whole = decode_responses(limits, &[&wire]);
    same_responses(&whole, &decode_responses(limits, &split(&wire, case.cut_seed)));
    let (events, end) = whole;
    assert_eq!(end, RespEnd::Eof(EofOutcome::Truncated { started: false }), "{events:?}");
    let [RespEvent::Head { status: got, keep_alive, messenger, .. }, rest @ ..] = events.as_slice()
    else {
        panic!("no head decoded: {events:?}");
    };
    assert_eq!(*got, status);
    assert_eq!(*keep_alive, connection != ConnectionHeader::Close);
    let want_body: Vec<u8> = if session_answer { body.concat() } else { Vec::new() };
    let got_body: &[u8] = match rest {
        [RespEvent::Complete(_)] => &[],
        [RespEvent::Body(b), RespEvent::Complete(_)] => b,
        other => panic!("not one whole response: {other:?}"),
    };
    assert_eq!(got_body, want_body.as_slice());
    if !session_answer {
        assert_eq!(*messenger, None);
        return;
    }
    let messenger = messenger.as_deref().expect("X-MSN-Messenger on every session answer");
    let parsed = parse_messenger_header(messenger);
    let want = if session_id.is_empty() {
        Err(MessengerHeaderError::EmptySessionId)
    } else if session_id.len() > MAX_SESSION_ID_LEN {
        Err(MessengerHeaderError::SessionIdTooLong)
    } else {
        Ok(MessengerHeader {
            session_id: Some(&session_id),
            gateway: Some(gw_ip),
            session_close: case.session_close,
        })
    };
    assert_eq!(parsed, want);
}
