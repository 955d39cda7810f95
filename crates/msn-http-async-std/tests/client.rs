//! The command API against a misbehaving fake gateway over real loopback sockets, on a virtual
//! clock, each case on async-std and on smol. Every case checks what the caller saw and that
//! no command was lost: whatever the caller sent was processed by the gateway or came back as
//! unsent. Sessions whose end is checked also wait for their driver task to finish: proof that
//! nothing more goes on the wire.

mod support;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::pin::pin;
use std::time::Duration;

use futures_lite::future::poll_once;
use msn_http_async_std::{Client, ClientEvent, Notice, RecvError};
use msn_http_core::client::{
    ClientConfig, CloseReason, OutReason, PollPolicy, Recovery, RequestKind, UnconfirmedPolicy,
};
use msn_http_core::error::{NetworkError, RemoteError, SendError, SessionError};
use support::{
    Clock, Ev, Exec, Fault, Gateway, GwIp, POLL, Script, Virtual, closed, cmd, config, endpoint,
    established, ns, open, spawn_driver, take, text,
};

const VER: &str = "VER 1 MSNP8 CVR0\r\n";
const CHG: &str = "CHG 2 NLN 0\r\n";
const ILN: &str = "ILN 0 NLN bob@example.com Bob\r\n";
const FIRST_ID: &str = "954547325.1";

fn server_closed() -> Ev {
    Ev::Closed { reason: CloseReason::ServerClosed, unsent: String::new(), incomplete: 0 }
}

fn failed(kind: RequestKind, error: SessionError, recovery: Recovery) -> Ev {
    Ev::Notice(Notice::RequestFailed { kind, error, recovery })
}

/// Returns once connecting to `addr` is refused (its listener is gone), in real time,
/// letting the executor run meanwhile (the listener closes in one of its tasks).
async fn wait_until_refused(addr: SocketAddr) {
    for _ in 0..1_000 {
        if std::net::TcpStream::connect(addr).is_err() {
            return;
        }
        async_io::Timer::after(Duration::from_millis(1)).await;
    }
    panic!("{addr} still accepts connections");
}

/// A port on `ip` where nothing listens.
fn dead_port(ip: &str) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    listener.local_addr().unwrap()
}

crate::on_both!(
    keeps_one_connection_and_its_port_when_gw_ip_echoes_ip,
    a_gateway_closing_after_every_response_gets_a_fresh_connection_each_time,
    close_delimited_http_1_0_bodies_end_with_the_connection,
    a_response_dropped_mid_body_ends_the_session_and_reports_the_unconfirmed_bytes,
    chunked_responses_cut_inside_commands_and_payloads,
    a_100_continue_before_every_response_is_skipped,
    a_400_ends_the_session_and_hands_back_the_unsent_commands,
    a_500_asks_the_caller_for_commands_and_retries_polls_by_itself,
    a_stalled_response_times_out_on_the_request_deadline_and_the_poll_is_retried,
    gw_ip_moves_the_session_to_another_loopback_address,
    an_unreachable_gw_ip_falls_back_to_the_configured_gateway,
    session_close_from_the_gateway_delivers_the_last_body_then_ends,
    a_refused_first_connect_fails_at_once_with_its_cause,
    a_gateway_gone_mid_session_is_retried_with_backoff_then_given_up_with_the_cause,
    send_waits_while_the_queue_is_full_and_a_cancelled_send_queues_nothing,
    many_tasks_send_through_clones_of_one_sender,
    dropping_every_handle_aborts_the_session,
    closing_with_a_dropped_receiver_still_completes_in_the_background,
    a_driver_that_is_never_spawned_ends_the_session,
    the_system_clock_runtime_runs_a_session_too,
    connect_makes_the_first_connection_and_fails_at_once_when_nothing_listens,
);

async fn connect_makes_the_first_connection_and_fails_at_once_when_nothing_listens(exec: Exec) {
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script::default());
    let (mut client, driver) =
        Client::connect_with(Virtual::new(&clock), config(&gw), ns()).await.unwrap();
    let driver = spawn_driver(&exec, driver);
    client.send(VER.as_bytes()).await.unwrap();
    assert_eq!(client.recv().await.map(|c| text(c.as_bytes())), Ok(VER.to_owned()));
    assert_eq!(gw.connections(), [1], "the open went over the connection connect made");
    assert!(client.close().await.is_clean());
    driver.await;

    let dead = dead_port("127.0.0.1");
    let mut config = config(&gw);
    config.gateway = endpoint(dead);
    let refused = Client::connect_with(Virtual::new(&clock), config, ns()).await.unwrap_err();
    let want = NetworkError::ConnectFailed {
        kind: io::ErrorKind::ConnectionRefused,
        address: endpoint(dead),
    };
    assert_eq!(refused, msn_http_async_std::OpenError::Connect(want));
    let err = msn_http_async_std::ClientStream::connect(&format!("http://{dead}"), ns())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    assert_eq!(clock.elapsed(), Duration::ZERO);
}

async fn keeps_one_connection_and_its_port_when_gw_ip_echoes_ip(exec: Exec) {
    // The gateway listens on a random (non-default) port and answers `GW-IP=127.0.0.1`,
    // echoing `IP=`: the session must stay on the same host *and port*.
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script::default());
    let (tx, mut rx, driver) = open(&exec, &clock, config(&gw));

    tx.send(VER.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
    tx.send(CHG.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 1).await, [cmd(CHG)]);
    // Server-initiated: arrives with the poll, one interval after the last answer.
    gw.push(ILN.as_bytes());
    assert_eq!(gw.request_count(), 2, "no poll before the interval");
    clock.advance(POLL);
    assert_eq!(take(&mut rx, 1).await, [cmd(ILN)]);
    assert_eq!(tx.gateway(), gw.endpoint());

    let end = rx.close().await;
    assert_eq!(closed(&end), server_closed());
    assert_eq!(end.unread.len(), 1);
    assert_eq!(end.unread[0].as_bytes(), b"OUT\r\n");
    driver.await;
    assert!(tx.is_closed());

    assert_eq!(text(&gw.received()), format!("{VER}{CHG}OUT\r\n"));
    let requests = gw.requests();
    let kinds: Vec<_> = requests.iter().map(|r| r.kind).collect();
    use RequestKind::{Open, Poll, Send};
    assert_eq!(kinds, [Open, Send, Poll, Send]);
    let host = gw.addr().to_string();
    assert_eq!(gw.connections(), [1], "one connection, kept alive");
    for r in &requests {
        assert_eq!((r.listener, r.connection), (0, 0));
        assert_eq!(r.host.as_deref(), Some(host.as_str()));
    }
    // Always the latest session ID (the gateway's suffix changes with every answer).
    let ids: Vec<_> =
        requests[1..].iter().map(|r| r.session_id.clone().unwrap_or_default()).collect();
    assert_eq!(ids, ["954547325.1", "954547325.2", "954547325.3"]);
}

async fn a_gateway_closing_after_every_response_gets_a_fresh_connection_each_time(exec: Exec) {
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script { close_each: true, ..Script::default() });
    let (tx, mut rx, driver) = open(&exec, &clock, config(&gw));
    tx.send(VER.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
    gw.push(ILN.as_bytes());
    tx.send(CHG.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 2).await, [cmd(ILN), cmd(CHG)]);
    let end = rx.close().await;
    assert_eq!(closed(&end), server_closed());
    driver.await;

    assert_eq!(text(&gw.received()), format!("{VER}{CHG}OUT\r\n"));
    let requests = gw.requests();
    assert_eq!(requests.len(), 3, "open, CHG, OUT: {requests:?}");
    assert_eq!(gw.connections(), [3]);
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r.connection, i, "request {i} on its own connection");
    }
}

async fn close_delimited_http_1_0_bodies_end_with_the_connection(exec: Exec) {
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script { close_delimited: true, ..Script::default() });
    let (tx, mut rx, driver) = open(&exec, &clock, config(&gw));
    tx.send(VER.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
    tx.send(CHG.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 1).await, [cmd(CHG)]);
    let end = rx.close().await;
    assert_eq!(closed(&end), server_closed());
    driver.await;
    assert_eq!(text(&gw.received()), format!("{VER}{CHG}OUT\r\n"));
    assert_eq!(gw.request_count(), 3);
    assert_eq!(gw.connections(), [3]);
}

async fn a_response_dropped_mid_body_ends_the_session_and_reports_the_unconfirmed_bytes(
    exec: Exec,
) {
    let msg = "MSG bob@example.com Bob 5\r\nhello";
    // Request 1 (our CHG) gets a head announcing MSG + CHG, then MSG and 5 bytes of CHG.
    let keep = msg.len() + 5;
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script::default().fault(1, Fault::DropMidBody(keep)));
    let (tx, mut rx, driver) = open(&exec, &clock, config(&gw));
    tx.send(VER.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
    gw.push(msg.as_bytes());
    tx.send(CHG.as_bytes()).await.unwrap();
    assert_eq!(
        take(&mut rx, 3).await,
        [
            cmd(msg),
            Ev::Closed {
                reason: CloseReason::Failed(SessionError::Network(
                    NetworkError::ConnectionClosed { response_started: true }
                )),
                // The gateway processed CHG, but its answer was lost: the caller learns that
                // CHG was never confirmed, and the 5 bytes of the cut command.
                unsent: CHG.to_owned(),
                incomplete: 5,
            },
        ]
    );
    assert_eq!(rx.recv_event().await, None);
    driver.await;
    assert_eq!(text(&gw.received()), format!("{VER}{CHG}"));
    assert_eq!(gw.request_count(), 2, "no blind resend");
    assert_eq!(tx.send(b"OUT\r\n").await, Err(SendError::Closed));
}

async fn chunked_responses_cut_inside_commands_and_payloads(exec: Exec) {
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script { chunked: Some(4), ..Script::default() });
    let (tx, mut rx, driver) = open(&exec, &clock, config(&gw));
    tx.send(VER.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
    let payload = "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhi \r\n there";
    let msg = format!("MSG 2 N {}\r\n{payload}", payload.len());
    gw.push(ILN.as_bytes());
    tx.send(msg.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 2).await, [cmd(ILN), cmd(&msg)]);
    let end = rx.close().await;
    assert_eq!(closed(&end), server_closed());
    driver.await;
    assert_eq!(text(&gw.received()), format!("{VER}{msg}OUT\r\n"));
    assert_eq!(gw.connections(), [1], "chunked bodies keep the connection alive");
}

async fn a_100_continue_before_every_response_is_skipped(exec: Exec) {
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script { continue_first: true, ..Script::default() });
    let (tx, mut rx, driver) = open(&exec, &clock, config(&gw));
    tx.send(VER.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
    tx.send(CHG.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 1).await, [cmd(CHG)]);
    let end = rx.close().await;
    assert_eq!(closed(&end), server_closed());
    driver.await;
    assert_eq!(text(&gw.received()), format!("{VER}{CHG}OUT\r\n"));
    assert_eq!(gw.connections(), [1]);
}

async fn a_400_ends_the_session_and_hands_back_the_unsent_commands(exec: Exec) {
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script::default().fault(1, Fault::Status(400)));
    let (tx, mut rx, driver) = open(&exec, &clock, config(&gw));
    tx.send(VER.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
    tx.send(CHG.as_bytes()).await.unwrap();
    assert_eq!(
        take(&mut rx, 2).await,
        [Ev::Closed {
            reason: CloseReason::SessionRejected,
            unsent: CHG.to_owned(),
            incomplete: 0,
        }]
    );
    assert_eq!(rx.end().map(|e| e.reason.clone()), Some(CloseReason::SessionRejected));
    assert_eq!(tx.send(CHG.as_bytes()).await, Err(SendError::Closed));
    // No polling after the end: the driver has stopped.
    driver.await;
    assert_eq!(gw.request_count(), 2);
    assert_eq!(text(&gw.received()), VER, "the rejected request was not processed");
}

async fn a_500_asks_the_caller_for_commands_and_retries_polls_by_itself(exec: Exec) {
    // 0: open, 1: CHG -> 500, 2: poll (at once), 3: poll -> 500, 4: poll again, 5: CHG again.
    let clock = Clock::new();
    let gw = Gateway::start(
        &exec,
        &clock,
        Script::default().fault(1, Fault::Status(500)).fault(3, Fault::Status(500)),
    );
    let config = config(&gw);
    assert_eq!(config.unconfirmed, UnconfirmedPolicy::Ask);
    let (tx, mut rx, driver) = open(&exec, &clock, config);
    tx.send(VER.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
    tx.send(CHG.as_bytes()).await.unwrap();
    // A caller that only calls `recv` is told at once, as a value it can act on.
    let server_error = SessionError::Remote(RemoteError::ServerError(500));
    assert_eq!(
        rx.recv().await,
        Err(RecvError::DeliveryUncertain {
            kind: RequestKind::Send,
            error: server_error.clone(),
            bytes: CHG.len(),
        })
    );
    assert_eq!(clock.elapsed(), Duration::ZERO);
    // Undecided, the session keeps polling: received commands keep coming, no command goes.
    gw.wait_requests(3).await;
    gw.push(ILN.as_bytes());
    assert_eq!(
        clock.advance_until(take(&mut rx, 2)).await,
        [failed(RequestKind::Poll, server_error, Recovery::Resending), cmd(ILN)]
    );
    tx.resend_unconfirmed();
    assert_eq!(rx.recv().await.map(|c| text(c.as_bytes())), Ok(CHG.to_owned()));
    let kinds: Vec<_> = gw.requests().iter().map(|r| r.kind).collect();
    use RequestKind::{Open, Poll, Send};
    assert_eq!(kinds, [Open, Send, Poll, Poll, Poll, Send]);
    let end = rx.close().await;
    assert_eq!(closed(&end), server_closed());
    driver.await;
    assert_eq!(text(&gw.received()), format!("{VER}{CHG}OUT\r\n"), "CHG processed once");
}

async fn a_stalled_response_times_out_on_the_request_deadline_and_the_poll_is_retried(exec: Exec) {
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script::default().fault(1, Fault::Stall));
    let mut config = config(&gw);
    config.request_timeout = Duration::from_secs(5);
    let (tx, mut rx, driver) = open(&exec, &clock, config);
    tx.send(VER.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
    gw.push(ILN.as_bytes());
    // Request 1 (the poll one interval later) is never answered.
    clock.advance(POLL);
    gw.wait_requests(2).await;
    let sent_at = clock.now();
    // Only timers can move the session now: let the clock run to each of them.
    assert_eq!(
        clock.advance_until(take(&mut rx, 1)).await,
        [failed(
            RequestKind::Poll,
            SessionError::Network(NetworkError::Timeout { response_started: false }),
            Recovery::Resending,
        )]
    );
    assert_eq!(clock.now() - sent_at, Duration::from_secs(5), "exactly the deadline");
    // The retry goes out at once, and brings the data.
    assert_eq!(take(&mut rx, 1).await, [cmd(ILN)]);
    let requests = gw.requests();
    assert_eq!(requests[1].kind, RequestKind::Poll);
    assert_eq!(requests[2].kind, RequestKind::Poll);
    assert_eq!(requests[2].connection, 1, "the retry uses a fresh connection");
    let end = rx.close().await;
    assert_eq!(closed(&end), server_closed());
    driver.await;
    assert_eq!(text(&gw.received()), format!("{VER}OUT\r\n"));
}

async fn gw_ip_moves_the_session_to_another_loopback_address(exec: Exec) {
    let clock = Clock::new();
    let mut gw = Gateway::start(&exec, &clock, Script::default());
    let moved = gw.listen("127.0.0.2:0");
    gw.lock().script.gw_ip = GwIp::Fixed(moved.to_string());
    let (tx, mut rx, driver) = open(&exec, &clock, config(&gw));
    tx.send(VER.as_bytes()).await.unwrap();
    assert_eq!(
        take(&mut rx, 3).await,
        [
            established(FIRST_ID),
            cmd(VER),
            Ev::Notice(Notice::GatewayMoved { from: gw.endpoint(), to: endpoint(moved) }),
        ]
    );
    assert_eq!(tx.gateway(), endpoint(moved));
    tx.send(CHG.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 1).await, [cmd(CHG)]);
    let end = rx.close().await;
    assert_eq!(closed(&end), server_closed());
    driver.await;

    assert_eq!(text(&gw.received()), format!("{VER}{CHG}OUT\r\n"));
    let requests = gw.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].listener, 0);
    for r in &requests[1..] {
        assert_eq!(r.listener, 1, "{r:?}");
        assert_eq!(r.host.as_deref(), Some(moved.to_string().as_str()));
    }
    assert_eq!(gw.connections(), [1, 1]);
}

async fn an_unreachable_gw_ip_falls_back_to_the_configured_gateway(exec: Exec) {
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script::default());
    let dead = dead_port("127.0.0.3");
    gw.lock().script.gw_ip = GwIp::Fixed(dead.to_string());
    let (tx, mut rx, driver) = open(&exec, &clock, config(&gw));
    tx.send(VER.as_bytes()).await.unwrap();
    assert_eq!(
        take(&mut rx, 3).await,
        [
            established(FIRST_ID),
            cmd(VER),
            Ev::Notice(Notice::GatewayMoved { from: gw.endpoint(), to: endpoint(dead) }),
        ]
    );
    tx.send(CHG.as_bytes()).await.unwrap();
    assert_eq!(
        take(&mut rx, 3).await,
        [
            Ev::Notice(Notice::GatewayFallback { unreachable: endpoint(dead), to: gw.endpoint() }),
            failed(
                RequestKind::Send,
                SessionError::Network(NetworkError::ConnectFailed {
                    kind: io::ErrorKind::ConnectionRefused,
                    address: endpoint(dead),
                }),
                Recovery::Resending,
            ),
            cmd(CHG),
        ]
    );
    // Later answers still name the dead host; the session stays where it works.
    assert_eq!(tx.gateway(), gw.endpoint());
    let end = rx.close().await;
    assert_eq!(closed(&end), server_closed());
    driver.await;
    assert_eq!(text(&gw.received()), format!("{VER}{CHG}OUT\r\n"));
    assert_eq!(clock.elapsed(), Duration::ZERO, "the fallback waits for nothing");
    assert!(gw.requests().iter().all(|r| r.listener == 0));
}

async fn session_close_from_the_gateway_delivers_the_last_body_then_ends(exec: Exec) {
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script::default().fault(1, Fault::SessionClose));
    let (tx, mut rx, driver) = open(&exec, &clock, config(&gw));
    tx.send(VER.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
    gw.push(b"OUT OTH\r\n");
    tx.send(CHG.as_bytes()).await.unwrap();
    let logged_out = Ev::Closed {
        reason: CloseReason::ServerOut(OutReason::SignedInElsewhere),
        unsent: String::new(),
        incomplete: 0,
    };
    assert_eq!(take(&mut rx, 4).await, [cmd("OUT OTH\r\n"), cmd(CHG), logged_out]);
    assert!(matches!(rx.recv().await, Err(RecvError::Ended(end)) if end.is_clean()));
    assert_eq!(tx.send(CHG.as_bytes()).await, Err(SendError::Closed));
    driver.await;
    assert_eq!(gw.request_count(), 2, "no request after Session=close");
    assert_eq!(text(&gw.received()), format!("{VER}{CHG}"));
}

async fn a_refused_first_connect_fails_at_once_with_its_cause(exec: Exec) {
    let clock = Clock::new();
    let dead = dead_port("127.0.0.1");
    let mut config = ClientConfig::new(endpoint(dead));
    config.poll_policy = PollPolicy::Official { interval: POLL };
    let (tx, mut rx, driver) = open(&exec, &clock, config);
    tx.send(VER.as_bytes()).await.unwrap();
    let refused = NetworkError::ConnectFailed {
        kind: io::ErrorKind::ConnectionRefused,
        address: endpoint(dead),
    };
    let Err(RecvError::Ended(end)) = rx.recv().await else { panic!("the session ends") };
    assert_eq!(end.reason, CloseReason::Failed(refused.into()));
    assert_eq!(end.unsent, VER.as_bytes(), "the commands come back");
    assert_eq!(clock.elapsed(), Duration::ZERO, "no retry: nothing was ever reachable");
    assert!(end.to_string().contains(&format!("could not connect to {dead}")), "{end}");
    driver.await;
}

async fn a_gateway_gone_mid_session_is_retried_with_backoff_then_given_up_with_the_cause(
    exec: Exec,
) {
    let clock = Clock::new();
    // Closing after each answer, so no idle connection outlives the gateway.
    let gw = Gateway::start(&exec, &clock, Script { close_each: true, ..Script::default() });
    let (addr, address) = (gw.addr(), gw.endpoint());
    let (tx, mut rx, driver) = open(&exec, &clock, config(&gw));
    tx.send(VER.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
    drop(gw);
    wait_until_refused(addr).await;
    let start = clock.now();
    let refused = SessionError::Network(NetworkError::ConnectFailed {
        kind: io::ErrorKind::ConnectionRefused,
        address,
    });
    // The poll one interval on, then retries at once, after 0.5, 1, 2 and 4 seconds. The clock
    // moves only here, so every connect is refused before a deadline can pass.
    for (n, wait_ms) in [100, 0, 500, 1_000, 2_000].into_iter().enumerate() {
        clock.advance(Duration::from_millis(wait_ms));
        let [Ev::Notice(Notice::RequestFailed { kind: RequestKind::Poll, error, .. })] =
            &take(&mut rx, 1).await[..]
        else {
            panic!("failure {n} reported");
        };
        assert_eq!(*error, refused, "failure {n}");
    }
    clock.advance(Duration::from_secs(4));
    let Err(RecvError::Ended(end)) = rx.recv().await else { panic!("the session ends") };
    let CloseReason::Failed(SessionError::Network(NetworkError::TooManyFailures {
        failures,
        last,
    })) = &end.reason
    else {
        panic!("gave up: {end:?}");
    };
    assert_eq!((*failures, last.as_ref()), (6, &refused));
    assert_eq!(clock.now() - start, POLL + Duration::from_millis(7_500));
    assert!(end.unsent.is_empty());
    drop(tx);
    driver.await;
}

async fn send_waits_while_the_queue_is_full_and_a_cancelled_send_queues_nothing(exec: Exec) {
    // Request 1 (CHG) is answered a second late; meanwhile the 32-byte queue fills up.
    let clock = Clock::new();
    let gw = Gateway::start(
        &exec,
        &clock,
        Script::default().fault(1, Fault::Delay(Duration::from_secs(1))),
    );
    let mut config = config(&gw);
    config.max_queued_bytes = 32;
    let (tx, mut rx, driver) = open(&exec, &clock, config);
    tx.send(VER.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
    let lst = "LST 3 RL 00000000\r\n";
    let syn = "SYN 4 0\r\n";
    assert_eq!(CHG.len() + lst.len(), 32);
    tx.send(CHG.as_bytes()).await.unwrap();
    tx.send(lst.as_bytes()).await.unwrap();
    gw.wait_requests(2).await;
    assert!(matches!(
        tx.try_send(syn.as_bytes()),
        Err(SendError::QueueFull { queued: 32, limit: 32 })
    ));
    // A send that has to wait is dropped: nothing of it may be queued.
    assert_eq!(poll_once(tx.send(syn.as_bytes())).await, None);
    // Larger than the queue can ever take (its limit, or one command as large as the framer
    // allows): refused at once rather than waiting forever.
    assert!(matches!(tx.send(&vec![b'x'; 2 << 20]).await, Err(SendError::QueueFull { .. })));
    let start = clock.now();
    let mut sending = pin!(tx.send(syn.as_bytes()));
    assert_eq!(poll_once(sending.as_mut()).await, None, "the queue is full");
    clock.advance(Duration::from_secs(1));
    sending.await.unwrap();
    assert_eq!(clock.now() - start, Duration::from_secs(1));
    assert_eq!(take(&mut rx, 3).await, [cmd(CHG), cmd(lst), cmd(syn)]);
    let end = rx.close().await;
    assert_eq!(closed(&end), server_closed());
    driver.await;
    assert_eq!(
        text(&gw.received()),
        format!("{VER}{CHG}{lst}{syn}OUT\r\n"),
        "SYN sent exactly once"
    );
}

async fn many_tasks_send_through_clones_of_one_sender(exec: Exec) {
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script::default());
    let (tx, mut rx, driver) = open(&exec, &clock, config(&gw));
    tx.send(VER.as_bytes()).await.unwrap();
    assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
    let line =
        |task: usize, i: usize| format!("REA {} a{task}@example.com n{i}\r\n", task * 100 + i);
    let mut tasks = Vec::new();
    for task in 0..4 {
        let tx = tx.clone();
        tasks.push(exec.spawn(async move {
            for i in 0..10 {
                tx.send(line(task, i).as_bytes()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await;
    }
    let mut seen = vec![Vec::new(); 4];
    for _ in 0..40 {
        let cmd = rx.recv().await.expect("echo");
        let trid: usize = text(cmd.as_bytes()).split(' ').nth(1).unwrap().parse().unwrap();
        seen[trid / 100].push(trid % 100);
    }
    for per_task in &seen {
        assert_eq!(*per_task, (0..10).collect::<Vec<_>>(), "each task's order kept");
    }
    let end = rx.close().await;
    assert_eq!(closed(&end), server_closed());
    driver.await;
    let sent: usize = (0..4).flat_map(|task| (0..10).map(move |i| line(task, i).len())).sum();
    assert_eq!(gw.received().len(), VER.len() + sent + "OUT\r\n".len());
}

async fn dropping_every_handle_aborts_the_session(exec: Exec) {
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script::default());
    let (mut client, driver) = Client::open_with(Virtual::new(&clock), config(&gw), ns()).unwrap();
    let driver = spawn_driver(&exec, driver);
    client.send(VER.as_bytes()).await.unwrap();
    assert_eq!(client.recv().await.map(|c| c.into_bytes()), Ok(VER.as_bytes().to_vec()));
    drop(client);
    driver.await;
    assert_eq!(gw.request_count(), 1, "no polling after the drop");
    assert_eq!(text(&gw.received()), VER, "no OUT: an abort");
}

async fn closing_with_a_dropped_receiver_still_completes_in_the_background(exec: Exec) {
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script::default());
    let (tx, rx, driver) = open(&exec, &clock, config(&gw));
    drop(rx);
    tx.send(VER.as_bytes()).await.unwrap();
    // Once the open request went out (a session that never made one closes at once).
    gw.wait_requests(1).await;
    tx.close();
    drop(tx);
    driver.await;
    assert_eq!(text(&gw.received()), format!("{VER}OUT\r\n"));
    assert_eq!(gw.request_count(), 2);
}

async fn a_driver_that_is_never_spawned_ends_the_session(_exec: Exec) {
    let config = msn_http_core::client::ClientConfig::default();
    let (mut client, driver) = Client::open(config, ns()).unwrap();
    drop(driver);
    assert_eq!(client.send(VER.as_bytes()).await, Err(SendError::Closed));
    match client.recv_event().await {
        Some(ClientEvent::Closed(end)) => assert_eq!(end.reason, CloseReason::Aborted),
        other => panic!("expected the end, got {other:?}"),
    }
    assert_eq!(client.recv_event().await, None);
}

async fn the_system_clock_runtime_runs_a_session_too(exec: Exec) {
    // `Client::open`: `AsyncIo` with `async_io::Timer` on the system clock. Nothing here
    // waits for a timer: every request is answered at once.
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script::default());
    let (mut client, driver) = Client::open(config(&gw), ns()).unwrap();
    let driver = spawn_driver(&exec, driver);
    client.send(VER.as_bytes()).await.unwrap();
    client.send(CHG.as_bytes()).await.unwrap();
    for want in [VER, CHG] {
        assert_eq!(client.recv().await.map(|c| text(c.as_bytes())), Ok(want.to_owned()));
    }
    let end = client.close().await;
    assert!(end.is_clean(), "{end:?}");
    driver.await;
    let received = text(&gw.received());
    assert!(received.starts_with(VER), "{received}");
    assert!(received.ends_with("OUT\r\n"), "{received}");
    assert_eq!(received.len(), VER.len() + CHG.len() + 5, "{received}");
}
