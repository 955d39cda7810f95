//! The client against the gateways and servers of the field (PROTOCOL.md §7), one quirk at a
//! time and all of them together, under every poll policy, on a fake clock: what it sends
//! where, requests per idle minute, how fast pushed messages arrive, and that nothing is lost
//! or duplicated.

use std::time::Duration;

use msn_http_core::Endpoint;
use msn_http_core::client::{
    ClientConfig, CloseReason, Notice, OutReason, PollPolicy, RequestKind, Target,
    UnconfirmedPolicy,
};
use msn_http_core::error::{NetworkError, RemoteError, SessionError};
use msn_http_testkit::{GwIp, Quirks, Report, Script, SessionIds, Sim, kinds, measure_idle};

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const VER: &[u8] = b"VER 1 MSNP7 CVR0\r\n";

const POLICIES: [PollPolicy; 3] =
    [PollPolicy::official(), PollPolicy::adaptive(), PollPolicy::long_poll()];

fn config(policy: PollPolicy) -> ClientConfig {
    let mut config = ClientConfig::new(Endpoint::new("gw.test", 80).unwrap());
    config.poll_policy = policy;
    config
}

fn open(policy: PollPolicy, target: Target, script: Script) -> Sim {
    let mut sim = Sim::new(config(policy), target, script);
    sim.rtt = Duration::from_millis(50);
    sim.send(VER);
    sim.run_for(SECOND);
    sim
}

fn notices(sim: &Sim, which: impl Fn(&Notice) -> bool) -> usize {
    sim.reports.iter().filter(|(_, r)| matches!(r, Report::Notice(n) if which(n))).count()
}

/// Item 1 of the field report: a switchboard opened with `IP=10.1.2.3:1864` got
/// `GW-IP=10.1.2.3:1864` and the client moved there, sending HTTP to the raw switchboard.
#[test]
fn a_gw_ip_echoing_ip_is_not_followed_into_the_msnp_server() {
    let targets = [
        Target::notification("messenger.hotmail.com"),
        Target::switchboard("10.1.2.3:1864"),
        Target::switchboard("10.1.2.3"),
    ];
    for policy in POLICIES {
        for target in &targets {
            let mut sim = open(policy, target.clone(), Script::default());
            sim.send(b"USR 2 alice@example.com 123.456\r\n");
            sim.run_for(MINUTE);
            let open = &sim.gateway.requests[0];
            assert!(open.target.ends_with(&format!("IP={}", target.ip)), "{}", open.target);
            for request in &sim.gateway.requests {
                assert_eq!(request.host.as_deref(), Some("gw.test"), "{policy:?} {target:?}");
            }
            assert_eq!(sim.session.gateway().to_string(), "gw.test:80");
            assert_eq!(
                notices(&sim, |n| matches!(n, Notice::MoveRefused { .. })),
                1,
                "reported once: {policy:?} {target:?}"
            );
            assert_eq!(sim.session.stats().refused_moves, 1);
            assert!(sim.closed().is_none());
        }
    }
}

/// Item 3: against a gateway that answers empty polls at once, long polling made 16 000
/// polls in 3 s. Idle, it must cost no more than adaptive polling; against a gateway that
/// holds polls, one poll per lifespan.
#[test]
fn idle_cost_and_delivery_latency_of_every_policy_against_both_kinds_of_gateway() {
    for policy in POLICIES {
        for hold in [false, true] {
            let script = Script::default().quirks(Quirks { hold_polls: hold, ..Quirks::default() });
            let f = measure_idle(config(policy), script, Duration::from_millis(50));
            let (rate, p95) = (f.requests_per_minute, f.p95_latency);
            match (policy, hold) {
                (PollPolicy::Official { .. }, _) => {
                    assert!((29.0..=30.0).contains(&rate), "{rate}");
                    assert!(p95 <= 2 * SECOND, "{p95:?}");
                }
                (PollPolicy::Adaptive { .. }, _) | (PollPolicy::LongPoll { .. }, false) => {
                    assert!(rate <= 15.0, "{policy:?} hold {hold}: {rate} requests/min");
                    assert!(p95 <= 4 * SECOND, "{p95:?}");
                }
                (PollPolicy::LongPoll { .. }, true) => {
                    assert!((5.9..=6.1).contains(&rate), "{rate}");
                    assert!(p95 <= Duration::from_millis(100), "{p95:?}");
                }
            }
        }
    }
}

#[test]
fn long_poll_says_so_when_the_gateway_stops_and_starts_holding_polls() {
    let mut sim = open(PollPolicy::long_poll(), Target::notification("ns.test"), Script::default());
    sim.run_for(10 * SECOND);
    assert_eq!(notices(&sim, |n| *n == Notice::PollsHeld { held: false }), 1);
    let unheld = sim.session.stats().unheld_polls;
    assert!(unheld >= 1);
    // The gateway starts holding: the next held poll is noticed, and polls are held again.
    sim.gateway.script.quirks.hold_polls = true;
    sim.run_for(MINUTE);
    assert_eq!(notices(&sim, |n| *n == Notice::PollsHeld { held: true }), 1);
    let last_minute = sim.requests_between(sim.elapsed() - 30 * SECOND, sim.elapsed());
    assert!(last_minute <= 4, "one poll per 10 s lifespan: {last_minute} in 30 s");
}

/// Item 4: after `OUT OTH` a gateway kept answering empty 200s without `Session=close`, and
/// the client polled the dead session forever.
#[test]
fn a_server_out_ends_the_session_with_its_reason_and_nothing_follows_it() {
    for policy in POLICIES {
        for quirks in [Quirks::default(), Quirks::revival()] {
            let mut sim =
                open(policy, Target::notification("ns.test"), Script::default().quirks(quirks));
            let at = sim.now + 3 * SECOND;
            sim.gateway.push_at(at, b"OUT OTH\r\n");
            sim.run_for(10 * MINUTE);
            let closed = sim.closed().expect("the session ended");
            assert_eq!(closed.reason, CloseReason::ServerOut(OutReason::SignedInElsewhere));
            let delivered = sim.delivered_at(b"OUT OTH\r\n", at).expect("OUT delivered");
            let after = sim.gateway.requests.iter().filter(|r| r.at > delivered).count();
            assert_eq!(after, 0, "{policy:?}: requests after OUT");
            assert!(sim.session.poll_timeout().is_none());
        }
    }
}

/// Revival gateways keep one UUID for the whole session: the client sends it back unchanged,
/// and loses or repeats nothing over an hour of chat and idling.
#[test]
fn a_constant_uuid_session_id_carries_an_hour_of_chat() {
    for policy in POLICIES {
        let quirks = Quirks { session_ids: SessionIds::ConstantUuid, ..Quirks::default() };
        let mut sim =
            open(policy, Target::notification("ns.test"), Script::default().quirks(quirks));
        let mut sent = VER.to_vec();
        for n in 0..120 {
            let command = format!("MSG {} N 6\r\nhi {n:03}", n + 2);
            sim.send(command.as_bytes());
            sent.extend_from_slice(command.as_bytes());
            sim.run_for(30 * SECOND);
        }
        assert_eq!(sim.gateway.received, sent, "{policy:?}: every command once, in order");
        assert_eq!(sim.received(), sent, "{policy:?}: every echo once, in order");
        let ids: Vec<_> = sim.gateway.requests[1..].iter().map(|r| r.session_id.clone()).collect();
        assert!(ids.iter().all(|id| id.as_deref() == Some("ee242912-db5a-4b93-bc49-d615b0fa7965")));
    }
}

/// Revival gateways expire sessions idle for 60 s: every policy polls well inside that, so an
/// idle hour never meets the 400.
#[test]
fn an_idle_hour_never_meets_the_sixty_second_expiry() {
    for policy in POLICIES {
        let quirks = Quirks { idle_expiry: Some(MINUTE), ..Quirks::revival() };
        let mut sim =
            open(policy, Target::notification("ns.test"), Script::default().quirks(quirks));
        sim.run_for(60 * MINUTE);
        assert!(sim.closed().is_none(), "{policy:?}: {:?}", sim.closed());
        let gaps = sim.gateway.requests.windows(2).map(|w| w[1].at - w[0].at).max().unwrap();
        assert!(gaps < 15 * SECOND, "{policy:?}: a {gaps:?} gap between requests");
    }
}

/// A strict server answers a malformed payload length with 500 and is wedged after it: the
/// session gives up after its retry budget with the cause, in bounded time and requests, and
/// hands the command back.
#[test]
fn a_server_wedged_by_a_malformed_length_ends_the_session_in_bounded_time() {
    for policy in POLICIES {
        let mut sim = open(
            policy,
            Target::notification("ns.test"),
            Script::default().quirks(Quirks::revival()),
        );
        let before = sim.gateway.requests.len();
        sim.session.send(b"MSG 2 N 05\r\nhello").unwrap();
        sim.run_for(2 * MINUTE);
        let closed = sim.closed().expect("the session gave up");
        let CloseReason::Failed(SessionError::Network(NetworkError::TooManyFailures {
            last, ..
        })) = &closed.reason
        else {
            panic!("{policy:?}: {closed:?}");
        };
        assert_eq!(**last, SessionError::Remote(RemoteError::ServerError(500)));
        assert_eq!(sim.session.unsent(), b"MSG 2 N 05\r\nhello");
        let made = sim.gateway.requests.len() - before;
        assert!(made <= 7, "{policy:?}: {made} requests");
        assert!(kinds(&sim.gateway)[before + 1..].iter().all(|k| *k == RequestKind::Poll));
    }
}

/// A backend that writes each reply line on its own, behind a gateway that answers as soon as
/// anything is queued: the reply arrives over several answers, whole and in order.
#[test]
fn a_reply_written_line_by_line_arrives_whole_and_in_order() {
    for policy in POLICIES {
        let quirks = Quirks { reply_line_gap: Some(Duration::from_millis(5)), ..Quirks::default() };
        let mut sim =
            open(policy, Target::notification("ns.test"), Script::default().quirks(quirks));
        let login = b"USR 2 MD5 I alice@example.com\r\nCHG 3 NLN\r\nSYN 4 0\r\n";
        let at = sim.now;
        sim.send(login);
        sim.run_for(MINUTE);
        let mut want = VER.to_vec();
        want.extend_from_slice(login);
        assert_eq!(sim.received(), want, "{policy:?}");
        let last = sim.delivered_at(b"SYN 4 0\r\n", at).unwrap() - at;
        assert!(last <= 5 * SECOND, "{policy:?}: the last line after {last:?}");
    }
}

/// Everything at once, as a revival network behaves, with a switchboard opened by host:port:
/// a chat with pushes, then idle, under every policy.
#[test]
fn a_revival_network_with_every_quirk_at_once() {
    for policy in POLICIES {
        let script = Script { gw_ip: GwIp::EchoIp, ..Script::default() }.quirks(Quirks::revival());
        let mut sim = open(policy, Target::switchboard("10.1.2.3:1864"), script);
        let mut sent = VER.to_vec();
        let mut pushed = Vec::new();
        for n in 0..20 {
            let push = format!("MSG bob@example.com Bob 4\r\nn{n:03}");
            sim.gateway.push_at(sim.now + SECOND, push.as_bytes());
            pushed.push(push);
            let command = format!("MSG {} N 4\r\nc{n:03}", n + 2);
            sim.send(command.as_bytes());
            sent.extend_from_slice(command.as_bytes());
            sim.run_for(5 * SECOND);
        }
        sim.run_for(10 * MINUTE);
        assert_eq!(sim.gateway.received, sent, "{policy:?}");
        let got = sim.received();
        let text = String::from_utf8_lossy(&got);
        for (n, push) in pushed.iter().enumerate() {
            assert_eq!(text.matches(push.as_str()).count(), 1, "{policy:?}: push {n}");
        }
        assert_eq!(got.len(), sent.len() + pushed.iter().map(String::len).sum::<usize>());
        assert!(sim.gateway.requests.iter().all(|r| r.host.as_deref() == Some("gw.test")));
        assert!(sim.closed().is_none(), "{policy:?}: {:?}", sim.closed());
        let rate = sim.requests_between(sim.elapsed() - 5 * MINUTE, sim.elapsed()) as f64 / 5.0;
        assert!(rate <= 30.0, "{policy:?}: {rate} idle requests/min");
        assert_eq!(sim.session.queued_bytes(), 0);
    }
}

/// Item 5: under the default `Ask` policy a dropped request carrying commands left the
/// session waiting for a decision without polling. Now it polls on, received commands keep
/// arriving, and an open session always has a deadline.
#[test]
fn an_undecided_failure_never_stops_the_polling() {
    for policy in POLICIES {
        let mut cfg = config(policy);
        cfg.unconfirmed = UnconfirmedPolicy::Ask;
        let mut sim = Sim::new(cfg, Target::notification("ns.test"), Script::default());
        sim.send(VER);
        sim.run_for(SECOND);
        let next = sim.gateway.requests.len();
        sim.gateway.script.faults.insert(next, msn_http_testkit::Fault::Status(503));
        sim.send(b"CHG 2 NLN\r\n");
        let at = sim.now + 10 * SECOND;
        sim.gateway.push_at(at, b"NLN 0 bob@example.com Bob\r\n");
        sim.run_for(MINUTE);
        assert_eq!(sim.session.awaiting_decision(), Some(11));
        assert!(sim.delivered_at(b"NLN 0 bob@example.com Bob\r\n", at).is_some(), "{policy:?}");
        assert!(sim.session.poll_timeout().is_some());
        assert!(kinds(&sim.gateway)[next + 1..].iter().all(|k| *k == RequestKind::Poll));
        sim.session.resend_unconfirmed();
        sim.run_for(10 * SECOND);
        assert_eq!(sim.gateway.received, b"VER 1 MSNP7 CVR0\r\nCHG 2 NLN\r\n");
    }
}
