//! The gateway server over real loopback sockets, in front of a scripted MSNP server, driven
//! by raw HTTP requests written here (and once by this crate's own client). Responses are
//! checked byte for byte; session IDs come from a fixed seed.
//!
//! # Time
//!
//! Most of these exchanges are driven by I/O alone, and run on the real clock: nothing waits
//! for a timer, and [`until`] polls for a condition (bounded), never for a duration. Where a
//! deadline is the point (the shutdown grace, the idle timeout), the test pauses tokio's clock
//! once no bytes are in flight, so the deadline passes at once. The paused clock is not used
//! while bytes are in flight: it jumps whenever the runtime idles, and on a busy machine the
//! kernel can take long enough to deliver loopback bytes that seconds of fake time pass first
//! (enough for the core's `reply_wait` or a `Lifespan` to run out).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, CloseReason, PollPolicy, Target};
use msn_http_core::gateway::{
    Action, BackendAllowlist, ConnectionId, Gateway, GatewayConfig, MsnpPorts, Transmit,
};
use msn_http_testkit::{
    Answers, assert_rotated as rotated, gateway_post, ok_answer as ok, session_id,
};
use msn_http_tokio::Client;
use msn_http_tokio::gateway::{GatewayHandle, GatewayServer, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Bounds on every loop that waits for the other side.
const MAX_READS: usize = 10_000;
/// How often [`until`] looks, and how many times.
const POLL_EVERY: Duration = Duration::from_millis(1);
const MAX_LOOKS: usize = 10_000;

const SEED: [u8; 32] = [7; 32];
const VER: &str = "VER 1 MSNP8 CVR0\r\n";
const VER_REPLY: &str = "VER 1 MSNP8 CVR0\r\n";
const CVR: &str = "CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 6.0.0602 MSMSGS alice@example.com\r\n";
const CVR_REPLY: &str =
    "CVR 2 6.0.0602 6.0.0602 6.0.0602 http://download.example/ http://www.example/\r\n";
const USR: &str = "USR 3 TWN I alice@example.com\r\n";
const USR_REPLY: &str = "USR 3 OK alice@example.com Alice\r\n";
const PUSHED: &str = "MSG Hotmail Hotmail 5\r\nhello";
const BAD_REQUEST: &str = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
const FORBIDDEN: &str = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";

/// Waits (bounded) until `ready` holds.
async fn until(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..MAX_LOOKS {
        if ready() {
            return;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    panic!("gave up waiting for {what}");
}

// ---------------------------------------------------------------------------------------------
// The scripted MSNP server

enum Control {
    Push(Vec<u8>),
    /// Push these bytes, then hang up.
    PushAndClose(Vec<u8>),
}

#[derive(Default)]
struct BackendState {
    /// Bytes each connection received, in accept order.
    received: Vec<Vec<u8>>,
    /// Whether each connection has ended.
    ended: Vec<bool>,
    controls: Vec<mpsc::UnboundedSender<Control>>,
}

/// Which MSNP server a [`Backend`] plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// A notification server: a switchboard `USR` (user and ticket) gets `911`, as from a real
    /// NS.
    Notification,
    /// A switchboard: welcomes the switchboard `USR`.
    Switchboard,
}

/// Ways real MSNP servers behave, one switch each.
#[derive(Clone, Copy, Debug)]
struct Quirks {
    /// Write each command of a reply on its own, this long after the one before.
    line_gap: Option<Duration>,
    /// Push a profile `MSG` right after `USR ... OK`, unasked, as a notification server does.
    profile_after_login: bool,
    /// Hang up after the client's `OUT` (real servers do); otherwise stay connected.
    close_after_out: bool,
}

impl Default for Quirks {
    fn default() -> Self {
        Self { line_gap: None, profile_after_login: false, close_after_out: true }
    }
}

/// The profile a notification server pushes after a login.
const PROFILE: &str = "MSG Hotmail Hotmail 79\r\nMIME-Version: 1.0\r\nContent-Type: text/x-msmsgsprofile; charset=UTF-8\r\nkv: 1\r\n\r\n";

/// Answers `VER`, `CVR` and `USR`, hangs up on `OUT`, and pushes what the test says.
struct Backend {
    addr: SocketAddr,
    state: Arc<Mutex<BackendState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    async fn start_as(role: Role) -> Backend {
        Self::start_with(role, Quirks::default()).await
    }

    async fn start_with(role: Role, quirks: Quirks) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(BackendState::default()));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            for index in 0..100 {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (control, controls) = mpsc::unbounded_channel();
                {
                    let mut s = shared.lock().unwrap();
                    s.received.push(Vec::new());
                    s.ended.push(false);
                    s.controls.push(control);
                }
                tokio::spawn(serve_msnp(
                    socket,
                    role,
                    quirks,
                    index,
                    controls,
                    Arc::clone(&shared),
                ));
            }
        });
        Backend { addr, state, task }
    }

    fn lock(&self) -> MutexGuard<'_, BackendState> {
        self.state.lock().unwrap()
    }

    fn connections(&self) -> usize {
        self.lock().received.len()
    }

    fn received(&self, index: usize) -> String {
        String::from_utf8_lossy(&self.lock().received[index]).into_owned()
    }

    fn ended(&self, index: usize) -> bool {
        self.lock().ended[index]
    }

    fn control(&self, index: usize, control: Control) {
        self.lock().controls[index].send(control).unwrap();
    }
}

fn reply(role: Role, line: &str) -> Option<String> {
    let mut words = line.split(' ');
    let (name, trid) = (words.next()?, words.next().unwrap_or("0"));
    let switchboard_usr = name == "USR" && line.split(' ').count() == 4;
    match name {
        "USR" if switchboard_usr && role == Role::Notification => Some(format!("911 {trid}\r\n")),
        "VER" => Some(format!("VER {trid} MSNP8 CVR0\r\n")),
        "CVR" => Some(format!(
            "CVR {trid} 6.0.0602 6.0.0602 6.0.0602 http://download.example/ http://www.example/\r\n"
        )),
        "USR" => Some(format!("USR {trid} OK alice@example.com Alice\r\n")),
        _ => None,
    }
}

async fn serve_msnp(
    mut socket: TcpStream,
    role: Role,
    quirks: Quirks,
    index: usize,
    mut controls: mpsc::UnboundedReceiver<Control>,
    state: Arc<Mutex<BackendState>>,
) {
    let mut pending = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..MAX_READS {
        tokio::select! {
            read = socket.read(&mut chunk) => {
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                state.lock().unwrap().received[index].extend_from_slice(&chunk[..n]);
                pending.extend_from_slice(&chunk[..n]);
                let mut out = String::new();
                let mut hang_up = false;
                while let Some(end) = pending.windows(2).position(|w| w == b"\r\n") {
                    let line: Vec<u8> = pending.drain(..end + 2).collect();
                    let line = String::from_utf8_lossy(&line[..end]).into_owned();
                    if line == "OUT" {
                        hang_up = quirks.close_after_out;
                        break;
                    }
                    if let Some(answer) = reply(role, &line) {
                        if quirks.profile_after_login && answer.contains(" OK alice") {
                            out.push_str(&answer);
                            out.push_str(PROFILE);
                        } else {
                            out.push_str(&answer);
                        }
                    }
                }
                if write_reply(&mut socket, &out, quirks.line_gap).await.is_err() || hang_up {
                    break;
                }
            }
            control = controls.recv() => match control {
                Some(Control::Push(bytes)) => {
                    if socket.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                Some(Control::PushAndClose(bytes)) => {
                    let _ = socket.write_all(&bytes).await;
                    break;
                }
                None => break,
            },
        }
    }
    state.lock().unwrap().ended[index] = true;
}

/// Writes `reply` at once, or (with a `line_gap`) each command on its own after that gap, as
/// real servers do. Commands here are lines, but for the profile `MSG` and its payload.
async fn write_reply(
    socket: &mut TcpStream,
    reply: &str,
    line_gap: Option<Duration>,
) -> std::io::Result<()> {
    let Some(gap) = line_gap else {
        return socket.write_all(reply.as_bytes()).await;
    };
    let mut rest = reply;
    while !rest.is_empty() {
        let line = rest.find("\r\n").map_or(rest.len(), |at| at + 2);
        let length = rest[..line].trim_end().rsplit(' ').next().and_then(|n| n.parse().ok());
        let payload = if rest.starts_with("MSG ") { length.unwrap_or(0) } else { 0 };
        let (now, later) = rest.split_at((line + payload).min(rest.len()));
        tokio::time::sleep(gap).await;
        socket.write_all(now.as_bytes()).await?;
        rest = later;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The gateway and raw HTTP

struct Setup {
    backend: Backend,
    handle: GatewayHandle,
    config: GatewayConfig,
    /// The gateway's address, which is also its `GW-IP`.
    gw: String,
}

async fn setup(tweak: impl FnOnce(&mut GatewayConfig, &mut ServerOptions)) -> Setup {
    setup_with(Quirks::default(), tweak).await
}

async fn setup_with(
    quirks: Quirks,
    tweak: impl FnOnce(&mut GatewayConfig, &mut ServerOptions),
) -> Setup {
    let backend = Backend::start_with(Role::Notification, quirks).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = listener.local_addr().unwrap().to_string();
    let route = Endpoint::parse(&backend.addr.to_string(), 1863).unwrap();
    let backends = BackendAllowlist::new().route("messenger.test", None, route);
    let mut config = GatewayConfig::new(gw.clone(), SEED).with_backends(backends);
    let mut options = ServerOptions::default();
    tweak(&mut config, &mut options);
    let server =
        GatewayServer::from_listener(listener, config.clone()).unwrap().with_options(options);
    assert_eq!(server.gw_ip(), gw);
    Setup { backend, handle: server.spawn(), config, gw }
}

/// A raw HTTP/1.1 connection.
struct Http {
    stream: TcpStream,
    answers: Answers,
    host: String,
}

impl Http {
    async fn connect(gw: &str) -> Http {
        let stream = TcpStream::connect(gw).await.unwrap();
        Http { stream, answers: Answers::default(), host: gw.to_owned() }
    }

    fn request(&self, query: &str, body: &str) -> Vec<u8> {
        gateway_post(&self.host, query, body)
    }

    async fn send(&mut self, query: &str, body: &str) {
        let request = self.request(query, body);
        self.send_raw(&request).await;
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next whole response, as it came off the wire.
    async fn response(&mut self) -> String {
        let stream = &mut self.stream;
        self.answers.read_answer(async |buf: &mut [u8]| stream.read(buf).await).await
    }

    async fn exchange(&mut self, query: &str, body: &str) -> String {
        self.send(query, body).await;
        self.response().await
    }

    /// Whether the gateway closed the connection (with nothing more to read).
    async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        matches!(self.stream.read(&mut chunk).await, Ok(0) | Err(_)) && self.answers.is_empty()
    }
}

/// The body of a response.
fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// What the core, seeded like the server, answers to `request` when the backend replies
/// `reply`: the server's first answer must be this, byte for byte.
fn first_answer_from_the_core(config: &GatewayConfig, request: &[u8], reply: &[u8]) -> String {
    let now = Instant::now();
    let mut gw = Gateway::new(config.clone(), now).unwrap();
    gw.handle_accept(now, ConnectionId(1)).unwrap();
    gw.handle_client_input(now, ConnectionId(1), request);
    let mut out = Vec::new();
    assert_eq!(gw.poll_transmit(now, &mut out), None);
    let Some(Action::Connect { backend, .. }) = gw.poll_action() else {
        panic!("the core connects the backend");
    };
    gw.handle_backend_connected(now, backend);
    assert!(matches!(gw.poll_transmit(now, &mut out), Some(Transmit::Backend { .. })));
    gw.handle_backend_input(now, backend, reply);
    // Answered once the backend has been quiet for the gap.
    let quiet = now + config.reply_quiet_gap;
    assert_eq!(gw.poll_timeout(), Some(quiet));
    gw.handle_timeout(quiet);
    out.clear();
    let answer = gw.poll_transmit(quiet, &mut out);
    assert!(matches!(answer, Some(Transmit::Client { close: false, .. })));
    String::from_utf8(out).unwrap()
}

const OPEN_NS: &str = "Action=open&Server=NS&IP=messenger.test";

/// Waits until the server has received `n` whole requests (so the last one is being held).
async fn requests_received(handle: &GatewayHandle, n: u64) {
    until("the request to arrive", || handle.stats().core.requests == n).await;
}

/// Waits until connecting to `gw` is refused.
async fn refused(gw: &str) {
    for _ in 0..MAX_LOOKS {
        if TcpStream::connect(gw).await.is_err() {
            return;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    panic!("the listener stayed open");
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn open_poll_send_push_and_out_over_raw_http() {
    let Setup { backend, handle, config, gw } = setup(|_, _| {}).await;
    let mut c = Http::connect(&gw).await;

    // The open carries VER; its answer carries the backend's reply.
    let open = c.request(OPEN_NS, VER);
    let first = c.exchange(OPEN_NS, VER).await;
    let expected = first_answer_from_the_core(&config, &open, VER_REPLY.as_bytes());
    assert_eq!(first, expected, "the seed given is the seed used");
    let id1 = session_id(&first);
    assert_eq!(first, ok(&id1, &gw, VER_REPLY, false));
    assert_eq!(backend.received(0), VER);

    // An empty poll: nothing queued, a new ID.
    let second = c.exchange(&format!("Action=poll&SessionID={id1}"), "").await;
    let id2 = session_id(&second);
    rotated(&id1, &id2);
    assert_eq!(second, ok(&id2, &gw, "", false));

    // A send is held for the backend's reply, which comes back in the same response.
    let third = c.exchange(&format!("SessionID={id2}"), CVR).await;
    let id3 = session_id(&third);
    rotated(&id2, &id3);
    assert_eq!(third, ok(&id3, &gw, CVR_REPLY, false));

    // A long poll is answered as soon as the backend pushes a message.
    c.send(&format!("Action=poll&SessionID={id3}&Lifespan=30"), "").await;
    requests_received(&handle, 4).await;
    let start = tokio::time::Instant::now();
    backend.control(0, Control::Push(PUSHED.as_bytes().to_vec()));
    let fourth = c.response().await;
    assert!(start.elapsed() < Duration::from_secs(10), "answered by the push");
    let id4 = session_id(&fourth);
    rotated(&id3, &id4);
    assert_eq!(fourth, ok(&id4, &gw, PUSHED, false));

    // OUT: the backend gets it and hangs up, the client gets `Session=close`.
    let fifth = c.exchange(&format!("SessionID={id4}"), "OUT\r\n").await;
    let id5 = session_id(&fifth);
    assert_eq!(fifth, ok(&id5, &gw, "", true));
    until("the backend to see OUT", || backend.ended(0)).await;
    assert_eq!(backend.received(0), format!("{VER}{CVR}OUT\r\n"));
    // The session is gone; the connection is still good.
    let after = c.exchange(&format!("Action=poll&SessionID={id5}"), "").await;
    assert_eq!(after, BAD_REQUEST);

    // A client that hangs up spares the server its linger on close.
    drop(c);
    let stats = handle.shutdown().await.unwrap();
    assert_eq!(stats.core.sessions_opened, 1);
    assert_eq!(stats.core.sessions_ended, 1);
    assert_eq!(stats.core.requests, 6);
    assert_eq!(stats.core.responses, 5);
    assert_eq!(stats.core.error_responses, 1);
    assert_eq!(stats.connections_accepted, 1);
    assert_eq!(stats.backend_connects, 1);
    assert_eq!(stats.sessions, 0);
    assert_eq!(stats.core.bytes_to_backends, (VER.len() + CVR.len() + 5) as u64);
}

#[tokio::test]
async fn a_second_request_in_flight_gets_400_and_ends_the_session() {
    let Setup { backend, handle, gw, .. } = setup(|_, _| {}).await;
    let mut a = Http::connect(&gw).await;
    let mut b = Http::connect(&gw).await;
    let id1 = session_id(&a.exchange(OPEN_NS, VER).await);

    let poll = format!("Action=poll&SessionID={id1}&Lifespan=30");
    a.send(&poll, "").await;
    requests_received(&handle, 2).await;
    assert_eq!(b.exchange(&poll, "").await, BAD_REQUEST);
    // The held poll is answered at once, and it is the session's last answer.
    let last = a.response().await;
    let id2 = session_id(&last);
    rotated(&id1, &id2);
    assert_eq!(last, ok(&id2, &gw, "", true));
    until("the backend connection to close", || backend.ended(0)).await;
    let after = a.exchange(&format!("Action=poll&SessionID={id2}"), "").await;
    assert_eq!(after, BAD_REQUEST);

    let stats = handle.stats();
    assert_eq!(stats.core.concurrent_requests, 1);
    assert_eq!(stats.sessions, 0);
    assert_eq!(stats.backend_connections, 0);
    drop((a, b));
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_open_for_a_backend_outside_the_allowlist_gets_403() {
    let Setup { backend, handle, gw, .. } = setup(|_, _| {}).await;
    let mut c = Http::connect(&gw).await;
    let evil = "Action=open&Server=NS&IP=evil.example.net";
    assert_eq!(c.exchange(evil, VER).await, FORBIDDEN);
    // The backend's real address is not on the list either: only the routed name is.
    let direct = format!("Action=open&Server=NS&IP={}", backend.addr);
    assert_eq!(c.exchange(&direct, VER).await, FORBIDDEN);
    // Refusals keep the connection; an allowed open on it works.
    let answer = c.exchange(OPEN_NS, VER).await;
    assert_eq!(answer, ok(&session_id(&answer), &gw, VER_REPLY, false));
    assert_eq!(backend.connections(), 1, "nothing was opened for the refused ones");

    let stats = handle.stats();
    assert_eq!(stats.core.refused_backends, 2);
    assert_eq!(stats.core.error_responses, 2);
    assert_eq!(stats.sessions, 1);
    drop(c);
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_and_stale_session_ids_get_400() {
    let Setup { backend: _backend, handle, gw, .. } = setup(|_, _| {}).await;
    let mut c = Http::connect(&gw).await;
    for id in ["123.456", "ee242912-db5a-4b93-bc49-d615b0fa7965"] {
        let answer = c.exchange(&format!("Action=poll&SessionID={id}"), "").await;
        assert_eq!(answer, BAD_REQUEST, "{id}");
    }
    let id1 = session_id(&c.exchange(OPEN_NS, VER).await);
    let id2 = session_id(&c.exchange(&format!("Action=poll&SessionID={id1}"), "").await);
    // The previous ID is stale...
    let stale = c.exchange(&format!("Action=poll&SessionID={id1}"), "").await;
    assert_eq!(stale, BAD_REQUEST);
    // ... but the session lives on under the latest one.
    let fresh = c.exchange(&format!("Action=poll&SessionID={id2}"), "").await;
    let id3 = session_id(&fresh);
    rotated(&id2, &id3);
    assert_eq!(fresh, ok(&id3, &gw, "", false));

    drop(c);
    let stats = handle.shutdown().await.unwrap();
    assert_eq!(stats.core.unknown_session_ids, 3);
    assert_eq!(stats.core.error_responses, 3);
}

#[tokio::test]
async fn a_backend_that_hangs_up_ends_the_session_with_session_close() {
    let Setup { backend, handle, gw, .. } = setup(|_, _| {}).await;
    let mut c = Http::connect(&gw).await;
    let id1 = session_id(&c.exchange(OPEN_NS, VER).await);
    backend.control(0, Control::PushAndClose(b"OUT OTH\r\n".to_vec()));
    until("the gateway to see the hang-up", || handle.stats().backend_hangups == 1).await;

    let last = c.exchange(&format!("Action=poll&SessionID={id1}"), "").await;
    let id2 = session_id(&last);
    assert_eq!(last, ok(&id2, &gw, "OUT OTH\r\n", true));
    let after = c.exchange(&format!("Action=poll&SessionID={id2}"), "").await;
    assert_eq!(after, BAD_REQUEST);

    drop(c);
    let stats = handle.shutdown().await.unwrap();
    assert_eq!(stats.core.sessions_ended, 1);
    assert_eq!(stats.backend_connections, 0);
}

#[tokio::test]
async fn a_paused_backend_loses_no_bytes() {
    let Setup { backend, handle, gw, .. } = setup(|config, _| {
        config.max_queued_bytes = 1024;
        config.max_response_body_bytes = 256;
    })
    .await;
    let mut c = Http::connect(&gw).await;
    let mut id = session_id(&c.exchange(OPEN_NS, VER).await);

    let mut pushed = String::new();
    for i in 0..200 {
        let payload = format!("message number {i:05}");
        pushed.push_str(&format!("MSG Hotmail Hotmail {}\r\n{payload}", payload.len()));
    }
    backend.control(0, Control::Push(pushed.clone().into_bytes()));
    // All of it reached the gateway, most of it kept while the backend is paused.
    until("the backend to be paused", || handle.stats().core.backend_pauses >= 1).await;

    let mut got = String::new();
    for _ in 0..MAX_LOOKS {
        if got.len() >= pushed.len() {
            break;
        }
        let answer = c.exchange(&format!("Action=poll&SessionID={id}"), "").await;
        let next = session_id(&answer);
        let part = body(&answer);
        assert_eq!(answer, ok(&next, &gw, part, false));
        assert!(part.len() <= 256, "{}", part.len());
        assert!(
            part.starts_with("MSG ") && pushed[got.len()..].starts_with(part),
            "answers hold whole commands, in order: {part:?}"
        );
        got.push_str(part);
        id = next;
    }
    assert_eq!(got, pushed, "every byte arrived, once, in order");

    drop(c);
    let stats = handle.shutdown().await.unwrap();
    assert!(stats.core.backend_pauses >= 2, "{stats:?}");
    assert_eq!(stats.core.bytes_from_backends, (VER_REPLY.len() + pushed.len()) as u64);
}

#[tokio::test]
async fn graceful_shutdown_lets_the_answer_in_flight_finish_and_closes_the_rest() {
    let Setup { backend, handle, gw, .. } = setup(|_, _| {}).await;
    let mut busy = Http::connect(&gw).await;
    let mut idle = Http::connect(&gw).await;
    let id1 = session_id(&busy.exchange(OPEN_NS, VER).await);
    let unknown = idle.exchange("Action=poll&SessionID=1.1", "").await;
    assert_eq!(unknown, BAD_REQUEST);

    // A long poll is in flight when the shutdown begins.
    busy.send(&format!("Action=poll&SessionID={id1}&Lifespan=30"), "").await;
    requests_received(&handle, 3).await;
    let stopping = tokio::spawn(handle.shutdown());

    // Idle keep-alive connections are closed, and no new connection is taken...
    assert!(idle.closed().await, "the idle connection is closed");
    drop(idle);
    refused(&gw).await;
    // ... but the poll in flight is answered (here by a message), then its connection closed.
    backend.control(0, Control::Push(PUSHED.as_bytes().to_vec()));
    let answer = busy.response().await;
    assert_eq!(answer, ok(&session_id(&answer), &gw, PUSHED, false));
    assert!(busy.closed().await);
    drop(busy);

    let stats = stopping.await.unwrap().unwrap();
    assert!(stats.shutting_down);
    assert_eq!(stats.core.responses, 2);
    assert_eq!(stats.connections_accepted, 2);
    assert_eq!(stats.client_connections, 0);
    assert_eq!(stats.backend_connections, 0);
    until("the backend connection to close", || backend.ended(0)).await;
}

#[tokio::test]
async fn graceful_shutdown_gives_up_on_requests_in_flight_at_its_deadline() {
    let grace = Duration::from_secs(5);
    let Setup { backend, handle, gw, .. } =
        setup(|_, options| options.shutdown_grace = grace).await;
    let mut busy = Http::connect(&gw).await;
    let id1 = session_id(&busy.exchange(OPEN_NS, VER).await);
    busy.send(&format!("Action=poll&SessionID={id1}&Lifespan=30"), "").await;
    requests_received(&handle, 2).await;

    // Nothing is in flight on the wire now: let the clock jump to the deadline.
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    let stats = handle.shutdown().await.unwrap();
    let waited = start.elapsed();
    assert!(waited >= grace && waited < grace * 2, "{waited:?}");
    assert_eq!(stats.core.responses, 1, "the held poll was never answered");
    tokio::time::resume();

    assert!(busy.closed().await, "closed without an answer");
    until("the backend connection to close", || backend.ended(0)).await;
}

#[tokio::test]
async fn an_idle_session_expires_and_its_backend_is_closed() {
    let Setup { backend, handle, config, gw } = setup(|_, _| {}).await;
    let mut c = Http::connect(&gw).await;
    let id1 = session_id(&c.exchange(OPEN_NS, VER).await);

    // No bytes in flight: jump past the idle timeout.
    tokio::time::pause();
    tokio::time::sleep(config.idle_timeout + Duration::from_secs(1)).await;
    assert_eq!(handle.stats().core.sessions_expired, 1);
    tokio::time::resume();

    until("the backend connection to close", || backend.ended(0)).await;
    let after = c.exchange(&format!("Action=poll&SessionID={id1}"), "").await;
    assert_eq!(after, BAD_REQUEST);
    drop(c);
    let stats = handle.shutdown().await.unwrap();
    assert_eq!(stats.sessions, 0);
    assert_eq!(stats.backend_connections, 0);
}

#[tokio::test]
async fn the_crate_client_talks_through_the_server() {
    let Setup { backend, handle, gw, .. } = setup(|_, _| {}).await;
    let mut config = ClientConfig::new(Endpoint::parse(&gw, 80).unwrap());
    config.poll_policy = PollPolicy::Official { interval: Duration::from_millis(20) };
    let mut client = Client::open(config, Target::notification("messenger.test")).unwrap();

    for (command, answer) in [(VER, VER_REPLY), (CVR, CVR_REPLY), (USR, USR_REPLY)] {
        client.send(command.as_bytes()).await.unwrap();
        let got = client.recv().await.expect("an answer");
        assert_eq!(String::from_utf8_lossy(got.as_bytes()), answer);
    }
    // Server-initiated: arrives with a poll.
    backend.control(0, Control::Push(PUSHED.as_bytes().to_vec()));
    let got = client.recv().await.expect("the pushed message");
    assert_eq!(String::from_utf8_lossy(got.as_bytes()), PUSHED);

    let end = client.close().await;
    assert!(end.is_clean(), "{:?}", end.reason);
    assert!(
        matches!(end.reason, CloseReason::ServerClosed | CloseReason::LocalClose),
        "{:?}",
        end.reason
    );
    until("the backend to see OUT", || backend.ended(0)).await;
    assert_eq!(backend.received(0), format!("{VER}{CVR}{USR}OUT\r\n"));

    let stats = handle.shutdown().await.unwrap();
    assert_eq!(stats.core.sessions_opened, 1);
    assert_eq!(stats.core.sessions_ended, 1);
    assert!(stats.core.responses >= 5, "{stats:?}");
}

#[tokio::test]
async fn pipelined_requests_for_two_sessions_are_answered_in_order() {
    let Setup { backend: _backend, handle, gw, .. } = setup(|_, _| {}).await;
    let mut c = Http::connect(&gw).await;
    let a1 = session_id(&c.exchange(OPEN_NS, VER).await);
    let b1 = session_id(&c.exchange(OPEN_NS, VER).await);
    assert_ne!(a1.split('.').next(), b1.split('.').next());

    // Both polls in one write: one connection carries many sessions.
    let mut both = c.request(&format!("Action=poll&SessionID={a1}"), "");
    both.extend(c.request(&format!("SessionID={b1}"), CVR));
    c.send_raw(&both).await;
    let first = c.response().await;
    let second = c.response().await;
    let (a2, b2) = (session_id(&first), session_id(&second));
    rotated(&a1, &a2);
    rotated(&b1, &b2);
    assert_eq!(first, ok(&a2, &gw, "", false));
    assert_eq!(second, ok(&b2, &gw, CVR_REPLY, false));

    drop(c);
    let stats = handle.shutdown().await.unwrap();
    assert_eq!(stats.core.sessions_opened, 2);
    assert_eq!(stats.core.responses, 4);
}

#[tokio::test]
async fn connection_close_is_honoured_after_the_answer() {
    let Setup { backend: _backend, handle, gw, .. } = setup(|_, _| {}).await;
    let mut c = Http::connect(&gw).await;
    let request = format!(
        "POST /gateway/gateway.dll?Action=poll&SessionID=1.1 HTTP/1.1\r\nHost: {gw}\r\n\
         Connection: close\r\nContent-Length: 0\r\n\r\n"
    );
    c.send_raw(request.as_bytes()).await;
    assert_eq!(
        c.response().await,
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    assert!(c.closed().await, "closed after the answer");
    drop(c);
    until("the server to forget the connection", || handle.stats().client_connections == 0).await;
    handle.shutdown().await.unwrap();
}

/// The NS and the SB of one host, both opened with the port stripped (`IP=127.0.0.1`, as real
/// clients do), each reach the MSNP port of their kind under a plain `allow` of the host.
/// Before, the SB open went to the NS, which answered its `USR` with `911`.
#[tokio::test]
async fn port_less_ns_and_sb_opens_of_one_host_reach_their_own_servers() {
    let ns = Backend::start_as(Role::Notification).await;
    let sb = Backend::start_as(Role::Switchboard).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = listener.local_addr().unwrap().to_string();
    let backends = BackendAllowlist::new().allow("127.0.0.1", None);
    let mut config = GatewayConfig::new(gw.clone(), SEED).with_backends(backends);
    config.msnp_ports = MsnpPorts { notification: ns.addr.port(), switchboard: sb.addr.port() };
    let handle = GatewayServer::from_listener(listener, config).unwrap().spawn();

    let mut c = Http::connect(&gw).await;
    let first = c.exchange("Action=open&Server=NS&IP=127.0.0.1", VER).await;
    assert_eq!(first, ok(&session_id(&first), &gw, VER_REPLY, false));
    let usr = "USR 1 alice@example.com 17262740.1050826919.32308\r\n";
    let joined = c.exchange("Action=open&Server=SB&IP=127.0.0.1", usr).await;
    let welcome = "USR 1 OK alice@example.com Alice\r\n";
    assert_eq!(joined, ok(&session_id(&joined), &gw, welcome, false));
    assert_eq!((ns.received(0), sb.received(0)), (VER.to_owned(), usr.to_owned()));
    assert_eq!((ns.connections(), sb.connections()), (1, 1));
    drop(c);
    handle.shutdown().await.unwrap();
}

/// A server that writes each reply line on its own, a few milliseconds apart, and pushes its
/// profile `MSG` right after `USR ... OK`: every request of the login is answered with its
/// whole reply (the profile with the `USR`), none left for a poll. The gateway answers once
/// the backend has been quiet for `reply_quiet_gap` (generous here: the machine may be busy).
/// A server that stays after `OUT` is closed by the gateway.
#[tokio::test]
async fn a_login_written_line_by_line_comes_back_whole_in_each_answer() {
    let quirks = Quirks {
        line_gap: Some(Duration::from_millis(5)),
        profile_after_login: true,
        close_after_out: false,
    };
    let Setup { backend, handle, gw, .. } = setup_with(quirks, |config, _| {
        config.reply_wait = Duration::from_secs(10);
        config.reply_quiet_gap = Duration::from_millis(300);
    })
    .await;
    let mut c = Http::connect(&gw).await;
    let first = c.exchange(OPEN_NS, VER).await;
    let mut id = session_id(&first);
    assert_eq!(first, ok(&id, &gw, VER_REPLY, false));
    let login = format!("{USR_REPLY}{PROFILE}");
    for (command, reply) in [(CVR, CVR_REPLY), (USR, login.as_str())] {
        let answer = c.exchange(&format!("SessionID={id}"), command).await;
        let next = session_id(&answer);
        assert_eq!(answer, ok(&next, &gw, reply, false));
        id = next;
    }
    let last = c.exchange(&format!("SessionID={id}"), "OUT\r\n").await;
    assert_eq!(last, ok(&session_id(&last), &gw, "", true));
    until("the gateway to close the backend", || backend.ended(0)).await;
    drop(c);
    let stats = handle.shutdown().await.unwrap();
    assert_eq!(stats.core.requests, 4, "no poll was needed");
}
