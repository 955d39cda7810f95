//! The wire examples of PROTOCOL.md §5, byte for byte, in both directions.

mod support;

use std::time::Duration;

use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, Connection, Proxy, RequestKind, Target};
use msn_http_core::wire::{Header, HeaderSet};
use support::{Ev, Harness};

const NS_OPEN_REQUEST: &[u8] = include_bytes!("fixtures/ns-open-request.http");
const NS_OPEN_RESPONSE: &[u8] = include_bytes!("fixtures/ns-open-response.http");
const SB_OPEN_REQUEST: &[u8] = include_bytes!("fixtures/sb-open-request.http");
const POLL_REQUEST: &[u8] = include_bytes!("fixtures/poll-request.http");
const REVIVAL_RESPONSE: &[u8] = include_bytes!("fixtures/revival-response.http");

/// The official client's header set, `Accept-Encoding` included, as in the captures.
fn captured_headers() -> HeaderSet {
    let mut set = HeaderSet::official();
    set.before_host.insert(2, Header::new("Accept-Encoding", "gzip, deflate"));
    set
}

/// A session configured like the captured client: official gateway, through a proxy.
fn captured_client(headers: HeaderSet, target: Target) -> Harness {
    let mut config = ClientConfig::default();
    config.headers = headers;
    config.proxy = Some(Proxy {
        endpoint: Endpoint::parse("proxy.example.net:3128", 80).unwrap(),
        credentials: None,
    });
    Harness::new(config, target)
}

#[test]
fn ns_open_request_matches_the_capture() {
    let mut h = captured_client(captured_headers(), Target::notification("messenger.hotmail.com"));
    h.session.send(b"VER 5 MSNP8 CVR0\r\n").unwrap();
    let (req, dest, conn) = h.transmit().unwrap();
    assert_eq!(String::from_utf8_lossy(&req.wire), String::from_utf8_lossy(NS_OPEN_REQUEST));
    assert_eq!(req.wire, NS_OPEN_REQUEST);
    assert_eq!(dest.to_string(), "proxy.example.net:3128", "through the proxy");
    assert_eq!(conn, Connection::Fresh);
}

#[test]
fn default_headers_are_the_capture_without_accept_encoding() {
    let mut h =
        captured_client(HeaderSet::default(), Target::notification("messenger.hotmail.com"));
    h.session.send(b"VER 5 MSNP8 CVR0\r\n").unwrap();
    let req = h.request();
    let text = String::from_utf8(NS_OPEN_REQUEST.to_vec()).unwrap();
    let want = text.replace("Accept-Encoding: gzip, deflate\r\n", "");
    assert_ne!(want, text);
    assert_eq!(String::from_utf8(req.wire).unwrap(), want);
}

#[test]
fn sb_open_request_matches_the_capture() {
    let mut h = captured_client(captured_headers(), Target::switchboard("207.46.108.13"));
    h.session.send(b"USR 3 phil_sayers@hotmail.com 214963.1047973248.28908\r\n").unwrap();
    assert_eq!(h.request().wire, SB_OPEN_REQUEST);
}

#[test]
fn captured_response_then_poll_to_the_new_gateway() {
    let mut h = captured_client(captured_headers(), Target::notification("messenger.hotmail.com"));
    h.session.send(b"VER 5 MSNP8 CVR0\r\n").unwrap();
    h.request();
    h.feed(NS_OPEN_RESPONSE);
    assert_eq!(
        h.take_events(),
        [
            Ev::Established("954547325.13160".into()),
            Ev::command("VER 5 MSNP8 CVR0\r\n"),
            Ev::Moved("gateway.messenger.hotmail.com:80".into(), "207.46.110.18:80".into()),
        ]
    );
    // Official policy: nothing until 2 s after the response.
    assert_eq!(h.session.poll_timeout(), Some(h.now + Duration::from_secs(2)));
    assert!(h.transmit().is_none());
    h.advance(Duration::from_secs(2));
    let (poll, _, conn) = h.transmit().unwrap();
    assert_eq!(poll.kind(), RequestKind::Poll);
    assert_eq!(poll.param("SessionID"), Some("954547325.13160"));
    assert_eq!(poll.header("Host"), Some("207.46.110.18"));
    assert_eq!(conn, Connection::Fresh, "a new gateway host gets a new connection");
    // The gateway rotates the suffix; the next poll must carry the new ID, byte for byte.
    h.feed(&support::ok("SessionID=954547325.32498; GW-IP=207.46.110.18", b""));
    h.advance(Duration::from_secs(2));
    let (poll, _, conn) = h.transmit().unwrap();
    assert_eq!(String::from_utf8_lossy(&poll.wire), String::from_utf8_lossy(POLL_REQUEST));
    assert_eq!(poll.wire, POLL_REQUEST);
    assert_eq!(conn, Connection::Reuse);
}

#[test]
fn revival_response_with_echoed_gw_ip_keeps_the_configured_port() {
    let mut config = ClientConfig::new(Endpoint::parse("127.0.0.1:8080", 80).unwrap());
    config.poll_policy = msn_http_core::client::PollPolicy::official();
    let mut h = Harness::new(config, Target::notification("127.0.0.1"));
    h.session.send(b"VER 1 MSNP8\r\n").unwrap();
    let open = h.request();
    assert!(open.target.starts_with("/gateway/gateway.dll?Action=open&Server=NS&IP=127.0.0.1"));
    assert_eq!(open.header("Host"), Some("127.0.0.1:8080"));
    h.feed(REVIVAL_RESPONSE);
    assert_eq!(
        h.take_events(),
        [
            Ev::Established("ee242912-db5a-4b93-bc49-d615b0fa7965".into()),
            Ev::command("VER 1 MSNP8\r\n"),
        ]
    );
    h.advance(Duration::from_secs(2));
    let (poll, dest, conn) = h.transmit().unwrap();
    assert_eq!(dest.to_string(), "127.0.0.1:8080");
    assert_eq!(conn, Connection::Reuse);
    assert_eq!(poll.param("SessionID"), Some("ee242912-db5a-4b93-bc49-d615b0fa7965"));
}
