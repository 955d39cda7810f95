//! The gateway's request decoder fed whole and in pieces: the same requests, limits held,
//! statuses from the documented set, errors sticky.

use msn_http_core::error::{QueryError, RequestError};
use msn_http_core::wire::{
    BodyKind, HttpLimits, HttpVersion, MAX_IP_PARAM_LEN, MAX_SESSION_ID_LEN, Method, QueryAction,
    RequestDecoder, RequestStep, ServerKind, TargetForm,
};

use super::{Event, Next, Position, feed, limits_and_pieces};

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

pub(crate) type ReqEvent = Event<Box<HeadView>>;

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
    let mut at = Position::START;
    let mut failure = None;
    feed(pieces, |input| {
        assert!(d.buffered() <= limits.max_head_bytes);
        match d.decode(input) {
            Err(e) => {
                assert!(REQUEST_ERROR_STATUSES.contains(&e.status()), "{e:?}");
                // Errors are sticky.
                assert_eq!(d.decode(&mut &b"POST / HTTP/1.1\r\n"[..]), Err(e));
                failure = Some((e, at.in_head));
                return Next::Stop;
            }
            Ok(RequestStep::NeedMore) => return Next::NeedMore,
            Ok(RequestStep::Head) => {
                assert!(d.started());
                at.head();
                events.push(ReqEvent::Head(Box::new(head_view(&d, limits))));
                if d.is_complete() {
                    events.push(ReqEvent::Complete(0));
                }
            }
            Ok(RequestStep::Body(bytes)) => {
                at.body(bytes.len(), limits.max_body_bytes);
                Event::push_body(&mut events, bytes);
            }
            Ok(RequestStep::Complete) => {
                let body_len = at.complete();
                assert!(d.is_complete());
                if let BodyKind::Length(n) = d.head().body_kind() {
                    assert_eq!(body_len, n);
                }
                if !matches!(events.last(), Some(ReqEvent::Complete(_))) {
                    events.push(ReqEvent::Complete(body_len));
                }
                d.reset();
                assert!(!d.started());
            }
        }
        Next::Decode
    });
    (events, failure)
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

pub(crate) fn same_requests(whole: &Decoded, cut: &Decoded) {
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
