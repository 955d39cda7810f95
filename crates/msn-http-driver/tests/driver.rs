//! The driver loop on its own, over an in-memory runtime on a virtual clock: when it
//! connects, reuses and replaces connections, how it bounds a connect or a write that never
//! completes, and how long it sleeps. Everything is deterministic, times are exact.

mod support;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future::zip;
use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, CloseReason, PollPolicy, Recovery, RequestKind, Target};
use msn_http_core::error::{NetworkError, SessionError};
use msn_http_driver::{Client, ClientReceiver, ClientSender, Detached, Driver, Notice};
use support::{
    Clock, Ev, Fault, GwIp, Memory, Net, Script, closed, cmd, established, run, take, text,
};

const VER: &str = "VER 1 MSNP8 CVR0\r\n";
const CHG: &str = "CHG 2 NLN 0\r\n";
const POLL: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_secs(5);

fn server_closed() -> Ev {
    Ev::Closed { reason: CloseReason::ServerClosed, unsent: String::new(), incomplete: 0 }
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A network with a gateway at `gw1:80` (and `gw2:80`), and a session through it.
fn setup(script: Script) -> (Arc<Clock>, Arc<Net>, ClientSender, ClientReceiver, Driver) {
    let clock = Clock::new();
    let net = Net::new(&clock, script, &["gw1:80", "gw2:80"]);
    let mut config = ClientConfig::new(Endpoint::new("gw1", 80).unwrap());
    config.poll_policy = PollPolicy::Official { interval: POLL };
    config.request_timeout = TIMEOUT;
    let (client, driver) = Client::<Detached>::open_with(
        Memory(Arc::clone(&net)),
        config,
        Target::notification("gw1"),
    )
    .unwrap();
    let (tx, rx) = client.split();
    (clock, net, tx, rx, driver)
}

/// Runs the driver and `body` together, until both are done: every test ends its session,
/// so its driver must stop.
fn run_with<T>(clock: &Clock, driver: Driver, body: impl Future<Output = T>) -> T {
    run(clock, zip(driver, body)).1
}

fn connects(net: &Net) -> Vec<(String, Duration)> {
    net.lock().connects.clone()
}

#[test]
fn a_kept_alive_connection_serves_every_request() {
    let (clock, net, tx, mut rx, driver) = setup(Script::default());
    run_with(&clock, driver, async {
        tx.send(VER.as_bytes()).await.unwrap();
        tx.send(CHG.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 3).await, [established("954547325.1"), cmd(VER), cmd(CHG)]);
        assert_eq!(closed(&rx.close().await), server_closed());
    });
    assert_eq!(connects(&net), [("gw1:80".to_owned(), ms(0))]);
    // Queued before the driver ran, VER and CHG went out together; then OUT.
    let requests = net.lock().gateway.requests.clone();
    let bodies: Vec<_> = requests.iter().map(|r| (r.kind, text(&r.body))).collect();
    assert_eq!(
        bodies,
        [(RequestKind::Open, format!("{VER}{CHG}")), (RequestKind::Send, "OUT\r\n".to_owned())]
    );
    assert!(requests.iter().all(|r| r.connection == 0));
}

#[test]
fn a_gateway_closing_each_connection_gets_a_new_one_per_request() {
    let (clock, net, tx, mut rx, driver) = setup(Script { close_each: true, ..Script::default() });
    run_with(&clock, driver, async {
        tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 2).await, [established("954547325.1"), cmd(VER)]);
        tx.send(CHG.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 1).await, [cmd(CHG)]);
        assert_eq!(closed(&rx.close().await), server_closed());
    });
    assert_eq!(connects(&net).len(), 3);
    assert_eq!(net.lock().accepted, [3, 0]);
    assert_eq!(text(&net.lock().gateway.received), format!("{VER}{CHG}OUT\r\n"));
}

#[test]
fn a_moved_gateway_gets_a_connection_of_its_own() {
    let script = Script { gw_ip: GwIp::Fixed("gw2:80".to_owned()), ..Script::default() };
    let (clock, net, tx, mut rx, driver) = setup(script);
    run_with(&clock, driver, async {
        tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(
            take(&mut rx, 3).await[2],
            Ev::Notice(Notice::GatewayMoved {
                from: Endpoint::new("gw1", 80).unwrap(),
                to: Endpoint::new("gw2", 80).unwrap(),
            })
        );
        tx.send(CHG.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 1).await, [cmd(CHG)]);
        assert_eq!(closed(&rx.close().await), server_closed());
    });
    let destinations: Vec<_> = connects(&net).into_iter().map(|(d, _)| d).collect();
    assert_eq!(destinations, ["gw1:80", "gw2:80"]);
    assert_eq!(net.lock().accepted, [1, 1]);
}

#[test]
fn a_connect_that_never_completes_ends_an_unopened_session_at_the_request_deadline() {
    let (clock, net, tx, mut rx, driver) = setup(Script::default());
    net.lock().hanging_connects.push(0);
    run_with(&clock, driver, async {
        tx.send(VER.as_bytes()).await.unwrap();
        let timed_out = NetworkError::ConnectFailed {
            kind: io::ErrorKind::TimedOut,
            address: Endpoint::new("gw1", 80).unwrap(),
        };
        assert_eq!(
            take(&mut rx, 1).await,
            [Ev::Closed {
                reason: CloseReason::Failed(timed_out.into()),
                unsent: VER.to_owned(),
                incomplete: 0
            }]
        );
    });
    // Nothing was ever reachable: no retry.
    assert_eq!(connects(&net), [("gw1:80".to_owned(), ms(0))]);
    assert_eq!(clock.elapsed(), TIMEOUT);
    assert!(net.lock().gateway.received.is_empty());
}

#[test]
fn a_connect_that_never_completes_mid_session_is_given_up_at_the_deadline_and_retried() {
    let (clock, net, tx, mut rx, driver) = setup(Script { close_each: true, ..Script::default() });
    net.lock().hanging_connects.push(1);
    run_with(&clock, driver, async {
        tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 2).await, [established("954547325.1"), cmd(VER)]);
        tx.send(CHG.as_bytes()).await.unwrap();
        let timed_out = NetworkError::ConnectFailed {
            kind: io::ErrorKind::TimedOut,
            address: Endpoint::new("gw1", 80).unwrap(),
        };
        assert_eq!(
            take(&mut rx, 2).await,
            [
                Ev::Notice(Notice::RequestFailed {
                    kind: RequestKind::Send,
                    error: SessionError::Network(timed_out),
                    recovery: Recovery::Resending,
                }),
                cmd(CHG),
            ]
        );
        assert_eq!(closed(&rx.close().await), server_closed());
    });
    // Nothing reached the gateway: the request is simply made again, at once.
    let connects = connects(&net);
    assert_eq!(connects[1..3], [("gw1:80".to_owned(), ms(0)), ("gw1:80".to_owned(), TIMEOUT)]);
    assert_eq!(text(&net.lock().gateway.received), format!("{VER}{CHG}OUT\r\n"));
}

#[test]
fn a_write_that_never_completes_times_out_and_the_retry_uses_a_fresh_connection() {
    let (clock, net, tx, mut rx, driver) = setup(Script::default());
    // Write 0 opens the session; write 1 (CHG) never gets through.
    net.lock().hanging_writes.push(1);
    run_with(&clock, driver, async {
        tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 2).await, [established("954547325.1"), cmd(VER)]);
        tx.send(CHG.as_bytes()).await.unwrap();
        assert_eq!(
            take(&mut rx, 1).await,
            [Ev::Notice(Notice::RequestFailed {
                kind: RequestKind::Send,
                error: SessionError::Network(NetworkError::Timeout { response_started: false }),
                recovery: Recovery::AwaitingDecision,
            })]
        );
        assert_eq!(clock.elapsed(), TIMEOUT, "exactly the request deadline");
        tx.resend_unconfirmed();
        assert_eq!(take(&mut rx, 1).await, [cmd(CHG)]);
        assert_eq!(closed(&rx.close().await), server_closed());
    });
    assert_eq!(connects(&net), [("gw1:80".to_owned(), ms(0)), ("gw1:80".to_owned(), TIMEOUT)]);
    assert_eq!(text(&net.lock().gateway.received), format!("{VER}{CHG}OUT\r\n"), "CHG once");
}

#[test]
fn the_driver_sleeps_until_the_next_poll_and_no_longer_than_a_poll_interval_in_flight() {
    // Request 1, the first poll, is never answered.
    let (clock, net, tx, mut rx, driver) = setup(Script::default().fault(1, Fault::Stall));
    run_with(&clock, driver, async {
        tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(take(&mut rx, 2).await, [established("954547325.1"), cmd(VER)]);
        assert_eq!(
            take(&mut rx, 1).await,
            [Ev::Notice(Notice::RequestFailed {
                kind: RequestKind::Poll,
                error: SessionError::Network(NetworkError::Timeout { response_started: false }),
                recovery: Recovery::Resending,
            })]
        );
        assert_eq!(closed(&rx.close().await), server_closed());
    });
    let sleeps = net.lock().sleeps.clone();
    // Idle after the answer to VER: until the poll, one interval later.
    assert_eq!(sleeps[0], (ms(0), POLL));
    // In flight from 100 ms to the 5.1 s deadline: woken at least every interval (so that
    // the poll timer armed after a response is never earlier than the one waited on).
    let in_flight: Vec<_> = sleeps[1..].iter().take_while(|(at, _)| *at < POLL + TIMEOUT).collect();
    assert_eq!(in_flight.len(), 50, "{sleeps:?}");
    for (i, (at, until)) in in_flight.iter().enumerate() {
        assert_eq!(*at, POLL * (i as u32 + 1));
        assert_eq!(*until, *at + POLL);
    }
    // The poll was made again on a new connection when the deadline passed.
    assert_eq!(connects(&net)[1], ("gw1:80".to_owned(), POLL + TIMEOUT));
}
