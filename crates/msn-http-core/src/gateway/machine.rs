//! The [`Gateway`] itself: its drive contract, the inputs it takes and the outputs it hands
//! out, dispatched to the connections, sessions and timers that hold the logic.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Instant;

use crate::msnp::Framing;
use crate::wire::{MAX_ORIGIN_LEN, ResponseEncoder};

use super::config::{CorsPolicy, GatewayConfig, GatewayConfigError};
use super::connection::Conn;
use super::drive::{AcceptError, Action, ConnectFailure, ConnectionId, GatewayStats, Transmit};
use super::ids::IdSource;
use super::refusal::Refusal;
use super::session::{BackendState, Session};
use super::slab::{BackendId, Sessions};
use super::timers::{TimerKey, Timers};

/// The checked settings the gateway keeps, and the encoder made from them.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) config: GatewayConfig,
    pub(super) encoder: ResponseEncoder,
}

impl Settings {
    pub(super) fn framing(&self) -> Framing<'_> {
        Framing { rules: &self.config.payload_commands, limits: self.config.framer_limits }
    }

    pub(super) fn cors(&self) -> Option<&CorsPolicy> {
        self.config.cors.as_ref()
    }
}

/// An HTTP gateway in front of TCP MSNP servers, as a pure state machine: many client
/// connections, many sessions, one backend connection per session. No sockets, no clock, no
/// OS randomness (session IDs come from [`GatewayConfig::seed`]).
///
/// # Drive contract
///
/// The driver owns the listening socket, every client and backend socket, and the clock. It
/// names client connections ([`ConnectionId`]); the gateway names backends ([`BackendId`]).
/// It calls, in any order:
///
/// - [`handle_accept`](Self::handle_accept) for a new client connection (close it if refused),
///   [`handle_client_input`](Self::handle_client_input) with at most
///   [`client_read_budget`](Self::client_read_budget) bytes read from it (stop reading while
///   the budget is zero), [`handle_client_written`](Self::handle_client_written) after each
///   write of answer bytes to it, and [`handle_client_eof`](Self::handle_client_eof) once it
///   is closed, whether it ended, broke, or the gateway asked for the close (it counts against
///   [`GatewayConfig::max_connections`] until then);
/// - [`handle_backend_connected`](Self::handle_backend_connected) or
///   [`handle_backend_connect_failed`](Self::handle_backend_connect_failed) after an
///   [`Action::Connect`], [`handle_backend_input`](Self::handle_backend_input) with bytes read
///   from a backend (it returns how many it took; keep the rest and stop reading until
///   [`Action::ResumeBackend`]), and [`handle_backend_eof`](Self::handle_backend_eof);
/// - [`handle_timeout`](Self::handle_timeout) when [`poll_timeout`](Self::poll_timeout)
///   passes (spurious calls are harmless);
/// - [`begin_shutdown`](Self::begin_shutdown) once, to stop: idle connections are closed.
///
/// After each of those calls it drains, in this order:
///
/// 1. [`poll_transmit`](Self::poll_transmit) until `None`: bytes to write to a client or a
///    backend, in order per destination. A client write may say `close`: close after writing;
///    or `interim`: a `100 Continue`, the answer comes later.
/// 2. [`poll_action`](Self::poll_action) until `None`: connect, pause, resume, close. A
///    `CloseBackend` always comes after the last bytes for that backend.
/// 3. [`poll_timeout`](Self::poll_timeout): wake up then (or on input) and call
///    [`handle_timeout`](Self::handle_timeout). `None`: nothing is due.
///
/// Every method that takes `now` expects a monotonic clock; the gateway never reads one.
///
/// # Behaviour
///
/// - `Action=open` (or a request without `SessionID`) opens a session with the backend named
///   by `IP=`, if [`GatewayConfig::backends`] allows it for the kind `Server=` names (`403`
///   otherwise). An `IP=` without a port (real clients strip it) means the MSNP port of that
///   kind, [`GatewayConfig::msnp_ports`]. A rule without a port allows only those ports. The
///   request's body goes to the backend once connected, and the request is answered with the
///   backend's reply, as for any request that carries commands (below).
/// - Every `200` carries `X-MSN-Messenger: SessionID=<stable>.<suffix>; GW-IP=<gw_ip>`. The
///   stable part is 64 random bits; the suffix changes with every response, and only the
///   latest ID, as the exact string issued, is accepted: an unknown, stale or expired ID gets
///   `400`. `Action=poll` without a `SessionID` is a `400` too.
/// - One request in flight per session. A second one gets `400`, as from the official gateway,
///   and **ends the session**: the first request is answered at once with what is queued and
///   `Session=close` (if its body is still arriving, once it is complete, and its commands are
///   passed on first), and the backend is closed. (A client that sent two requests has broken
///   the protocol, and a `400` tells it the session is gone anyway.)
/// - Responses hold whole MSNP commands up to [`GatewayConfig::max_response_body_bytes`]; a
///   command larger than that goes in pieces. A command still arriving from the backend waits
///   for its end, unless the backend closed or the queue is full.
/// - A request carrying commands is answered with what the backend sends after them (and
///   what it had queued before): it is held up to `reply_wait` for the backend to start
///   answering, then until the backend has been quiet for
///   [`GatewayConfig::reply_quiet_gap`] (servers write replies line by line, with unsolicited
///   commands among them), at most `reply_quiet_gap` past `reply_wait`, or until a whole
///   response is queued.
/// - A poll with `Lifespan=N` is held up to `N` seconds (at most
///   [`GatewayConfig::max_lifespan`]), and answered as soon as a whole command is queued.
/// - `Session=close` comes when the backend closed and its last bytes are in the response, or
///   in the answer to the request that carried `OUT` (bytes beyond one response are dropped).
/// - A session with no request for [`GatewayConfig::idle_timeout`] ends.
/// - Backpressure: a session queues at most [`GatewayConfig::max_queued_bytes`] from its
///   backend; then the backend is paused until the client's polls drain the queue to half.
///   Nothing is dropped.
/// - A client connection dropped before its answer was written loses nothing: the queued
///   bytes stay, the ID does not change, and the client may repeat the request. A request
///   whose body did not arrive whole reaches the backend not at all.
/// - Requests on a connection are served one at a time: the next is read only once the
///   answer before it is written, so a connection holds at most one unwritten answer and
///   `http_limits.max_head_bytes` of pipelined input. A connection that takes no answer bytes
///   for [`GatewayConfig::send_timeout`] is closed.
///
/// # Example: a blocking driver over `std::net`
///
/// A polling sketch; a real driver (such as `msn-http-tokio`) waits on readiness instead.
///
/// ```no_run
/// use std::collections::HashMap;
/// use std::io::{ErrorKind, Read, Write};
/// use std::net::{TcpListener, TcpStream};
/// use std::time::{Duration, Instant};
///
/// use msn_http_core::gateway::{
///     Action, BackendAllowlist, BackendId, ConnectFailure, ConnectionId, Gateway, GatewayConfig,
///     Transmit,
/// };
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut seed = [0u8; 32];
/// std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
/// let backends = BackendAllowlist::new().allow("127.0.0.1", Some(1863));
/// let config = GatewayConfig::new("127.0.0.1:8080", seed).with_backends(backends);
/// let mut gw = Gateway::new(config, Instant::now())?;
///
/// let listener = TcpListener::bind("127.0.0.1:8080")?;
/// listener.set_nonblocking(true)?;
/// let mut clients: HashMap<ConnectionId, TcpStream> = HashMap::new();
/// // A backend socket, whether it is paused, and bytes the gateway did not take yet.
/// let mut backends: HashMap<BackendId, (TcpStream, bool, Vec<u8>)> = HashMap::new();
/// let (mut next_id, mut out, mut buf) = (0u64, Vec::new(), vec![0u8; 16 * 1024]);
/// loop {
///     let now = Instant::now();
///     while let Ok((stream, _)) = listener.accept() {
///         // `stream` is dropped (closed) unless the gateway takes it.
///         next_id += 1;
///         if gw.handle_accept(now, ConnectionId(next_id)).is_ok() {
///             stream.set_nonblocking(true)?;
///             clients.insert(ConnectionId(next_id), stream);
///         }
///     }
///     let mut gone = Vec::new();
///     for (&id, stream) in clients.iter_mut() {
///         // One request at a time: read no more than the gateway takes now.
///         let budget = gw.client_read_budget(id).min(buf.len());
///         if budget == 0 {
///             continue;
///         }
///         match stream.read(&mut buf[..budget]) {
///             Ok(0) => gone.push(id),
///             Ok(n) => {
///                 gw.handle_client_input(now, id, &buf[..n]);
///             }
///             Err(e) if e.kind() == ErrorKind::WouldBlock => {}
///             Err(_) => gone.push(id),
///         }
///     }
///     for id in gone {
///         clients.remove(&id);
///         gw.handle_client_eof(now, id);
///     }
///     let mut ended = Vec::new();
///     for (&id, (stream, paused, kept)) in backends.iter_mut() {
///         if *paused {
///             continue;
///         }
///         if kept.is_empty() {
///             match stream.read(&mut buf) {
///                 Ok(0) => ended.push(id),
///                 Ok(n) => kept.extend_from_slice(&buf[..n]),
///                 Err(e) if e.kind() == ErrorKind::WouldBlock => {}
///                 Err(_) => ended.push(id),
///             }
///         }
///         let taken = gw.handle_backend_input(now, id, kept);
///         kept.drain(..taken);
///     }
///     for id in ended {
///         gw.handle_backend_eof(now, id);
///     }
///     gw.handle_timeout(now);
///
///     // Drain: transmits, then actions.
///     loop {
///         out.clear();
///         match gw.poll_transmit(now, &mut out) {
///             None => break,
///             Some(Transmit::Client { connection, close, .. }) => {
///                 // A blocking write: all of it is written (or the connection is broken).
///                 if let Some(stream) = clients.get_mut(&connection) {
///                     let _ = stream.write_all(&out);
///                 }
///                 gw.handle_client_written(now, connection, 0);
///                 if close {
///                     clients.remove(&connection);
///                     gw.handle_client_eof(now, connection);
///                 }
///             }
///             Some(Transmit::Backend { backend, .. }) => {
///                 if let Some((stream, ..)) = backends.get_mut(&backend) {
///                     let _ = stream.write_all(&out);
///                 }
///             }
///         }
///     }
///     while let Some(action) = gw.poll_action() {
///         match action {
///             Action::Connect { backend, endpoint, .. } => {
///                 match TcpStream::connect((endpoint.host(), endpoint.port())) {
///                     Ok(stream) => {
///                         stream.set_nonblocking(true)?;
///                         backends.insert(backend, (stream, false, Vec::new()));
///                         gw.handle_backend_connected(now, backend);
///                     }
///                     Err(_) => {
///                         gw.handle_backend_connect_failed(now, backend, ConnectFailure::Unreachable)
///                     }
///                 }
///             }
///             Action::PauseBackend(id) | Action::ResumeBackend(id) => {
///                 let pause = matches!(action, Action::PauseBackend(_));
///                 if let Some(backend) = backends.get_mut(&id) {
///                     backend.1 = pause;
///                 }
///             }
///             Action::CloseBackend(id) => {
///                 backends.remove(&id);
///             }
///             Action::CloseClient(id) => {
///                 clients.remove(&id);
///                 gw.handle_client_eof(now, id);
///             }
///             _ => {}
///         }
///     }
///     // Outputs of `handle_backend_connected` are drained on the next turn.
///     let wake = gw.poll_timeout().unwrap_or(now + Duration::from_millis(10));
///     std::thread::sleep(wake.saturating_duration_since(now).min(Duration::from_millis(10)));
/// }
/// # }
/// ```
///
/// # Guarantees
///
/// - Memory is bounded by the settings: sessions, connections, head bytes per connection,
///   queued bytes per session, body bytes per request. No input makes the gateway panic.
/// - Bytes reach each backend in the order the client sent them, exactly once; bytes reach the
///   client in the order the backend sent them, none dropped while the session lives.
pub struct Gateway {
    pub(super) settings: Settings,
    pub(super) ids: IdSource,
    pub(super) sessions: Sessions,
    pub(super) conns: BTreeMap<ConnectionId, Conn>,
    pub(super) ready_conns: VecDeque<ConnectionId>,
    pub(super) ready_backends: VecDeque<BackendId>,
    pub(super) actions: VecDeque<Action>,
    timers: Timers,
    /// Head and pipelined bytes buffered over all connections.
    pub(super) head_bytes: usize,
    /// [`Gateway::begin_shutdown`] was called: connections are closed once idle.
    pub(super) shutting_down: bool,
    pub(super) stats: GatewayStats,
    pub(super) now: Instant,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("gw_ip", &self.settings.encoder.gw_ip())
            .field("sessions", &self.sessions.len())
            .field("connections", &self.conns.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway with `config`, checked.
    pub fn new(config: GatewayConfig, now: Instant) -> Result<Self, GatewayConfigError> {
        config.check()?;
        let encoder =
            ResponseEncoder::new(&config.gw_ip).map_err(GatewayConfigError::InvalidGwIp)?;
        Ok(Self {
            ids: IdSource::new(config.seed),
            settings: Settings { config, encoder },
            sessions: Sessions::default(),
            conns: BTreeMap::new(),
            ready_conns: VecDeque::new(),
            ready_backends: VecDeque::new(),
            actions: VecDeque::new(),
            timers: Timers::default(),
            head_bytes: 0,
            shutting_down: false,
            stats: GatewayStats::default(),
            now,
        })
    }

    /// A client connection was accepted. On an error, close it: the gateway does not know it.
    pub fn handle_accept(&mut self, now: Instant, conn: ConnectionId) -> Result<(), AcceptError> {
        self.tick(now);
        if self.conns.contains_key(&conn) {
            return Err(AcceptError::DuplicateConnection);
        }
        let limit = self.settings.config.max_connections;
        if self.conns.len() >= limit {
            return Err(AcceptError::TooManyConnections { limit });
        }
        self.conns.insert(conn, Conn::new(self.settings.config.http_limits, self.now));
        self.arm_conn(conn);
        if self.shutting_down {
            self.close_idle(conn);
        }
        Ok(())
    }

    /// Bytes read from a client connection. Returns how many the gateway took: all of them
    /// when the driver read at most [`client_read_budget`](Self::client_read_budget); keep the
    /// rest and offer it again once the budget is positive. Input for an unknown connection,
    /// or one being closed, is taken and dropped.
    pub fn handle_client_input(&mut self, now: Instant, conn: ConnectionId, bytes: &[u8]) -> usize {
        self.tick(now);
        let taken = self.feed(conn, bytes);
        if self.account(conn) && self.head_bytes > self.settings.config.max_buffered_head_bytes {
            // Too many slow heads at once: this connection is the one that tipped it.
            self.fail_request(conn, Refusal::HeadBudgetExceeded);
            self.account(conn);
        }
        taken
    }

    /// How many bytes to read from a client connection now, at most. Requests are served one
    /// at a time: while an answer is unwritten, the bytes of the requests after it are kept,
    /// up to `http_limits.max_head_bytes`, and then this is zero: stop reading until
    /// [`handle_client_written`](Self::handle_client_written) reports the answer written.
    /// Zero for a connection being closed, or unknown.
    pub fn client_read_budget(&self, conn: ConnectionId) -> usize {
        let cap = self.settings.config.http_limits.max_head_bytes;
        self.conns.get(&conn).map_or(0, |c| c.read_budget(cap))
    }

    /// The driver wrote answer bytes to a client connection: `unwritten` of those handed out
    /// are still waiting (zero: all written). Call it after every write that made progress.
    /// Once an answer is all written the next request is read; a connection that takes no
    /// answer bytes for [`GatewayConfig::send_timeout`] is closed.
    pub fn handle_client_written(&mut self, now: Instant, conn: ConnectionId, unwritten: usize) {
        self.tick(now);
        self.client_written(conn, unwritten);
    }

    /// A client connection ended, broke, or was closed (also when the gateway asked for it):
    /// call it once its socket is closed. A request it carried is forgotten; its session goes
    /// on (the client may repeat the request with the same ID), unless it was the open request.
    pub fn handle_client_eof(&mut self, now: Instant, conn: ConnectionId) {
        self.tick(now);
        self.client_eof(conn);
    }

    /// The connection to a backend is made.
    pub fn handle_backend_connected(&mut self, now: Instant, backend: BackendId) {
        self.tick(now);
        let Some(s) = self.sessions.get_mut(backend) else {
            return;
        };
        if s.backend != BackendState::Connecting {
            return;
        }
        s.backend = BackendState::Open { paused: false };
        let held = s.is_held();
        self.queue_backend(backend);
        if held {
            self.settle(backend);
        }
    }

    /// Connecting to a backend failed, for `cause`. The open request gets `502` (the backend
    /// could not be reached) or `503` (this host is out of descriptors or memory: the gateway
    /// is full), and the session ends.
    pub fn handle_backend_connect_failed(
        &mut self,
        now: Instant,
        backend: BackendId,
        cause: ConnectFailure,
    ) {
        self.tick(now);
        let connecting = self.sessions.get(backend).map(|s| s.backend);
        if connecting == Some(BackendState::Connecting) {
            self.stats.backend_connect_failures += 1;
            let why = match cause {
                ConnectFailure::Unreachable => Refusal::BackendUnreachable,
                ConnectFailure::OutOfResources => Refusal::OutOfResources,
            };
            self.end_session(backend, why);
        }
    }

    /// Bytes read from a backend. Returns how many the gateway took: fewer than offered only
    /// when the session's queue is full, in which case [`Action::PauseBackend`] was issued and
    /// the driver keeps the rest for after [`Action::ResumeBackend`]. Input for an unknown or
    /// closed backend is taken and dropped.
    pub fn handle_backend_input(
        &mut self,
        now: Instant,
        backend: BackendId,
        bytes: &[u8],
    ) -> usize {
        self.tick(now);
        self.backend_input(now, backend, bytes)
    }

    /// A backend closed its connection. What it sent still reaches the client, the last of it
    /// with `Session=close`.
    pub fn handle_backend_eof(&mut self, now: Instant, backend: BackendId) {
        self.tick(now);
        let Some(s) = self.sessions.get_mut(backend) else {
            return;
        };
        if s.backend == BackendState::Connecting {
            self.stats.backend_connect_failures += 1;
            return self.end_session(backend, Refusal::BackendUnreachable);
        }
        s.backend = BackendState::Closed;
        s.up.clear();
        if s.is_held() {
            self.answer(backend);
        }
    }

    /// Time passed: answers held requests whose time is up, ends idle sessions, times out slow
    /// requests and idle connections. Spurious calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        while let Some((at, key)) = self.timers.pop_due(self.now) {
            match key {
                TimerKey::Session(k) => {
                    if let Some(s) = self.sessions.get_mut(k) {
                        if s.armed == Some(at) {
                            s.armed = None;
                        }
                        self.session_timer(k);
                        self.arm_session(k);
                    }
                }
                TimerKey::Conn(id) => {
                    if let Some(c) = self.conns.get_mut(&id) {
                        if c.armed == Some(at) {
                            c.armed = None;
                        }
                        self.conn_timer(id);
                        self.arm_conn(id);
                    }
                }
            }
        }
    }

    /// Appends the next bytes to write to `out` and says where they go, or `None` when nothing
    /// is due. Backend writes come before client answers, so a session that ends in this answer
    /// has its last commands (such as `OUT`) written to the backend first.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<Transmit> {
        self.tick(now);
        self.transmit_backend(out).or_else(|| self.transmit_client(out))
    }

    /// The server is shutting down: it accepts no more connections and lets the ones it has
    /// finish. Every client connection with no request in flight is closed now (an
    /// [`Action::CloseClient`] each), and every other one once its answer is written; a
    /// connection accepted after this is closed at once. Sessions are not ended: the driver
    /// decides how long to wait for the answers in flight.
    pub fn begin_shutdown(&mut self, now: Instant) {
        self.tick(now);
        self.shutting_down = true;
        let idle: Vec<ConnectionId> =
            self.conns.iter().filter(|(_, c)| c.is_idle()).map(|(&id, _)| id).collect();
        for id in idle {
            self.close_idle(id);
        }
    }

    /// The next thing to do besides writing.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called; `None` when nothing
    /// is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Sessions open.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Client connections known: those being closed count until the driver reports them
    /// closed.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// The longest answer the gateway writes, head included. Since requests are served one at
    /// a time, a client connection never has more than this (and a `100 Continue`) unwritten.
    pub fn max_answer_bytes(&self) -> usize {
        // The head's fixed text is under 400 bytes; the ID, GW-IP and CORS origin vary.
        let config = &self.settings.config;
        config.max_response_body_bytes + 1024 + config.gw_ip.len() + MAX_ORIGIN_LEN
    }

    /// The `GW-IP` the gateway announces.
    pub fn gw_ip(&self) -> &str {
        self.settings.encoder.gw_ip()
    }

    /// Counters.
    pub fn stats(&self) -> GatewayStats {
        self.stats
    }

    /// Heap bytes held in buffers by sessions and connections (queues, staged bodies, head and
    /// pipelining buffers), for capacity planning. Excludes the fixed size of each entry.
    pub fn buffered_capacity(&self) -> usize {
        let sessions: usize = self.sessions.iter().map(Session::buffered_capacity).sum();
        let conns: usize = self.conns.values().map(Conn::buffered_capacity).sum();
        sessions + conns
    }

    /// An estimate of all the memory the gateway holds, in bytes: session and connection
    /// entries, their buffers, the maps, queues and timers (map nodes counted at 1.5 times
    /// their entries). For capacity planning; the driver's sockets come on top.
    pub fn memory_usage(&self) -> usize {
        use std::mem::size_of;
        let conn_heaps: usize = self.conns.values().map(Conn::heap_capacity).sum();
        let session_heaps: usize = self.sessions.iter().map(Session::buffered_capacity).sum();
        size_of::<Self>()
            + self.sessions.memory_usage()
            + self.conns.len() * size_of::<(ConnectionId, Conn)>() * 3 / 2
            + conn_heaps
            + session_heaps
            + self.ready_conns.capacity() * size_of::<ConnectionId>()
            + self.ready_backends.capacity() * size_of::<BackendId>()
            + self.actions.capacity() * size_of::<Action>()
            + self.timers.memory_usage()
    }

    fn tick(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// Adds a timer entry; see [`Timers::push`].
    pub(super) fn push_timer(&mut self, at: Instant, key: TimerKey) {
        let live = self.sessions.len() + self.conns.len();
        let (sessions, conns) = (&self.sessions, &self.conns);
        self.timers.push(at, key, live, |at, key| match key {
            TimerKey::Session(k) => sessions.get(k).is_some_and(|s| s.armed == Some(at)),
            TimerKey::Conn(id) => conns.get(&id).is_some_and(|c| c.armed == Some(at)),
        });
    }
}
