//! Closing a session whose first request has not gone out yet, with commands queued: found by
//! the CLI's field tests (issue 10), where `printf 'VER ...\n' | msn-http connect` against a
//! refused gateway sometimes exits 0, having sent nothing, instead of failing with the cause.

use std::time::Instant;

use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, CloseReason, Event, RequestKind, Session, Target};

const VER: &[u8] = b"VER 1 MSNP8 CVR0\r\n";

/// `send(VER)` then `close()` before the driver's first `poll_transmit`: the session ends at
/// once with `LocalClose` ("the session closed cleanly (OUT delivered)"), no request is ever
/// made, and the VER is left unsent — a clean end for a session that never reached the
/// gateway, and an `OUT` that was never delivered. Expected: the open request carries the
/// queued commands (and the `OUT` after them), as for a session that is open.
#[test]
#[ignore = "client core: close() while opening with commands queued drops them (issue 10 report)"]
fn a_close_before_the_first_request_still_sends_the_queued_commands() {
    let now = Instant::now();
    let config = ClientConfig::new(Endpoint::new("gw.test", 80).unwrap());
    let mut session = Session::new(config, Target::notification("ns.test"), now).unwrap();
    session.send(VER).unwrap();
    session.close();
    let mut out = Vec::new();
    let kind = session.poll_transmit(now, &mut out).map(|t| t.kind);
    let mut ended = None;
    while let Some(event) = session.poll_event() {
        if let Event::Closed(closed) = event {
            ended = Some(closed.reason);
        }
    }
    assert_eq!(
        (kind, ended.as_ref()),
        (Some(RequestKind::Open), None),
        "no open request; the session ended as {:?} with {} bytes unsent",
        ended.as_ref().map(CloseReason::to_string),
        session.unsent().len()
    );
    let body = &out[out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    assert!(body.starts_with(VER), "{}", String::from_utf8_lossy(body));
}
