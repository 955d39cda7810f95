//! The command API against a misbehaving fake gateway over real loopback sockets, on tokio's
//! paused clock. Every case checks what the caller saw and that no command was lost: whatever
//! the caller sent was processed by the gateway or came back as unsent.

mod support;

use std::io;
use std::time::Duration;

use msn_http_core::client::{
    CloseReason, OutReason, PollPolicy, Proxy, Recovery, RequestKind, Target, UnconfirmedPolicy,
};
use msn_http_core::error::{NetworkError, RemoteError, SendError, SessionError};
use msn_http_tokio::{Client, Notice, OpenError, RecvError};
use support::{
    Ev, FakeProxy, Fault, Gateway, GwIp, Script, closed, cmd, config, endpoint, established, run,
    since, take, text,
};
use tokio::net::TcpListener;

const VER: &str = "VER 1 MSNP8 CVR0\r\n";
const CHG: &str = "CHG 2 NLN 0\r\n";
const ILN: &str = "ILN 0 NLN bob@example.com Bob\r\n";
const FIRST_ID: &str = "954547325.1";

fn ns() -> Target {
    Target::notification("127.0.0.1")
}

fn server_closed() -> Ev {
    Ev::Closed { reason: CloseReason::ServerClosed, unsent: String::new(), incomplete: 0 }
}

/// A port on `ip` where nothing listens.
async fn dead_port(ip: &str) -> std::net::SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test(start_paused = true)]
async fn keeps_one_connection_and_its_port_when_gw_ip_echoes_ip() {
    run(async {
        // The gateway listens on a random (non-default) port and answers `GW-IP=127.0.0.1`,
        // echoing `IP=`: the session must stay on the same host *and port*.
        let gw = Gateway::start(Script::default()).await;
        let (tx, mut rx) = Client::open(config(&gw), ns()).unwrap().split();

        tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
        tx.send(CHG.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 1).await, [cmd(CHG)]);
        // Server-initiated: arrives with a poll.
        gw.push(ILN.as_bytes());
        assert_eq!(take(&mut rx, 1).await, [cmd(ILN)]);
        assert_eq!(tx.gateway(), gw.endpoint());

        let end = rx.close().await;
        assert_eq!(closed(&end), server_closed());
        assert_eq!(end.unread.len(), 1);
        assert_eq!(end.unread[0].as_bytes(), b"OUT\r\n");

        assert_eq!(text(&gw.received()), format!("{VER}{CHG}OUT\r\n"));
        let requests = gw.requests();
        let host = gw.addr().to_string();
        assert_eq!(gw.connections(), [1], "one connection, kept alive");
        for r in &requests {
            assert_eq!((r.listener, r.connection), (0, 0));
            assert_eq!(r.host.as_deref(), Some(host.as_str()));
        }
        assert_eq!(requests[0].kind, RequestKind::Open);
        assert!(requests.iter().any(|r| r.kind == RequestKind::Poll));
        assert!(
            requests[1..]
                .iter()
                .all(|r| r.session_id.as_deref().is_some_and(|id| id.starts_with("954547325."))),
            "{requests:?}"
        );
        assert!(tx.is_closed());
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_gateway_closing_after_every_response_gets_a_fresh_connection_each_time() {
    run(async {
        let gw = Gateway::start(Script { close_each: true, ..Script::default() }).await;
        let (tx, mut rx) = Client::open(config(&gw), ns()).unwrap().split();
        tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
        tx.send(CHG.as_bytes()).await.unwrap();
        gw.push(ILN.as_bytes());
        assert_eq!(take(&mut rx, 2).await, [cmd(ILN), cmd(CHG)]);
        let end = rx.close().await;
        assert_eq!(closed(&end), server_closed());

        assert_eq!(text(&gw.received()), format!("{VER}{CHG}OUT\r\n"));
        let requests = gw.requests();
        assert!(requests.len() >= 3);
        assert_eq!(gw.connections(), [requests.len()]);
        for (i, r) in requests.iter().enumerate() {
            assert_eq!(r.connection, i, "request {i} on its own connection");
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn close_delimited_http_1_0_bodies_end_with_the_connection() {
    run(async {
        let gw = Gateway::start(Script { close_delimited: true, ..Script::default() }).await;
        let (tx, mut rx) = Client::open(config(&gw), ns()).unwrap().split();
        tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
        tx.send(CHG.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 1).await, [cmd(CHG)]);
        let end = rx.close().await;
        assert_eq!(closed(&end), server_closed());
        assert_eq!(text(&gw.received()), format!("{VER}{CHG}OUT\r\n"));
        assert_eq!(gw.connections(), [gw.request_count()]);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_response_dropped_mid_body_ends_the_session_and_reports_the_unconfirmed_bytes() {
    run(async {
        let msg = "MSG bob@example.com Bob 5\r\nhello";
        // Request 1 (our CHG) gets a head announcing MSG + CHG, then MSG and 5 bytes of CHG.
        let keep = msg.len() + 5;
        let gw = Gateway::start(Script::default().fault(1, Fault::DropMidBody(keep))).await;
        let mut config = config(&gw);
        config.poll_policy = PollPolicy::Official { interval: Duration::from_secs(30) };
        let (tx, mut rx) = Client::open(config, ns()).unwrap().split();
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
                    // The gateway processed CHG, but its answer was lost: the caller learns
                    // that CHG was never confirmed, and the 5 bytes of the cut command.
                    unsent: CHG.to_owned(),
                    incomplete: 5,
                },
            ]
        );
        assert_eq!(rx.recv_event().await, None);
        assert_eq!(text(&gw.received()), format!("{VER}{CHG}"));
        assert_eq!(tx.send(b"OUT\r\n").await, Err(SendError::Closed));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn chunked_responses_cut_inside_commands_and_payloads() {
    run(async {
        let gw = Gateway::start(Script { chunked: Some(4), ..Script::default() }).await;
        let (tx, mut rx) = Client::open(config(&gw), ns()).unwrap().split();
        tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
        let payload = "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhi \r\n there";
        let msg = format!("MSG 2 N {}\r\n{payload}", payload.len());
        tx.send(msg.as_bytes()).await.unwrap();
        gw.push(ILN.as_bytes());
        assert_eq!(take(&mut rx, 2).await, [cmd(ILN), cmd(&msg)]);
        let end = rx.close().await;
        assert_eq!(closed(&end), server_closed());
        assert_eq!(text(&gw.received()), format!("{VER}{msg}OUT\r\n"));
        assert_eq!(gw.connections(), [1], "chunked bodies keep the connection alive");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_100_continue_before_every_response_is_skipped() {
    run(async {
        let gw = Gateway::start(Script { continue_first: true, ..Script::default() }).await;
        let (tx, mut rx) = Client::open(config(&gw), ns()).unwrap().split();
        tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
        tx.send(CHG.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 1).await, [cmd(CHG)]);
        let end = rx.close().await;
        assert_eq!(closed(&end), server_closed());
        assert_eq!(text(&gw.received()), format!("{VER}{CHG}OUT\r\n"));
        assert_eq!(gw.connections(), [1]);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_400_ends_the_session_and_hands_back_the_unsent_commands() {
    run(async {
        let gw = Gateway::start(Script::default().fault(1, Fault::Status(400))).await;
        let mut config = config(&gw);
        config.poll_policy = PollPolicy::Official { interval: Duration::from_secs(30) };
        let (tx, mut rx) = Client::open(config, ns()).unwrap().split();
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
        assert_eq!(text(&gw.received()), VER, "the rejected request was not processed");
        // No polling after the end (a poll would be due after 30 s).
        let requests = gw.request_count();
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert_eq!(gw.request_count(), requests);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_500_asks_the_caller_for_commands_and_retries_polls_by_itself() {
    run(async {
        // 0: open, 1: CHG -> 500, 2: poll (at once), 3: poll -> 500, 4: poll again, 5: CHG.
        let gw = Gateway::start(
            Script::default().fault(1, Fault::Status(500)).fault(3, Fault::Status(500)),
        )
        .await;
        let config = config(&gw);
        assert_eq!(config.unconfirmed, UnconfirmedPolicy::Ask);
        let (tx, mut rx) = Client::open(config, ns()).unwrap().split();
        tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
        tx.send(CHG.as_bytes()).await.unwrap();
        // A caller that only calls `recv` is told at once, as a value it can act on.
        let server_error = SessionError::Remote(RemoteError::ServerError(500));
        let start = tokio::time::Instant::now();
        assert_eq!(
            rx.recv().await,
            Err(RecvError::DeliveryUncertain {
                kind: RequestKind::Send,
                error: server_error.clone(),
                bytes: CHG.len(),
            })
        );
        assert!(since(start) < Duration::from_millis(10));
        // Undecided, the session keeps polling: received commands keep coming, no command
        // goes out. (Pushed once the first of those polls was answered.)
        while gw.request_count() < 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        gw.push(ILN.as_bytes());
        assert_eq!(
            take(&mut rx, 2).await,
            [
                Ev::Notice(Notice::RequestFailed {
                    kind: RequestKind::Poll,
                    error: server_error,
                    recovery: Recovery::Resending,
                }),
                cmd(ILN),
            ]
        );
        tx.resend_unconfirmed();
        assert_eq!(rx.recv().await.map(|c| text(c.as_bytes())), Ok(CHG.to_owned()));
        let kinds: Vec<_> = gw.requests().iter().map(|r| r.kind).take(6).collect();
        use RequestKind::{Open, Poll, Send};
        assert_eq!(kinds, [Open, Send, Poll, Poll, Poll, Send]);
        let end = rx.close().await;
        assert_eq!(closed(&end), server_closed());
        assert_eq!(text(&gw.received()), format!("{VER}{CHG}OUT\r\n"), "CHG processed once");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_stalled_response_times_out_on_the_request_deadline_and_the_poll_is_retried() {
    run(async {
        let gw = Gateway::start(Script::default().fault(1, Fault::Stall)).await;
        let mut config = config(&gw);
        config.request_timeout = Duration::from_secs(5);
        let (tx, mut rx) = Client::open(config, ns()).unwrap().split();
        tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
        let start = tokio::time::Instant::now();
        gw.push(ILN.as_bytes());
        // Request 1 (the poll 100 ms later) is never answered.
        assert_eq!(
            take(&mut rx, 1).await,
            [Ev::Notice(Notice::RequestFailed {
                kind: RequestKind::Poll,
                error: SessionError::Network(NetworkError::Timeout { response_started: false }),
                recovery: Recovery::Resending,
            })]
        );
        let waited = since(start);
        assert!(
            waited >= Duration::from_millis(5_100) && waited < Duration::from_millis(5_200),
            "timed out after {waited:?}"
        );
        assert_eq!(take(&mut rx, 1).await, [cmd(ILN)]);
        let requests = gw.requests();
        assert_eq!(requests[1].kind, RequestKind::Poll);
        assert_eq!(requests[2].kind, RequestKind::Poll);
        assert_eq!(requests[2].connection, 1, "the retry uses a fresh connection");
        let end = rx.close().await;
        assert_eq!(closed(&end), server_closed());
        assert_eq!(text(&gw.received()), format!("{VER}OUT\r\n"));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn gw_ip_moves_the_session_to_another_loopback_address() {
    run(async {
        let mut gw = Gateway::start(Script::default()).await;
        let moved = gw.listen("127.0.0.2:0").await;
        gw.lock().script.gw_ip = GwIp::Fixed(moved.to_string());
        let (tx, mut rx) = Client::open(config(&gw), ns()).unwrap().split();
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

        assert_eq!(text(&gw.received()), format!("{VER}{CHG}OUT\r\n"));
        let requests = gw.requests();
        assert_eq!(requests[0].listener, 0);
        for r in &requests[1..] {
            assert_eq!(r.listener, 1, "{r:?}");
            assert_eq!(r.host.as_deref(), Some(moved.to_string().as_str()));
        }
        assert_eq!(gw.connections(), [1, 1]);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_gw_ip_falls_back_to_the_configured_gateway() {
    run(async {
        let gw = Gateway::start(Script::default()).await;
        let dead = dead_port("127.0.0.3").await;
        gw.lock().script.gw_ip = GwIp::Fixed(dead.to_string());
        let mut config = config(&gw);
        config.poll_policy = PollPolicy::Official { interval: Duration::from_secs(30) };
        let (tx, mut rx) = Client::open(config, ns()).unwrap().split();
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
                Ev::Notice(Notice::GatewayFallback {
                    unreachable: endpoint(dead),
                    to: gw.endpoint(),
                }),
                Ev::Notice(Notice::RequestFailed {
                    kind: RequestKind::Send,
                    error: SessionError::Network(NetworkError::ConnectFailed {
                        kind: io::ErrorKind::ConnectionRefused,
                        address: endpoint(dead),
                    }),
                    recovery: Recovery::Resending,
                }),
                cmd(CHG),
            ]
        );
        // Later answers still name the dead host; the session stays where it works.
        assert_eq!(tx.gateway(), gw.endpoint());
        let end = rx.close().await;
        assert_eq!(closed(&end), server_closed());
        assert_eq!(text(&gw.received()), format!("{VER}{CHG}OUT\r\n"));
        assert!(gw.requests().iter().all(|r| r.listener == 0));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn session_close_from_the_gateway_delivers_the_last_body_then_ends() {
    run(async {
        let gw = Gateway::start(Script::default().fault(1, Fault::SessionClose)).await;
        let mut config = config(&gw);
        config.poll_policy = PollPolicy::Official { interval: Duration::from_secs(30) };
        let (tx, mut rx) = Client::open(config, ns()).unwrap().split();
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
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert_eq!(gw.request_count(), 2, "no request after Session=close");
        assert_eq!(text(&gw.received()), format!("{VER}{CHG}"));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn through_a_proxy_with_absolute_targets_and_credentials() {
    run(async {
        let gw = Gateway::start(Script::default()).await;
        let proxy = FakeProxy::start(gw.addr(), "Basic YWxpY2U6c2VjcmV0").await;
        let mut config = config(&gw);
        config.proxy = Some(Proxy {
            endpoint: endpoint(proxy.addr),
            credentials: Some(("alice".to_owned(), "secret".to_owned())),
        });
        let (tx, mut rx) = Client::open(config, ns()).unwrap().split();
        tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
        tx.send(CHG.as_bytes()).await.unwrap();
        gw.push(ILN.as_bytes());
        assert_eq!(take(&mut rx, 2).await, [cmd(ILN), cmd(CHG)]);
        let end = rx.close().await;
        assert_eq!(closed(&end), server_closed());

        assert_eq!(text(&gw.received()), format!("{VER}{CHG}OUT\r\n"));
        let log = proxy.log.lock().unwrap();
        assert_eq!(log.refused, 0, "{log:?}");
        assert_eq!(log.targets.len(), gw.request_count());
        let prefix = format!("http://{}/gateway/gateway.dll?", gw.addr());
        assert!(log.targets.iter().all(|t| t.starts_with(&prefix)), "{log:?}");
        assert!(log.authorizations.iter().all(|a| a.as_deref() == Some("Basic YWxpY2U6c2VjcmV0")));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn send_waits_while_the_queue_is_full_and_a_cancelled_send_queues_nothing() {
    run(async {
        // Request 1 (CHG) is answered a second late; meanwhile the 32-byte queue fills up.
        let gw =
            Gateway::start(Script::default().fault(1, Fault::Delay(Duration::from_secs(1)))).await;
        let mut config = config(&gw);
        config.max_queued_bytes = 32;
        config.poll_policy = PollPolicy::Official { interval: Duration::from_secs(30) };
        let (tx, mut rx) = Client::open(config, ns()).unwrap().split();
        tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
        let lst = "LST 3 RL 00000000\r\n";
        let syn = "SYN 4 0\r\n";
        assert_eq!(CHG.len() + lst.len(), 32);
        tx.send(CHG.as_bytes()).await.unwrap();
        tx.send(lst.as_bytes()).await.unwrap();
        assert!(matches!(
            tx.try_send(syn.as_bytes()),
            Err(SendError::QueueFull { queued: 32, limit: 32 })
        ));
        // A send that waits is cancelled: nothing of it may be queued.
        let cancelled =
            tokio::time::timeout(Duration::from_millis(200), tx.send(syn.as_bytes())).await;
        assert!(cancelled.is_err(), "the queue is still full");
        // Larger than the queue can ever take (its limit, or one command as large as the framer
        // allows): refused at once rather than waiting forever.
        assert!(matches!(tx.send(&vec![b'x'; 2 << 20]).await, Err(SendError::QueueFull { .. })));
        let start = tokio::time::Instant::now();
        tx.send(syn.as_bytes()).await.unwrap();
        let waited = since(start);
        assert!(
            waited >= Duration::from_millis(700) && waited < Duration::from_millis(900),
            "send waited {waited:?} for the delayed answer"
        );
        assert_eq!(take(&mut rx, 3).await, [cmd(CHG), cmd(lst), cmd(syn)]);
        let end = rx.close().await;
        assert_eq!(closed(&end), server_closed());
        assert_eq!(
            text(&gw.received()),
            format!("{VER}{CHG}{lst}{syn}OUT\r\n"),
            "SYN sent exactly once"
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_receiver_that_does_not_read_stops_the_polling() {
    run(async {
        // At most 30 MSNP bytes per response, cut anywhere; 64 undelivered bytes stop polls.
        let gw = Gateway::start(Script { max_body: 30, ..Script::default() }).await;
        let mut config = config(&gw);
        config.max_inbound_bytes = 64;
        let (tx, mut rx) = Client::open(config, ns()).unwrap().split();
        tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
        let commands: Vec<String> =
            (0..20).map(|i| format!("ILN 0 NLN user{i:02}@example.com User{i:02}\r\n")).collect();
        gw.push(commands.concat().as_bytes());

        tokio::time::sleep(Duration::from_secs(5)).await;
        let stalled = gw.request_count();
        // 100 polls would be due in this time.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(gw.request_count(), stalled, "no request while the receiver does not read");
        assert!(stalled <= 5, "{stalled} requests before holding back");

        for want in &commands {
            let got = rx.recv().await.expect("a command");
            assert_eq!(text(got.as_bytes()), *want);
        }
        assert!(gw.request_count() > stalled + 10, "polling resumed");
        let end = rx.close().await;
        assert_eq!(closed(&end), server_closed());
        assert_eq!(text(&gw.received()), format!("{VER}OUT\r\n"));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn many_tasks_send_through_clones_of_one_sender() {
    run(async {
        let gw = Gateway::start(Script::default()).await;
        let (tx, mut rx) = Client::open(config(&gw), ns()).unwrap().split();
        tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
        let mut tasks = Vec::new();
        for task in 0..4 {
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..10 {
                    let line = format!("REA {} a{task}@example.com n{i}\r\n", task * 100 + i);
                    tx.send(line.as_bytes()).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
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
        let sent: usize = (0..4)
            .flat_map(|task| {
                (0..10).map(move |i| format!("REA {} a{task}@example.com n{i}\r\n", task * 100 + i))
            })
            .map(|line| line.len())
            .sum();
        assert_eq!(gw.received().len(), VER.len() + sent + "OUT\r\n".len());
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_first_connect_fails_at_once_with_its_cause() {
    run(async {
        let dead = dead_port("127.0.0.1").await;
        let mut config = config(&Gateway::start(Script::default()).await);
        config.gateway = endpoint(dead);
        let (tx, mut rx) = Client::open(config, ns()).unwrap().split();
        let start = tokio::time::Instant::now();
        tx.send(VER.as_bytes()).await.unwrap();
        let refused = NetworkError::ConnectFailed {
            kind: io::ErrorKind::ConnectionRefused,
            address: endpoint(dead),
        };
        let Err(RecvError::Ended(end)) = rx.recv().await else { panic!("the session ends") };
        assert_eq!(end.reason, CloseReason::Failed(refused.into()));
        assert_eq!(end.unsent, VER.as_bytes(), "the commands come back");
        assert!(since(start) < Duration::from_millis(10), "no retry: nothing was reachable");
        assert!(end.to_string().contains(&format!("could not connect to {dead}")), "{end}");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_gateway_gone_mid_session_is_retried_with_backoff_then_given_up_with_the_cause() {
    run(async {
        // Closing after each answer, so no idle connection outlives the gateway.
        let gw = Gateway::start(Script { close_each: true, ..Script::default() }).await;
        let address = gw.endpoint();
        let (tx, mut rx) = Client::open(config(&gw), ns()).unwrap().split();
        tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 2).await, [established(FIRST_ID), cmd(VER)]);
        drop(gw);
        let start = tokio::time::Instant::now();
        let refused = SessionError::Network(NetworkError::ConnectFailed {
            kind: io::ErrorKind::ConnectionRefused,
            address,
        });
        let failed = Ev::Notice(Notice::RequestFailed {
            kind: RequestKind::Poll,
            error: refused.clone(),
            recovery: Recovery::Resending,
        });
        assert_eq!(take(&mut rx, 5).await, vec![failed; 5]);
        let Err(RecvError::Ended(end)) = rx.recv().await else { panic!("the session ends") };
        let CloseReason::Failed(SessionError::Network(NetworkError::TooManyFailures {
            failures,
            last,
        })) = &end.reason
        else {
            panic!("gave up: {end:?}");
        };
        assert_eq!((*failures, last.as_ref()), (6, &refused));
        // The poll one interval on, then retries at once, after 0.5, 1, 2 and 4 seconds.
        let waited = since(start);
        assert!(
            waited >= Duration::from_millis(7_600) && waited < Duration::from_millis(7_700),
            "gave up after {waited:?}"
        );
        drop(tx);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_aborts_the_session() {
    run(async {
        let gw = Gateway::start(Script::default()).await;
        let mut client = Client::open(config(&gw), ns()).unwrap();
        client.send(VER.as_bytes()).await.unwrap();
        assert_eq!(client.recv().await.map(|c| c.into_bytes()), Ok(VER.as_bytes().to_vec()));
        drop(client);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let requests = gw.request_count();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(gw.request_count(), requests, "no polling after the drop");
        assert_eq!(text(&gw.received()), VER, "no OUT: an abort");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn closing_with_a_dropped_receiver_still_completes_in_the_background() {
    run(async {
        let gw = Gateway::start(Script::default()).await;
        let (tx, rx) = Client::open(config(&gw), ns()).unwrap().split();
        drop(rx);
        tx.send(VER.as_bytes()).await.unwrap();
        // (A session that never made a request would close at once, without OUT.)
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(tx.session_id().as_deref(), Some(FIRST_ID));
        tx.close();
        drop(tx);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(text(&gw.received()), format!("{VER}OUT\r\n"));
    })
    .await;
}

#[test]
fn opening_outside_a_runtime_is_an_error() {
    let config = msn_http_core::client::ClientConfig::default();
    let err = Client::open(config, ns()).unwrap_err();
    assert_eq!(err, OpenError::NoRuntime);
}

/// `connect`, as `TcpStream::connect`: the connection it makes carries the open request, and
/// a gateway that is not there is an error at once, with its cause.
#[tokio::test(start_paused = true)]
async fn connect_makes_the_first_connection_and_fails_at_once_when_nothing_listens() {
    run(async {
        let gw = Gateway::start(Script::default()).await;
        let url = format!("http://{}/gateway/gateway.dll", gw.addr());
        let mut client = Client::connect(&url, ns()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(gw.connections(), [1], "connected before anything was sent");
        assert_eq!(gw.request_count(), 0);
        client.send(VER.as_bytes()).await.unwrap();
        assert_eq!(client.recv().await.map(|c| text(c.as_bytes())), Ok(VER.to_owned()));
        assert_eq!(gw.connections(), [1], "the open went over that connection");
        assert!(client.close().await.is_clean());

        let dead = dead_port("127.0.0.1").await;
        let start = tokio::time::Instant::now();
        let refused = Client::connect(&format!("http://{dead}"), ns()).await.unwrap_err();
        let want = NetworkError::ConnectFailed {
            kind: io::ErrorKind::ConnectionRefused,
            address: endpoint(dead),
        };
        assert_eq!(refused, OpenError::Connect(want));
        assert_eq!(refused.to_string(), format!("could not connect to {dead}: connection refused"));
        assert!(since(start) < Duration::from_millis(10));
        let err = msn_http_tokio::ClientStream::connect(&format!("http://{dead}"), ns())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let bad = Client::connect("ftp://x", ns()).await.unwrap_err();
        assert!(matches!(bad, OpenError::Config(_)), "{bad}");
    })
    .await;
}

/// The receiver is a `Stream` of commands: a `DeliveryUncertain` is an item, a clean end
/// ends it.
#[tokio::test(start_paused = true)]
async fn the_receiver_is_a_stream_that_ends_with_the_session() {
    use futures_core::Stream;
    use std::pin::Pin;
    async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
        std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
    }
    run(async {
        let gw = Gateway::start(Script::default().fault(1, Fault::Status(500))).await;
        let (tx, mut rx) = Client::open(config(&gw), ns()).unwrap().split();
        tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(
            next(&mut rx).await.map(|r| r.map(|c| text(c.as_bytes()))),
            Some(Ok(VER.to_owned()))
        );
        tx.send(CHG.as_bytes()).await.unwrap();
        assert!(matches!(next(&mut rx).await, Some(Err(RecvError::DeliveryUncertain { .. }))));
        tx.resend_unconfirmed();
        assert_eq!(
            next(&mut rx).await.map(|r| r.map(|c| text(c.as_bytes()))),
            Some(Ok(CHG.to_owned()))
        );
        tx.close();
        assert_eq!(
            next(&mut rx).await.map(|r| r.map(|c| text(c.as_bytes()))),
            Some(Ok("OUT\r\n".into()))
        );
        assert_eq!(next(&mut rx).await, None, "a clean end ends the stream");
        assert_eq!(next(&mut rx).await, None);
    })
    .await;
}
