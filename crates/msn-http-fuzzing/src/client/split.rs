//! One response to an open request, fed whole and cut: the same events and the same state.

use std::time::Instant;

use msn_http_core::client::{ClientConfig, CloseReason, OutputMode, Session, Target};
use msn_http_core::error::{HttpError, NetworkError, RemoteError, SessionError};
use msn_http_core::msnp::FramerLimits;
use msn_http_core::wire::HttpLimits;

use super::{Owned, TARGET_IP, gateway_endpoint, owned};
use crate::split;

/// A close that only an error found early in a head causes (a partial head is parsed again
/// only once a line ends in it).
fn head_error(e: &Owned) -> bool {
    matches!(
        e,
        Owned::Closed(
            CloseReason::Failed(SessionError::Remote(RemoteError::Http(
                HttpError::MalformedHead(_)
                    | HttpError::TooManyHeaders
                    | HttpError::HeadTooLarge { .. }
            ))),
            _
        )
    )
}

/// What the other run may report instead of an early head error: the error itself, or the
/// connection ending inside the head.
fn late_head_error(e: &Owned) -> bool {
    head_error(e)
        || matches!(
            e,
            Owned::Closed(
                CloseReason::Failed(SessionError::Network(NetworkError::ConnectionClosed {
                    response_started: true
                })),
                _
            )
        )
}

/// One response to an open request, fed whole and cut as the input says: the same events and
/// the same session state, except that a bad byte in a partial head shows when its line ends.
///
/// Input: a settings byte, a cutting byte, then the response.
pub fn session_split(data: &[u8], epoch: Instant) {
    let Some((&[cfg, cut_seed], wire)) = data.split_first_chunk::<2>() else {
        return;
    };
    let whole = split_run(cfg, &[wire], epoch);
    let cut = split_run(cfg, &split(wire, u64::from(cut_seed) << 32 | wire.len() as u64), epoch);
    if whole == cut {
        return;
    }
    let (a, b) = if whole.0.len() >= cut.0.len() { (&whole.0, &cut.0) } else { (&cut.0, &whole.0) };
    let same_prefix =
        a.len() - b.len() <= 1 && a[..b.len().min(a.len() - 1)] == b[..b.len().min(a.len() - 1)];
    assert!(same_prefix && !a.is_empty(), "events differ: {:?} vs {:?}", whole.0, cut.0);
    let last = &a[a.len() - 1];
    let ok = if a.len() == b.len() {
        let other = &b[b.len() - 1];
        (head_error(last) && late_head_error(other)) || (head_error(other) && late_head_error(last))
    } else {
        // The other run still waits for the end of the bad line.
        head_error(last)
    };
    assert!(ok, "events differ: {:?} vs {:?}", whole.0, cut.0);
}

fn split_run(cfg: u8, pieces: &[&[u8]], now: Instant) -> (Vec<Owned>, String) {
    let mut config = ClientConfig::new(gateway_endpoint());
    config.output = if cfg & 1 == 0 { OutputMode::Commands } else { OutputMode::Bytes };
    config.http_limits = HttpLimits {
        max_head_bytes: [64, 256, 1024, 16384][usize::from(cfg >> 1 & 3)],
        max_body_bytes: [16, 256, 4096, 1 << 20][usize::from(cfg >> 3 & 3)],
    };
    config.framer_limits = FramerLimits { max_line_bytes: 32, max_payload_bytes: 64 };
    let eof = cfg & 0x20 != 0;
    let Ok(mut s) = Session::new(config, Target::notification(TARGET_IP), now) else {
        return (Vec::new(), String::new());
    };
    let _ = s.send(b"VER 1 MSNP8 CVR0\r\n");
    assert!(s.poll_transmit(now, &mut Vec::new()).is_some());
    for piece in pieces {
        s.handle_input(now, piece);
    }
    if eof {
        s.handle_eof(now);
    }
    let mut events = Vec::new();
    while let Some(e) = s.poll_event() {
        events.push(owned(e));
    }
    let closed = events.last().is_some_and(|e| matches!(e, Owned::Closed(..)));
    let state = if closed {
        String::new()
    } else {
        format!(
            "id={:?} gw={} in_flight={:?} queued={} timeout={:?} stats={:?}",
            s.session_id(),
            s.gateway(),
            s.in_flight(),
            s.queued_bytes(),
            s.poll_timeout().map(|t| t - now),
            s.stats()
        )
    };
    (events, state)
}
