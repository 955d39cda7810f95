//! `msn-http relay` in front of a gateway that echoes `IP=` as `GW-IP`, as revival gateways
//! do (issue 10, item 1): a TCP MSNP client's NS session (`IP=<host>:<port>`) and, after the
//! relay rewrote an `XFR SB`, its switchboard session keep talking to the gateway, and never
//! to the echoed addresses, where raw MSNP servers listen that do not speak HTTP.

mod support;

use std::time::Duration;

use msn_http_core::client::RequestKind;
use msn_http_testkit::Script;
use support::fake_gateway::{GatewayServer, RawServer};
use support::{Msnp, arg, eventually, relay, text};

#[test]
fn relayed_sessions_keep_to_the_gateway_when_gw_ip_echoes_ip() {
    let (raw_ns, raw_sb) = (RawServer::start("127.0.0.2:0"), RawServer::start("127.0.0.3:0"));
    let gateway = GatewayServer::start(Script::default());
    let ns_ip = raw_ns.addr.to_string();
    let (relay, listen) = relay(&gateway.url(), &["--ip", &ns_ip], true);

    let mut alice = Msnp::connect("alice", &listen);
    alice.line("VER 1 MSNP8 CVR0");
    alice.expect("VER", |c| text(c) == "VER 1 MSNP8 CVR0");
    // The echoing backend sends the XFR back as a server would answer it; the relay rewrites
    // its address to a relay listener.
    let xfr = format!("XFR 2 SB {} CKI 1234.5678", raw_sb.addr);
    alice.line(&xfr);
    let rewritten = alice.expect("XFR", |c| text(c).starts_with("XFR 2 SB "));
    let sb = arg(&rewritten, 2);
    assert!(sb.starts_with("127.0.0.1:") && sb != raw_sb.addr.to_string(), "{sb}");

    let mut alice_sb = Msnp::connect("alice SB", &sb);
    alice_sb.line("USR 1 alice@example.com 1234.5678");
    alice_sb.expect("USR", |c| text(c) == "USR 1 alice@example.com 1234.5678");
    let msg = b"MSG 2 N 23\r\nMIME-Version: 1.0\r\n\r\nhi";
    alice_sb.send(msg);
    let echoed = alice_sb.expect("MSG", |c| c.name() == "MSG");
    assert_eq!(echoed.as_bytes(), msg);

    // Both sessions poll on, each answer naming the raw server again.
    let polled = eventually(Duration::from_secs(10), || {
        let sessions = gateway.sessions();
        let polls = |s: usize| {
            sessions
                .get(s)
                .map_or(0, |g| g.requests.iter().filter(|r| r.kind == RequestKind::Poll).count())
        };
        (polls(0) >= 3 && polls(1) >= 3).then_some(())
    });
    assert!(polled.is_some(), "both sessions poll the gateway");
    alice_sb.line("OUT");
    assert!(alice_sb.closed(), "the switchboard connection ends after OUT");
    alice.line("OUT");
    assert!(alice.closed(), "the NS connection ends after OUT");

    assert_eq!((raw_ns.accepted(), raw_sb.accepted()), (0, 0), "no connection to a raw server");
    assert_eq!((raw_ns.bytes(), raw_sb.bytes()), (0, 0));
    let sessions = gateway.sessions();
    assert_eq!(sessions.len(), 2, "one NS and one SB session");
    let (ns, sb) = (&sessions[0], &sessions[1]);
    assert!(ns.requests[0].target.ends_with(&format!("Server=NS&IP={ns_ip}")));
    assert!(sb.requests[0].target.ends_with(&format!("Server=SB&IP={}", raw_sb.addr)));
    let host = gateway.addr.to_string();
    for r in ns.requests.iter().chain(&sb.requests) {
        assert_eq!(r.host.as_deref(), Some(host.as_str()), "{r:?}");
    }
    assert_eq!(text_of(&ns.received), format!("VER 1 MSNP8 CVR0\r\n{xfr}\r\nOUT\r\n"));
    let mut sb_sent = b"USR 1 alice@example.com 1234.5678\r\n".to_vec();
    sb_sent.extend_from_slice(msg);
    sb_sent.extend_from_slice(b"OUT\r\n");
    assert_eq!(text_of(&sb.received), text_of(&sb_sent), "every command once");
    drop(sessions);

    let stderr = relay.stop_for_stderr();
    let trouble: Vec<_> =
        stderr.iter().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
    assert!(trouble.is_empty(), "{trouble:#?}");
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
