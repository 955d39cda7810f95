//! The async-io client against the gateways and servers of the field (PROTOCOL.md §7), one
//! quirk per test, over real loopback sockets on a virtual clock, each case on async-std and
//! on smol: what the caller sees, and what went on the wire — where each request went, which
//! kinds and how many, what the MSNP backend processed, and that nothing was lost or
//! duplicated. The clock moves one deadline at a time, each once nothing is under way on the
//! wire ([`Gateway::step_until`]), so idle minutes take milliseconds and every answer is taken
//! in at the virtual instant it was sent. Sessions whose end is checked also wait for their
//! driver task to finish: proof that nothing more goes on the wire.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use msn_http_async_std::{ClientReceiver, ClientSender, Notice, RecvError, SessionEnd};
use msn_http_core::Endpoint;
use msn_http_core::client::{CloseReason, MoveRefusal, OutReason, PollPolicy, RequestKind, Target};
use msn_http_core::error::{RemoteError, SendError, SessionError};
use msn_http_core::msnp::OwnedCommand;
use support::field::{
    BURSTS, CAL, CHG, FIRST_ID, ILN, JOI, LOGIN, MINUTE, MSG, PROFILE, SECOND, USR, UUID, VER,
    ZERO_PADDED, burst, check_burst, check_constant_id_chat, check_gave_up_on_500,
    check_stayed_on_the_gateway, longest_gap,
};
use support::{
    Clock, Ev, Exec, Gateway, Quirks, RawServer, Script, SessionIds, Task, Wire, closed, cmd,
    commands, config, endpoint, established, ns, open_counted, requests_between, take_commands,
    text,
};

crate::on_both!(
    a_gw_ip_echoing_ip_as_host_and_port_is_not_followed_into_the_switchboard,
    a_gw_ip_echoing_ip_as_host_only_is_not_followed_into_the_switchboard,
    long_polls_a_gateway_never_holds_cost_no_more_than_adaptive_polling,
    long_polls_a_gateway_holds_cost_one_request_per_lifespan_and_deliver_at_once,
    a_constant_uuid_session_id_carries_a_long_chat,
    a_server_out_without_session_close_ends_the_session,
    idle_official_polls_never_meet_the_sixty_second_expiry,
    idle_adaptive_polls_never_meet_the_sixty_second_expiry,
    idle_long_polls_never_meet_the_sixty_second_expiry,
    idle_held_long_polls_never_meet_the_sixty_second_expiry,
    a_malformed_payload_length_that_wedges_the_server_ends_the_session,
    a_reply_written_line_by_line_with_a_push_after_the_login_arrives_whole_in_order,
);

/// A session through a fake gateway on a virtual clock, and the means to move it.
struct Field {
    clock: Arc<Clock>,
    gw: Gateway,
    tx: ClientSender,
    rx: ClientReceiver,
    driver: Task<()>,
    wire: Arc<Wire>,
}

impl Field {
    /// A session of `target` under `policy` (`None`: the support's 100 ms official poll).
    fn open(exec: &Exec, script: Script, policy: Option<PollPolicy>, target: Target) -> Self {
        let clock = Clock::new();
        let gw = Gateway::start(exec, &clock, script);
        let mut config = config(&gw);
        config.poll_policy = policy.unwrap_or(config.poll_policy);
        let (tx, rx, driver, wire) = open_counted(exec, &clock, config, target);
        Self { clock, gw, tx, rx, driver, wire }
    }

    /// An NS session that sent `VER` and took its echo, the gateway's first ID being `id`.
    async fn logged_on(exec: &Exec, script: Script, policy: Option<PollPolicy>, id: &str) -> Self {
        let mut field = Self::open(exec, script, policy, ns());
        field.tx.send(VER.as_bytes()).await.unwrap();
        assert_eq!(field.take(1).await, [established(id), cmd(VER)]);
        field
    }

    /// The events up to the `n`th command, the clock moving as needed.
    async fn take(&mut self, n: usize) -> Vec<Ev> {
        self.gw.step_until(&self.wire, take_commands(&mut self.rx, n)).await
    }

    async fn recv(&mut self) -> Result<OwnedCommand, RecvError> {
        self.gw.step_until(&self.wire, self.rx.recv()).await
    }

    /// Lets `d` of virtual time go by.
    async fn idle(&self, d: Duration) {
        self.gw.idle_until(&self.wire, self.clock.now() + d).await;
    }

    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn kinds(&self) -> Vec<RequestKind> {
        self.gw.requests().iter().map(|r| r.kind).collect()
    }

    /// Closes cleanly, waits for the driver to stop, and returns how the session ended.
    async fn close(self) -> (SessionEnd, Gateway, ClientSender) {
        let Self { gw, tx, rx, driver, wire, .. } = self;
        let end = gw.step_until(&wire, rx.close()).await;
        driver.await;
        (end, gw, tx)
    }
}

fn server_closed() -> Ev {
    Ev::Closed { reason: CloseReason::ServerClosed, unsent: String::new(), incomplete: 0 }
}

/// A switchboard chat through a gateway that echoes `IP=` (the address of `raw`, a listener
/// that never speaks HTTP) as `GW-IP`, which names `named`: the session stays on the gateway,
/// says so once, and the chat works.
async fn an_echoed_ip_is_not_followed(mut f: Field, raw: RawServer, ip: String, named: Endpoint) {
    f.tx.send(USR.as_bytes()).await.unwrap();
    let refused = Notice::MoveRefused { to: named, reason: MoveRefusal::NamesMsnpServer };
    assert_eq!(f.take(1).await, [established(FIRST_ID), Ev::Notice(refused), cmd(USR)]);
    f.tx.send(CAL.as_bytes()).await.unwrap();
    assert_eq!(f.take(1).await, [cmd(CAL)]);
    f.gw.push(JOI.as_bytes());
    assert_eq!(f.take(1).await, [cmd(JOI)]);
    f.tx.send(MSG.as_bytes()).await.unwrap();
    assert_eq!(f.take(1).await, [cmd(MSG)]);
    // Idle polls: every answer names the MSNP server again, and is not reported again.
    f.idle(5 * SECOND).await;
    f.gw.push(ILN.as_bytes());
    assert_eq!(f.take(1).await, [cmd(ILN)]);
    assert_eq!(f.tx.gateway(), f.gw.endpoint());
    let stats = f.tx.stats();
    assert_eq!((stats.refused_moves, stats.fallbacks, stats.failed_requests), (1, 0, 0));
    let (end, gw, _) = f.close().await;
    assert_eq!(closed(&end), server_closed());
    let raw = (raw.accepted(), raw.bytes());
    let (requests, connections) = (gw.requests(), gw.connections());
    let host = gw.addr().to_string();
    check_stayed_on_the_gateway(&requests, &gw.received(), &connections, raw, &ip, &host);
}

/// Item 1 of issue 10: a switchboard opened with `IP=<host>:<port>` got that value back as
/// `GW-IP`, and the client sent HTTP to the raw switchboard.
async fn a_gw_ip_echoing_ip_as_host_and_port_is_not_followed_into_the_switchboard(exec: Exec) {
    let raw = RawServer::start(&exec, "127.0.0.2:0");
    let (ip, named) = (raw.addr.to_string(), endpoint(raw.addr));
    let f = Field::open(&exec, Script::default(), None, Target::switchboard(ip.clone()));
    an_echoed_ip_is_not_followed(f, raw, ip, named).await;
}

/// The same with a port-less `IP=`: following it would keep the gateway's port, so the raw
/// switchboard listens there, on the echoed host.
async fn a_gw_ip_echoing_ip_as_host_only_is_not_followed_into_the_switchboard(exec: Exec) {
    let f = Field::open(&exec, Script::default(), None, Target::switchboard("127.0.0.2"));
    let raw = RawServer::start(&exec, &format!("127.0.0.2:{}", f.gw.addr().port()));
    let named = endpoint(raw.addr);
    an_echoed_ip_is_not_followed(f, raw, "127.0.0.2".to_owned(), named).await;
}

/// Item 3: a long poll against a gateway that answers empty polls at once spun (16 000 polls
/// in 3 s). Now it polls on the adaptive schedule, and says so.
async fn long_polls_a_gateway_never_holds_cost_no_more_than_adaptive_polling(exec: Exec) {
    let policy = Some(PollPolicy::long_poll());
    let mut f = Field::logged_on(&exec, Script::default(), policy, FIRST_ID).await;
    let start = f.now();
    f.idle(3 * MINUTE).await;
    let requests = f.gw.requests();
    // The adaptive schedule's longest wait, 4 s: 15 polls a minute.
    for minute in 1..3 {
        let from = start + minute * MINUTE;
        let n = requests_between(&requests, from, from + MINUTE);
        assert_eq!(n, 15, "minute {minute}");
    }
    assert!(requests[1..].iter().all(|r| r.kind == RequestKind::Poll && r.lifespan == Some(10)));
    assert!(f.tx.stats().unheld_polls >= 30, "{:?}", f.tx.stats());

    let pushed = f.now();
    f.gw.push(ILN.as_bytes());
    assert_eq!(f.take(1).await, [Ev::Notice(Notice::PollsHeld { held: false }), cmd(ILN)]);
    assert!(f.now() - pushed < 4 * SECOND, "{:?}", f.now() - pushed);
    let (end, gw, _) = f.close().await;
    assert_eq!(closed(&end), server_closed());
    assert_eq!(text(&gw.received()), format!("{VER}OUT\r\n"));
}

/// Against a gateway that holds polls, a long poll costs one request per lifespan idle, and a
/// pushed message leaves with the held poll's answer.
async fn long_polls_a_gateway_holds_cost_one_request_per_lifespan_and_deliver_at_once(exec: Exec) {
    let script = Script::default().quirks(Quirks { hold_polls: true, ..Quirks::default() });
    let mut f = Field::logged_on(&exec, script, Some(PollPolicy::long_poll()), FIRST_ID).await;
    let start = f.now();
    f.idle(2 * MINUTE + 5 * SECOND).await;
    let requests = f.gw.requests();
    // One poll per 10 s lifespan.
    let from = start + MINUTE;
    assert_eq!(requests_between(&requests, from, from + MINUTE), 6);
    assert!(requests[1..].iter().all(|r| r.kind == RequestKind::Poll && r.lifespan == Some(10)));
    assert_eq!(f.tx.stats().unheld_polls, 0);

    let pushed = f.now();
    f.gw.push(ILN.as_bytes());
    assert_eq!(f.take(1).await, [cmd(ILN)], "no PollsHeld notice");
    assert_eq!(f.now(), pushed, "answered at the instant of the push");
    let (end, gw, _) = f.close().await;
    assert_eq!(closed(&end), server_closed());
    assert_eq!(text(&gw.received()), format!("{VER}OUT\r\n"));
}

/// Revival gateways keep one UUID for the whole session: every request carries it, and a
/// chat of many commands, some in bursts, loses or repeats nothing.
async fn a_constant_uuid_session_id_carries_a_long_chat(exec: Exec) {
    let quirks = Quirks { session_ids: SessionIds::ConstantUuid, ..Quirks::default() };
    let mut f = Field::logged_on(&exec, Script::default().quirks(quirks), None, UUID).await;
    let (mut sent, mut arrived) = (VER.to_owned(), 1);
    for n in 0..BURSTS {
        let (commands, push) = burst(n);
        for command in &commands {
            f.tx.send(command.as_bytes()).await.unwrap();
            sent.push_str(command);
        }
        if let Some(push) = &push {
            f.gw.push(push.as_bytes());
        }
        let events = f.take(commands.len() + usize::from(push.is_some())).await;
        arrived += check_burst(n, &events, &commands, push.as_ref());
        f.idle(SECOND).await;
    }
    let (end, gw, _) = f.close().await;
    assert_eq!(closed(&end), server_closed());
    check_constant_id_chat(&gw.requests(), &gw.received(), &sent, arrived);
}

/// Item 4: after `OUT OTH` the gateway kept answering empty 200s without `Session=close`,
/// and the client polled the dead session forever.
async fn a_server_out_without_session_close_ends_the_session(exec: Exec) {
    let quirks = Quirks { close_after_server_out: false, ..Quirks::default() };
    let mut f = Field::logged_on(&exec, Script::default().quirks(quirks), None, FIRST_ID).await;
    f.idle(SECOND).await;
    f.gw.push(b"OUT OTH\r\n");
    assert_eq!(f.recv().await.map(|c| text(c.as_bytes())), Ok("OUT OTH\r\n".to_owned()));
    let Err(RecvError::Ended(end)) = f.recv().await else { panic!("the session ends") };
    assert_eq!(end.reason, CloseReason::ServerOut(OutReason::SignedInElsewhere));
    assert!(end.unsent.is_empty() && end.is_clean(), "{end:?}");
    let requests = f.gw.request_count();
    // The driver stops: nothing more goes on the wire.
    let Field { gw, tx, driver, .. } = f;
    driver.await;
    assert_eq!(gw.request_count(), requests, "no request after the OUT");
    assert!(tx.is_closed());
    assert_eq!(tx.send(CHG.as_bytes()).await, Err(SendError::Closed));
    let kinds: Vec<_> = gw.requests().iter().map(|r| r.kind).collect();
    assert!(kinds[1..].iter().all(|k| *k == RequestKind::Poll), "{kinds:?}");
    assert_eq!(text(&gw.received()), VER, "no OUT of ours after the server's");
}

/// Revival gateways answer `400` to a request after 60 s idle: three idle minutes under
/// `policy` never meet it (no two requests more than `longest_wait` apart), and the session
/// still carries a command after them.
async fn three_idle_minutes_never_meet_the_expiry(
    exec: Exec,
    policy: PollPolicy,
    quirks: Quirks,
    longest_wait: Duration,
) {
    let script = Script::default().quirks(Quirks { idle_expiry: Some(MINUTE), ..quirks });
    let mut f = Field::logged_on(&exec, script, Some(policy), FIRST_ID).await;
    f.idle(3 * MINUTE).await;
    assert!(!f.tx.is_closed(), "{policy:?}: {:?}", f.rx.end());
    let requests = f.gw.requests();
    let gap = longest_gap(&requests);
    assert!(gap <= longest_wait, "{policy:?}: a {gap:?} gap");
    assert!(requests.len() >= 3 * 5, "{policy:?}: {} requests", requests.len());
    f.tx.send(CHG.as_bytes()).await.unwrap();
    let events = f.take(1).await;
    assert_eq!(commands(&events), [CHG], "{policy:?}: {events:?}");
    let (end, gw, _) = f.close().await;
    assert_eq!(closed(&end), server_closed(), "{policy:?}");
    assert_eq!(text(&gw.received()), format!("{VER}{CHG}OUT\r\n"));
}

async fn idle_official_polls_never_meet_the_sixty_second_expiry(exec: Exec) {
    let policy = PollPolicy::official();
    three_idle_minutes_never_meet_the_expiry(exec, policy, Quirks::default(), 2 * SECOND).await;
}

async fn idle_adaptive_polls_never_meet_the_sixty_second_expiry(exec: Exec) {
    let policy = PollPolicy::adaptive();
    three_idle_minutes_never_meet_the_expiry(exec, policy, Quirks::default(), 4 * SECOND).await;
}

async fn idle_long_polls_never_meet_the_sixty_second_expiry(exec: Exec) {
    // Not held: the adaptive schedule.
    let policy = PollPolicy::long_poll();
    three_idle_minutes_never_meet_the_expiry(exec, policy, Quirks::default(), 4 * SECOND).await;
}

async fn idle_held_long_polls_never_meet_the_sixty_second_expiry(exec: Exec) {
    let holding = Quirks { hold_polls: true, ..Quirks::default() };
    let policy = PollPolicy::long_poll();
    three_idle_minutes_never_meet_the_expiry(exec, policy, holding, 10 * SECOND).await;
}

/// A strict server answers a zero-padded payload length with `500` and is wedged after it:
/// the caller is told the delivery is uncertain, then the session gives up after its retry
/// budget, in a bounded number of requests, with the cause, and hands the command back.
async fn a_malformed_payload_length_that_wedges_the_server_ends_the_session(exec: Exec) {
    let script =
        Script::default().quirks(Quirks { malformed_length_500: true, ..Quirks::default() });
    let mut f = Field::logged_on(&exec, script, None, FIRST_ID).await;
    let before = f.gw.request_count();
    f.tx.send(ZERO_PADDED.as_bytes()).await.unwrap();
    let server_error = SessionError::Remote(RemoteError::ServerError(500));
    assert_eq!(
        f.recv().await,
        Err(RecvError::DeliveryUncertain {
            kind: RequestKind::Send,
            error: server_error,
            bytes: ZERO_PADDED.len(),
        })
    );
    let start = f.now();
    let Err(RecvError::Ended(end)) = f.recv().await else { panic!("the session ends") };
    assert!(f.now() - start < 10 * SECOND, "{:?}", f.now() - start);
    check_gave_up_on_500(&end, &f.kinds(), before);
    let made = f.gw.request_count();
    let Field { gw, driver, .. } = f;
    driver.await;
    assert_eq!(gw.request_count(), made, "no request after the end");
    assert_eq!(text(&gw.received()), VER, "the backend never got the MSG");
}

/// Item 7: real servers write a reply line by line and push an unsolicited command (a
/// profile `MSG`) right after the login reply. The lines come over several answers, each
/// whole, in order, once.
async fn a_reply_written_line_by_line_with_a_push_after_the_login_arrives_whole_in_order(
    exec: Exec,
) {
    let quirks = Quirks { reply_line_gap: Some(Duration::from_millis(5)), ..Quirks::default() };
    let mut f = Field::logged_on(&exec, Script::default().quirks(quirks), None, FIRST_ID).await;
    let [usr, chg, syn] = LOGIN;
    let login = LOGIN.concat();
    let send_index = f.gw.request_count();
    f.tx.send(login.as_bytes()).await.unwrap();
    assert_eq!(f.take(1).await, [cmd(usr)], "the login reply");
    f.gw.push(PROFILE.as_bytes());
    assert_eq!(f.take(3).await, [cmd(PROFILE), cmd(chg), cmd(syn)]);
    assert!(f.gw.request_count() > send_index + 1, "the rest came with later answers");
    assert_eq!(f.kinds()[send_index], RequestKind::Send);
    let (end, gw, _) = f.close().await;
    assert_eq!(closed(&end), server_closed());
    assert_eq!(text(&gw.received()), format!("{VER}{login}OUT\r\n"));
}
