//! Deterministic simulated sessions: the client core against an in-test gateway on a fake clock.
// Tests live in a process of their own: they may read a clock for an origin and read files.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io;
use std::time::Duration;

use msn_http_core::Endpoint;
use msn_http_core::client::{
    CloseReason, Closed, Connection, MoveRefusal, OutReason, OutputMode, PollPolicy, Recovery,
    RequestKind, Target, UnconfirmedPolicy,
};
use msn_http_core::error::{NetworkError, RemoteError, SendError, SessionError};
use support::{Ev, Harness, concat, config, ok, status};

const SECOND: Duration = Duration::from_secs(1);

fn empty_ok(id: &str) -> Vec<u8> {
    ok(&format!("SessionID={id}; GW-IP=gw.test"), b"")
}

#[test]
fn idle_hour_under_official_polling_is_exactly_1800_polls() {
    let mut h = Harness::ns(config());
    h.open("1.0");
    let mut polls = 0;
    let mut last = h.now;
    while h.wait() && h.elapsed() <= Duration::from_secs(3600) {
        let Some((req, _, conn)) = h.transmit() else {
            continue;
        };
        assert_eq!(req.kind(), RequestKind::Poll);
        assert_eq!(req.body, b"");
        assert_eq!(h.now - last, 2 * SECOND, "official polls come 2 s after each response");
        assert_eq!(conn, Connection::Reuse);
        polls += 1;
        assert_eq!(req.param("SessionID"), Some(format!("1.{}", polls - 1).as_str()));
        h.feed(&empty_ok(&format!("1.{polls}")));
        last = h.now;
        if h.elapsed() == Duration::from_secs(3600) {
            break;
        }
    }
    assert_eq!(polls, 1800);
    assert_eq!(h.session.stats().polls, 1800);
    assert_eq!(h.session.stats().empty_polls, 1800);
    assert_eq!(h.take_events(), [Ev::Established("1.0".into()), Ev::command("VER 1 MSNP8\r\n")]);
}

#[test]
fn a_chat_burst_is_coalesced_in_order_and_cut_between_commands() {
    let mut cfg = config();
    cfg.max_request_body_bytes = 64;
    let mut h = Harness::polling(cfg);
    // While the poll is in flight, the caller sends 40 commands; none may go out yet.
    let mut sent = Vec::new();
    for n in 0..40 {
        let cmd = format!("MSG {n:02} N 5\r\nhi {n:02}");
        h.session.send(cmd.as_bytes()).unwrap();
        sent.extend_from_slice(cmd.as_bytes());
    }
    assert!(h.transmit().is_none(), "one request in flight");
    h.feed(&empty_ok("s"));
    let mut carried = Vec::new();
    let mut requests = 0;
    while let Some((req, _, _)) = h.transmit() {
        assert_eq!(req.kind(), RequestKind::Send);
        assert!(req.body.len() <= 64, "coalesced up to the limit");
        assert!(req.body.starts_with(b"MSG "), "cut between commands");
        carried.extend_from_slice(&req.body);
        requests += 1;
        h.feed(&ok("SessionID=s; GW-IP=gw.test", b"ACK 1\r\n"));
    }
    assert_eq!(carried, sent, "every command once, in order");
    assert_eq!(requests, 40usize.div_ceil(3), "three 17-byte commands per request");
    assert_eq!(h.session.queued_bytes(), 0);
}

#[test]
fn a_payload_split_across_three_responses_arrives_whole() {
    let mut h = Harness::opened(config());
    let payload = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhello";
    let whole =
        [format!("MSG bob@example.com Bob {}\r\n", payload.len()).as_bytes(), payload].concat();
    let parts = [&whole[..10], &whole[10..40], &whole[40..]];
    for (i, part) in parts.iter().enumerate() {
        h.advance(2 * SECOND);
        assert_eq!(h.request().kind(), RequestKind::Poll);
        h.feed(&ok("SessionID=s; GW-IP=gw.test", part));
        let events = h.take_events();
        if i < 2 {
            assert_eq!(events, [], "nothing until the payload is complete");
        } else {
            assert_eq!(events, [Ev::Command(whole.clone())]);
        }
    }
}

#[test]
fn gw_ip_moves_the_next_request_only_after_the_response() {
    let mut h = Harness::polling(config());
    let response = ok("SessionID=s; GW-IP=gw2.test:443", b"NLN 1\r\n");
    let (head, body) = response.split_at(response.len() - 3);
    h.feed(head);
    assert_eq!(h.session.gateway().to_string(), "gw.test:80", "no switch mid-response");
    assert!(h.transmit().is_none());
    h.feed(body);
    assert_eq!(
        h.take_events(),
        [Ev::command("NLN 1\r\n"), Ev::Moved("gw.test:80".into(), "gw2.test:443".into())]
    );
    h.session.send(b"CHG 2 BSY\r\n").unwrap();
    let (req, dest, conn) = h.transmit().unwrap();
    assert_eq!(dest.to_string(), "gw2.test:443");
    assert_eq!(conn, Connection::Fresh);
    assert_eq!(req.header("Host"), Some("gw2.test:443"));
    // X-MSN-Host takes precedence over GW-IP.
    h.feed(
        b"HTTP/1.1 200 OK\r\nX-MSN-Messenger: SessionID=s; GW-IP=gw3.test\r\nX-MSN-Host: gw4.test\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(h.session.gateway().to_string(), "gw4.test:443", "bare host keeps the port");
}

#[test]
fn a_repeated_header_value_means_the_same_every_time() {
    let mut h = Harness::ns(config());
    h.open("constant");
    h.take_events();
    for _ in 0..3 {
        h.advance(2 * SECOND);
        let req = h.request();
        assert_eq!(req.param("SessionID"), Some("constant"));
        h.feed(&ok("SessionID=constant; GW-IP=gw.test:99999", b""));
        let warning = SessionError::Remote(RemoteError::InvalidGatewayAddress(
            msn_http_core::AddressError::InvalidPort,
        ));
        assert_eq!(h.take_events(), [Ev::Warning(warning)], "warned every time");
    }
    for _ in 0..3 {
        h.advance(2 * SECOND);
        h.request();
        h.feed(&ok("SessionID=constant; GW-IP=gw2.test", b""));
    }
    assert_eq!(
        h.take_events(),
        [Ev::Moved("gw.test:80".into(), "gw2.test:80".into())],
        "moved once, then the same value changes nothing"
    );
    h.advance(2 * SECOND);
    let (req, dest, _) = h.transmit().unwrap();
    assert_eq!(
        (req.param("SessionID"), dest.to_string()),
        (Some("constant"), "gw2.test:80".into())
    );
    h.feed(&ok("SessionID=constant; GW-IP=gw2.test; Session=close", b""));
    assert!(matches!(h.take_events().as_slice(), [Ev::Closed(_)]));
}

#[test]
fn session_close_mid_conversation_delivers_the_body_then_ends() {
    let mut h = Harness::opened(config());
    h.session.send(b"OUT\r\n").unwrap();
    assert_eq!(h.request().kind(), RequestKind::Send);
    h.session.send(b"CHG 9 NLN\r\n").unwrap();
    h.feed(&ok("SessionID=s; Session=close", b"FLN bob@example.com\r\nFLN carol@example.com\r\n"));
    assert_eq!(
        h.take_events(),
        [
            Ev::command("FLN bob@example.com\r\n"),
            Ev::command("FLN carol@example.com\r\n"),
            Ev::Closed(Closed {
                reason: CloseReason::ServerClosed,
                unsent_bytes: 11,
                incomplete_inbound_bytes: 0
            }),
        ]
    );
    assert_eq!(h.session.unsent(), b"CHG 9 NLN\r\n", "what never made it is handed back");
    assert!(h.transmit().is_none());
    assert_eq!(h.session.poll_timeout(), None, "no polling after Session=close");
    assert_eq!(h.session.send(b"CHG 10 NLN\r\n"), Err(SendError::Closed));
    h.advance(3600 * SECOND);
    assert!(h.transmit().is_none());
}

#[test]
fn status_400_ends_the_session() {
    let mut h = Harness::polling(config());
    h.feed(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\n\r\nBad Request");
    assert_eq!(
        h.take_events(),
        [Ev::Closed(Closed {
            reason: CloseReason::SessionRejected,
            unsent_bytes: 0,
            incomplete_inbound_bytes: 0
        })]
    );
    assert!(h.session.is_closed());
}

#[test]
fn a_400_cut_short_still_ends_the_session() {
    let mut h = Harness::polling(config());
    h.feed(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\n\r\nBad");
    h.eof();
    assert!(matches!(
        h.take_events().as_slice(),
        [Ev::Closed(Closed { reason: CloseReason::SessionRejected, .. })]
    ));
}

#[test]
fn status_500_on_a_poll_is_retried_and_the_session_survives() {
    let mut h = Harness::polling(config());
    h.feed(&status(500, "Internal Server Error"));
    let error = SessionError::Remote(RemoteError::ServerError(500));
    assert_eq!(h.take_events(), [Ev::Failed(RequestKind::Poll, error, Recovery::Resending)]);
    let (req, _, conn) = h.transmit().expect("the first retry is immediate");
    assert_eq!(req.kind(), RequestKind::Poll);
    assert_eq!(conn, Connection::Reuse, "the 500 kept the connection alive");
    h.feed(&ok("SessionID=s; GW-IP=gw.test", b"NLN 1\r\n"));
    assert_eq!(h.take_events(), [Ev::command("NLN 1\r\n")]);
}

#[test]
fn status_500_on_a_send_waits_for_the_callers_decision() {
    let mut h = Harness::opened(config());
    h.session.send(b"CHG 2 NLN\r\n").unwrap();
    h.request();
    h.feed(&status(503, "Service Unavailable"));
    let error = SessionError::Remote(RemoteError::ServerError(503));
    assert_eq!(h.take_events(), [Ev::Failed(RequestKind::Send, error, Recovery::AwaitingDecision)]);
    // Undecided, the session keeps polling (received commands keep coming) and sends no
    // command: a caller that only receives is never left waiting on nothing.
    for n in 0..30 {
        let (poll, _, _) = h.transmit().expect("polling goes on while the caller decides");
        assert_eq!((poll.kind(), poll.body.len()), (RequestKind::Poll, 0));
        h.feed(&ok("SessionID=s; GW-IP=gw.test", format!("NLN {n}\r\n").as_bytes()));
        assert_eq!(h.take_events(), [Ev::command(&format!("NLN {n}\r\n"))]);
        assert!(h.transmit().is_none(), "nothing but polls until the caller decides");
        assert_eq!(h.session.poll_timeout(), Some(h.now + 2 * SECOND));
        h.advance(2 * SECOND);
    }
    h.session.send(b"CHG 3 BSY\r\n").unwrap();
    h.session.resend_unconfirmed();
    let req = h.request();
    assert_eq!(req.body, b"CHG 2 NLN\r\nCHG 3 BSY\r\n");
    h.feed(&empty_ok("s"));
    assert_eq!(h.session.queued_bytes(), 0);
}

#[test]
fn discarding_unconfirmed_commands_drops_exactly_them() {
    let mut h = Harness::ns(config());
    h.open("s");
    h.session.send(b"CHG 2 NLN\r\n").unwrap();
    h.request();
    h.session.send(b"CHG 3 BSY\r\n").unwrap();
    h.eof();
    assert!(matches!(
        h.take_events().last(),
        Some(Ev::Failed(
            RequestKind::Send,
            SessionError::Network(NetworkError::ConnectionClosed { response_started: false }),
            Recovery::AwaitingDecision
        ))
    ));
    assert_eq!(h.session.discard_unconfirmed(), 11);
    let (req, _, conn) = h.transmit().unwrap();
    assert_eq!(req.body, b"CHG 3 BSY\r\n");
    assert_eq!(conn, Connection::Fresh);
}

#[test]
fn resend_policy_resends_and_discard_policy_drops_with_a_report() {
    for (policy, recovery, body) in [
        (UnconfirmedPolicy::Resend, Recovery::Resending, &b"CHG 2 NLN\r\n"[..]),
        (UnconfirmedPolicy::Discard, Recovery::Discarded { bytes: 11 }, b""),
    ] {
        let mut cfg = config();
        cfg.unconfirmed = policy;
        let mut h = Harness::opened(cfg);
        h.session.send(b"CHG 2 NLN\r\n").unwrap();
        h.request();
        h.eof();
        let error =
            SessionError::Network(NetworkError::ConnectionClosed { response_started: false });
        assert_eq!(h.take_events(), [Ev::Failed(RequestKind::Send, error, recovery)]);
        let req = h.request();
        assert_eq!(req.body, body, "{policy:?}");
    }
}

#[test]
fn interim_100_continue_is_skipped() {
    let mut h = Harness::ns(config());
    h.session.send(b"VER 1 MSNP8\r\n").unwrap();
    h.request();
    let mut wire = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
    wire.extend_from_slice(&ok("SessionID=a; GW-IP=gw.test", b"VER 1 MSNP8\r\n"));
    h.feed(&wire);
    assert_eq!(h.take_events(), [Ev::Established("a".into()), Ev::command("VER 1 MSNP8\r\n")]);
}

#[test]
fn chunked_bodies_are_reassembled_across_chunks_and_responses() {
    let mut h = Harness::polling(config());
    h.feed(
        b"HTTP/1.1 200 OK\r\nX-MSN-Messenger: SessionID=s; GW-IP=gw.test\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nNLN \r\nA\r\nNLN bob@ex\r\n0\r\n\r\n",
    );
    assert_eq!(h.take_events(), [], "the second command is not complete yet");
    h.advance(2 * SECOND);
    h.request();
    h.feed(&ok("SessionID=s; GW-IP=gw.test", b"ample.com\r\n"));
    assert_eq!(h.take_events(), [Ev::command("NLN NLN bob@example.com\r\n")]);
}

#[test]
fn http10_close_delimited_body_ends_at_eof_and_needs_a_new_connection() {
    let mut h = Harness::polling(config());
    h.feed(b"HTTP/1.0 200 OK\r\nX-MSN-Messenger: SessionID=s; GW-IP=gw.test\r\n\r\nNLN 1\r\n");
    assert_eq!(h.take_events(), [Ev::command("NLN 1\r\n")], "commands stream out at once");
    h.session.send(b"CHG 2 NLN\r\n").unwrap();
    assert!(h.transmit().is_none(), "the response lasts until EOF");
    h.feed(b"NLN 2\r\n");
    h.eof();
    assert_eq!(h.take_events(), [Ev::command("NLN 2\r\n")]);
    let (req, _, conn) = h.transmit().unwrap();
    assert_eq!((req.kind(), conn), (RequestKind::Send, Connection::Fresh));
}

#[test]
fn connection_close_on_every_response_means_a_fresh_connection_every_time() {
    let mut h = Harness::ns(config());
    h.session.send(b"VER 1 MSNP8\r\n").unwrap();
    let mut fresh = 0;
    for n in 0..10 {
        let (_, _, conn) = h.transmit().unwrap();
        fresh += usize::from(conn == Connection::Fresh);
        h.feed(
            format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nX-MSN-Messenger: SessionID={n}; GW-IP=gw.test\r\nContent-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        );
        h.eof();
        h.advance(2 * SECOND);
    }
    assert_eq!(fresh, 10);
    assert!(!h.session.is_closed());
}

#[test]
fn a_stalled_response_hits_the_timeout() {
    let mut h = Harness::polling(config());
    let deadline = h.session.poll_timeout().unwrap();
    assert_eq!(deadline - h.now, 20 * SECOND, "the default request timeout");
    h.advance(19 * SECOND);
    assert_eq!(h.take_events(), []);
    // No byte arrived: a poll is safely resent, on a fresh connection.
    h.advance(SECOND);
    let error = SessionError::Network(NetworkError::Timeout { response_started: false });
    assert_eq!(h.take_events(), [Ev::Failed(RequestKind::Poll, error, Recovery::Resending)]);
    let (req, _, conn) = h.transmit().unwrap();
    assert_eq!((req.kind(), conn), (RequestKind::Poll, Connection::Fresh));
    // Part of a response arrived, then nothing: its data may be lost, so the session ends.
    h.feed(b"HTTP/1.1 200 OK\r\nX-MSN-Messenger: SessionID=s\r\nContent-Length: 100\r\n\r\nNLN");
    h.advance(20 * SECOND);
    let error = SessionError::Network(NetworkError::Timeout { response_started: true });
    assert_eq!(
        h.take_events(),
        [Ev::Closed(Closed {
            reason: CloseReason::Failed(error),
            unsent_bytes: 0,
            incomplete_inbound_bytes: 3
        })]
    );
}

#[test]
fn repeated_failures_back_off_then_give_up() {
    let mut cfg = config();
    cfg.max_consecutive_failures = 3;
    cfg.retry_delay = SECOND;
    let mut h = Harness::opened(cfg);
    h.advance(2 * SECOND);
    let mut waits = Vec::new();
    let mut last = h.now;
    for _ in 0..4 {
        let mut tries = 0;
        while h.transmit().is_none() {
            tries += 1;
            assert!(tries < 5 && h.wait(), "a retry is scheduled");
        }
        waits.push(h.now - last);
        h.eof();
        last = h.now;
    }
    assert_eq!(waits, [Duration::ZERO, Duration::ZERO, SECOND, 2 * SECOND]);
    let last = Box::new(NetworkError::ConnectionClosed { response_started: false }.into());
    let error = SessionError::Network(NetworkError::TooManyFailures { failures: 4, last });
    assert!(matches!(
        h.take_events().last(),
        Some(Ev::Closed(Closed { reason: CloseReason::Failed(e), .. })) if *e == error
    ));
}

#[test]
fn an_unreachable_gw_ip_falls_back_to_the_configured_gateway() {
    let mut h = Harness::ns(config());
    h.session.send(b"VER 1 MSNP8\r\n").unwrap();
    h.request();
    h.feed(&ok("SessionID=s; GW-IP=dead.test", b""));
    h.take_events();
    h.advance(2 * SECOND);
    assert_eq!(h.destination(), "dead.test:80");
    h.session.handle_connect_failed(h.now, io::ErrorKind::ConnectionRefused);
    h.drain();
    let address = Endpoint::parse("dead.test", 80).unwrap();
    let refused = NetworkError::ConnectFailed { kind: io::ErrorKind::ConnectionRefused, address };
    assert_eq!(
        h.take_events(),
        [
            Ev::Fallback("dead.test:80".into(), "gw.test:80".into()),
            Ev::Failed(RequestKind::Poll, SessionError::Network(refused), Recovery::Resending),
        ]
    );
    let (_, dest, conn) = h.transmit().expect("retried at once");
    assert_eq!((dest.to_string(), conn), ("gw.test:80".to_owned(), Connection::Fresh));
    // The gateway names the dead host again: it is not followed a second time.
    h.feed(&ok("SessionID=s; GW-IP=dead.test", b""));
    assert_eq!(h.take_events(), []);
    assert_eq!(h.session.gateway().to_string(), "gw.test:80");
}

#[test]
fn long_poll_asks_for_a_lifespan_and_polls_again_at_once() {
    let mut cfg = config();
    cfg.poll_policy = PollPolicy::LongPoll { lifespan_secs: 30 };
    let mut h = Harness::ns(cfg);
    h.open("s");
    // The open answer carried data: a short pause first, for the caller's reaction.
    assert!(h.transmit().is_none());
    h.advance(msn_http_core::client::LONG_POLL_SETTLE);
    let req = h.request();
    assert_eq!((req.kind(), req.param("Lifespan")), (RequestKind::Poll, Some("30")));
    assert_eq!(h.session.poll_timeout(), Some(h.now + 50 * SECOND), "lifespan + timeout");
    h.advance(29 * SECOND);
    h.feed(&empty_ok("s"));
    assert_eq!(h.request().kind(), RequestKind::Poll, "no wait between empty long polls");
    // After data, a short pause lets the caller's answer go first.
    h.feed(&ok("SessionID=s", b"RNG 1 1.2.3.4:1864 CKI 9 bob@example.com Bob\r\n"));
    assert!(h.transmit().is_none());
    h.session.send(b"CHG 2 NLN\r\n").unwrap();
    assert_eq!(h.request().kind(), RequestKind::Send, "the answer is not stuck behind a poll");
    h.feed(&empty_ok("s"));
    assert_eq!(h.session.poll_timeout(), Some(h.now + msn_http_core::client::LONG_POLL_SETTLE));
}

#[test]
fn adaptive_polling_backs_off_on_empty_polls_and_snaps_back() {
    let mut cfg = config();
    cfg.poll_policy = PollPolicy::Adaptive { min: Duration::from_millis(250), max: 2 * SECOND };
    let mut h = Harness::ns(cfg);
    h.open("s");
    let mut waits = Vec::new();
    for _ in 0..6 {
        let before = h.now;
        assert!(h.wait());
        h.request();
        waits.push(h.now - before);
        h.feed(&empty_ok("s"));
    }
    let ms = Duration::from_millis;
    assert_eq!(waits, [ms(250), ms(500), ms(1000), ms(2000), ms(2000), ms(2000)]);
    h.session.send(b"CHG 2 NLN\r\n").unwrap();
    h.request();
    h.feed(&empty_ok("s"));
    assert_eq!(h.session.poll_timeout(), Some(h.now + ms(250)), "a send snaps back");
    h.advance(ms(250));
    h.request();
    h.feed(&ok("SessionID=s", b"NLN 1\r\n"));
    assert_eq!(h.session.poll_timeout(), Some(h.now + ms(250)), "data keeps it prompt");
}

/// `close()` queues `OUT` after the caller's commands, and the session ends after its
/// response. A TCP client writes `OUT` and then closes: the close must not add a second one. An
/// `OUT` inside a payload is no logout.
#[test]
fn close_sends_one_out_after_the_queued_commands_and_ends_after_its_response() {
    for (queued, body) in [
        (&b""[..], &b"OUT\r\n"[..]),
        (b"CHG 1 NLN\r\nOUT\r\n", b"CHG 1 NLN\r\nOUT\r\n"),
        (b"MSG 2 N 5\r\nOUT\r\n", b"MSG 2 N 5\r\nOUT\r\nOUT\r\n"),
    ] {
        let case = String::from_utf8_lossy(queued);
        let mut h = Harness::opened(config());
        if !queued.is_empty() {
            h.session.send(queued).unwrap();
        }
        h.session.close();
        assert_eq!(h.session.send(b"CHG 1 NLN\r\n"), Err(SendError::Closed), "{case:?}");
        let req = h.request();
        assert_eq!((req.kind(), req.body.as_slice()), (RequestKind::Send, body), "{case:?}");
        h.feed(&empty_ok("s"));
        let closed = Closed {
            reason: CloseReason::LocalClose,
            unsent_bytes: 0,
            incomplete_inbound_bytes: 0,
        };
        assert_eq!(h.take_events(), [Ev::Closed(closed)], "{case:?}");
    }
}

#[test]
fn png_is_refused_and_nothing_is_queued() {
    let mut h = Harness::ns(config());
    h.open("s");
    assert_eq!(h.session.send(b"CHG 1 NLN\r\nPNG\r\n"), Err(SendError::PingNotAllowed));
    assert_eq!(h.session.queued_bytes(), 0);
}

#[test]
fn pings_can_be_answered_locally_at_a_command_boundary() {
    let mut cfg = config();
    cfg.ping = msn_http_core::client::PingPolicy::answer();
    let mut h = Harness::opened(cfg);
    h.session.send(b"CHG 1 NLN\r\nPNG\r\n").unwrap();
    h.drain();
    assert_eq!(h.take_events(), [Ev::command("QNG 50\r\n")], "answered at once");
    let req = h.request();
    assert_eq!(req.body, b"CHG 1 NLN\r\n", "PNG never goes on the wire");
    // A payload arrives in part: the next answer waits until it is whole, so nothing is cut.
    h.feed(&ok("SessionID=s", b"MSG a b 5\r\nhe"));
    h.session.send(b"PNG\r\n").unwrap();
    h.drain();
    assert_eq!(h.take_events(), []);
    h.advance(2 * SECOND);
    h.request();
    h.feed(&ok("SessionID=s", b"llo"));
    assert_eq!(h.take_events(), [Ev::command("MSG a b 5\r\nhello"), Ev::command("QNG 50\r\n")]);
}

#[test]
fn byte_mode_hands_out_the_raw_stream() {
    let mut cfg = config();
    cfg.output = OutputMode::Bytes;
    let mut h = Harness::ns(cfg);
    h.open("s");
    assert_eq!(
        h.take_events(),
        [Ev::Established("s".into()), Ev::Data(b"VER 1 MSNP8\r\n".to_vec())]
    );
    h.advance(2 * SECOND);
    h.request();
    h.feed(&ok("SessionID=s", b"NLN a\r\nMSG a b 3\r\nx"));
    // Whole commands only (so the stream can be watched for the server's `OUT`); the rest of
    // the payload follows.
    assert_eq!(concat(&h.take_events()), b"NLN a\r\n");
    h.advance(2 * SECOND);
    h.request();
    h.feed(&ok("SessionID=s; Session=close", b"yzMSG a b 3\r\nxy"));
    let events = h.take_events();
    // At the end, a cut command is handed over as it is.
    assert_eq!(concat(&events), b"MSG a b 3\r\nxyzMSG a b 3\r\nxy");
    assert!(matches!(
        events.last(),
        Some(Ev::Closed(c)) if c.reason == CloseReason::ServerClosed && c.incomplete_inbound_bytes == 0
    ));
}

#[test]
fn undelivered_input_holds_back_requests() {
    let mut cfg = config();
    cfg.max_inbound_bytes = 32;
    let mut h = Harness::ns(cfg);
    h.session.send(b"VER 1 MSNP8\r\n").unwrap();
    h.request();
    h.session
        .handle_input(h.now, &ok("SessionID=s", &b"NLN 1234567890123456789012345\r\n".repeat(2)));
    h.now += 10 * SECOND;
    assert!(h.session.poll_transmit(h.now, &mut Vec::new()).is_none(), "caller must drain first");
    assert_eq!(h.session.poll_timeout(), None);
    h.drain();
    assert_eq!(h.session.inbound_bytes(), 0);
    assert!(h.transmit().is_some());
}

#[test]
fn sb_sessions_open_with_server_sb() {
    let mut h = Harness::new(config(), Target::switchboard("207.46.108.13:1864"));
    h.session.send(b"USR 1 alice@example.com 17262740.1050826919.32308\r\n").unwrap();
    let req = h.request();
    assert_eq!(req.param("Server"), Some("SB"));
    assert_eq!(req.param("IP"), Some("207.46.108.13:1864"));
}

#[test]
fn a_bad_target_or_limit_is_a_config_error() {
    use msn_http_core::client::Session;
    use msn_http_core::error::ConfigError;
    let now = std::time::Instant::now();
    let bad = Session::new(config(), Target::notification("bad host"), now);
    assert!(matches!(bad, Err(ConfigError::InvalidTarget(_))));
    let mut cfg = config();
    cfg.poll_policy = PollPolicy::Adaptive { min: 2 * SECOND, max: SECOND };
    assert_eq!(
        Session::new(cfg, Target::notification("ns.test"), now).err(),
        Some(ConfigError::InvalidLimit("poll_policy"))
    );
    let _ = Endpoint::parse("gw.test", 80).unwrap();
}

/// Item 2 of the field report: a host a `GW-IP` moved the session to accepted connections but
/// did not speak HTTP (a raw MSNP switchboard answers a POST with an MSNP error, or not at
/// all), and the session waited out six request timeouts. Now the first such failure sends
/// the session back to the configured gateway, and the resend policy decides the rest.
#[test]
fn a_moved_to_host_that_does_not_speak_http_is_given_up_after_one_failure() {
    type Failure = fn(&mut support::Harness);
    let failures: [(&str, Failure); 5] = [
        ("a redirect, as a web server answers", |h| {
            h.feed(b"HTTP/1.1 302 Found\r\nLocation: /\r\nContent-Length: 0\r\n\r\n")
        }),
        ("an MSNP error instead of HTTP", |h| h.feed(b"911 3\r\n")),
        // Its body in the same read is not unsolicited data: the connection is given up.
        ("a 200 without X-MSN-Messenger", |h| {
            h.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nerr")
        }),
        ("the connection closed before any response", |h| h.eof()),
        ("no response within the request timeout", |h| h.advance(21 * SECOND)),
    ];
    for (what, fail) in failures {
        let mut h = Harness::polling(config());
        h.feed(&ok("SessionID=s; GW-IP=207.46.110.20:443", b""));
        h.take_events();
        h.advance(2 * SECOND);
        let (poll, dest, _) = h.transmit().expect("a poll to the moved-to host");
        assert_eq!(
            (poll.kind(), dest.to_string()),
            (RequestKind::Poll, "207.46.110.20:443".into())
        );
        fail(&mut h);
        let events = h.take_events();
        assert_eq!(
            events[0],
            Ev::Fallback("207.46.110.20:443".into(), "gw.test:80".into()),
            "{what}: {events:?}"
        );
        assert!(matches!(events[1], Ev::Failed(RequestKind::Poll, _, Recovery::Resending)));
        assert_eq!(events.len(), 2, "{what}: {events:?}");
        let (poll, dest, conn) = h.transmit().expect("retried at once");
        assert_eq!(
            (poll.kind(), dest.to_string(), conn),
            (RequestKind::Poll, "gw.test:80".into(), Connection::Fresh),
            "{what}"
        );
        assert_eq!(h.session.stats().fallbacks, 1);
        // Named again, it is not followed again.
        h.feed(&ok("SessionID=s; GW-IP=207.46.110.20:443", b""));
        assert_eq!(h.session.gateway().to_string(), "gw.test:80", "{what}");
    }
}

/// Once a moved-to host has answered, it is a gateway: a later failure there is a plain
/// failure, and non-HTTP bytes end the session as from any gateway.
#[test]
fn a_moved_to_host_that_answered_is_not_given_up_for_a_later_failure() {
    let mut h = Harness::polling(config());
    h.feed(&ok("SessionID=s; GW-IP=gw2.test", b""));
    h.advance(2 * SECOND);
    h.request();
    h.feed(&ok("SessionID=s; GW-IP=gw2.test", b""));
    h.take_events();
    h.advance(2 * SECOND);
    assert_eq!(h.destination(), "gw2.test:80");
    h.eof();
    assert!(matches!(h.take_events()[..], [Ev::Failed(RequestKind::Poll, _, Recovery::Resending)]));
    assert_eq!(h.session.gateway().to_string(), "gw2.test:80");
}

/// Item 6: a refused connection took 7.5 s of silent retries and lost its cause. On the first
/// request nothing was ever reachable: the session fails at once, with the cause.
#[test]
fn a_refused_first_connect_ends_the_session_at_once_with_its_cause() {
    let mut h = Harness::ns(config());
    h.session.send(b"VER 1 MSNP8 CVR0\r\n").unwrap();
    h.request();
    h.session.handle_connect_failed(h.now, io::ErrorKind::ConnectionRefused);
    h.drain();
    let address = Endpoint::parse("gw.test", 80).unwrap();
    let refused = NetworkError::ConnectFailed { kind: io::ErrorKind::ConnectionRefused, address };
    let closed = Closed {
        reason: CloseReason::Failed(refused.into()),
        unsent_bytes: 18,
        incomplete_inbound_bytes: 0,
    };
    assert_eq!(h.take_events(), [Ev::Closed(closed.clone())]);
    assert_eq!(
        closed.to_string(),
        "the session failed: could not connect to gw.test:80: connection refused; 18 queued bytes were never confirmed"
    );
    assert_eq!(h.session.unsent(), b"VER 1 MSNP8 CVR0\r\n");
    assert!(h.transmit().is_none());
}

/// The server's `OUT` is found where it arrives, whatever the output mode and however the
/// bytes are cut; the same letters inside a payload are no `OUT`.
#[test]
fn a_server_out_is_recognised_in_every_mode_and_cut_but_not_inside_a_payload() {
    let stream: &[u8] = b"MSG a b 16\r\nOUT OTH\r\nhello\r\nNLN x\r\nOUT SSD\r\n";
    for output in [OutputMode::Commands, OutputMode::Bytes] {
        for cut in 1..stream.len() {
            let mut cfg = config();
            cfg.output = output;
            let mut h = Harness::ns(cfg);
            h.open("s");
            h.advance(2 * SECOND);
            h.request();
            let (first, second) = stream.split_at(cut);
            h.feed(&ok("SessionID=s", first));
            if h.session.is_closed() {
                panic!("{output:?} cut {cut}: closed before the OUT");
            }
            h.advance(2 * SECOND);
            h.request();
            h.feed(&ok("SessionID=s", second));
            let events = h.take_events();
            assert_eq!(concat(&events[2..]), stream, "{output:?} cut {cut}");
            assert!(
                matches!(events.last(), Some(Ev::Closed(c)) if c.reason == CloseReason::ServerOut(OutReason::ServerShutdown)),
                "{output:?} cut {cut}: {events:?}"
            );
            assert!(h.transmit().is_none(), "no request after OUT");
        }
    }
}

/// A gateway that says `Session=close` with half a command in the body: the command API
/// reports the cut-off bytes in the end; the byte stream hands them over as a TCP connection
/// would, then ends.
#[test]
fn a_half_command_at_session_close_is_reported_or_handed_over() {
    for output in [OutputMode::Commands, OutputMode::Bytes] {
        let mut cfg = config();
        cfg.output = output;
        let mut h = Harness::polling(cfg);
        h.feed(&ok("SessionID=s; Session=close", b"NLN x\r\nMSG a b 10\r\nhel"));
        let events = h.take_events();
        let Some(Ev::Closed(closed)) = events.last() else { panic!("{events:?}") };
        match output {
            OutputMode::Commands => {
                assert_eq!(concat(&events), b"NLN x\r\n");
                assert_eq!(closed.incomplete_inbound_bytes, 15);
                assert!(closed.to_string().ends_with("15 received bytes formed no whole command"));
            }
            _ => {
                assert_eq!(concat(&events), b"NLN x\r\nMSG a b 10\r\nhel");
                assert_eq!(closed.incomplete_inbound_bytes, 0);
            }
        }
    }
}

/// Issue 11, item 7: a hostile gateway steered sessions to `0.0.0.0`, private and link-local
/// addresses and, cycling `GW-IP`, through ports 22, 25, 80, 443, 3306, 5432 and 6379. The
/// session stays at the configured gateway for every one it must not follow, reports each
/// once, and after a followed move fails, follows no other.
#[test]
fn a_hostile_gateway_cannot_steer_the_session_anywhere() {
    let mut h = Harness::opened(config());
    let refused = [
        "0.0.0.0:80",
        "10.255.255.1:80",
        "169.254.169.254:80",
        "127.0.0.1",
        "203.0.113.9:22",
        "203.0.113.9:25",
        "203.0.113.9:3306",
        "203.0.113.9:5432",
        "203.0.113.9:6379",
    ];
    for named in refused {
        for _ in 0..3 {
            h.advance(2 * SECOND);
            assert_eq!(h.destination(), "gw.test:80", "{named}");
            h.feed(&ok(&format!("SessionID=s; GW-IP={named}"), b""));
        }
    }
    let events = h.take_events();
    assert_eq!(events.len(), refused.len(), "each refused once: {events:?}");
    assert!(events.iter().all(|e| matches!(e, Ev::MoveRefused(..))));
    assert_eq!(h.session.stats().refused_moves, refused.len() as u64);
    // An allowed move that fails ends the steering.
    h.advance(2 * SECOND);
    h.request();
    h.feed(&ok("SessionID=s; GW-IP=203.0.113.9:443", b""));
    h.advance(2 * SECOND);
    assert_eq!(h.destination(), "203.0.113.9:443");
    h.session.handle_connect_failed(h.now, io::ErrorKind::ConnectionRefused);
    h.drain();
    h.request();
    h.feed(&ok("SessionID=s; GW-IP=203.0.113.10", b""));
    h.advance(2 * SECOND);
    assert_eq!(h.destination(), "gw.test:80", "no move after a failed one");
    assert!(h.take_events().iter().any(|e| matches!(
        e,
        Ev::MoveRefused(to, MoveRefusal::AfterFallback) if to == "203.0.113.10:80"
    )));
}

/// `close()` before the first request went out, with commands queued: they go first (the
/// open request carries them), then `OUT`, as over TCP. Found by the CLI's field tests, where
/// a piped `VER` against a refused gateway sometimes ended "cleanly", having sent nothing.
#[test]
fn a_close_before_the_first_request_still_sends_the_queued_commands() {
    let mut h = Harness::ns(config());
    h.session.send(b"VER 1 MSNP8 CVR0\r\n").unwrap();
    h.session.close();
    let open = h.request();
    let body = &b"VER 1 MSNP8 CVR0\r\nOUT\r\n"[..];
    assert_eq!((open.kind(), open.body.as_slice()), (RequestKind::Open, body));
    assert_eq!(h.take_events(), []);
    h.feed(&ok("SessionID=s; GW-IP=gw.test; Session=close", b"VER 1 MSNP8\r\n"));
    let events = h.take_events();
    assert!(
        matches!(events.last(), Some(Ev::Closed(c)) if c.reason == CloseReason::ServerClosed && c.unsent_bytes == 0)
    );
    // With nothing queued, a close before any request ends the session at once.
    let mut h = Harness::ns(config());
    h.session.close();
    assert!(h.transmit().is_none());
    h.drain();
    assert!(matches!(
        h.take_events()[..],
        [Ev::Closed(Closed { reason: CloseReason::LocalClose, .. })]
    ));
}
