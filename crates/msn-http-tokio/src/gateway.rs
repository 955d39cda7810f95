//! The gateway server: accepts HTTP connections, drives the sans-IO
//! [`Gateway`](msn_http_core::gateway::Gateway) over tokio
//! TCP, and opens the backend connections to the MSNP servers its allowlist names.
//!
//! The loop around the core is runtime-agnostic and lives in [`msn_http_driver::gateway`]
//! (shared with `msn-http-async-std`, which documents its concurrency); this module supplies
//! tokio's listener, sockets, clock, timers and `spawn`.
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

mod tokio_net;

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use msn_http_core::gateway::GatewayConfig;
use msn_http_driver::gateway::{GatewayRuntime, Server, SharedStats};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use msn_http_driver::gateway::{
    DESCRIPTOR_RESERVE, OpenFileLimit, ServerOptions, ServerStats, TlsConfig, TlsConfigError,
    descriptors_needed, random_seed,
};

use crate::runtime::Tokio;
pub use tokio_net::ServerStream;

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
    server: Server<Tokio>,
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
        let now = GatewayRuntime::now(&Tokio);
        Ok(Self { server: Server::new(listener, local_addr, config, now)? })
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
    pub fn with_options(self, options: ServerOptions) -> Self {
        Self { server: self.server.with_options(options) }
    }

    /// Serves HTTPS with `tls`'s certificate (backends stay plain TCP).
    ///
    /// ```no_run
    /// use msn_http_tokio::gateway::TlsConfig;
    /// # async fn demo(server: msn_http_tokio::gateway::GatewayServer) -> Result<(), Box<dyn std::error::Error>> {
    /// let tls = TlsConfig::from_pem_files("cert.pem".as_ref(), "key.pem".as_ref())?;
    /// let server = server.with_tls(tls);
    /// # Ok(()) }
    /// ```
    pub fn with_tls(self, tls: TlsConfig) -> Self {
        Self { server: self.server.with_tls(tls) }
    }

    /// The address the server listens on.
    ///
    /// ```no_run
    /// # async fn demo(server: msn_http_tokio::gateway::GatewayServer) {
    /// let port = server.local_addr().port();
    /// # }
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The `GW-IP` every answer announces.
    ///
    /// ```no_run
    /// # async fn demo(server: msn_http_tokio::gateway::GatewayServer) {
    /// assert_eq!(server.gw_ip(), "gateway.example.net");
    /// # }
    /// ```
    pub fn gw_ip(&self) -> &str {
        self.server.gw_ip()
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
        self.server.run(Tokio, shutdown, SharedStats::default()).await
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
        let local_addr = self.local_addr();
        let stats = SharedStats::default();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.server.run(
            Tokio,
            async move {
                // A dropped handle stops the server too.
                let _ = stopped.await;
            },
            stats.clone(),
        ));
        GatewayHandle { local_addr, stats, stop: Some(stop), task }
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
    stats: SharedStats,
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
        self.stats.get()
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
