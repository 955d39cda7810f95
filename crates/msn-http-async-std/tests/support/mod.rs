//! Loopback test partners for the async-io adapter: the scriptable, misbehaving fake gateway
//! (with an echoing MSNP backend) over `async-io` sockets, a virtual clock, and the two
//! executors every test runs on. What the gateway answers is decided by the
//! `msn-http-testkit`, shared with the tokio adapter's tests.
//!
//! Tests that let virtual minutes go by move the clock with [`Gateway::idle_until`] and
//! [`Gateway::step_until`]: one deadline at a time, each only once nothing is under way on
//! the wire (both ends count what they wrote and read), so no jump overtakes an answer that
//! real I/O is still carrying.
#![allow(dead_code, unreachable_pub)]

pub mod exec;

use std::future::{Future, poll_fn};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use async_io::Async;
use futures_lite::future;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use msn_http_async_std::{AsyncIo, Client, ClientReceiver, ClientSender, Driver, Runtime};
use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, PollPolicy, Target};
pub use msn_http_testkit::expect::*;
pub use msn_http_testkit::*;

pub use clock::Clock;
pub use exec::{Exec, Task};

/// Real sockets (through [`AsyncIo`]), virtual time. Clones share their [`Wire`] counts.
#[derive(Clone)]
pub struct Virtual {
    pub clock: Arc<Clock>,
    io: AsyncIo,
    wire: Arc<Wire>,
}

impl Virtual {
    pub fn new(clock: &Arc<Clock>) -> Self {
        Self { clock: Arc::clone(clock), io: AsyncIo, wire: Arc::default() }
    }

    /// What this runtime (and its clones) put on the wire and took off it.
    pub fn wire(&self) -> Arc<Wire> {
        Arc::clone(&self.wire)
    }
}

/// What a client's runtime put on the wire and took off it: with the gateway's own counts,
/// this tells when nothing is under way between them ([`Gateway::quiet`]).
#[derive(Debug, Default)]
pub struct Wire {
    /// Requests written whole (the driver writes each request with one `write_all`).
    requests: AtomicUsize,
    /// Response bytes read, the driver may still be handling.
    bytes_read: AtomicUsize,
    /// Response bytes the driver has handled: it handles what it read before it reads or
    /// writes again.
    bytes_handled: AtomicUsize,
}

impl Wire {
    /// The driver reads or writes again: what it read before is handled.
    fn handled(&self) {
        let read = self.bytes_read.swap(0, Ordering::SeqCst);
        self.bytes_handled.fetch_add(read, Ordering::SeqCst);
    }
}

impl Runtime for Virtual {
    type Stream = Async<TcpStream>;

    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn connect(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        self.io.connect(host, port)
    }

    fn write_all(
        &self,
        stream: &mut Self::Stream,
        buf: &[u8],
    ) -> impl Future<Output = io::Result<()>> + Send {
        self.wire.handled();
        let (writing, wire) = (self.io.write_all(stream, buf), Arc::clone(&self.wire));
        async move {
            writing.await?;
            wire.requests.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn read(
        &self,
        stream: &mut Self::Stream,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send {
        self.wire.handled();
        let (reading, wire) = (self.io.read(stream, buf), Arc::clone(&self.wire));
        async move {
            let n = reading.await?;
            wire.bytes_read.fetch_add(n, Ordering::SeqCst);
            Ok(n)
        }
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send {
        self.clock.sleep_until(deadline)
    }
}

/// The poll interval of [`config`].
pub const POLL: Duration = Duration::from_millis(100);

/// The longest jump of the clock in [`Gateway::idle_until`] and [`Gateway::step_until`],
/// but to the end of a poll the gateway holds. A deadline further away, with the wire quiet,
/// is a request deadline the client armed before it took in the answer (it then arms its next
/// poll): jumping there would time out a request that was answered. Every poll timer and
/// retry back-off of the tests is shorter.
pub const MAX_STEP: Duration = Duration::from_secs(5);
/// How often a step lets the other tasks run before it waits for the wire in real time.
const YIELDS_BEFORE_WAITING: usize = 16;
/// How long (real time) a step waits for the wire at a time.
const WIRE_WAIT: Duration = Duration::from_micros(100);
/// Waits for the wire before a step fails the test (about five seconds of real time).
const MAX_WIRE_WAITS: usize = 50_000;
/// Clock steps before [`Gateway::idle_until`] fails the test as a livelock.
const MAX_STEPS: usize = 1_000_000;

/// What the gateway's tasks share.
struct Shared {
    state: Mutex<FakeGateway>,
    /// Bytes of the answers decided so far (counted as decided, under the state lock).
    answered: AtomicUsize,
    /// Rung when the test queues server bytes: a held poll looks at once.
    pushed: (async_channel::Sender<()>, async_channel::Receiver<()>),
    /// Tasks waiting in [`Gateway::wait_requests`].
    waiters: Mutex<Vec<Waker>>,
    clock: Arc<Clock>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FakeGateway> {
        self.state.lock().unwrap()
    }

    fn notify(&self) {
        let waiters = std::mem::take(&mut *self.waiters.lock().unwrap());
        waiters.into_iter().for_each(Waker::wake);
    }
}

/// A fake gateway with an echoing backend: every command it processes is queued back to the
/// client, so whatever the client sends comes back once, in order. Its tasks end when it is
/// dropped.
pub struct Gateway {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    exec: Exec,
    /// Never sent on: dropping the gateway closes the channel, which stops its tasks.
    _stop: async_channel::Sender<()>,
    stopped: async_channel::Receiver<()>,
}

impl Gateway {
    /// A gateway on `127.0.0.1` at a free port, its delays measured on `clock`.
    pub fn start(exec: &Exec, clock: &Arc<Clock>, script: Script) -> Self {
        let (stop, stopped) = async_channel::bounded(1);
        let mut gateway = Self {
            shared: Arc::new(Shared {
                state: Mutex::new(FakeGateway::new(script)),
                answered: AtomicUsize::new(0),
                pushed: async_channel::bounded(1),
                waiters: Mutex::new(Vec::new()),
                clock: Arc::clone(clock),
            }),
            addrs: Vec::new(),
            exec: exec.clone(),
            _stop: stop,
            stopped,
        };
        gateway.listen("127.0.0.1:0");
        gateway
    }

    /// Another listener sharing this gateway's sessions (a moved gateway host).
    pub fn listen(&mut self, addr: &str) -> SocketAddr {
        let addr: SocketAddr = addr.parse().expect("a socket address");
        let listener = Async::<TcpListener>::bind(addr).expect("bind a loopback port");
        let local = listener.get_ref().local_addr().expect("local address");
        let index = self.addrs.len();
        self.addrs.push(local);
        self.lock().connections.push(0);
        let shared = Arc::clone(&self.shared);
        let exec = self.exec.clone();
        let stopped = self.stopped.clone();
        let accept = async move {
            for _ in 0..MAX_CONNECTIONS {
                let Ok((socket, _)) = listener.accept().await else {
                    break;
                };
                let connection = {
                    let mut state = shared.lock();
                    state.connections[index] += 1;
                    state.connections[index] - 1
                };
                let serving = serve(socket, index, connection, Arc::clone(&shared));
                drop(exec.spawn(until_stopped(stopped.clone(), serving)));
            }
        };
        drop(self.exec.spawn(until_stopped(self.stopped.clone(), accept)));
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
        self.shared.lock()
    }

    /// Queues MSNP bytes from the server side (delivered with the next response).
    pub fn push(&self, msnp: &[u8]) {
        self.lock().outbox.extend_from_slice(msnp);
        let _ = self.shared.pushed.0.try_send(());
    }

    /// Has the backend write `msnp` at `at` (on the gateway's clock).
    pub fn push_at(&self, at: Instant, msnp: &[u8]) {
        self.lock().push_at(at, msnp);
        let _ = self.shared.pushed.0.try_send(());
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

    /// Waits until the gateway has seen `n` requests (and decided their answers).
    pub async fn wait_requests(&self, n: usize) {
        poll_fn(|cx| {
            // Registered before looking, so a request recorded meanwhile still wakes us.
            self.shared.waiters.lock().unwrap().push(cx.waker().clone());
            match self.request_count() >= n {
                true => Poll::Ready(()),
                false => Poll::Pending,
            }
        })
        .await;
    }

    /// Whether nothing is under way between the client that wrote through `wire` and this
    /// gateway: it read every request the client wrote, and the client's driver handled every
    /// byte of the answers decided (a held poll is answered when released). Only for scripts
    /// without delays.
    pub fn quiet(&self, wire: &Wire) -> bool {
        let (requests, releasing) = {
            let state = self.lock();
            let now = self.shared.clock.now();
            let due = !state.outbox.is_empty() || state.next_wakeup().is_some_and(|at| at <= now);
            (state.requests.len(), state.holding() && due)
        };
        let answered = self.shared.answered.load(Ordering::SeqCst);
        !releasing
            && wire.requests.load(Ordering::SeqCst) == requests
            && wire.bytes_handled.load(Ordering::SeqCst) == answered
    }

    /// Moves the clock on to `until`, one deadline at a time, each once the wire is quiet:
    /// idling for virtual minutes over real sockets, with every answer taken in on time.
    pub async fn idle_until(&self, wire: &Wire, until: Instant) {
        let clock = &self.shared.clock;
        for _ in 0..MAX_STEPS {
            if clock.now() >= until {
                return;
            }
            let next = self.next_step(wire).await;
            clock.advance_to(next.min(until));
        }
        panic!("{until:?} not reached after {MAX_STEPS} clock steps");
    }

    /// Runs `fut` to completion, moving the clock as [`idle_until`](Self::idle_until) does
    /// whenever `fut` cannot go on; the clock stops at the step that completed it.
    pub async fn step_until<T>(&self, wire: &Wire, fut: impl Future<Output = T>) -> T {
        self.shared.clock.advance_by(fut, || self.next_step(wire)).await
    }

    /// The earliest deadline, once the wire is quiet and it is at most [`MAX_STEP`] away (or
    /// the gateway's own, while it holds a poll).
    async fn next_step(&self, wire: &Wire) -> Instant {
        let clock = &self.shared.clock;
        for attempt in 0..MAX_WIRE_WAITS {
            if self.quiet(wire) {
                let holding_until = {
                    let state = self.lock();
                    state.next_wakeup().filter(|_| state.holding())
                };
                let next = clock
                    .earliest_deadline()
                    .filter(|at| *at <= clock.now() + MAX_STEP || Some(*at) == holding_until);
                if let Some(at) = next.filter(|_| self.quiet(wire)) {
                    return at;
                }
            }
            // Other tasks first (a woken timer's task re-arms at once); then real I/O.
            match attempt < YIELDS_BEFORE_WAITING {
                true => future::yield_now().await,
                false => drop(async_io::Timer::after(WIRE_WAIT).await),
            }
        }
        panic!("the wire never went quiet, or nothing is due within {MAX_STEP:?}");
    }
}

/// Records the bytes of `plan` as answered (under the state lock, where it was decided).
fn count_answer(shared: &Shared, plan: &Plan) {
    if let Plan::Respond { parts, .. } = plan {
        let bytes = parts.iter().map(Vec::len).sum();
        shared.answered.fetch_add(bytes, Ordering::SeqCst);
    }
}

/// A TCP listener that accepts connections and never answers, as a raw MSNP switchboard
/// treats HTTP: it counts the connections and the bytes it was sent. Its tasks end when it is
/// dropped.
pub struct RawServer {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
    /// Never sent on: dropping the server closes the channel, which stops its tasks.
    _stop: async_channel::Sender<()>,
}

impl RawServer {
    /// Listens on `addr` (a loopback address; port 0 for any), its tasks on `exec`.
    pub fn start(exec: &Exec, addr: &str) -> Self {
        let parsed: SocketAddr = addr.parse().expect("a socket address");
        let listener =
            Async::<TcpListener>::bind(parsed).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let local = listener.get_ref().local_addr().expect("local address");
        let (accepted, bytes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (stop, stopped) = async_channel::bounded(1);
        let (count, sink, tasks) = (Arc::clone(&accepted), Arc::clone(&bytes), exec.clone());
        let accept = {
            let stopped = stopped.clone();
            async move {
                for _ in 0..MAX_CONNECTIONS {
                    let Ok((mut socket, _)) = listener.accept().await else {
                        break;
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    let sink = Arc::clone(&sink);
                    let swallow = async move {
                        let mut buf = [0u8; 1024];
                        for _ in 0..MAX_READS_PER_MESSAGE {
                            match socket.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => sink.fetch_add(n, Ordering::SeqCst),
                            };
                        }
                    };
                    drop(tasks.spawn(until_stopped(stopped.clone(), swallow)));
                }
            }
        };
        drop(exec.spawn(until_stopped(stopped, accept)));
        Self { addr: local, accepted, bytes, _stop: stop }
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

/// Runs `task` until it ends or the gateway is dropped.
async fn until_stopped(stopped: async_channel::Receiver<()>, task: impl Future<Output = ()>) {
    future::or(task, async {
        let _ = stopped.recv().await;
    })
    .await;
}

/// Serves one connection: requests in order until the client closes it or a fault ends it.
async fn serve(
    mut socket: Async<TcpStream>,
    listener: usize,
    connection: usize,
    shared: Arc<Shared>,
) {
    let mut buf = Vec::new();
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let Some(request) = read_request(&mut socket, &mut buf).await else {
            return;
        };
        let (plan, seen_at) = {
            let mut state = shared.lock();
            let plan = state.handle(shared.clock.now(), listener, connection, &request);
            count_answer(&shared, &plan);
            (plan, shared.clock.now())
        };
        shared.notify();
        let plan = match plan {
            Plan::Hold { until } => released(&shared, until).await,
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
                    // Measured from when the request was seen: a test may move the clock on
                    // before this task gets here.
                    shared.clock.sleep_until(seen_at + delay).await;
                }
                let split = parts.len() > 1;
                for part in parts {
                    if socket.write_all(&part).await.is_err() {
                        return;
                    }
                    if split {
                        // Let the client read each part on its own.
                        future::yield_now().await;
                    }
                }
                if close {
                    return;
                }
            }
        }
    }
}

/// The answer to a held poll: once data is queued or its lifespan `until` is over. It looks
/// when the test pushes, when the backend writes, and at `until`.
async fn released(shared: &Shared, until: Instant) -> Plan {
    for _ in 0..MAX_READS_PER_MESSAGE {
        let now = shared.clock.now();
        let (released, wakeup) = {
            let mut state = shared.lock();
            let plan = state.release(now);
            if let Some(plan) = &plan {
                count_answer(shared, plan);
            }
            (plan, state.next_wakeup())
        };
        if let Some(plan) = released {
            return plan;
        }
        let wake_at = wakeup.map_or(until, |at| at.min(until));
        future::or(shared.clock.sleep_until(wake_at), async {
            let _ = shared.pushed.1.recv().await;
        })
        .await;
    }
    panic!("a held poll woke {MAX_READS_PER_MESSAGE} times without an answer");
}

async fn hold_until_closed(socket: &mut Async<TcpStream>) {
    let mut sink = [0u8; 1024];
    for _ in 0..MAX_READS_PER_MESSAGE {
        match socket.read(&mut sink).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Reads one request; `None` at EOF or on garbage.
pub async fn read_request(socket: &mut Async<TcpStream>, buf: &mut Vec<u8>) -> Option<RawRequest> {
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
// Client-side helpers
// ---------------------------------------------------------------------------------------------

/// A client configuration for `gateway` that polls every [`POLL`] (virtual time).
pub fn config(gateway: &Gateway) -> ClientConfig {
    let mut config = ClientConfig::new(gateway.endpoint());
    config.poll_policy = PollPolicy::Official { interval: POLL };
    config
}

/// An NS session through the gateway, on the virtual clock.
pub fn ns() -> Target {
    Target::notification("127.0.0.1")
}

/// A session on `clock`'s time whose driver runs on `exec`: the halves, and the driver's task.
pub fn open(
    exec: &Exec,
    clock: &Arc<Clock>,
    config: ClientConfig,
) -> (ClientSender, ClientReceiver, Task<()>) {
    let (tx, rx, driver, _) = open_counted(exec, clock, config, ns());
    (tx, rx, driver)
}

/// [`open`] of `target`, also returning what the session's runtime counts on the wire.
pub fn open_counted(
    exec: &Exec,
    clock: &Arc<Clock>,
    config: ClientConfig,
    target: Target,
) -> (ClientSender, ClientReceiver, Task<()>, Arc<Wire>) {
    let runtime = Virtual::new(clock);
    let wire = runtime.wire();
    let (client, driver) = Client::open_with(runtime, config, target).unwrap();
    let (tx, rx) = client.split();
    (tx, rx, spawn_driver(exec, driver), wire)
}

pub fn spawn_driver(exec: &Exec, driver: Driver) -> Task<()> {
    exec.spawn(driver)
}
