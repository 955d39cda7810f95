//! Split invariance: every fixture response fed whole, one byte at a time, and split at every
//! position gives the same events and the same session state.

mod support;

use support::{Ev, Harness, config};

/// A response to the open request, and whether the connection ends after it.
struct Case {
    name: &'static str,
    wire: Vec<u8>,
    eof: bool,
}

fn cases() -> Vec<Case> {
    let case = |name, wire: &[u8], eof| Case { name, wire: wire.to_vec(), eof };
    vec![
        case("official", include_bytes!("fixtures/ns-open-response.http"), false),
        case("revival", include_bytes!("fixtures/revival-response.http"), false),
        case(
            "chunked, commands cut across chunks, trailer",
            b"HTTP/1.1 200 OK\r\nX-MSN-Messenger: SessionID=1.1; GW-IP=gw.test\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nVER 1 M\r\n14\r\nSNP8\r\nMSG a b 4\r\nxyz\r\n1;ext=1\r\nz\r\n0\r\nExpires: 0\r\n\r\n",
            false,
        ),
        case(
            "100 Continue, then a payload command",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-MSN-Messenger: SessionID=1.1\r\nContent-Length: 30\r\n\r\nVER 1 MSNP8\r\nNOT 5\r\n<a/>\nCHG 1",
            false,
        ),
        case(
            "HTTP/1.0 close-delimited",
            b"HTTP/1.0 200 OK\r\nx-msn-messenger: SessionID=1.1;GW-IP=gw2.test:81\r\n\r\nVER 1 MSNP8\r\n",
            true,
        ),
        case(
            "Session=close with the last commands",
            b"HTTP/1.1 200 Whatever\r\nX-MSN-Messenger: SessionID=1.1; GW-IP=; Session=close\r\nContent-Length: 18\r\n\r\nVER 1 MSNP8\r\nOUT\r\n",
            false,
        ),
        case(
            "X-MSN-Host over GW-IP",
            b"HTTP/1.1 200 OK\r\nX-MSN-Messenger: SessionID=1.1; GW-IP=a.test\r\nX-MSN-Host: b.test\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
        case("400", b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad", false),
        case("500", b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", false),
        case("garbage", b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", false),
    ]
}

/// Feeds `pieces` to a session whose open request is in flight; returns events and state.
fn run(pieces: &[&[u8]], eof: bool) -> (Vec<Ev>, String) {
    let mut h = Harness::ns(config());
    h.session.send(b"VER 1 MSNP8\r\n").unwrap();
    h.request();
    for piece in pieces {
        h.feed(piece);
    }
    if eof {
        h.eof();
    }
    let s = &h.session;
    let state = format!(
        "id={:?} gw={} in_flight={:?} queued={} closed={} timeout={:?} stats={:?}",
        s.session_id(),
        s.gateway(),
        s.in_flight(),
        s.queued_bytes(),
        s.is_closed(),
        s.poll_timeout().map(|t| t - h.start),
        s.stats()
    );
    (h.take_events(), state)
}

#[test]
fn every_split_gives_the_same_events() {
    for case in cases() {
        let whole = run(&[&case.wire], case.eof);
        assert!(!whole.0.is_empty(), "{}: the case produces events", case.name);
        let bytes: Vec<&[u8]> = case.wire.chunks(1).collect();
        assert_eq!(run(&bytes, case.eof), whole, "{}: one byte at a time", case.name);
        for at in 0..=case.wire.len() {
            let (a, b) = case.wire.split_at(at);
            assert_eq!(run(&[a, b], case.eof), whole, "{}: split at {at}", case.name);
        }
    }
}

#[test]
fn the_cases_mean_what_they_say() {
    let outcome = |name: &str| {
        let case = cases().into_iter().find(|c| c.name == name).unwrap();
        run(&[&case.wire], case.eof).0
    };
    assert_eq!(
        outcome("chunked, commands cut across chunks, trailer"),
        [
            Ev::Established("1.1".into()),
            Ev::command("VER 1 MSNP8\r\n"),
            Ev::command("MSG a b 4\r\nxyzz")
        ]
    );
    assert_eq!(
        outcome("100 Continue, then a payload command"),
        [
            Ev::Established("1.1".into()),
            Ev::command("VER 1 MSNP8\r\n"),
            Ev::command("NOT 5\r\n<a/>\n")
        ]
    );
    assert!(matches!(outcome("garbage").as_slice(), [Ev::Closed(_)]));
}
