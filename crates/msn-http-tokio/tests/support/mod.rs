//! Loopback test partners for the tokio adapter: a scriptable, misbehaving fake gateway (with
//! an echoing MSNP backend), a tiny HTTP proxy, and a clock helper for tokio's paused clock.
//! What the gateway answers is decided by `msn-http-testkit`, shared with the other adapters'
//! tests; this file adds tokio's sockets and timers.
//!
//! # Time
//!
//! Tests run on tokio's paused clock (`start_paused = true`). Whenever the runtime has nothing
//! to run, the paused clock jumps straight to the next timer, even when loopback I/O is about
//! to wake a task: a client waiting for its response would see its 20-second request timeout
//! fire before the fake gateway (in the same runtime) had run. [`run`] therefore keeps a
//! ticker: a task sleeping 1 ms at a time, so every jump is at most 1 ms, and a peer that
//! answers at once does so within a few fake milliseconds, long before any deadline. Time
//! still passes only on the fake clock; nothing sleeps for real.
#![allow(dead_code, unreachable_pub)]

pub use msn_http_testkit::expect::*;
pub use msn_http_testkit::*;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, PollPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The fake clock's step (see the module docs).
const TICK: Duration = Duration::from_millis(1);
/// How long (fake time) a test may run before it fails instead of hanging.
const TEST_LIMIT: Duration = Duration::from_secs(300);
/// The step of [`run_idling`]'s ticker.
pub const IDLE_TICK: Duration = Duration::from_millis(10);

/// Runs a test body on the paused clock with the ticker, failing it after [`TEST_LIMIT`].
pub async fn run<F: Future>(body: F) -> F::Output {
    run_ticking(TICK, body).await
}

/// [`run`] with the ticker stepping [`IDLE_TICK`], for tests that idle for virtual minutes,
/// where 1 ms steps would cost seconds of real time. A peer that answers at once still does
/// so within a few steps, far inside every request deadline; timers still fire on time.
pub async fn run_idling<F: Future>(body: F) -> F::Output {
    run_ticking(IDLE_TICK, body).await
}

async fn run_ticking<F: Future>(tick: Duration, body: F) -> F::Output {
    let ticks = (TEST_LIMIT.as_millis() / tick.as_millis()) as usize + 1_000;
    let ticker = Abort(tokio::spawn(async move {
        for _ in 0..ticks {
            tokio::time::sleep(tick).await;
        }
    }));
    let out = tokio::time::timeout(TEST_LIMIT, body)
        .await
        .expect("test did not finish within its fake-time limit");
    drop(ticker);
    out
}

/// Aborts a task when dropped.
pub struct Abort(pub JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The fake-clock time since `start`.
pub fn since(start: tokio::time::Instant) -> Duration {
    tokio::time::Instant::now() - start
}

// ---------------------------------------------------------------------------------------------
// The fake gateway
// ---------------------------------------------------------------------------------------------

/// A fake gateway with an echoing backend: every command it processes is queued back to the
/// client, so whatever the client sends comes back once, in order.
pub struct Gateway {
    state: Arc<Mutex<FakeGateway>>,
    addrs: Vec<SocketAddr>,
    tasks: Vec<Abort>,
}

impl Gateway {
    /// A gateway on `127.0.0.1` at a free port.
    pub async fn start(script: Script) -> Self {
        let mut gateway = Self {
            state: Arc::new(Mutex::new(FakeGateway::new(script))),
            addrs: Vec::new(),
            tasks: Vec::new(),
        };
        gateway.listen("127.0.0.1:0").await;
        gateway
    }

    /// Another listener sharing this gateway's sessions (a moved gateway host).
    pub async fn listen(&mut self, addr: &str) -> SocketAddr {
        let listener = TcpListener::bind(addr).await.expect("bind a loopback port");
        let local = listener.local_addr().expect("local address");
        let index = self.addrs.len();
        self.addrs.push(local);
        self.lock().connections.push(0);
        let state = Arc::clone(&self.state);
        self.tasks.push(Abort(tokio::spawn(async move {
            let mut conns = Vec::new();
            for _ in 0..MAX_CONNECTIONS {
                let Ok((socket, _)) = listener.accept().await else {
                    break;
                };
                let connection = {
                    let mut s = state.lock().unwrap();
                    s.connections[index] += 1;
                    s.connections[index] - 1
                };
                let state = Arc::clone(&state);
                conns.push(Abort(tokio::spawn(serve(socket, index, connection, state))));
            }
        })));
        local
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn addr_of(&self, listener: usize) -> SocketAddr {
        self.addrs[listener]
    }

    pub fn endpoint(&self) -> Endpoint {
        endpoint(self.addr())
    }

    pub fn lock(&self) -> MutexGuard<'_, FakeGateway> {
        self.state.lock().unwrap()
    }

    /// Queues MSNP bytes from the server side (delivered with the next response).
    pub fn push(&self, msnp: &[u8]) {
        self.lock().outbox.extend_from_slice(msnp);
    }

    pub fn received(&self) -> Vec<u8> {
        self.lock().received.clone()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.lock().requests.clone()
    }

    pub fn request_count(&self) -> usize {
        self.lock().requests.len()
    }

    pub fn connections(&self) -> Vec<usize> {
        self.lock().connections.clone()
    }
}

/// Serves one connection: requests in order until the client closes it or a fault ends it.
async fn serve(
    mut socket: TcpStream,
    listener: usize,
    connection: usize,
    state: Arc<Mutex<FakeGateway>>,
) {
    let mut buf = Vec::new();
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let Some(request) = read_request(&mut socket, &mut buf).await else {
            return;
        };
        let now = tokio::time::Instant::now().into_std();
        let plan = state.lock().unwrap().handle(now, listener, connection, &request);
        let plan = match plan {
            Plan::Hold { until } => released(&state, until).await,
            plan => plan,
        };
        match plan {
            Plan::Hold { .. } => unreachable!("a released poll is answered"),
            Plan::Stall => {
                hold_until_closed(&mut socket).await;
                return;
            }
            Plan::Respond { delay, parts, close } => {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                let split = parts.len() > 1;
                for part in parts {
                    if socket.write_all(&part).await.is_err() {
                        return;
                    }
                    if split {
                        // Let the client read each part on its own.
                        tokio::task::yield_now().await;
                    }
                }
                if close {
                    return;
                }
            }
        }
    }
}

/// How often a held poll looks for data.
const HOLD_STEP: Duration = Duration::from_millis(10);

/// The answer to a held poll: once data is queued or its lifespan `until` is over.
async fn released(state: &Mutex<FakeGateway>, until: std::time::Instant) -> Plan {
    loop {
        let now = tokio::time::Instant::now().into_std();
        let plan = state.lock().unwrap().release(now);
        if let Some(plan) = plan {
            return plan;
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std((now + HOLD_STEP).min(until)))
            .await;
    }
}

async fn hold_until_closed(socket: &mut TcpStream) {
    let mut sink = [0u8; 1024];
    for _ in 0..MAX_READS_PER_MESSAGE {
        match socket.read(&mut sink).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Reads one request (head, then a `Content-Length` body); `None` at EOF or on garbage.
pub async fn read_request(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<RawRequest> {
    for _ in 0..MAX_READS_PER_MESSAGE {
        match parse_request(buf) {
            Parsed::Request(request) => return Some(request),
            Parsed::Invalid => return None,
            Parsed::Partial => {}
        }
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    None
}

// ---------------------------------------------------------------------------------------------
// A raw MSNP server
// ---------------------------------------------------------------------------------------------

/// A TCP listener that accepts connections and never answers, as a raw MSNP switchboard
/// treats HTTP: it counts the connections and the bytes it was sent.
pub struct RawServer {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
    _task: Abort,
}

impl RawServer {
    /// Listens on `addr` (a loopback address; port 0 for any).
    pub async fn start(addr: &str) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let local = listener.local_addr().expect("local address");
        let (accepted, bytes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (count, sink) = (Arc::clone(&accepted), Arc::clone(&bytes));
        let task = tokio::spawn(async move {
            let mut conns = Vec::new();
            for _ in 0..MAX_CONNECTIONS {
                let Ok((mut socket, _)) = listener.accept().await else {
                    break;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let sink = Arc::clone(&sink);
                conns.push(Abort(tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    for _ in 0..MAX_READS_PER_MESSAGE {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => sink.fetch_add(n, Ordering::SeqCst),
                        };
                    }
                })));
            }
        });
        Self { addr: local, accepted, bytes, _task: Abort(task) }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Bytes received so far, all connections together.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------------------------

/// What the proxy saw.
#[derive(Debug, Default)]
pub struct ProxyLog {
    /// Request targets, as received.
    pub targets: Vec<String>,
    /// `Proxy-Authorization` values (`None` when missing).
    pub authorizations: Vec<Option<String>>,
    /// Requests refused (bad target form or credentials).
    pub refused: usize,
}

/// A forwarding HTTP proxy that insists on absolute-form targets naming `upstream` and on
/// `Proxy-Authorization: <authorization>`, and forwards everything else as it came.
pub struct FakeProxy {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<ProxyLog>>,
    _task: Abort,
}

impl FakeProxy {
    pub async fn start(upstream: SocketAddr, authorization: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(ProxyLog::default()));
        let expected =
            (format!("http://{upstream}/gateway/gateway.dll?"), authorization.to_owned());
        let task_log = Arc::clone(&log);
        let task = tokio::spawn(async move {
            let mut conns = Vec::new();
            for _ in 0..MAX_CONNECTIONS {
                let Ok((client, _)) = listener.accept().await else {
                    break;
                };
                conns.push(Abort(tokio::spawn(proxy_connection(
                    client,
                    upstream,
                    expected.clone(),
                    Arc::clone(&task_log),
                ))));
            }
        });
        Self { addr, log, _task: Abort(task) }
    }
}

async fn proxy_connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    (prefix, authorization): (String, String),
    log: Arc<Mutex<ProxyLog>>,
) {
    let mut buf = Vec::new();
    let mut server: Option<(TcpStream, Vec<u8>)> = None;
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let Some(request) = read_request(&mut client, &mut buf).await else {
            return;
        };
        let auth = request.header("Proxy-Authorization").map(str::to_owned);
        let ok = request.target.starts_with(&prefix) && auth.as_deref() == Some(&authorization);
        {
            let mut log = log.lock().unwrap();
            log.targets.push(request.target.clone());
            log.authorizations.push(auth);
            log.refused += usize::from(!ok);
        }
        if !ok {
            let _ = client
                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await;
            return;
        }
        if server.is_none() {
            let Ok(stream) = TcpStream::connect(upstream).await else {
                return;
            };
            server = Some((stream, Vec::new()));
        }
        let Some((upstream_conn, upstream_buf)) = server.as_mut() else {
            return;
        };
        if upstream_conn.write_all(&request.wire).await.is_err() {
            return;
        }
        let Some(response) = read_response(upstream_conn, upstream_buf).await else {
            return;
        };
        if client.write_all(&response).await.is_err() {
            return;
        }
    }
}

/// Reads one `Content-Length` response (after any `100 Continue`), as wire bytes.
async fn read_response(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    for _ in 0..MAX_READS_PER_MESSAGE {
        if let Some(len) = complete_response_len(buf).ok()? {
            return Some(buf.drain(..len).collect());
        }
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Client-side helpers
// ---------------------------------------------------------------------------------------------

/// A client configuration for `gateway` that polls every 100 ms (fake time).
pub fn config(gateway: &Gateway) -> ClientConfig {
    let mut config = ClientConfig::new(gateway.endpoint());
    config.poll_policy = PollPolicy::Official { interval: Duration::from_millis(100) };
    config
}
