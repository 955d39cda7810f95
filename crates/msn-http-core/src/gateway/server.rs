//! The gateway state machine: HTTP client connections in, MSNP backend connections out, and the
//! sessions that tie them together.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use crate::Endpoint;
use crate::wire::{
    ConnectionHeader, GatewayQuery, HttpVersion, MAX_ORIGIN_LEN, Method, QueryAction,
    RequestDecoder, RequestHead, RequestStep, ResponseEncoder, ServerKind, SessionResponse,
};

use super::config::{CorsPolicy, GatewayConfig, GatewayConfigError, MsnpPorts, PingPolicy};
use super::ids::{IdSource, IdText, parse_session_id};
use super::streams::{Commit, Downstream, Framing, PingHandling, Upstream};

/// A client connection, named by the driver. IDs must be unique among the connections the
/// gateway knows: from [`Gateway::handle_accept`] until the driver reports
/// [`Gateway::handle_client_eof`] (also after the gateway asked for the close).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// A backend connection (one per session), named by the gateway. Never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendId {
    slot: u32,
    generation: u32,
}

impl BackendId {
    /// A number unique to this backend, for the driver's maps and logs.
    pub fn as_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.slot)
    }
}

impl fmt::Display for BackendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "backend-{}", self.as_u64())
    }
}

/// Bytes to write, produced by [`Gateway::poll_transmit`] into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Write `len` bytes to a client connection.
    Client {
        /// The connection.
        connection: ConnectionId,
        /// How many bytes were appended to the buffer.
        len: usize,
        /// Close the connection once they are written, and report
        /// [`Gateway::handle_client_eof`] once the socket is closed (it counts against
        /// [`GatewayConfig::max_connections`] until then). The client may still be sending a
        /// body the gateway refused to read, so shut down the writing side first and drain
        /// briefly; an abrupt close can destroy the answer.
        close: bool,
        /// These bytes are an interim `100 Continue`, not the answer: the request's answer is
        /// still to come (for a driver that tracks which requests are answered).
        interim: bool,
    },
    /// Write `len` bytes to a backend.
    Backend {
        /// The backend.
        backend: BackendId,
        /// How many bytes were appended to the buffer.
        len: usize,
    },
}

/// Something the driver must do besides writing, produced by [`Gateway::poll_action`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Open a TCP connection to `endpoint` and report the outcome with
    /// [`Gateway::handle_backend_connected`] or [`Gateway::handle_backend_connect_failed`].
    /// Every `Connect` is matched later by exactly one [`Action::CloseBackend`].
    Connect {
        /// The new backend.
        backend: BackendId,
        /// Where to connect (after the allowlist's routing).
        endpoint: Endpoint,
        /// Whether the client opened a notification server or a switchboard session.
        server: ServerKind,
    },
    /// Stop reading this backend: its session's queue is full. Bytes already read and not
    /// accepted by [`Gateway::handle_backend_input`] are kept by the driver.
    PauseBackend(BackendId),
    /// Read this backend again (offer the kept bytes first).
    ResumeBackend(BackendId),
    /// Close this backend (after writing the bytes already handed out for it) and forget it.
    /// Later input for it is ignored.
    CloseBackend(BackendId),
    /// Close this client connection now, dropping bytes not yet written: it sat idle past
    /// [`GatewayConfig::keep_alive_timeout`], or took no answer bytes for
    /// [`GatewayConfig::send_timeout`], or the gateway is shutting down
    /// ([`Gateway::begin_shutdown`]) and it has no request in flight. Report
    /// [`Gateway::handle_client_eof`] once the socket is closed; it counts against
    /// [`GatewayConfig::max_connections`] until then.
    CloseClient(ConnectionId),
}

/// Why connecting to a backend failed, as far as the client's answer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// The backend could not be reached (refused, unreachable, timed out): `502`.
    Unreachable,
    /// This host ran out of file descriptors, ports or memory: the gateway is full, `503`.
    OutOfResources,
}

/// Why [`Gateway::handle_accept`] refused a connection. Close it without a word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcceptError {
    /// [`GatewayConfig::max_connections`] connections are open.
    TooManyConnections {
        /// The configured limit.
        limit: usize,
    },
    /// The ID names a connection the gateway still knows.
    DuplicateConnection,
}

impl fmt::Display for AcceptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyConnections { limit } => write!(f, "{limit} client connections open"),
            Self::DuplicateConnection => f.write_str("connection ID already in use"),
        }
    }
}

impl std::error::Error for AcceptError {}

/// Counters over the gateway's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayStats {
    /// Sessions opened.
    pub sessions_opened: u64,
    /// Sessions ended, for any reason.
    pub sessions_ended: u64,
    /// Of which ended by the idle timeout.
    pub sessions_expired: u64,
    /// Requests received whole.
    pub requests: u64,
    /// `200` answers of sessions.
    pub responses: u64,
    /// Error answers (4xx, 5xx).
    pub error_responses: u64,
    /// Opens refused by the allowlist.
    pub refused_backends: u64,
    /// Requests with an unknown, stale or expired session ID.
    pub unknown_session_ids: u64,
    /// Second requests while one was in flight.
    pub concurrent_requests: u64,
    /// `PNG`s refused (and sessions ended for them).
    pub refused_pings: u64,
    /// `PNG`s answered by the gateway.
    pub answered_pings: u64,
    /// Backend connections that failed or timed out.
    pub backend_connect_failures: u64,
    /// Client connections closed for taking no answer bytes for `send_timeout`.
    pub send_timeouts: u64,
    /// Times a backend was paused for a full queue.
    pub backend_pauses: u64,
    /// MSNP bytes handed out for backends.
    pub bytes_to_backends: u64,
    /// MSNP bytes accepted from backends.
    pub bytes_from_backends: u64,
}

/// The checked settings the gateway keeps.
#[derive(Debug)]
struct Settings {
    config: GatewayConfig,
    ping: PingHandling,
}

impl Settings {
    fn framing(&self) -> Framing<'_> {
        Framing { rules: &self.config.payload_commands, limits: self.config.framer_limits }
    }

    fn cors(&self) -> Option<&CorsPolicy> {
        self.config.cors.as_ref()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The backend connection is being made.
    Connecting,
    Open,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReqState {
    /// The body is arriving.
    Receiving,
    /// Complete, held until `until` (or until something can be answered).
    Held { until: Instant },
    /// The answer is due at the next `poll_transmit`.
    Answering,
}

/// The one request a session has in flight.
#[derive(Clone, Copy, Debug)]
struct Request {
    conn: ConnectionId,
    state: ReqState,
    lifespan: Option<u32>,
    has_body: bool,
    /// Its commands were passed on: it waits for what the backend sends after them.
    forwarded: bool,
    /// While waiting for that reply: the latest the answer may go, once bytes flow.
    reply_cap: Option<Instant>,
}

impl Request {
    fn new(conn: ConnectionId, lifespan: Option<u32>) -> Self {
        Self {
            conn,
            state: ReqState::Receiving,
            lifespan,
            has_body: false,
            forwarded: false,
            reply_cap: None,
        }
    }
}

/// One gateway session: the MSNP connection to its backend and the bytes queued both ways.
#[derive(Debug)]
struct Session {
    stable: u64,
    suffix: u32,
    phase: Phase,
    backend_closed: bool,
    /// The next response ends the session (after `OUT`, or a concurrent request).
    closing: bool,
    /// A response gave the client this session's ID.
    issued: bool,
    paused: bool,
    in_backend_queue: bool,
    pending_pings: u8,
    request: Option<Request>,
    idle_since: Instant,
    /// The earliest timer entry this session has in the heap.
    armed: Option<Instant>,
    down: Downstream,
    up: Upstream,
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    session: Option<Session>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reply {
    Session(BackendId),
    Status(u16),
    Preflight,
}

/// Where the body of the request being read goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sink {
    Session(BackendId),
    /// Read and drop it, then answer.
    Then(Reply),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    Idle {
        since: Instant,
    },
    /// A request is arriving; `sink` is known once its head is.
    Reading {
        since: Instant,
        sink: Option<Sink>,
    },
    /// The request is complete and its session holds it.
    Waiting(BackendId),
    /// The answer is due at the next `poll_transmit`.
    Replying(Reply),
    /// The answer was handed out and the driver has not yet reported all of it written; the
    /// next request waits. `since`: the answer, or the last write progress.
    Sending {
        since: Instant,
        unwritten: usize,
    },
    /// The driver was told to close the connection; it counts until the driver reports the
    /// socket closed. `since` while a last answer is still being written (the driver closes
    /// after it); `None` once it was told to close at once.
    Closing {
        since: Option<Instant>,
        unwritten: usize,
    },
}

impl ConnState {
    /// No byte of a request has arrived since the last answer was written.
    fn is_idle(self) -> bool {
        matches!(self, Self::Idle { .. })
    }

    /// A request has arrived whole and its answer is not written yet.
    fn outstanding(self) -> bool {
        matches!(self, Self::Waiting(_) | Self::Replying(_) | Self::Sending { .. })
    }
}

#[derive(Debug)]
struct Conn {
    decoder: RequestDecoder,
    state: ConnState,
    /// Bytes that arrived while a request was outstanding (a pipelined request).
    stash: Vec<u8>,
    /// Close the connection after the answer.
    close_after: bool,
    in_ready: bool,
    continue_due: bool,
    armed: Option<Instant>,
    /// Bytes of this connection counted in `Gateway::head_bytes`.
    accounted: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Session(BackendId),
    Conn(ConnectionId),
}

/// What a request head asks for, read before anything is changed.
enum Route {
    /// Answer and close at once: the body cannot be read.
    Fail(u16),
    /// Read the body, then answer.
    Then(Reply),
    Open {
        ip: Result<Endpoint, ()>,
        server: ServerKind,
    },
    Existing {
        id: Option<(u64, u32)>,
        lifespan: Option<u32>,
    },
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
    settings: Settings,
    encoder: ResponseEncoder,
    ids: IdSource,
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_stable: BTreeMap<u64, u32>,
    conns: BTreeMap<ConnectionId, Conn>,
    ready_conns: VecDeque<ConnectionId>,
    ready_backends: VecDeque<BackendId>,
    actions: VecDeque<Action>,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    /// Head and pipelined bytes buffered over all connections.
    head_bytes: usize,
    /// [`Gateway::begin_shutdown`] was called: connections are closed once idle.
    shutting_down: bool,
    stats: GatewayStats,
    now: Instant,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("gw_ip", &self.encoder.gw_ip())
            .field("sessions", &self.by_stable.len())
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
        let ping = match config.ping {
            PingPolicy::Refuse => PingHandling::Refuse,
            PingPolicy::Answer { .. } => PingHandling::Answer,
            PingPolicy::Forward => PingHandling::Forward,
        };
        Ok(Self {
            ids: IdSource::new(config.seed),
            settings: Settings { config, ping },
            encoder,
            slots: Vec::new(),
            free: Vec::new(),
            by_stable: BTreeMap::new(),
            conns: BTreeMap::new(),
            ready_conns: VecDeque::new(),
            ready_backends: VecDeque::new(),
            actions: VecDeque::new(),
            timers: BinaryHeap::new(),
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
        self.conns.insert(
            conn,
            Conn {
                decoder: RequestDecoder::new(self.settings.config.http_limits),
                state: ConnState::Idle { since: self.now },
                stash: Vec::new(),
                close_after: false,
                in_ready: false,
                continue_due: false,
                armed: None,
                accounted: 0,
            },
        );
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
            self.fail_request(conn, 503);
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
        match self.conns.get(&conn) {
            None => 0,
            Some(c) => match c.state {
                ConnState::Closing { .. } => 0,
                state if state.outstanding() && c.close_after => 0,
                _ => cap.saturating_sub(c.stash.len()),
            },
        }
    }

    /// The driver wrote answer bytes to a client connection: `unwritten` of those handed out
    /// are still waiting (zero: all written). Call it after every write that made progress.
    /// Once an answer is all written the next request is read; a connection that takes no
    /// answer bytes for [`GatewayConfig::send_timeout`] is closed.
    pub fn handle_client_written(&mut self, now: Instant, conn: ConnectionId, unwritten: usize) {
        self.tick(now);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match c.state {
            ConnState::Sending { .. } if unwritten == 0 => {
                c.state = ConnState::Idle { since: self.now };
                c.decoder.reset();
                let stash = std::mem::take(&mut c.stash);
                self.arm_conn(conn);
                if !stash.is_empty() {
                    let taken = self.feed(conn, &stash);
                    debug_assert_eq!(taken, stash.len(), "the stash fits the budget it came from");
                }
                self.account(conn);
                let idle = self.conns.get(&conn).is_some_and(|c| c.state.is_idle());
                if self.shutting_down && idle {
                    self.close_idle(conn);
                }
            }
            ConnState::Sending { unwritten: before, .. } if unwritten < before => {
                c.state = ConnState::Sending { since: self.now, unwritten };
                self.arm_conn(conn);
            }
            ConnState::Closing { since: Some(_), unwritten: before } if unwritten < before => {
                c.state = ConnState::Closing { since: Some(self.now), unwritten };
                self.arm_conn(conn);
            }
            _ => {}
        }
    }

    /// A client connection ended, broke, or was closed (also when the gateway asked for it):
    /// call it once its socket is closed. A request it carried is forgotten; its session goes
    /// on (the client may repeat the request with the same ID), unless it was the open request.
    pub fn handle_client_eof(&mut self, now: Instant, conn: ConnectionId) {
        self.tick(now);
        let Some(c) = self.remove_conn(conn) else {
            return;
        };
        match c.state {
            ConnState::Reading { sink: Some(Sink::Session(key)), .. }
            | ConnState::Waiting(key)
            | ConnState::Replying(Reply::Session(key)) => self.release_request(key, conn),
            _ => {}
        }
    }

    /// The connection to a backend is made.
    pub fn handle_backend_connected(&mut self, now: Instant, backend: BackendId) {
        self.tick(now);
        let Some(s) = self.session_mut(backend) else {
            return;
        };
        if s.phase != Phase::Connecting {
            return;
        }
        s.phase = Phase::Open;
        let held = matches!(s.request, Some(Request { state: ReqState::Held { .. }, .. }));
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
        if self.session_mut(backend).is_some_and(|s| s.phase == Phase::Connecting) {
            self.stats.backend_connect_failures += 1;
            let status = match cause {
                ConnectFailure::Unreachable => 502,
                ConnectFailure::OutOfResources => 503,
            };
            self.end_session(backend, status);
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
        let max = self.settings.config.max_queued_bytes;
        let Some(s) = self.session_mut(backend) else {
            return bytes.len();
        };
        if s.backend_closed {
            return bytes.len();
        }
        if s.phase == Phase::Connecting {
            // Data proves the connection; the driver may report it later or never.
            self.handle_backend_connected(now, backend);
        }
        let Some(s) = self.session_mut(backend) else {
            return bytes.len();
        };
        let n = bytes.len().min(max.saturating_sub(s.down.len()));
        s.down.push(&bytes[..n]);
        let pause = s.down.len() >= max && !s.paused;
        if pause {
            s.paused = true;
        }
        let held = matches!(s.request, Some(Request { state: ReqState::Held { .. }, .. }))
            && s.phase == Phase::Open;
        self.stats.bytes_from_backends += n as u64;
        if pause {
            self.stats.backend_pauses += 1;
            self.actions.push_back(Action::PauseBackend(backend));
        }
        if held && n > 0 {
            self.heard(backend);
        }
        n
    }

    /// A backend closed its connection. What it sent still reaches the client, the last of it
    /// with `Session=close`.
    pub fn handle_backend_eof(&mut self, now: Instant, backend: BackendId) {
        self.tick(now);
        let Some(s) = self.session_mut(backend) else {
            return;
        };
        if s.phase == Phase::Connecting {
            self.stats.backend_connect_failures += 1;
            return self.end_session(backend, 502);
        }
        s.backend_closed = true;
        s.up.clear();
        let held = matches!(s.request, Some(Request { state: ReqState::Held { .. }, .. }));
        if held {
            self.answer(backend);
        }
    }

    /// Time passed: answers held requests whose time is up, ends idle sessions, times out slow
    /// requests and idle connections. Spurious calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        while let Some(&Reverse((at, key))) = self.timers.peek() {
            if at > self.now {
                break;
            }
            self.timers.pop();
            match key {
                TimerKey::Session(k) => {
                    if let Some(s) = self.session_mut(k) {
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
        loop {
            if let Some(key) = self.ready_backends.pop_front() {
                let Some(s) = session_in(&mut self.slots, key) else {
                    continue;
                };
                s.in_backend_queue = false;
                let ready = s.up.ready();
                if s.phase != Phase::Open || s.backend_closed || ready.is_empty() {
                    continue;
                }
                out.extend_from_slice(ready);
                let len = ready.len();
                s.up.take_ready();
                self.stats.bytes_to_backends += len as u64;
                return Some(Transmit::Backend { backend: key, len });
            }
            let id = self.ready_conns.pop_front()?;
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            if !conn.in_ready {
                continue;
            }
            conn.in_ready = false;
            if conn.continue_due {
                conn.continue_due = false;
                if matches!(conn.state, ConnState::Replying(_)) {
                    conn.in_ready = true;
                    self.ready_conns.push_front(id);
                }
                let start = out.len();
                self.encoder.encode_continue(out);
                return Some(Transmit::Client {
                    connection: id,
                    len: out.len() - start,
                    close: false,
                    interim: true,
                });
            }
            let ConnState::Replying(reply) = conn.state else {
                continue;
            };
            return Some(self.write_reply(id, reply, out));
        }
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
            self.conns.iter().filter(|(_, c)| c.state.is_idle()).map(|(&id, _)| id).collect();
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
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Sessions open.
    pub fn session_count(&self) -> usize {
        self.by_stable.len()
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
        self.encoder.gw_ip()
    }

    /// Counters.
    pub fn stats(&self) -> GatewayStats {
        self.stats
    }

    /// Heap bytes held in buffers by sessions and connections (queues, staged bodies, head and
    /// pipelining buffers), for capacity planning. Excludes the fixed size of each entry.
    pub fn buffered_capacity(&self) -> usize {
        let sessions: usize = self
            .slots
            .iter()
            .filter_map(|slot| slot.session.as_ref())
            .map(|s| s.down.capacity() + s.up.capacity())
            .sum();
        let conns: usize =
            self.conns.values().map(|c| c.stash.capacity() + c.decoder.buffered()).sum();
        sessions + conns
    }

    /// An estimate of all the memory the gateway holds, in bytes: session and connection
    /// entries, their buffers, the maps, queues and timers (map nodes counted at 1.5 times
    /// their entries). For capacity planning; the driver's sockets come on top.
    pub fn memory_usage(&self) -> usize {
        use std::mem::size_of;
        let map = |entry: usize, len: usize| len * entry * 3 / 2;
        let conn_heaps: usize =
            self.conns.values().map(|c| c.decoder.heap_capacity() + c.stash.capacity()).sum();
        let session_heaps: usize = self
            .slots
            .iter()
            .filter_map(|slot| slot.session.as_ref())
            .map(|s| s.down.capacity() + s.up.capacity())
            .sum();
        size_of::<Self>()
            + self.slots.capacity() * size_of::<Slot>()
            + self.free.capacity() * size_of::<u32>()
            + map(size_of::<(u64, u32)>(), self.by_stable.len())
            + map(size_of::<(ConnectionId, Conn)>(), self.conns.len())
            + conn_heaps
            + session_heaps
            + self.ready_conns.capacity() * size_of::<ConnectionId>()
            + self.ready_backends.capacity() * size_of::<BackendId>()
            + self.actions.capacity() * size_of::<Action>()
            + self.timers.capacity() * size_of::<Reverse<(Instant, TimerKey)>>()
    }

    /// Brings `head_bytes` up to date with what a connection buffers; `false` if it is gone.
    fn account(&mut self, id: ConnectionId) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        let held = conn.decoder.buffered() + conn.stash.len();
        self.head_bytes = self.head_bytes.saturating_sub(conn.accounted) + held;
        conn.accounted = held;
        true
    }

    /// The driver is to close the connection (after the answer just handed out, with `since`;
    /// at once, without): it reads nothing more and keeps no buffers, but counts until the
    /// driver reports the socket closed.
    fn begin_close(&mut self, id: ConnectionId, since: Option<Instant>) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.state = ConnState::Closing { since, unwritten: usize::MAX };
        conn.stash = Vec::new();
        conn.decoder.reset();
        conn.in_ready = false;
        conn.continue_due = false;
        self.arm_conn(id);
        self.account(id);
    }

    /// Asks the driver to close a connection that has no request in flight.
    fn close_idle(&mut self, id: ConnectionId) {
        self.begin_close(id, None);
        self.actions.push_back(Action::CloseClient(id));
    }

    fn remove_conn(&mut self, id: ConnectionId) -> Option<Conn> {
        let conn = self.conns.remove(&id)?;
        self.head_bytes = self.head_bytes.saturating_sub(conn.accounted);
        Some(conn)
    }

    fn tick(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    fn session_mut(&mut self, key: BackendId) -> Option<&mut Session> {
        session_in(&mut self.slots, key)
    }

    /// Decodes client bytes, request after request; returns how many it took. Bytes after a
    /// request whose answer is not written yet are kept, as many as the budget allows.
    fn feed(&mut self, id: ConnectionId, bytes: &[u8]) -> usize {
        let max_stash = self.settings.config.http_limits.max_head_bytes;
        let mut input = bytes;
        loop {
            let Some(conn) = self.conns.get_mut(&id) else {
                return bytes.len();
            };
            if let ConnState::Closing { .. } = conn.state {
                return bytes.len();
            }
            if conn.state.outstanding() {
                if conn.close_after {
                    // Nothing after this request will be read.
                    return bytes.len();
                }
                let n = input.len().min(max_stash.saturating_sub(conn.stash.len()));
                conn.stash.extend_from_slice(&input[..n]);
                return bytes.len() - input.len() + n;
            }
            let step = conn.decoder.decode(&mut input);
            if let ConnState::Idle { .. } = conn.state {
                if conn.decoder.started() {
                    conn.state = ConnState::Reading { since: self.now, sink: None };
                    self.arm_conn(id);
                }
            }
            match step {
                Err(e) => {
                    self.fail_request(id, e.status());
                    return bytes.len();
                }
                Ok(RequestStep::NeedMore) => return bytes.len(),
                Ok(RequestStep::Head) => self.on_head(id),
                Ok(RequestStep::Body(data)) => self.on_body(id, data),
                Ok(RequestStep::Complete) => {
                    self.on_complete(id);
                    let settled = self.conns.get(&id).is_none_or(|c| c.state.outstanding());
                    if !settled {
                        // Unreachable: every head routes its request. Stop rather than spin.
                        self.fail_request(id, 500);
                        return bytes.len();
                    }
                }
            }
        }
    }

    /// Answers with `status` and closes: the request cannot be read further.
    fn fail_request(&mut self, id: ConnectionId, status: u16) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if let ConnState::Closing { .. } = conn.state {
            return;
        }
        // A session request this connection holds (arriving, complete or being answered) is
        // given up as on EOF; otherwise the session would wait forever for a dead connection.
        let sink = match conn.state {
            ConnState::Reading { sink: Some(Sink::Session(key)), .. }
            | ConnState::Waiting(key)
            | ConnState::Replying(Reply::Session(key)) => Some(key),
            _ => None,
        };
        conn.state = ConnState::Replying(Reply::Status(status));
        conn.close_after = true;
        conn.continue_due = false;
        conn.stash = Vec::new();
        self.push_ready(id);
        if let Some(key) = sink {
            self.release_request(key, id);
        }
    }

    fn on_head(&mut self, id: ConnectionId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let head = conn.decoder.head();
        conn.close_after = !head.keep_alive();
        let expect = head.expects_continue();
        let route = classify(head, &self.settings.config);
        let sink = match route {
            Route::Fail(status) => return self.fail_request(id, status),
            Route::Then(reply) => Ok(Sink::Then(reply)),
            Route::Open { ip, server } => self.open_session(id, ip, server),
            Route::Existing { id: sid, lifespan } => self.attach(id, sid, lifespan),
        };
        let sink = match sink {
            // A client waiting for `100 Continue` would hold back the body we mean to skip.
            Ok(Sink::Then(Reply::Status(status))) | Err(status) if expect => {
                return self.fail_request(id, status);
            }
            Ok(sink) => sink,
            Err(status) => Sink::Then(Reply::Status(status)),
        };
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if let ConnState::Reading { since, .. } = conn.state {
            conn.state = ConnState::Reading { since, sink: Some(sink) };
        }
        if expect {
            conn.continue_due = true;
            self.push_ready(id);
        }
    }

    fn open_session(
        &mut self,
        conn: ConnectionId,
        ip: Result<Endpoint, ()>,
        server: ServerKind,
    ) -> Result<Sink, u16> {
        let config = &self.settings.config;
        if self.by_stable.len() >= config.max_sessions {
            return Err(503);
        }
        let requested = ip.map_err(|()| 400u16)?;
        let Some(endpoint) = config.backends.resolve(&requested, server, config.msnp_ports) else {
            self.stats.refused_backends += 1;
            return Err(403);
        };
        let stable = loop {
            let candidate = self.ids.stable();
            if !self.by_stable.contains_key(&candidate) {
                break candidate;
            }
        };
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                // `max_sessions` fits in a u32 (checked), and so does every slot index.
                self.slots.push(Slot { generation: 0, session: None });
                (self.slots.len() - 1) as u32
            }
        };
        let entry = &mut self.slots[slot as usize];
        let key = BackendId { slot, generation: entry.generation };
        entry.session = Some(Session {
            stable,
            suffix: 0,
            phase: Phase::Connecting,
            backend_closed: false,
            closing: false,
            issued: false,
            paused: false,
            in_backend_queue: false,
            pending_pings: 0,
            request: Some(Request::new(conn, None)),
            idle_since: self.now,
            armed: None,
            down: Downstream::default(),
            up: Upstream::default(),
        });
        self.by_stable.insert(stable, slot);
        self.stats.sessions_opened += 1;
        self.actions.push_back(Action::Connect { backend: key, endpoint, server });
        Ok(Sink::Session(key))
    }

    /// Gives a request to the session its ID names.
    fn attach(
        &mut self,
        conn: ConnectionId,
        id: Option<(u64, u32)>,
        lifespan: Option<u32>,
    ) -> Result<Sink, u16> {
        let found = id.and_then(|(stable, suffix)| {
            let slot = *self.by_stable.get(&stable)?;
            let entry = &self.slots[slot as usize];
            let s = entry.session.as_ref()?;
            (s.suffix == suffix).then_some(BackendId { slot, generation: entry.generation })
        });
        let Some(key) = found else {
            self.stats.unknown_session_ids += 1;
            return Err(400);
        };
        let Some(s) = self.session_mut(key) else {
            return Err(400);
        };
        if let Some(request) = s.request {
            s.closing = true;
            self.stats.concurrent_requests += 1;
            if let ReqState::Held { .. } = request.state {
                self.answer(key);
            }
            return Err(400);
        }
        s.request = Some(Request::new(conn, lifespan));
        Ok(Sink::Session(key))
    }

    fn on_body(&mut self, id: ConnectionId, data: &[u8]) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        if let ConnState::Reading { sink: Some(Sink::Session(key)), .. } = conn.state {
            if let Some(s) = self.session_mut(key) {
                s.up.stage(data);
            }
        }
    }

    fn on_complete(&mut self, id: ConnectionId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let ConnState::Reading { sink: Some(sink), .. } = conn.state else {
            return;
        };
        self.stats.requests += 1;
        match sink {
            Sink::Then(reply) => {
                conn.state = ConnState::Replying(reply);
                self.push_ready(id);
            }
            Sink::Session(key) => {
                conn.state = ConnState::Waiting(key);
                self.arm_conn(id);
                self.complete_session_request(id, key);
            }
        }
    }

    fn complete_session_request(&mut self, id: ConnectionId, key: BackendId) {
        let framing = self.settings.framing();
        let ping = self.settings.ping;
        let Some(s) = session_in(&mut self.slots, key) else {
            return self.set_reply(id, Reply::Status(400));
        };
        let staged = s.up.staged();
        let mut pings = 0;
        // A session ending for a concurrent request still passes this request's commands on:
        // its answer (a `200`) confirms them. Only a backend that is gone cannot take them.
        if s.backend_closed {
            s.up.abort();
        } else {
            match s.up.commit(framing, ping) {
                Commit::PingRefused => {
                    self.stats.refused_pings += 1;
                    return self.end_session(key, 400);
                }
                Commit::Queued { out, pings: found } => {
                    s.closing |= out;
                    pings = found;
                }
            }
        }
        s.pending_pings = s.pending_pings.saturating_add(u8::try_from(pings).unwrap_or(u8::MAX));
        let forward = !s.up.ready().is_empty();
        if let Some(request) = s.request.as_mut() {
            request.has_body = staged > 0;
            request.forwarded = forward;
        }
        self.stats.answered_pings += u64::from(pings);
        if forward {
            self.queue_backend(key);
        }
        self.settle(key);
    }

    /// A session's request is complete (or its backend just connected): answer it now, or
    /// hold it.
    fn settle(&mut self, key: BackendId) {
        let config = &self.settings.config;
        let (reply_wait, max_lifespan) = (config.reply_wait, config.max_lifespan);
        let (connect_timeout, quiet_gap) = (config.connect_timeout, config.reply_quiet_gap);
        let max_body = config.max_response_body_bytes;
        let now = self.now;
        let deliverable = self.deliverable(key);
        let Some(s) = self.session_mut(key) else {
            return;
        };
        let Some(request) = s.request.as_mut() else {
            return;
        };
        if s.phase == Phase::Connecting {
            request.state = ReqState::Held { until: now + connect_timeout };
            return self.arm_session(key);
        }
        let full = s.down.len() >= max_body;
        if request.forwarded && !reply_wait.is_zero() && !full && !s.closing && !s.backend_closed {
            // Answer with what the backend sends after these commands, not with what it
            // queued before them: hold until it has said something and paused.
            request.reply_cap = Some(now + reply_wait + quiet_gap);
            request.state = ReqState::Held { until: now + reply_wait };
            return self.arm_session(key);
        }
        if deliverable {
            return self.answer(key);
        }
        let hold = if request.has_body {
            reply_wait
        } else {
            request.lifespan.map_or(Duration::ZERO, |secs| {
                Duration::from_secs(u64::from(secs)).min(max_lifespan)
            })
        };
        if hold.is_zero() {
            return self.answer(key);
        }
        request.state = ReqState::Held { until: now + hold };
        self.arm_session(key);
    }

    /// The backend sent bytes while the session's request is held. A poll is answered as soon
    /// as a whole command is queued; a request that carried commands once the backend has been
    /// quiet for [`GatewayConfig::reply_quiet_gap`] (a reply written line by line leaves in
    /// one answer), or at once when a whole response is queued.
    fn heard(&mut self, key: BackendId) {
        let config = &self.settings.config;
        let (quiet_gap, cap) = (config.reply_quiet_gap, config.max_response_body_bytes);
        let now = self.now;
        let Some(s) = session_in(&mut self.slots, key) else {
            return;
        };
        let full = s.down.len() >= cap;
        let Some(request) = s.request.as_mut() else {
            return;
        };
        if let (Some(reply_cap), false, false) = (request.reply_cap, quiet_gap.is_zero(), full) {
            request.state = ReqState::Held { until: (now + quiet_gap).min(reply_cap) };
            return self.arm_session(key);
        }
        if self.deliverable(key) {
            self.answer(key);
        }
    }

    /// Whether a response would carry something (or must go now) for this session.
    fn deliverable(&self, key: BackendId) -> bool {
        let Some(s) = session_ref(&self.slots, key) else {
            return false;
        };
        if s.closing || s.backend_closed || (s.pending_pings > 0 && s.down.at_boundary()) {
            return true;
        }
        let config = &self.settings.config;
        let force = s.down.len() >= config.max_queued_bytes;
        s.down.cut(config.max_response_body_bytes, force, self.settings.framing()).len > 0
    }

    /// The session's request is answered at the next `poll_transmit`.
    fn answer(&mut self, key: BackendId) {
        let Some(s) = self.session_mut(key) else {
            return;
        };
        let Some(request) = s.request.as_mut() else {
            return;
        };
        request.state = ReqState::Answering;
        let conn = request.conn;
        self.set_reply(conn, Reply::Session(key));
    }

    fn set_reply(&mut self, id: ConnectionId, reply: Reply) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.state = ConnState::Replying(reply);
            self.push_ready(id);
        }
    }

    /// The client gave up on the session's request (its connection ended or timed out).
    fn release_request(&mut self, key: BackendId, conn: ConnectionId) {
        let now = self.now;
        let Some(s) = self.session_mut(key) else {
            return;
        };
        if s.request.is_none_or(|r| r.conn != conn) {
            return;
        }
        if s.request.is_some_and(|r| r.state == ReqState::Receiving) {
            s.up.abort();
        }
        s.request = None;
        s.idle_since = now;
        // An open the client never saw answered, or a session that was ending anyway.
        if !s.issued || s.closing {
            return self.end_session(key, 400);
        }
        self.arm_session(key);
    }

    /// Ends a session: the backend is closed, the ID forgotten. A request still waiting for an
    /// answer gets `status`.
    fn end_session(&mut self, key: BackendId, status: u16) {
        let Some(entry) = self.slots.get_mut(key.slot as usize) else {
            return;
        };
        if entry.generation != key.generation {
            return;
        }
        let Some(s) = entry.session.take() else {
            return;
        };
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(key.slot);
        self.by_stable.remove(&s.stable);
        self.actions.push_back(Action::CloseBackend(key));
        self.stats.sessions_ended += 1;
        let Some(request) = s.request else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&request.conn) else {
            return;
        };
        match conn.state {
            ConnState::Reading { since, sink: Some(Sink::Session(k)) } if k == key => {
                conn.state =
                    ConnState::Reading { since, sink: Some(Sink::Then(Reply::Status(status))) };
            }
            ConnState::Waiting(k) | ConnState::Replying(Reply::Session(k)) if k == key => {
                self.set_reply(request.conn, Reply::Status(status));
            }
            _ => {}
        }
    }

    /// Writes the answer due on a connection, then readies it for its next request.
    fn write_reply(&mut self, id: ConnectionId, reply: Reply, out: &mut Vec<u8>) -> Transmit {
        let start = out.len();
        let mut ended = None;
        let mut resumed = None;
        let close = {
            let Some(conn) = self.conns.get(&id) else {
                return Transmit::Client { connection: id, len: 0, close: true, interim: false };
            };
            let head = conn.decoder.head();
            let close = conn.close_after;
            let connection =
                ConnectionHeader::answering(head.version() == HttpVersion::Http10, !close);
            let origin = self.settings.cors().and_then(|c| c.allow_origin(head.origin()));
            match reply {
                Reply::Status(status) => {
                    self.stats.error_responses += 1;
                    self.encoder.encode_status(out, status, connection, origin);
                }
                Reply::Preflight => {
                    let max_age = self
                        .settings
                        .cors()
                        .map_or(0, |c| u32::try_from(c.max_age.as_secs()).unwrap_or(u32::MAX));
                    self.encoder.encode_preflight(out, connection, origin, max_age);
                }
                Reply::Session(key) => match session_in(&mut self.slots, key) {
                    Some(s) => {
                        let done = encode_session_reply(
                            s,
                            &self.settings,
                            &self.encoder,
                            &mut self.ids,
                            self.now,
                            connection,
                            origin,
                            out,
                        );
                        self.stats.responses += 1;
                        if done.close {
                            ended = Some(key);
                        } else if done.resume {
                            resumed = Some(key);
                        }
                    }
                    None => {
                        self.stats.error_responses += 1;
                        self.encoder.encode_status(out, 400, connection, origin);
                    }
                },
            }
            close
        };
        if let Some(key) = resumed {
            self.actions.push_back(Action::ResumeBackend(key));
        }
        if let Some(key) = ended {
            self.end_session(key, 400);
        }
        let len = out.len() - start;
        if close {
            self.begin_close(id, Some(self.now));
        } else if let Some(conn) = self.conns.get_mut(&id) {
            // The next request is read once this answer is written.
            conn.state = ConnState::Sending { since: self.now, unwritten: usize::MAX };
            self.arm_conn(id);
        }
        if let Some(key) = reply_session(reply).filter(|k| Some(*k) != ended) {
            self.arm_session(key);
        }
        Transmit::Client { connection: id, len, close, interim: false }
    }

    fn session_timer(&mut self, key: BackendId) {
        let now = self.now;
        let idle_timeout = self.settings.config.idle_timeout;
        let Some(s) = self.session_mut(key) else {
            return;
        };
        match s.request {
            Some(Request { state: ReqState::Held { until }, .. }) if now >= until => {
                if s.phase == Phase::Connecting {
                    self.stats.backend_connect_failures += 1;
                    self.end_session(key, 504);
                } else {
                    self.answer(key);
                }
            }
            None if now >= s.idle_since + idle_timeout => {
                self.stats.sessions_expired += 1;
                self.end_session(key, 400);
            }
            _ => {}
        }
    }

    fn conn_timer(&mut self, id: ConnectionId) {
        let config = &self.settings.config;
        let (keep_alive, request_timeout) = (config.keep_alive_timeout, config.request_timeout);
        let send_timeout = config.send_timeout;
        let now = self.now;
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        match conn.state {
            ConnState::Idle { since } if now >= since + keep_alive => self.close_idle(id),
            ConnState::Reading { since, .. } if now >= since + request_timeout => {
                self.fail_request(id, 408);
            }
            ConnState::Sending { since, .. } | ConnState::Closing { since: Some(since), .. }
                if now >= since + send_timeout =>
            {
                self.stats.send_timeouts += 1;
                self.begin_close(id, None);
                self.actions.push_back(Action::CloseClient(id));
            }
            _ => {}
        }
    }

    fn push_ready(&mut self, id: ConnectionId) {
        if let Some(conn) = self.conns.get_mut(&id) {
            if !conn.in_ready {
                conn.in_ready = true;
                self.ready_conns.push_back(id);
            }
        }
    }

    fn queue_backend(&mut self, key: BackendId) {
        if let Some(s) = self.session_mut(key) {
            if !s.in_backend_queue && s.phase == Phase::Open {
                s.in_backend_queue = true;
                self.ready_backends.push_back(key);
            }
        }
    }

    /// Makes sure the heap holds an entry no later than the session's next deadline.
    fn arm_session(&mut self, key: BackendId) {
        let idle_timeout = self.settings.config.idle_timeout;
        let Some(s) = session_in(&mut self.slots, key) else {
            return;
        };
        let due = match s.request {
            Some(Request { state: ReqState::Held { until }, .. }) => Some(until),
            Some(_) => None,
            None => Some(s.idle_since + idle_timeout),
        };
        if let Some(at) = due {
            if s.armed.is_none_or(|armed| at < armed) {
                s.armed = Some(at);
                self.push_timer(at, TimerKey::Session(key));
            }
        }
    }

    /// Adds a timer entry. Entries of ended sessions and closed connections, and entries
    /// superseded by earlier ones, stay until they fire; when they outnumber the live ones the
    /// heap is rebuilt, so its size follows the number of sessions and connections.
    fn push_timer(&mut self, at: Instant, key: TimerKey) {
        self.timers.push(Reverse((at, key)));
        let live = self.by_stable.len() + self.conns.len();
        if self.timers.len() <= 4 * live + 64 {
            return;
        }
        let (slots, conns) = (&self.slots, &self.conns);
        self.timers.retain(|Reverse((at, key))| match key {
            TimerKey::Session(k) => session_ref(slots, *k).is_some_and(|s| s.armed == Some(*at)),
            TimerKey::Conn(id) => conns.get(id).is_some_and(|c| c.armed == Some(*at)),
        });
    }

    fn arm_conn(&mut self, id: ConnectionId) {
        let config = &self.settings.config;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let due = match conn.state {
            ConnState::Idle { since } => Some(since + config.keep_alive_timeout),
            ConnState::Reading { since, .. } => Some(since + config.request_timeout),
            ConnState::Sending { since, .. } | ConnState::Closing { since: Some(since), .. } => {
                Some(since + config.send_timeout)
            }
            ConnState::Waiting(_) | ConnState::Replying(_) | ConnState::Closing { .. } => None,
        };
        if let Some(at) = due {
            if conn.armed.is_none_or(|armed| at < armed) {
                conn.armed = Some(at);
                self.push_timer(at, TimerKey::Conn(id));
            }
        }
    }
}

fn reply_session(reply: Reply) -> Option<BackendId> {
    match reply {
        Reply::Session(key) => Some(key),
        _ => None,
    }
}

fn session_in(slots: &mut [Slot], key: BackendId) -> Option<&mut Session> {
    let entry = slots.get_mut(key.slot as usize)?;
    if entry.generation != key.generation {
        return None;
    }
    entry.session.as_mut()
}

fn session_ref(slots: &[Slot], key: BackendId) -> Option<&Session> {
    let entry = slots.get(key.slot as usize)?;
    if entry.generation != key.generation {
        return None;
    }
    entry.session.as_ref()
}

/// Reads what a request head asks for, without changing anything.
fn classify(head: &RequestHead, config: &GatewayConfig) -> Route {
    let method = head.method();
    if method == Method::Other {
        return Route::Then(Reply::Status(405));
    }
    let Some(path) = head.path() else {
        return Route::Then(Reply::Status(400));
    };
    if method == Method::Options && path == "*" {
        return Route::Then(Reply::Preflight);
    }
    if !path.eq_ignore_ascii_case(&config.gateway_path) {
        return Route::Then(Reply::Status(404));
    }
    if method == Method::Options {
        return Route::Then(Reply::Preflight);
    }
    if !head.length_given() {
        return Route::Fail(411);
    }
    let Ok(query) = head.query() else {
        return Route::Then(Reply::Status(400));
    };
    route_query(query, config.msnp_ports)
}

fn route_query(query: &GatewayQuery, ports: MsnpPorts) -> Route {
    match (query.action(), query.session_id()) {
        // A poll names its session: without one it is no open.
        (Some(QueryAction::Poll), None) => Route::Then(Reply::Status(400)),
        (Some(QueryAction::Open), _) | (_, None) => match query.ip() {
            None => Route::Then(Reply::Status(400)),
            Some(ip) => {
                // A port-less `IP=` means the MSNP port of the kind opened (clients strip it).
                let server = query.server().unwrap_or(ServerKind::Notification);
                let ip = Endpoint::parse(ip, ports.of(server)).map_err(|_| ());
                Route::Open { ip, server }
            }
        },
        (_, Some(id)) => Route::Existing { id: parse_session_id(id), lifespan: query.lifespan() },
    }
}

/// What writing a session's answer left to do.
struct ReplyDone {
    close: bool,
    resume: bool,
}

/// Writes a `200` for the session: whole commands up to the cap, the new ID, `Session=close`
/// when this is the last answer.
#[allow(clippy::too_many_arguments)]
fn encode_session_reply(
    s: &mut Session,
    settings: &Settings,
    encoder: &ResponseEncoder,
    ids: &mut IdSource,
    now: Instant,
    connection: ConnectionHeader,
    origin: Option<&str>,
    out: &mut Vec<u8>,
) -> ReplyDone {
    let config = &settings.config;
    let mut qng = [0u8; 16];
    let mut qng_len = 0;
    if let (PingPolicy::Answer { next_ping_secs }, true) =
        (config.ping, s.pending_pings > 0 && s.down.at_boundary())
    {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(next_ping_secs).as_bytes();
        for part in [&b"QNG "[..], digits, b"\r\n"] {
            qng[qng_len..qng_len + part.len()].copy_from_slice(part);
            qng_len += part.len();
        }
        s.pending_pings = 0;
    }
    let force = s.backend_closed || s.closing || s.down.len() >= config.max_queued_bytes;
    let cap = config.max_response_body_bytes - qng_len;
    let cut = s.down.cut(cap, force, settings.framing());
    let close = s.closing || (s.backend_closed && s.down.len() == cut.len);
    s.suffix = ids.suffix(s.suffix);
    s.issued = true;
    let id = IdText::new(s.stable, s.suffix);
    encoder.encode_session(
        out,
        &SessionResponse {
            session_id: id.as_str(),
            session_close: close,
            connection,
            allow_origin: origin,
            body: &[&qng[..qng_len], s.down.front(cut.len)],
        },
    );
    s.down.consume(cut);
    s.request = None;
    s.idle_since = now;
    let resume = s.paused && !s.backend_closed && s.down.len() <= config.max_queued_bytes / 2;
    if resume {
        s.paused = false;
    }
    ReplyDone { close, resume }
}
