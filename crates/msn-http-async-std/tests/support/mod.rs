//! Loopback test partners for the async-io adapter: the scriptable, misbehaving fake gateway
//! (with an echoing MSNP backend) over `async-io` sockets, a virtual clock, and the two
//! executors every test runs on. What the gateway answers is decided by the
//! runtime-independent `gateway` module, shared with the tokio adapter's tests.
#![allow(dead_code, unreachable_pub)]

#[path = "../../../msn-http-driver/tests/support/clock.rs"]
pub mod clock;
pub mod exec;
#[path = "../../../msn-http-driver/tests/support/gateway.rs"]
mod gateway;

use std::future::{Future, poll_fn};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use async_io::Async;
use futures_lite::future;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
pub use gateway::*;
use msn_http_async_std::{AsyncIo, Client, ClientReceiver, ClientSender, Driver, Runtime};
use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, PollPolicy, Target};

pub use clock::Clock;
pub use exec::{Exec, Task};

/// Real sockets (through [`AsyncIo`]), virtual time.
#[derive(Clone)]
pub struct Virtual {
    pub clock: Arc<Clock>,
    io: AsyncIo,
}

impl Virtual {
    pub fn new(clock: &Arc<Clock>) -> Self {
        Self { clock: Arc::clone(clock), io: AsyncIo }
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
        self.io.write_all(stream, buf)
    }

    fn read(
        &self,
        stream: &mut Self::Stream,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send {
        self.io.read(stream, buf)
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send {
        self.clock.sleep_until(deadline)
    }
}

/// The poll interval of [`config`].
pub const POLL: Duration = Duration::from_millis(100);

/// What the gateway's tasks share.
struct Shared {
    state: Mutex<FakeGateway>,
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
            (state.handle(shared.clock.now(), listener, connection, &request), shared.clock.now())
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

/// How often a held poll looks for data, on the gateway's clock.
const HOLD_STEP: Duration = Duration::from_millis(10);

/// The answer to a held poll: once data is queued or its lifespan `until` is over.
async fn released(shared: &Shared, until: Instant) -> Plan {
    loop {
        let now = shared.clock.now();
        let plan = shared.lock().release(now);
        if let Some(plan) = plan {
            return plan;
        }
        shared.clock.sleep_until((now + HOLD_STEP).min(until)).await;
    }
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
    let (client, driver) = Client::open_with(Virtual::new(clock), config, ns()).unwrap();
    let (tx, rx) = client.split();
    (tx, rx, spawn_driver(exec, driver))
}

pub fn spawn_driver(exec: &Exec, driver: Driver) -> Task<()> {
    exec.spawn(driver)
}
