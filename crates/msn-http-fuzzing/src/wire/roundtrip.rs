//! Encoder → decoder round trips: client requests through the gateway's decoder, gateway
//! responses through the client's decoder and the `X-MSN-Messenger` parser.

use arbitrary::{Arbitrary, Unstructured};
use msn_http_core::Endpoint;
use msn_http_core::error::{MessengerHeaderError, QueryError};
use msn_http_core::wire::{
    BodyKind, ConnectionHeader, EofOutcome, Header, HeaderSet, HttpLimits, HttpVersion,
    MAX_IP_PARAM_LEN, MAX_SESSION_ID_LEN, MessengerHeader, Method, QueryAction, RequestEncoder,
    RequestLine, ResponseEncoder, ServerKind, SessionResponse, TargetForm, parse_messenger_header,
};

use super::request::{QueryView, ReqEvent, decode_requests, same_requests};
use super::response::{RespEnd, RespEvent, RespHead, decode_responses, same_responses};
use crate::split;

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

/// A text field: one of a few known good values (mostly), or anything at all.
#[derive(Arbitrary, Debug)]
enum TextCase {
    Known(u8),
    Text(String),
}

impl TextCase {
    fn pick<'a>(&'a self, known: &[&'a str]) -> &'a str {
        match self {
            Self::Known(i) => known[usize::from(*i) % known.len()],
            Self::Text(text) => text,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct RequestCase {
    line: LineCase,
    value: String,
    lifespan: Option<u32>,
    absolute: bool,
    host: TextCase,
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
    let text = case.host.pick(&HOSTS);
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
        [ReqEvent::Complete(_)] => &[],
        [ReqEvent::Body(body), ReqEvent::Complete(_)] => body,
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
enum AnswerCase {
    Session,
    ContinueThenSession,
    Status(u16),
    Preflight(u32),
}

#[derive(Arbitrary, Debug)]
struct ResponseCase {
    gw_ip: TextCase,
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
    let gw_ip = case.gw_ip.pick(&GW);
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
    let [RespEvent::Head(RespHead { status: got, keep_alive, messenger, .. }), rest @ ..] =
        events.as_slice()
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
