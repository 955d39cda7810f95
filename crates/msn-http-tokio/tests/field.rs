//! The tokio client against the gateways and servers of the field (PROTOCOL.md §7), one quirk
//! per test, over real loopback sockets on tokio's paused clock: what the caller sees, and
//! what went on the wire — where each request went, which kinds and how many, what the MSNP
//! backend processed, and that nothing was lost or duplicated.

mod support;

use std::time::{Duration, Instant};

use msn_http_core::Endpoint;
use msn_http_core::client::{
    ClientConfig, CloseReason, MoveRefusal, OutReason, PollPolicy, RequestKind, Target,
};
use msn_http_core::error::{RemoteError, SendError, SessionError};
use msn_http_tokio::{Client, ClientReceiver, ClientSender, Notice, RecvError};
use support::field::{
    BURSTS, CAL, CHG, FIRST_ID, ILN, JOI, LOGIN, MINUTE, MSG, PROFILE, SECOND, USR, UUID, VER,
    ZERO_PADDED, burst, check_burst, check_constant_id_chat, check_gave_up_on_500,
    check_stayed_on_the_gateway, longest_gap,
};
use support::{
    Ev, Gateway, Quirks, RawServer, Script, SessionIds, closed, cmd, commands, config, endpoint,
    established, requests_between, run, run_idling, since, take_commands, text,
};

/// What the round trips add to a wait on the paused clock, at most (a few ticks each).
const ROUND_TRIP_SLACK: Duration = Duration::from_millis(100);

/// The paused clock's time, as the fake gateway stamps requests.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn with_policy(gw: &Gateway, policy: PollPolicy) -> ClientConfig {
    let mut config = config(gw);
    config.poll_policy = policy;
    config
}

fn open(config: ClientConfig, target: Target) -> (ClientSender, ClientReceiver) {
    Client::open(config, target).unwrap().split()
}

fn ns() -> Target {
    Target::notification("127.0.0.1")
}

fn server_closed() -> Ev {
    Ev::Closed { reason: CloseReason::ServerClosed, unsent: String::new(), incomplete: 0 }
}

fn kinds(gw: &Gateway) -> Vec<RequestKind> {
    gw.requests().iter().map(|r| r.kind).collect()
}

/// Opens an NS session with `VER` and takes the echo.
async fn logged_on(config: ClientConfig, id: &str) -> (ClientSender, ClientReceiver) {
    let (tx, mut rx) = open(config, ns());
    tx.send(VER.as_bytes()).await.unwrap();
    assert_eq!(take_commands(&mut rx, 1).await, [established(id), cmd(VER)]);
    (tx, rx)
}

/// A switchboard chat through a gateway that echoes `IP=` (the address of `raw`, a listener
/// that never speaks HTTP) as `GW-IP`, which names `named`: the session stays on the gateway,
/// says so once, and the chat works.
async fn an_echoed_ip_is_not_followed(gw: Gateway, raw: RawServer, ip: String, named: Endpoint) {
    let (tx, mut rx) = open(config(&gw), Target::switchboard(ip.clone()));
    tx.send(USR.as_bytes()).await.unwrap();
    let refused = Notice::MoveRefused { to: named, reason: MoveRefusal::NamesMsnpServer };
    assert_eq!(
        take_commands(&mut rx, 1).await,
        [established(FIRST_ID), Ev::Notice(refused), cmd(USR)]
    );
    tx.send(CAL.as_bytes()).await.unwrap();
    assert_eq!(take_commands(&mut rx, 1).await, [cmd(CAL)]);
    gw.push(JOI.as_bytes());
    assert_eq!(take_commands(&mut rx, 1).await, [cmd(JOI)]);
    tx.send(MSG.as_bytes()).await.unwrap();
    assert_eq!(take_commands(&mut rx, 1).await, [cmd(MSG)]);
    // Idle polls: every answer names the MSNP server again, and is not reported again.
    tokio::time::sleep(5 * SECOND).await;
    gw.push(ILN.as_bytes());
    assert_eq!(take_commands(&mut rx, 1).await, [cmd(ILN)]);
    assert_eq!(tx.gateway(), gw.endpoint());
    let stats = tx.stats();
    assert_eq!((stats.refused_moves, stats.fallbacks, stats.failed_requests), (1, 0, 0));
    let end = rx.close().await;
    assert_eq!(closed(&end), server_closed());
    let raw = (raw.accepted(), raw.bytes());
    let (requests, connections) = (gw.requests(), gw.connections());
    let host = gw.addr().to_string();
    check_stayed_on_the_gateway(&requests, &gw.received(), &connections, raw, &ip, &host);
}

/// Item 1 of issue 10: a switchboard opened with `IP=<host>:<port>` got that value back as
/// `GW-IP`, and the client sent HTTP to the raw switchboard.
#[tokio::test(start_paused = true)]
async fn a_gw_ip_echoing_ip_as_host_and_port_is_not_followed_into_the_switchboard() {
    run(async {
        let gw = Gateway::start(Script::default()).await;
        let raw = RawServer::start("127.0.0.2:0").await;
        let (ip, named) = (raw.addr.to_string(), endpoint(raw.addr));
        an_echoed_ip_is_not_followed(gw, raw, ip, named).await;
    })
    .await;
}

/// The same with a port-less `IP=`: following it would keep the gateway's port, so the raw
/// switchboard listens there, on the echoed host.
#[tokio::test(start_paused = true)]
async fn a_gw_ip_echoing_ip_as_host_only_is_not_followed_into_the_switchboard() {
    run(async {
        let gw = Gateway::start(Script::default()).await;
        let raw = RawServer::start(&format!("127.0.0.2:{}", gw.addr().port())).await;
        let named = endpoint(raw.addr);
        an_echoed_ip_is_not_followed(gw, raw, "127.0.0.2".to_owned(), named).await;
    })
    .await;
}

/// Item 3: a long poll against a gateway that answers empty polls at once spun (16 000 polls
/// in 3 s). Now it polls on the adaptive schedule, and says so.
#[tokio::test(start_paused = true)]
async fn long_polls_a_gateway_never_holds_cost_no_more_than_adaptive_polling() {
    run_idling(async {
        let gw = Gateway::start(Script::default()).await;
        let start = now();
        let (tx, mut rx) = logged_on(with_policy(&gw, PollPolicy::long_poll()), FIRST_ID).await;
        tokio::time::sleep(3 * MINUTE).await;
        let requests = gw.requests();
        // The adaptive schedule's longest wait, 4 s: 15 polls a minute (each round trip
        // adds a few fake milliseconds here).
        for minute in 1..3 {
            let from = start + minute * MINUTE;
            let n = requests_between(&requests, from, from + MINUTE);
            assert!((14..=15).contains(&n), "minute {minute}: {n} requests");
        }
        assert!(
            requests[1..].iter().all(|r| r.kind == RequestKind::Poll && r.lifespan == Some(10))
        );
        assert!(tx.stats().unheld_polls >= 30, "{:?}", tx.stats());

        let pushed = tokio::time::Instant::now();
        gw.push(ILN.as_bytes());
        assert_eq!(
            take_commands(&mut rx, 1).await,
            [Ev::Notice(Notice::PollsHeld { held: false }), cmd(ILN)]
        );
        assert!(since(pushed) <= 4 * SECOND + Duration::from_millis(50), "{:?}", since(pushed));
        let end = rx.close().await;
        assert_eq!(closed(&end), server_closed());
        assert_eq!(text(&gw.received()), format!("{VER}OUT\r\n"));
    })
    .await;
}

/// Against a gateway that holds polls, a long poll costs one request per lifespan idle, and a
/// pushed message leaves with the held poll's answer.
#[tokio::test(start_paused = true)]
async fn long_polls_a_gateway_holds_cost_one_request_per_lifespan_and_deliver_at_once() {
    run_idling(async {
        let quirks = Quirks { hold_polls: true, ..Quirks::default() };
        let gw = Gateway::start(Script::default().quirks(quirks)).await;
        let start = now();
        let (tx, mut rx) = logged_on(with_policy(&gw, PollPolicy::long_poll()), FIRST_ID).await;
        tokio::time::sleep(2 * MINUTE + 5 * SECOND).await;
        let requests = gw.requests();
        // One poll per 10 s lifespan.
        let from = start + MINUTE;
        let n = requests_between(&requests, from, from + MINUTE);
        assert!((5..=6).contains(&n), "{n} requests");
        assert!(
            requests[1..].iter().all(|r| r.kind == RequestKind::Poll && r.lifespan == Some(10))
        );
        assert_eq!(tx.stats().unheld_polls, 0);

        let pushed = tokio::time::Instant::now();
        gw.push(ILN.as_bytes());
        assert_eq!(take_commands(&mut rx, 1).await, [cmd(ILN)], "no PollsHeld notice");
        assert!(since(pushed) <= Duration::from_millis(50), "{:?}", since(pushed));
        let end = rx.close().await;
        assert_eq!(closed(&end), server_closed());
        assert_eq!(text(&gw.received()), format!("{VER}OUT\r\n"));
    })
    .await;
}

/// Revival gateways keep one UUID for the whole session: every request carries it, and a
/// chat of many commands, some in bursts, loses or repeats nothing.
#[tokio::test(start_paused = true)]
async fn a_constant_uuid_session_id_carries_a_long_chat() {
    run(async {
        let quirks = Quirks { session_ids: SessionIds::ConstantUuid, ..Quirks::default() };
        let gw = Gateway::start(Script::default().quirks(quirks)).await;
        let (tx, mut rx) = logged_on(config(&gw), UUID).await;
        let (mut sent, mut arrived) = (VER.to_owned(), 1);
        for n in 0..BURSTS {
            let (commands, push) = burst(n);
            for command in &commands {
                tx.send(command.as_bytes()).await.unwrap();
                sent.push_str(command);
            }
            if let Some(push) = &push {
                gw.push(push.as_bytes());
            }
            let events = take_commands(&mut rx, commands.len() + usize::from(push.is_some())).await;
            arrived += check_burst(n, &events, &commands, push.as_ref());
            tokio::time::sleep(SECOND).await;
        }
        let end = rx.close().await;
        assert_eq!(closed(&end), server_closed());
        check_constant_id_chat(&gw.requests(), &gw.received(), &sent, arrived);
    })
    .await;
}

/// Item 4: after `OUT OTH` the gateway kept answering empty 200s without `Session=close`,
/// and the client polled the dead session forever.
#[tokio::test(start_paused = true)]
async fn a_server_out_without_session_close_ends_the_session() {
    run_idling(async {
        let quirks = Quirks { close_after_server_out: false, ..Quirks::default() };
        let gw = Gateway::start(Script::default().quirks(quirks)).await;
        let (tx, mut rx) = logged_on(config(&gw), FIRST_ID).await;
        tokio::time::sleep(SECOND).await;
        gw.push(b"OUT OTH\r\n");
        assert_eq!(rx.recv().await.map(|c| text(c.as_bytes())), Ok("OUT OTH\r\n".to_owned()));
        let Err(RecvError::Ended(end)) = rx.recv().await else { panic!("the session ends") };
        assert_eq!(end.reason, CloseReason::ServerOut(OutReason::SignedInElsewhere));
        assert!(end.unsent.is_empty() && end.is_clean(), "{end:?}");
        let requests = gw.request_count();
        tokio::time::sleep(MINUTE).await;
        assert_eq!(gw.request_count(), requests, "no request after the OUT");
        assert!(tx.is_closed());
        assert_eq!(tx.send(CHG.as_bytes()).await, Err(SendError::Closed));
        let kinds = kinds(&gw);
        assert!(kinds[1..].iter().all(|k| *k == RequestKind::Poll), "{kinds:?}");
        assert_eq!(text(&gw.received()), VER, "no OUT of ours after the server's");
    })
    .await;
}

/// Revival gateways answer `400` to a request after 60 s idle: three idle minutes under
/// `policy` never meet it (no two requests much more than `longest_wait` apart), and the
/// session still carries a command after them.
async fn three_idle_minutes_never_meet_the_expiry(
    policy: PollPolicy,
    quirks: Quirks,
    longest_wait: Duration,
) {
    let quirks = Quirks { idle_expiry: Some(MINUTE), ..quirks };
    let gw = Gateway::start(Script::default().quirks(quirks)).await;
    let (tx, mut rx) = logged_on(with_policy(&gw, policy), FIRST_ID).await;
    tokio::time::sleep(3 * MINUTE).await;
    assert!(!tx.is_closed(), "{policy:?}: {:?}", rx.end());
    let requests = gw.requests();
    let gap = longest_gap(&requests);
    assert!(gap <= longest_wait + ROUND_TRIP_SLACK, "{policy:?}: a {gap:?} gap");
    assert!(requests.len() >= 3 * 5, "{policy:?}: {} requests", requests.len());
    tx.send(CHG.as_bytes()).await.unwrap();
    let events = take_commands(&mut rx, 1).await;
    assert_eq!(commands(&events), [CHG], "{policy:?}: {events:?}");
    let end = rx.close().await;
    assert_eq!(closed(&end), server_closed(), "{policy:?}");
    assert_eq!(text(&gw.received()), format!("{VER}{CHG}OUT\r\n"));
}

#[tokio::test(start_paused = true)]
async fn idle_official_polls_never_meet_the_sixty_second_expiry() {
    let policy = PollPolicy::official();
    run_idling(three_idle_minutes_never_meet_the_expiry(policy, Quirks::default(), 2 * SECOND))
        .await;
}

#[tokio::test(start_paused = true)]
async fn idle_adaptive_polls_never_meet_the_sixty_second_expiry() {
    let policy = PollPolicy::adaptive();
    run_idling(three_idle_minutes_never_meet_the_expiry(policy, Quirks::default(), 4 * SECOND))
        .await;
}

#[tokio::test(start_paused = true)]
async fn idle_long_polls_never_meet_the_sixty_second_expiry() {
    // Not held: the adaptive schedule.
    let policy = PollPolicy::long_poll();
    run_idling(three_idle_minutes_never_meet_the_expiry(policy, Quirks::default(), 4 * SECOND))
        .await;
}

#[tokio::test(start_paused = true)]
async fn idle_held_long_polls_never_meet_the_sixty_second_expiry() {
    let holding = Quirks { hold_polls: true, ..Quirks::default() };
    let policy = PollPolicy::long_poll();
    run_idling(three_idle_minutes_never_meet_the_expiry(policy, holding, 10 * SECOND)).await;
}

/// A strict server answers a zero-padded payload length with `500` and is wedged after it:
/// the caller is told the delivery is uncertain, then the session gives up after its retry
/// budget, in a bounded number of requests, with the cause, and hands the command back.
#[tokio::test(start_paused = true)]
async fn a_malformed_payload_length_that_wedges_the_server_ends_the_session() {
    run_idling(async {
        let quirks = Quirks { malformed_length_500: true, ..Quirks::default() };
        let gw = Gateway::start(Script::default().quirks(quirks)).await;
        let (tx, mut rx) = logged_on(config(&gw), FIRST_ID).await;
        let before = gw.request_count();
        tx.send(ZERO_PADDED.as_bytes()).await.unwrap();
        let server_error = SessionError::Remote(RemoteError::ServerError(500));
        assert_eq!(
            rx.recv().await,
            Err(RecvError::DeliveryUncertain {
                kind: RequestKind::Send,
                error: server_error,
                bytes: ZERO_PADDED.len(),
            })
        );
        let start = tokio::time::Instant::now();
        let Err(RecvError::Ended(end)) = rx.recv().await else { panic!("the session ends") };
        assert!(since(start) < 10 * SECOND, "{:?}", since(start));
        check_gave_up_on_500(&end, &kinds(&gw), before);
        let made = gw.request_count();
        tokio::time::sleep(MINUTE).await;
        assert_eq!(gw.request_count(), made, "no request after the end");
        assert_eq!(text(&gw.received()), VER, "the backend never got the MSG");
    })
    .await;
}

/// Item 7: real servers write a reply line by line and push an unsolicited command (a
/// profile `MSG`) right after the login reply. The lines come over several answers, each
/// whole, in order, once.
#[tokio::test(start_paused = true)]
async fn a_reply_written_line_by_line_with_a_push_after_the_login_arrives_whole_in_order() {
    run(async {
        let quirks = Quirks { reply_line_gap: Some(Duration::from_millis(5)), ..Quirks::default() };
        let gw = Gateway::start(Script::default().quirks(quirks)).await;
        let (tx, mut rx) = logged_on(config(&gw), FIRST_ID).await;
        let [usr, chg, syn] = LOGIN;
        let login = LOGIN.concat();
        let send_index = gw.request_count();
        tx.send(login.as_bytes()).await.unwrap();
        assert_eq!(take_commands(&mut rx, 1).await, [cmd(usr)], "the login reply");
        gw.push(PROFILE.as_bytes());
        assert_eq!(take_commands(&mut rx, 3).await, [cmd(PROFILE), cmd(chg), cmd(syn)]);
        assert!(gw.request_count() > send_index + 1, "the rest came with later answers");
        let end = rx.close().await;
        assert_eq!(closed(&end), server_closed());
        assert_eq!(text(&gw.received()), format!("{VER}{login}OUT\r\n"));
        assert_eq!(kinds(&gw)[send_index], RequestKind::Send);
    })
    .await;
}
