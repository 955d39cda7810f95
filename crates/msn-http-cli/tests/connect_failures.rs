//! `msn-http connect` as a new user meets failures (issue 10, items 6 and 9): what it prints
//! when the gateway rejects the session, and how fast, and with which cause, it gives up on a
//! gateway that refuses the connection.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use msn_http_core::client::RequestKind;
use msn_http_testkit::{Quirks, Script};
use support::TempFile;
use support::fake_gateway::GatewayServer;

/// How long a run that should fail at once may take before it is killed.
const EXIT_LIMIT: Duration = Duration::from_secs(20);

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
    // Bound but not listening: connecting is refused, and no other socket (of this test or
    // any other process) can take the port meanwhile, as it could a port let go.
    let closed = tokio::net::TcpSocket::new_v4().expect("a socket");
    closed.bind("127.0.0.1:0".parse().expect("address")).expect("bind");
    let port = closed.local_addr().expect("address").port();
    let url = format!("http://127.0.0.1:{port}");
    // A user typing: stdin stays open (at its end the session would log out, and a logout
    // before the first request went out ends the session at once: see
    // msn-http-core/tests/close_while_opening.rs).
    let start = Instant::now();
    let mut child = Command::new(support::bin())
        .args(["connect", "--gateway", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start msn-http");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(b"VER 1 MSNP8 CVR0\n").expect("type a command");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > EXIT_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {EXIT_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = start.elapsed();
    drop(stdin);
    let out = child.wait_with_output().expect("output");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(status.code(), Some(1), "{text}");
    let cause = format!("could not connect to 127.0.0.1:{port}: connection refused");
    assert!(text.contains(&format!("msn-http: the session failed: {cause}")), "{text}");
    assert!(took < Duration::from_secs(1), "gave up after {took:?}: {text}");
    assert!(!text.contains("TooManyFailures") && !text.contains("Network("), "{text}");
}
