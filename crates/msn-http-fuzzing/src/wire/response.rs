//! The response decoder fed whole and in pieces: the same events, limits held, no byte lost.

use msn_http_core::error::HttpError;
use msn_http_core::wire::{
    BodyKind, EofOutcome, HttpLimits, HttpVersion, ResponseDecoder, ResponseStep,
};

use super::messenger::check_messenger;
use super::{Event, Next, Position, feed, limits_and_pieces};

/// A response head, owned: the status and the headers the session reads, then the framing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RespHead {
    pub(crate) status: u16,
    pub(crate) messenger: Option<Vec<u8>>,
    pub(crate) msn_host: Option<Vec<u8>>,
    pub(crate) version: HttpVersion,
    pub(crate) keep_alive: bool,
    pub(crate) body: BodyKind,
}

pub(crate) type RespEvent = Event<RespHead>;

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
    let mut at = Position::START;
    let mut failure = None;
    feed(pieces, |input| {
        let before = input.len();
        let step = d.decode(input);
        assert!(input.len() <= before);
        match step {
            Err(error) => {
                failure = Some(RespEnd::Failed { error, in_head: at.in_head });
                return Next::Stop;
            }
            Ok(ResponseStep::NeedMore) => return Next::NeedMore,
            Ok(ResponseStep::Head) => {
                at.head();
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
                events.push(RespEvent::Head(RespHead {
                    status,
                    messenger: head.messenger().map(<[u8]>::to_vec),
                    msn_host: head.msn_host().map(<[u8]>::to_vec),
                    version: head.version(),
                    keep_alive: head.keep_alive(),
                    body: head.body_kind(),
                }));
            }
            Ok(ResponseStep::Body(bytes)) => {
                at.body(bytes.len(), limits.max_body_bytes);
                assert!(before - input.len() >= bytes.len());
                assert_eq!(d.body_received(), at.body_len);
                match d.head().body_kind() {
                    BodyKind::Empty => panic!("body bytes for an empty body"),
                    BodyKind::Length(n) => assert!(at.body_len <= n),
                    BodyKind::Chunked | BodyKind::CloseDelimited => {}
                }
                Event::push_body(&mut events, bytes);
            }
            Ok(ResponseStep::Complete) => {
                let body_len = at.complete();
                assert!(d.is_complete());
                assert_eq!(d.body_received(), body_len);
                match d.head().body_kind() {
                    BodyKind::Empty => assert_eq!(body_len, 0),
                    BodyKind::Length(n) => assert_eq!(body_len, n),
                    BodyKind::Chunked => {}
                    BodyKind::CloseDelimited => panic!("close-delimited completes only at EOF"),
                }
                // Complete is sticky and reads nothing more.
                let mut again = *input;
                assert_eq!(d.decode(&mut again), Ok(ResponseStep::Complete));
                assert_eq!(again.len(), input.len());
                events.push(RespEvent::Complete(body_len));
                d.reset();
            }
        }
        Next::Decode
    });
    if let Some(failure) = failure {
        return (events, failure);
    }
    let outcome = d.finish();
    if outcome == EofOutcome::Complete {
        let body_len = at.complete();
        assert!(d.is_complete());
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
pub(crate) fn same_responses(whole: &(Vec<RespEvent>, RespEnd), cut: &(Vec<RespEvent>, RespEnd)) {
    assert_eq!(whole.0, cut.0, "events differ between whole and cut input");
    if whole.1 != cut.1 {
        let lag = (matches!(whole.1, RespEnd::Failed { in_head: true, .. }) && head_lag(cut.1))
            || (matches!(cut.1, RespEnd::Failed { in_head: true, .. }) && head_lag(whole.1));
        assert!(lag, "outcomes differ: whole {:?}, cut {:?}", whole.1, cut.1);
    }
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
