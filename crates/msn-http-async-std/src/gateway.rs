//! The gateway server on `async-io`: accepts HTTP connections, drives the sans-IO
//! [`Gateway`](msn_http_core::gateway::Gateway), and opens the backend connections to the
//! MSNP servers its allowlist names — on async-std, smol, or any executor.
//!
//! The loop around the core is runtime-agnostic and lives in [`msn_http_driver::gateway`]
//! (shared with `msn-http-tokio`, same options and counters); this module supplies
//! `async-io`'s listener, sockets and timers. The server runs a few small tasks (one per
//! socket, waiting for readiness, and one per backend connection being made): like the
//! client's [`Driver`](crate::Driver), they go to the executor you use, through the spawner
//! you give [`GatewayServer::spawn`] or [`GatewayServer::run_until`]:
//!
//! - async-std: `|task| { async_std::task::spawn(task); }`;
//! - smol: `|task| smol::spawn(task).detach()` (or `executor.spawn(task).detach()` on your
//!   own `smol::Executor`).
//!
//! # Example
//!
//! ```
//! use msn_http_async_std::gateway::{GatewayServer, random_seed};
//! use msn_http_core::Endpoint;
//! use msn_http_core::gateway::{BackendAllowlist, GatewayConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! smol::block_on(async {
//!     let backend = Endpoint::parse("127.0.0.1:1863", 1863)?;
//!     let backends = BackendAllowlist::new().route("messenger.hotmail.com", None, backend);
//!     let config = GatewayConfig::new("127.0.0.1", random_seed()?).with_backends(backends);
//!     let server = GatewayServer::bind("127.0.0.1:0", config).await?;
//!     let handle = server.spawn(|task| smol::spawn(task).detach());
//!     assert!(handle.local_addr().ip().is_loopback());
//!     let stats = handle.shutdown().await?;
//!     assert_eq!(stats.connections_accepted, 0);
//!     Ok(())
//! })
//! # }
//! ```

mod async_io_net;

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::pin::Pin;

use async_channel::{Receiver, Sender};
use async_io::Async;
use msn_http_core::gateway::GatewayConfig;
use msn_http_driver::gateway::{GatewayRuntime, Server, SharedStats};

pub use msn_http_driver::gateway::{
    DESCRIPTOR_RESERVE, OpenFileLimit, ServerOptions, ServerStats, TlsConfig, TlsConfigError,
    descriptors_needed, random_seed,
};

use async_io_net::Spawning;

/// A task of the server, for the spawner to run to completion on its executor.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A gateway server bound to its listening socket, ready to run.
///
/// Build it with [`bind`](Self::bind) or [`from_listener`](Self::from_listener), then either
/// [`spawn`](Self::spawn) it (and later [`GatewayHandle::shutdown`]) or run it in place with
/// [`run_until`](Self::run_until).
///
/// ```no_run
/// use msn_http_async_std::gateway::{GatewayServer, random_seed};
/// use msn_http_core::gateway::GatewayConfig;
///
/// # async fn demo() -> std::io::Result<()> {
/// let config = GatewayConfig::new("gateway.example.net", random_seed()?);
/// let server = GatewayServer::bind("127.0.0.1:8080", config).await?;
/// let (stop, stopped) = async_channel::bounded::<()>(1);
/// # drop(stop);
/// let spawn = |task| { async_std::task::spawn(task); };
/// let stats = server.run_until(spawn, async move { let _ = stopped.recv().await; }).await;
/// println!("{} requests served", stats.core.requests);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct GatewayServer {
    server: Server<Spawning>,
}

impl GatewayServer {
    /// Binds `addr` and checks `config`. An invalid configuration is an
    /// [`io::ErrorKind::InvalidInput`] error. (A host name in `addr` is resolved by the
    /// system resolver, which blocks: give an address.)
    ///
    /// ```no_run
    /// use msn_http_async_std::gateway::{GatewayServer, random_seed};
    /// use msn_http_core::gateway::GatewayConfig;
    ///
    /// # async fn demo() -> std::io::Result<()> {
    /// let config = GatewayConfig::new("127.0.0.1:8080", random_seed()?);
    /// let server = GatewayServer::bind("127.0.0.1:8080", config).await?;
    /// assert_eq!(server.local_addr().port(), 8080);
    /// # Ok(()) }
    /// ```
    pub async fn bind(addr: impl ToSocketAddrs, config: GatewayConfig) -> io::Result<Self> {
        let listener = Async::new(TcpListener::bind(addr)?)?;
        Self::from_listener(listener, config)
    }

    /// Serves on a listener the caller bound (for example to learn the port before choosing
    /// the `GW-IP`).
    ///
    /// ```no_run
    /// use async_io::Async;
    /// use msn_http_async_std::gateway::{GatewayServer, random_seed};
    /// use msn_http_core::gateway::GatewayConfig;
    ///
    /// # fn demo() -> std::io::Result<()> {
    /// let listener = Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0))?;
    /// let gw_ip = listener.get_ref().local_addr()?.to_string();
    /// let server = GatewayServer::from_listener(listener, GatewayConfig::new(gw_ip, random_seed()?))?;
    /// # Ok(()) }
    /// ```
    pub fn from_listener(listener: Async<TcpListener>, config: GatewayConfig) -> io::Result<Self> {
        let local_addr = listener.get_ref().local_addr()?;
        let now = msn_http_driver::Runtime::now(&crate::AsyncIo);
        Ok(Self { server: Server::new(listener, local_addr, config, now)? })
    }

    /// Replaces the server options (the defaults are [`ServerOptions::default`]'s).
    pub fn with_options(self, options: ServerOptions) -> Self {
        Self { server: self.server.with_options(options) }
    }

    /// Serves HTTPS with `tls`'s certificate (backends stay plain TCP).
    ///
    /// ```no_run
    /// use msn_http_async_std::gateway::TlsConfig;
    /// # async fn demo(server: msn_http_async_std::gateway::GatewayServer) -> Result<(), Box<dyn std::error::Error>> {
    /// let tls = TlsConfig::from_pem_files("cert.pem".as_ref(), "key.pem".as_ref())?;
    /// let server = server.with_tls(tls);
    /// # Ok(()) }
    /// ```
    pub fn with_tls(self, tls: TlsConfig) -> Self {
        Self { server: self.server.with_tls(tls) }
    }

    /// The address the server listens on, and the `GW-IP` every answer announces.
    ///
    /// ```no_run
    /// # fn demo(server: &msn_http_async_std::gateway::GatewayServer) {
    /// let (addr, gw_ip) = (server.local_addr(), server.gw_ip());
    /// # }
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The `GW-IP` every answer announces (see [`local_addr`](Self::local_addr)).
    pub fn gw_ip(&self) -> &str {
        self.server.gw_ip()
    }

    /// Runs the server in the calling task until `shutdown` completes, then shuts down
    /// gracefully: stops accepting, lets requests in flight be answered (up to
    /// [`ServerOptions::shutdown_grace`]), closes idle connections and every backend. Returns
    /// the final counters. The server's small tasks go to `spawner`.
    pub async fn run_until<F>(
        self,
        spawner: impl Fn(Task) + Send + Sync + 'static,
        shutdown: F,
    ) -> ServerStats
    where
        F: Future<Output = ()>,
    {
        self.server.run(Spawning::new(spawner), shutdown, SharedStats::default()).await
    }

    /// Runs the server on a task of its own, which goes to `spawner` with the server's other
    /// tasks.
    ///
    /// ```no_run
    /// # async fn demo(server: msn_http_async_std::gateway::GatewayServer) -> std::io::Result<()> {
    /// let handle = server.spawn(|task| { async_std::task::spawn(task); });
    /// // ... serve ...
    /// let stats = handle.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub fn spawn(self, spawner: impl Fn(Task) + Send + Sync + 'static) -> GatewayHandle {
        let local_addr = self.local_addr();
        let stats = SharedStats::default();
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let (done, finished) = async_channel::bounded(1);
        let runtime = Spawning::new(spawner);
        let server = self.server.run(
            runtime.clone(),
            async move {
                // A dropped handle stops the server too.
                let _ = stopped.recv().await;
            },
            stats.clone(),
        );
        runtime.spawn(async move {
            let _ = done.send(server.await).await;
        });
        GatewayHandle { local_addr, stats, stop: Some(stop), finished }
    }
}

/// A server running on its own task (from [`GatewayServer::spawn`]).
///
/// Dropping the handle starts the graceful shutdown without waiting for it.
#[derive(Debug)]
pub struct GatewayHandle {
    local_addr: SocketAddr,
    stats: SharedStats,
    stop: Option<Sender<()>>,
    finished: Receiver<ServerStats>,
}

impl GatewayHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The latest counters.
    pub fn stats(&self) -> ServerStats {
        self.stats.get()
    }

    /// Shuts the server down gracefully and waits for it: no new connections, requests in
    /// flight answered (up to [`ServerOptions::shutdown_grace`]), every connection and
    /// backend closed. Returns the final counters; an error only if the server task ended
    /// without them (its executor was dropped, say).
    pub async fn shutdown(mut self) -> io::Result<ServerStats> {
        // Closing the channel is the signal.
        drop(self.stop.take());
        self.finished
            .recv()
            .await
            .map_err(|_| io::Error::other("the gateway server's task ended before it finished"))
    }
}
