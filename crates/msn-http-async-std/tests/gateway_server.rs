//! The gateway server on async-io, over real loopback sockets, on both executors (async-std's
//! thread pool and a one-thread smol executor): sessions opened to an echoing MSNP backend,
//! polls, pipelining, the allowlist, the graceful shutdown and a client that never reads.
//! Every wait is bounded; the clock is the real one, so deadlines here are short.

/// Only the executors of the adapter's test support: the server needs no fake gateway.
#[allow(dead_code, unreachable_pub)]
mod support {
    pub mod exec;
}

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use async_io::{Async, Timer};
use futures_lite::{AsyncReadExt, AsyncWriteExt, future};
use msn_http_async_std::gateway::{GatewayHandle, GatewayServer, ServerOptions, ServerStats};
use msn_http_core::Endpoint;
use msn_http_core::gateway::{BackendAllowlist, GatewayConfig};
use msn_http_testkit::{
    Answers, assert_rotated as rotated, gateway_post, ok_answer as ok, session_id,
};
use support::exec::Exec;

/// Bounds on every loop that waits for the other side.
const MAX_READS: usize = 10_000;
/// How often [`until`] looks, and for how long at most.
const LOOK_EVERY: Duration = Duration::from_millis(2);
const SOON: Duration = Duration::from_secs(20);

const SEED: [u8; 32] = [3; 32];
const OPEN_NS: &str = "Action=open&Server=NS&IP=messenger.test";
const VER: &str = "VER 1 MSNP8 CVR0\r\n";
const CVR: &str = "CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 6.0.0602 MSMSGS alice@example.com\r\n";
const PUSHED: &str = "MSG Hotmail Hotmail 5\r\nhello";
const FORBIDDEN: &str = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";

/// Waits (bounded) until `ready` holds.
async fn until(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < SOON, "gave up waiting for {what}");
        Timer::after(LOOK_EVERY).await;
    }
}

/// An MSNP backend that echoes every byte it gets back, and writes what the test pushes.
struct EchoBackend {
    addr: SocketAddr,
    push: Sender<Vec<u8>>,
    /// Every byte received, over all connections.
    received: Arc<Mutex<Vec<u8>>>,
}

impl EchoBackend {
    fn start(exec: &Exec) -> Self {
        let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
        let addr = listener.get_ref().local_addr().unwrap();
        let (push, pushed) = async_channel::unbounded();
        let received = Arc::new(Mutex::new(Vec::new()));
        let (task_exec, seen) = (exec.clone(), Arc::clone(&received));
        drop(exec.spawn(async move {
            for _ in 0..MAX_READS {
                let Ok((stream, _)) = listener.accept().await else { return };
                drop(task_exec.spawn(echo(stream, pushed.clone(), Arc::clone(&seen))));
            }
        }));
        Self { addr, push, received }
    }

    fn received(&self) -> String {
        String::from_utf8(self.received.lock().unwrap().clone()).unwrap()
    }
}

/// What the backend's connection got first: bytes from the gateway, or bytes to push.
enum Input {
    Read(io::Result<usize>),
    Push(Option<Vec<u8>>),
}

async fn echo(mut stream: Async<TcpStream>, pushed: Receiver<Vec<u8>>, seen: Arc<Mutex<Vec<u8>>>) {
    let mut buf = vec![0u8; 4096];
    for _ in 0..MAX_READS {
        let input = future::or(async { Input::Read(stream.read(&mut buf).await) }, async {
            Input::Push(pushed.recv().await.ok())
        })
        .await;
        let reply = match input {
            Input::Read(Ok(0) | Err(_)) | Input::Push(None) => return,
            Input::Read(Ok(n)) => {
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
                buf[..n].to_vec()
            }
            Input::Push(Some(bytes)) => bytes,
        };
        if stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// A gateway server in front of an [`EchoBackend`], spawned on the test's executor.
struct Setup {
    backend: EchoBackend,
    handle: GatewayHandle,
    gw: String,
}

fn setup(exec: &Exec, tweak: impl FnOnce(&mut GatewayConfig, &mut ServerOptions)) -> Setup {
    let backend = EchoBackend::start(exec);
    let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
    let gw = listener.get_ref().local_addr().unwrap().to_string();
    let route = Endpoint::parse(&backend.addr.to_string(), 1863).unwrap();
    let backends = BackendAllowlist::new().route("messenger.test", None, route);
    let mut config = GatewayConfig::new(gw.clone(), SEED).with_backends(backends);
    let mut options = ServerOptions::default();
    tweak(&mut config, &mut options);
    let server = GatewayServer::from_listener(listener, config).unwrap().with_options(options);
    assert_eq!(server.gw_ip(), gw);
    let spawner = exec.clone();
    let handle = server.spawn(move |task| drop(spawner.spawn(task)));
    Setup { backend, handle, gw }
}

/// A raw HTTP/1.1 connection to the gateway.
struct Http {
    stream: Async<TcpStream>,
    answers: Answers,
    host: String,
}

impl Http {
    async fn connect(gw: &str) -> Http {
        let stream = Async::<TcpStream>::connect(gw.parse::<SocketAddr>().unwrap()).await.unwrap();
        Http { stream, answers: Answers::default(), host: gw.to_owned() }
    }

    fn request(&self, query: &str, body: &str) -> Vec<u8> {
        gateway_post(&self.host, query, body)
    }

    async fn send(&mut self, query: &str, body: &str) {
        let request = self.request(query, body);
        self.stream.write_all(&request).await.unwrap();
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

    /// Whether the gateway closed the connection, with nothing more to read.
    async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        matches!(self.stream.read(&mut chunk).await, Ok(0) | Err(_)) && self.answers.is_empty()
    }
}

/// Waits until the server has received `n` whole requests (so the last one is being held).
async fn requests_received(handle: &GatewayHandle, n: u64) {
    until("the request to arrive", || handle.stats().core.requests == n).await;
}

// ---------------------------------------------------------------------------------------------
// Tests

async fn open_poll_send_and_push_through_an_echo_backend(exec: Exec) {
    let Setup { backend, handle, gw } = setup(&exec, |_, _| {});
    let mut c = Http::connect(&gw).await;

    // The open carries VER to the backend; its answer carries the echo.
    let first = c.exchange(OPEN_NS, VER).await;
    let id1 = session_id(&first);
    assert_eq!(first, ok(&id1, &gw, VER, false));

    // An empty poll: nothing queued, a new ID.
    let second = c.exchange(&format!("Action=poll&SessionID={id1}"), "").await;
    let id2 = session_id(&second);
    rotated(&id1, &id2);
    assert_eq!(second, ok(&id2, &gw, "", false));

    // A send is held for the backend's reply, which comes back in the same response.
    let third = c.exchange(&format!("SessionID={id2}"), CVR).await;
    let id3 = session_id(&third);
    rotated(&id2, &id3);
    assert_eq!(third, ok(&id3, &gw, CVR, false));

    // A long poll is answered as soon as the backend pushes a message.
    c.send(&format!("Action=poll&SessionID={id3}&Lifespan=30"), "").await;
    requests_received(&handle, 4).await;
    let start = Instant::now();
    backend.push.send(PUSHED.as_bytes().to_vec()).await.unwrap();
    let fourth = c.response().await;
    assert!(start.elapsed() < Duration::from_secs(10), "answered by the push");
    let id4 = session_id(&fourth);
    rotated(&id3, &id4);
    assert_eq!(fourth, ok(&id4, &gw, PUSHED, false));
    assert_eq!(backend.received(), format!("{VER}{CVR}"));

    drop(c);
    let stats = handle.shutdown().await.unwrap();
    assert_eq!(stats.core.sessions_opened, 1);
    assert_eq!(stats.core.requests, 4);
    assert_eq!(stats.core.responses, 4);
    assert_eq!(stats.connections_accepted, 1);
    assert_eq!(stats.backend_connects, 1);
    assert_eq!(stats.core.bytes_to_backends, (VER.len() + CVR.len()) as u64);
    assert_eq!(stats.core.bytes_from_backends, (VER.len() + CVR.len() + PUSHED.len()) as u64);
}

async fn pipelined_requests_for_two_sessions_are_answered_in_order(exec: Exec) {
    let Setup { backend: _backend, handle, gw } = setup(&exec, |_, _| {});
    let mut c = Http::connect(&gw).await;
    let a1 = session_id(&c.exchange(OPEN_NS, VER).await);
    let b1 = session_id(&c.exchange(OPEN_NS, VER).await);
    assert_ne!(a1.split('.').next(), b1.split('.').next());

    // Both in one write: one connection carries many sessions, answered in turn.
    let mut both = c.request(&format!("Action=poll&SessionID={a1}"), "");
    both.extend(c.request(&format!("SessionID={b1}"), CVR));
    c.stream.write_all(&both).await.unwrap();
    let first = c.response().await;
    let second = c.response().await;
    let (a2, b2) = (session_id(&first), session_id(&second));
    rotated(&a1, &a2);
    rotated(&b1, &b2);
    assert_eq!(first, ok(&a2, &gw, "", false));
    assert_eq!(second, ok(&b2, &gw, CVR, false));

    drop(c);
    let stats = handle.shutdown().await.unwrap();
    assert_eq!(stats.core.sessions_opened, 2);
    assert_eq!(stats.core.responses, 4);
    assert_eq!(stats.backend_connects, 2);
}

async fn an_open_for_a_backend_outside_the_allowlist_gets_403(exec: Exec) {
    let Setup { backend, handle, gw } = setup(&exec, |_, _| {});
    let mut c = Http::connect(&gw).await;
    let evil = "Action=open&Server=NS&IP=evil.example.net";
    assert_eq!(c.exchange(evil, VER).await, FORBIDDEN);
    // The backend's real address is not on the list either: only the routed name is.
    let direct = format!("Action=open&Server=NS&IP={}", backend.addr);
    assert_eq!(c.exchange(&direct, VER).await, FORBIDDEN);
    // Refusals keep the connection; an allowed open on it works.
    let answer = c.exchange(OPEN_NS, VER).await;
    assert_eq!(answer, ok(&session_id(&answer), &gw, VER, false));
    assert_eq!(backend.received(), VER, "nothing reached the backend for the refused ones");

    let stats = handle.stats();
    assert_eq!(stats.core.refused_backends, 2);
    assert_eq!(stats.core.error_responses, 2);
    assert_eq!((stats.sessions, stats.backend_connects), (1, 1));
    drop(c);
    handle.shutdown().await.unwrap();
}

async fn graceful_shutdown_answers_the_poll_in_flight_and_closes_idle_connections(exec: Exec) {
    let Setup { backend, handle, gw } = setup(&exec, |_, _| {});
    let mut busy = Http::connect(&gw).await;
    let mut idle = Http::connect(&gw).await;
    let id1 = session_id(&busy.exchange(OPEN_NS, VER).await);
    let unknown = idle.exchange("Action=poll&SessionID=1.1", "").await;
    assert!(unknown.starts_with("HTTP/1.1 400 "), "{unknown}");

    // A long poll is in flight when the shutdown begins.
    busy.send(&format!("Action=poll&SessionID={id1}&Lifespan=30"), "").await;
    requests_received(&handle, 3).await;
    let (stopped, stopping) = async_channel::bounded(1);
    drop(exec.spawn(async move {
        let _ = stopped.send(handle.shutdown().await).await;
    }));

    // The idle keep-alive connection is closed, and no new connection is taken...
    assert!(idle.closed().await, "the idle connection is closed");
    drop(idle);
    let start = Instant::now();
    while Async::<TcpStream>::connect(gw.parse::<SocketAddr>().unwrap()).await.is_ok() {
        assert!(start.elapsed() < SOON, "the listener stayed open");
        Timer::after(LOOK_EVERY).await;
    }
    // ... but the poll in flight is answered (by a message), then its connection closed.
    backend.push.send(PUSHED.as_bytes().to_vec()).await.unwrap();
    let answer = busy.response().await;
    assert_eq!(answer, ok(&session_id(&answer), &gw, PUSHED, false));
    assert!(busy.closed().await);
    drop(busy);

    let stats: ServerStats = stopping.recv().await.unwrap().unwrap();
    assert!(stats.shutting_down);
    assert_eq!(stats.core.responses, 2);
    assert_eq!(stats.connections_accepted, 2);
    assert_eq!((stats.client_connections, stats.backend_connections), (0, 0));
}

/// A request a pipeliner repeats: 23 bytes that each earn a 78-byte `405`.
const JUNK: &[u8] = b"A / HTTP/1.1\r\nHost:\r\n\r\n";

/// A connection with a 4 KiB receive buffer, which the test never reads.
#[cfg(unix)]
fn non_reader(addr: SocketAddr) -> TcpStream {
    use rustix::net::{AddressFamily, SocketType, connect, socket, sockopt};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    sockopt::set_socket_recv_buffer_size(&fd, 4096).unwrap();
    connect(&fd, &addr).unwrap();
    let stream = TcpStream::from(fd);
    stream.set_nonblocking(true).unwrap();
    stream
}

/// Clients that pipeline requests and never read: the gateway holds at most one answer for
/// each (it reads the next request only once the answer before it is written), and closes
/// each once it has taken no answer bytes for `send_timeout`.
#[cfg(unix)]
async fn clients_that_never_read_are_held_small_and_closed(exec: Exec) {
    const CLIENTS: usize = 2;
    let Setup { handle, gw, .. } =
        setup(&exec, |config, _| config.send_timeout = Duration::from_millis(500));
    let clients: Vec<TcpStream> = (0..CLIENTS).map(|_| non_reader(gw.parse().unwrap())).collect();
    let burst = JUNK.repeat(8 * 113);
    until("the connections to be accepted", || handle.stats().client_connections == CLIENTS).await;
    // 2 MiB of requests each, whose 7 MiB of answers are more than the kernel buffers
    // between the gateway and a peer that never reads hold (4 MiB): the gateway's writes stall.
    let mut backlog = 0;
    for _ in 0..100 {
        for mut c in &clients {
            // The kernel takes what fits; the rest is dropped (the gateway stops reading).
            let _ = c.write(&burst);
        }
        backlog = backlog.max(handle.stats().client_write_backlog);
        Timer::after(Duration::from_millis(5)).await;
    }
    until("the stuck connections to close", || {
        let stats = handle.stats();
        backlog = backlog.max(stats.client_write_backlog);
        stats.client_connections == 0
    })
    .await;
    let stats = handle.stats();
    assert!(stats.client_bytes_out > 0, "answers were written");
    // Answers waiting in the gateway: one per connection at most.
    assert!(backlog <= CLIENTS * 100, "{backlog} answer bytes unwritten (a 405 is 78)");
    assert_eq!(stats.core.send_timeouts, CLIENTS as u64, "closed for taking no answer bytes");
    assert_eq!(stats.connections_accepted, CLIENTS as u64);
    drop(clients);
    let stats = handle.shutdown().await.unwrap();
    assert_eq!(stats.client_write_backlog, 0);
}

on_both!(
    open_poll_send_and_push_through_an_echo_backend,
    pipelined_requests_for_two_sessions_are_answered_in_order,
    an_open_for_a_backend_outside_the_allowlist_gets_403,
    graceful_shutdown_answers_the_poll_in_flight_and_closes_idle_connections,
);

/// The never-reading clients need a socket option std lacks (a small receive buffer).
#[cfg(unix)]
mod never_reading {
    use super::*;

    on_both!(clients_that_never_read_are_held_small_and_closed);
}
