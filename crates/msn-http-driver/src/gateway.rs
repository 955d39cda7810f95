//! The gateway server, runtime-agnostic: accepts HTTP connections, drives the sans-IO
//! [`Gateway`] over a [`GatewayRuntime`]'s sockets, and opens the backend connections to the
//! MSNP servers its allowlist names. The adapters wrap [`Server`] in their `GatewayServer`.
//!
//! # Concurrency
//!
//! The core gateway is one state machine for every session, so one task owns it: the *driver*.
//! It does all the reading, writing and deciding. Each socket (client or backend) has a small
//! *watcher* task that only waits for readiness and tells the driver "readable" or "writable"
//! through one channel; the driver then reads into its one shared buffer, feeds the core,
//! writes the answers with non-blocking writes, and re-arms the watcher. Consequences:
//!
//! - no lock: the core is touched by one task, and a session's answer can be written to any
//!   connection at once (a held poll answered by backend input) without a hand-off;
//! - no per-socket buffers: idle sockets hold no read or write memory, only their watcher;
//! - backpressure is exact: a paused backend is simply not re-armed, and the bytes the core did
//!   not take are kept and offered again on resume;
//! - under load the driver takes many notices per wake-up, so the cost of a wake-up is shared.

mod conns;
mod descriptors;
mod driver;
pub mod runtime;
mod socket;
mod tasks;
mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use msn_http_core::gateway::{Gateway, GatewayConfig, GatewayStats};
use tracing::Instrument;

pub use descriptors::{DESCRIPTOR_RESERVE, OpenFileLimit, descriptors_needed};
use driver::Driver;
pub use runtime::{GatewayRuntime, GatewayStream, Interest};
use tls::TlsRuntime;
pub use tls::{TlsConfig, TlsConfigError};

/// Fills a session ID seed from the operating system's random source.
///
/// [`GatewayConfig::seed`] decides every session ID: anyone who knows it can predict them.
/// Take it from here (or another cryptographic source), never from a clock or a hasher.
///
/// ```
/// let a = msn_http_driver::gateway::random_seed().unwrap();
/// let b = msn_http_driver::gateway::random_seed().unwrap();
/// assert_ne!(a, b);
/// ```
pub fn random_seed() -> io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(io::Error::from)?;
    Ok(seed)
}

/// Settings of the server around the core (the core's own are in [`GatewayConfig`]).
///
/// ```
/// use std::time::Duration;
/// use msn_http_driver::gateway::ServerOptions;
///
/// let mut options = ServerOptions::default();
/// options.shutdown_grace = Duration::from_secs(2);
/// assert_eq!(options.read_buffer_bytes, 32 * 1024);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerOptions {
    /// How long a graceful shutdown waits for requests in flight to be answered. Default 10 s.
    pub shutdown_grace: Duration,
    /// After the server closes a connection it shuts down its writing side and reads what the
    /// peer still sends for at most this long, so that the last answer is not destroyed by a
    /// reset. Default 2 s.
    pub linger: Duration,
    /// The driver's one read buffer, shared by all sockets. Default 32 KiB.
    pub read_buffer_bytes: usize,
    /// Bytes waiting to be written to one backend (it does not read): beyond it the backend is
    /// taken as broken and its session ends. Default 1 MiB. (A client connection holds at most
    /// one answer, [`Gateway::max_answer_bytes`]: requests are served one at a time.)
    pub max_pending_write_bytes: usize,
    /// Failures to accept a connection (out of descriptors, say) repeat every few
    /// milliseconds; they are logged at most once per this interval, with the count of those
    /// not logged. Default 10 s.
    pub accept_warning_interval: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            shutdown_grace: Duration::from_secs(10),
            linger: Duration::from_secs(2),
            read_buffer_bytes: 32 * 1024,
            max_pending_write_bytes: 1024 * 1024,
            accept_warning_interval: Duration::from_secs(10),
        }
    }
}

/// Counters and gauges of a running server, refreshed after every batch of work.
///
/// ```
/// let stats = msn_http_driver::gateway::ServerStats::default();
/// assert_eq!((stats.sessions, stats.core.responses), (0, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// The core's counters (sessions, requests, responses, refusals, bytes to and from
    /// backends).
    pub core: GatewayStats,
    /// Sessions open now.
    pub sessions: usize,
    /// Client connections open now.
    pub client_connections: usize,
    /// Backend connections open or being made now.
    pub backend_connections: usize,
    /// Answer bytes waiting to be written to client connections now, all together. Requests
    /// are served one at a time, so each connection holds at most one answer.
    pub client_write_backlog: usize,
    /// Client connections accepted.
    pub connections_accepted: u64,
    /// Client connections closed at once because the core refused them (too many).
    pub connections_refused: u64,
    /// Times `accept` failed (out of descriptors, say); warned of at most once per
    /// [`ServerOptions::accept_warning_interval`].
    pub accept_failures: u64,
    /// Backend connections made.
    pub backend_connects: u64,
    /// Backend connections that could not be made.
    pub backend_connect_errors: u64,
    /// Backends that closed (or broke) their connection themselves.
    pub backend_hangups: u64,
    /// Bytes read from clients.
    pub client_bytes_in: u64,
    /// Bytes written (or queued for writing) to clients.
    pub client_bytes_out: u64,
    /// Whether a graceful shutdown has begun.
    pub shutting_down: bool,
}

/// The counters a running server publishes and its handle reads; clones share them.
///
/// ```
/// use msn_http_driver::gateway::{ServerStats, SharedStats};
///
/// let shared = SharedStats::default();
/// assert_eq!(shared.clone().get(), ServerStats::default());
/// ```
#[derive(Clone, Debug, Default)]
pub struct SharedStats(Arc<Mutex<ServerStats>>);

impl SharedStats {
    /// The latest counters.
    pub fn get(&self) -> ServerStats {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, stats: ServerStats) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = stats;
    }
}

/// A gateway server for a runtime `R`, bound to its listener, ready to
/// [`run`](Self::run): what the adapters' `GatewayServer` wraps.
#[derive(Debug)]
pub struct Server<R: GatewayRuntime> {
    listener: R::Listener,
    local_addr: SocketAddr,
    gateway: Gateway,
    connect_timeout: Duration,
    options: ServerOptions,
    tls: Option<TlsConfig>,
}

impl<R: GatewayRuntime> Server<R> {
    /// Serves on `listener` (bound to `local_addr`) after checking `config`; `now` is the
    /// runtime's [`now`](GatewayRuntime::now). An invalid configuration is an
    /// [`io::ErrorKind::InvalidInput`] error.
    pub fn new(
        listener: R::Listener,
        local_addr: SocketAddr,
        config: GatewayConfig,
        now: Instant,
    ) -> io::Result<Self> {
        if config.seed == [0; 32] {
            tracing::warn!("the session ID seed is all zeros: session IDs are predictable");
        }
        let connect_timeout = config.connect_timeout;
        let gateway = Gateway::new(config, now)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Self {
            listener,
            local_addr,
            gateway,
            connect_timeout,
            options: ServerOptions::default(),
            tls: None,
        })
    }

    /// Replaces the server options.
    pub fn with_options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// Serves HTTPS: every accepted connection starts with a TLS handshake presenting `tls`'s
    /// certificate. Backend connections stay plain TCP.
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Whether the server speaks TLS to its clients.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The `GW-IP` every answer announces.
    pub fn gw_ip(&self) -> &str {
        self.gateway.gw_ip()
    }

    /// Runs the server on `runtime` until `shutdown` completes, then shuts down gracefully: stops
    /// accepting, lets requests in flight be answered (up to
    /// [`ServerOptions::shutdown_grace`]), closes idle connections and every backend. Returns
    /// the final counters, which it also publishes to `stats` as it goes.
    pub async fn run<F>(self, runtime: R, shutdown: F, stats: SharedStats) -> ServerStats
    where
        F: Future<Output = ()>,
    {
        let span = tracing::info_span!("msn_http_gateway", listen = %self.local_addr);
        let Self { listener, gateway, connect_timeout, options, tls, .. } = self;
        async move {
            tracing::info!(gw_ip = gateway.gw_ip(), tls = tls.is_some(), "gateway listening");
            let runtime = TlsRuntime::new(runtime, tls);
            let driver = Driver::new(runtime, gateway, options, connect_timeout, stats);
            driver.run(listener, shutdown).await
        }
        .instrument(span)
        .await
    }
}
