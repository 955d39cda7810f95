//! `msn-http gateway` on loopback, driven by raw HTTP, in front of a scripted TCP backend.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use support::{Running, http, word_after};

/// The `SessionID` of an `X-MSN-Messenger` value.
fn session_id(header: &str) -> String {
    word_after(header, "SessionID=")
}

#[test]
fn raw_http_reaches_the_backend_through_the_allowlist() {
    // A backend that answers VER and INF, then waits for OUT and hangs up.
    let backend = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let backend_addr = backend.local_addr().expect("backend address").to_string();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = backend.accept().expect("the gateway connects");
        conn.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        for (wait_for, answer) in [
            (&b"VER 1 MSNP7 CVR0\r\n"[..], &b"VER 1 MSNP7\r\n"[..]),
            (b"INF 2\r\n", b"INF 2 MD5\r\n"),
            (b"OUT\r\n", b""),
        ] {
            while !got.ends_with(wait_for) {
                let n = conn.read(&mut buf).expect("backend read");
                assert!(n > 0, "the gateway hung up early: {got:?}");
                got.extend_from_slice(&buf[..n]);
            }
            conn.write_all(answer).expect("backend write");
        }
        got
    });

    let route = format!("ns.test.invalid={backend_addr}");
    let mut gateway = Running::start(&[
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--backend",
        &route,
        "--public-host",
        "gw.test.invalid:8080",
        "--reply-wait",
        "2s",
    ]);
    let url = word_after(&gateway.line_with("listening on "), "listening on ");
    let addr = url.trim_start_matches("http://").split('/').next().expect("host:port").to_owned();
    let gw = "/gateway/gateway.dll";

    let (status, header, body) = http(
        &addr,
        &format!("{gw}?Action=open&Server=NS&IP=ns.test.invalid"),
        b"VER 1 MSNP7 CVR0\r\n",
    );
    let header = header.expect("X-MSN-Messenger on a 200");
    assert_eq!((status, body.as_slice()), (200, &b"VER 1 MSNP7\r\n"[..]), "{header}");
    assert!(header.contains("GW-IP=gw.test.invalid:8080"), "{header}");
    let first = session_id(&header);

    let (status, header, body) = http(&addr, &format!("{gw}?SessionID={first}"), b"INF 2\r\n");
    assert_eq!((status, body.as_slice()), (200, &b"INF 2 MD5\r\n"[..]));
    let second = session_id(&header.expect("header"));
    assert_ne!(first, second, "the session ID rotates with every response");

    // The old ID is dead; the current one polls (nothing queued).
    let (status, _, _) = http(&addr, &format!("{gw}?Action=poll&SessionID={first}"), b"");
    assert_eq!(status, 400);
    let (status, header, body) = http(&addr, &format!("{gw}?Action=poll&SessionID={second}"), b"");
    assert_eq!((status, body.len()), (200, 0));
    let third = session_id(&header.expect("header"));

    // Only allowlisted backends: the gateway is no open proxy.
    let (status, _, _) = http(
        &addr,
        &format!("{gw}?Action=open&Server=NS&IP=127.0.0.1:{}", 1863),
        b"VER 1 MSNP7\r\n",
    );
    assert_eq!(status, 403);

    let (status, header, _) = http(&addr, &format!("{gw}?SessionID={third}"), b"OUT\r\n");
    assert_eq!(status, 200);
    assert!(header.expect("header").contains("Session=close"));
    let seen = server.join().expect("backend thread");
    assert_eq!(
        seen, b"VER 1 MSNP7 CVR0\r\nINF 2\r\nOUT\r\n",
        "the backend got the commands once, in order"
    );
}
