//! `msn-http demo` end to end: the real binary, each poll policy, and a failing run.

mod support;

use support::run;

/// Runs the demo with `policy` and returns its transcript, after checking the common steps.
fn demo(policy: &str) -> String {
    let assert = run(&["demo", "--policy", policy]).success();
    let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    let steps = [
        // NS and SB sessions opened through the gateway, the NS by name.
        "Action=open&Server=NS&IP=messenger.hotmail.com",
        "Action=open&Server=SB&IP=127.0.0.1:",
        "-> HTTP/1.1 200 OK  X-MSN-Messenger: SessionID=",
        "** the gateway moved from localhost:",
        // MD5 logins and presence both ways.
        "alice NS  << USR 5 OK alice@example.com Alice",
        "bob NS    << USR 5 OK bob@example.com Bob",
        "alice NS  << ILN 6 NLN bob@example.com Bob",
        "bob NS    << NLN NLN alice@example.com Alice",
        // The switchboard: referral, invitation, answer, join.
        "alice NS  << XFR 7 SB 127.0.0.1:",
        "alice SB  << CAL 2 RINGING",
        "bob NS    << RNG ",
        "bob SB    << IRO 1 1 1 alice@example.com Alice",
        "bob SB    << ANS 1 OK",
        "alice SB  << JOI bob@example.com Bob",
        // Messages both ways, acknowledged, then the goodbyes.
        "bob SB    << MSG alice@example.com Alice ",
        "| Hi Bob! This came to you through the HTTP gateway.",
        "alice SB  << MSG bob@example.com Bob ",
        "| Hi Alice, and this went back the same way.",
        "alice SB  << ACK 3",
        "alice SB  << BYE bob@example.com",
        "alice NS  << FLN bob@example.com",
        "; Session=close",
        // The summary.
        "scenario        ok: both logged in",
        "round trip      median ",
    ];
    for step in steps {
        assert!(out.contains(step), "{policy}: the transcript lacks {step:?}:\n{out}");
    }
    // Four sessions, each ended cleanly.
    let clean =
        out.matches("** session over: the gateway closed the session (Session=close)").count()
            + out.matches("** session over: the session closed cleanly at the caller's request (its OUT answered, or nothing yet sent)").count();
    assert_eq!(clean, 4, "{out}");
    out
}

#[test]
fn official_polls_every_two_seconds_without_lifespan() {
    let out = demo("official");
    assert!(out.contains("poll policy     official (poll 2 s after each response)"), "{out}");
    assert!(out.contains("Action=poll&SessionID="), "an idle session polled:\n{out}");
    assert!(!out.contains("Lifespan="), "{out}");
}

#[test]
fn adaptive_policy_is_named_in_the_summary() {
    let out = demo("adaptive");
    assert!(
        out.contains("adaptive (poll 250 ms after traffic, doubling up to 4 s while idle)"),
        "{out}"
    );
    assert!(!out.contains("Lifespan="), "{out}");
}

#[test]
fn long_poll_asks_the_gateway_to_hold_polls() {
    let out = demo("long-poll");
    assert!(out.contains("long-poll (the gateway holds each poll up to 1 s"), "{out}");
    assert!(out.contains("&Lifespan=1"), "polls carry the lifespan:\n{out}");
}

#[test]
fn a_failed_scenario_exits_non_zero_with_a_reason() {
    // No step can finish in a millisecond: alice waits at least one poll for bob.
    let assert = run(&["demo", "--timeout", "1ms"]).failure().code(1);
    let output = assert.get_output();
    let err = String::from_utf8_lossy(&output.stderr);
    let out = String::from_utf8_lossy(&output.stdout);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("msn-http: ") && last.contains(" within "), "{err}");
    assert!(!err.contains("WARN"), "sessions left open log out quietly: {err}");
    assert!(!err.contains("Error {") && !err.contains("Custom {"), "no Debug dumps: {err}");
    assert!(out.contains("scenario        FAILED: "), "{out}");
}

#[test]
fn the_demo_runs_over_https_with_a_certificate_it_makes() {
    let assert = run(&["demo", "--tls", "--policy", "adaptive"]).success();
    let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    for step in [
        "  gateway               https://127.0.0.1:",
        "** the gateway moved from localhost:",
        "alice NS  << USR 5 OK alice@example.com Alice",
        "alice SB  << JOI bob@example.com Bob",
        "bob SB    << MSG alice@example.com Alice ",
        "scenario        ok:",
        " in 4 sessions, over TLS: ",
        "  gateway         4 sessions opened",
    ] {
        assert!(out.contains(step), "missing {step:?} in:\n{out}");
    }
    // Encrypted end to end: no proxy saw a request line.
    assert!(!out.contains("POST "), "{out}");
}
