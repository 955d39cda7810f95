//! `msn-http connect` as a new user meets failures (issue 10, items 6 and 9): what it prints
//! when the gateway rejects the session, and how fast, and with which cause, it gives up on a
//! gateway that refuses the connection.

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use msn_http_core::client::RequestKind;
use msn_http_testkit::{Quirks, Script};
use support::TempFile;
use support::fake_gateway::GatewayServer;

/// Everything the run wrote, stdout then stderr.
fn output(assert: &assert_cmd::assert::Assert) -> String {
    let out = assert.get_output();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_session_the_gateway_rejects_is_reported_in_a_sentence() {
    // The gateway expires sessions idle for 200 ms: the first adaptive poll, 250 ms after the
    // open, gets 400.
    let quirks = Quirks { idle_expiry: Some(Duration::from_millis(200)), ..Quirks::default() };
    let gateway = GatewayServer::start(Script::default().quirks(quirks));
    let script =
        TempFile::new("expired.msnp", "send VER 1 MSNP8 CVR0\nexpect VER 1 MSNP8 CVR0\nsleep 1s\n");
    let url = gateway.url();
    let args = ["connect", "--gateway", &url, "--policy", "adaptive", "--script", script.path()];
    let assert = support::run(&args).failure().code(1);
    let text = output(&assert);
    let sentence = "the gateway rejected the session (its ID is unknown or expired)";
    assert!(text.contains(&format!("session over: {sentence}")), "{text}");
    assert!(text.contains(&format!("msn-http: {sentence}")), "{text}");
    assert!(!text.contains("the session the gateway"), "{text}");
    let sessions = gateway.sessions();
    let kinds: Vec<_> = sessions[0].requests.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [RequestKind::Open, RequestKind::Poll], "nothing after the rejected poll");
}

#[test]
fn a_refused_gateway_fails_at_once_with_its_cause() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    let assert = assert_cmd::Command::new(support::bin())
        .args(["connect", "--gateway", &url])
        .write_stdin("VER 1 MSNP8 CVR0\n")
        .timeout(Duration::from_secs(60))
        .assert()
        .failure()
        .code(1);
    let took = start.elapsed();
    let text = output(&assert);
    let cause = format!("could not connect to 127.0.0.1:{port}: connection refused");
    assert!(text.contains(&cause), "{text}");
    assert!(took < Duration::from_secs(1), "gave up after {took:?}: {text}");
    assert!(!text.contains("TooManyFailures") && !text.contains("Network("), "{text}");
}
