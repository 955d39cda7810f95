//! The gateway server: accepts HTTP connections, drives the sans-IO [`Gateway`] over tokio
//! TCP, and opens the backend connections to the MSNP servers its allowlist names.
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
//!
//! # Example
//!
//! ```
//! use msn_http_core::Endpoint;
//! use msn_http_core::gateway::{BackendAllowlist, GatewayConfig};
//! use msn_http_tokio::gateway::{GatewayServer, random_seed};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # rt.block_on(async {
//! let backend = Endpoint::parse("127.0.0.1:1863", 1863)?;
//! let backends = BackendAllowlist::new().route("messenger.hotmail.com", None, backend);
//! let config = GatewayConfig::new("127.0.0.1", random_seed()?).with_backends(backends);
//! let server = GatewayServer::bind("127.0.0.1:0", config).await?;
//! let handle = server.spawn();
//! assert!(handle.local_addr().ip().is_loopback());
//! let stats = handle.shutdown().await?;
//! assert_eq!(stats.connections_accepted, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok(())
//! # }
//! ```

mod descriptors;
mod driver;
mod socket;
mod tasks;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use msn_http_core::gateway::{Gateway, GatewayConfig, GatewayStats};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument;

pub use descriptors::{DESCRIPTOR_RESERVE, OpenFileLimit, descriptors_needed};
use driver::Driver;

/// Fills a session ID seed from the operating system's random source.
///
/// [`GatewayConfig::seed`] decides every session ID: anyone who knows it can predict them.
/// Take it from here (or another cryptographic source), never from a clock or a hasher.
///
/// ```
/// let a = msn_http_tokio::gateway::random_seed().unwrap();
/// let b = msn_http_tokio::gateway::random_seed().unwrap();
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
/// use msn_http_tokio::gateway::ServerOptions;
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
    ///
    /// [`Gateway::max_answer_bytes`]: msn_http_core::gateway::Gateway::max_answer_bytes
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
/// ```no_run
/// # async fn demo(handle: msn_http_tokio::gateway::GatewayHandle) {
/// let stats = handle.stats();
/// println!("{} sessions, {} polls answered", stats.sessions, stats.core.responses);
/// # }
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

/// A gateway server bound to its listening socket, ready to run.
///
/// Build it with [`bind`](Self::bind) or [`from_listener`](Self::from_listener), then either
/// [`spawn`](Self::spawn) it (and later [`GatewayHandle::shutdown`]) or run it in place with
/// [`run_until`](Self::run_until).
///
/// ```no_run
/// use msn_http_core::gateway::GatewayConfig;
/// use msn_http_tokio::gateway::{GatewayServer, random_seed};
///
/// # async fn demo() -> std::io::Result<()> {
/// let config = GatewayConfig::new("gateway.example.net", random_seed()?);
/// let server = GatewayServer::bind("127.0.0.1:8080", config).await?;
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// # drop(stop);
/// let stats = server.run_until(async { let _ = stopped.await; }).await;
/// println!("{} requests served", stats.core.requests);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct GatewayServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    gateway: Gateway,
    connect_timeout: Duration,
    options: ServerOptions,
}

impl GatewayServer {
    /// Binds `addr` and checks `config`. An invalid configuration is an
    /// [`io::ErrorKind::InvalidInput`] error.
    ///
    /// ```no_run
    /// use msn_http_core::gateway::GatewayConfig;
    /// use msn_http_tokio::gateway::{GatewayServer, random_seed};
    ///
    /// # async fn demo() -> std::io::Result<()> {
    /// let config = GatewayConfig::new("127.0.0.1:8080", random_seed()?);
    /// let server = GatewayServer::bind("127.0.0.1:8080", config).await?;
    /// assert_eq!(server.local_addr().port(), 8080);
    /// # Ok(()) }
    /// ```
    pub async fn bind(addr: impl ToSocketAddrs, config: GatewayConfig) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Self::from_listener(listener, config)
    }

    /// Serves on a listener the caller bound (for example to learn the port before choosing
    /// the `GW-IP`).
    ///
    /// ```no_run
    /// use msn_http_core::gateway::GatewayConfig;
    /// use msn_http_tokio::gateway::{GatewayServer, random_seed};
    ///
    /// # async fn demo() -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let gw_ip = listener.local_addr()?.to_string();
    /// let server = GatewayServer::from_listener(listener, GatewayConfig::new(gw_ip, random_seed()?))?;
    /// # Ok(()) }
    /// ```
    pub fn from_listener(listener: TcpListener, config: GatewayConfig) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        if config.seed == [0; 32] {
            tracing::warn!("the session ID seed is all zeros: session IDs are predictable");
        }
        let connect_timeout = config.connect_timeout;
        let gateway = Gateway::new(config, driver::now())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Self {
            listener,
            local_addr,
            gateway,
            connect_timeout,
            options: ServerOptions::default(),
        })
    }

    /// Replaces the server options.
    ///
    /// ```no_run
    /// # async fn demo(server: msn_http_tokio::gateway::GatewayServer) {
    /// use msn_http_tokio::gateway::ServerOptions;
    /// let mut options = ServerOptions::default();
    /// options.shutdown_grace = std::time::Duration::from_secs(1);
    /// let handle = server.with_options(options).spawn();
    /// # }
    /// ```
    pub fn with_options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// The address the server listens on.
    ///
    /// ```no_run
    /// # async fn demo(server: msn_http_tokio::gateway::GatewayServer) {
    /// let port = server.local_addr().port();
    /// # }
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The `GW-IP` every answer announces.
    ///
    /// ```no_run
    /// # async fn demo(server: msn_http_tokio::gateway::GatewayServer) {
    /// assert_eq!(server.gw_ip(), "gateway.example.net");
    /// # }
    /// ```
    pub fn gw_ip(&self) -> &str {
        self.gateway.gw_ip()
    }

    /// Runs the server in the calling task until `shutdown` completes, then shuts down
    /// gracefully: stops accepting, lets requests in flight be answered (up to
    /// [`ServerOptions::shutdown_grace`]), closes idle connections and every backend. Returns
    /// the final counters.
    ///
    /// ```no_run
    /// # async fn demo(server: msn_http_tokio::gateway::GatewayServer) {
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// # drop(stop);
    /// let stats = server.run_until(async { let _ = stopped.await; }).await;
    /// # }
    /// ```
    pub async fn run_until<F>(self, shutdown: F) -> ServerStats
    where
        F: Future<Output = ()>,
    {
        self.run(shutdown, Arc::new(Mutex::new(ServerStats::default()))).await
    }

    /// Runs the server on a task of its own.
    ///
    /// ```no_run
    /// # async fn demo(server: msn_http_tokio::gateway::GatewayServer) -> std::io::Result<()> {
    /// let handle = server.spawn();
    /// // ... serve ...
    /// let stats = handle.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub fn spawn(self) -> GatewayHandle {
        let local_addr = self.local_addr;
        let stats = Arc::new(Mutex::new(ServerStats::default()));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.run(
            async move {
                // A dropped handle stops the server too.
                let _ = stopped.await;
            },
            Arc::clone(&stats),
        ));
        GatewayHandle { local_addr, stats, stop: Some(stop), task }
    }

    async fn run<F>(self, shutdown: F, stats: Arc<Mutex<ServerStats>>) -> ServerStats
    where
        F: Future<Output = ()>,
    {
        let span = tracing::info_span!("msn_http_gateway", listen = %self.local_addr);
        let Self { listener, gateway, connect_timeout, options, .. } = self;
        async move {
            tracing::info!(gw_ip = gateway.gw_ip(), "gateway listening");
            let driver = Driver::new(gateway, options, connect_timeout, stats);
            driver.run(listener, shutdown).await
        }
        .instrument(span)
        .await
    }
}

/// A server running on its own task (from [`GatewayServer::spawn`]).
///
/// Dropping the handle starts the graceful shutdown without waiting for it.
///
/// ```no_run
/// # async fn demo(handle: msn_http_tokio::gateway::GatewayHandle) -> std::io::Result<()> {
/// println!("serving on {}", handle.local_addr());
/// let stats = handle.shutdown().await?;
/// println!("{} sessions opened", stats.core.sessions_opened);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct GatewayHandle {
    local_addr: SocketAddr,
    stats: Arc<Mutex<ServerStats>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<ServerStats>,
}

impl GatewayHandle {
    /// The address the server listens on.
    ///
    /// ```no_run
    /// # fn demo(handle: &msn_http_tokio::gateway::GatewayHandle) {
    /// let url = format!("http://{}/gateway/gateway.dll", handle.local_addr());
    /// # }
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The latest counters.
    ///
    /// ```no_run
    /// # fn demo(handle: &msn_http_tokio::gateway::GatewayHandle) {
    /// let open = handle.stats().sessions;
    /// # }
    /// ```
    pub fn stats(&self) -> ServerStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Shuts the server down gracefully and waits for it: no new connections, requests in
    /// flight answered (up to [`ServerOptions::shutdown_grace`]), every connection and
    /// backend closed. Returns the final counters; an error only if the server task failed.
    ///
    /// ```no_run
    /// # async fn demo(handle: msn_http_tokio::gateway::GatewayHandle) -> std::io::Result<()> {
    /// let stats = handle.shutdown().await?;
    /// assert!(stats.shutting_down);
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(mut self) -> io::Result<ServerStats> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.map_err(io::Error::other)
    }
}
