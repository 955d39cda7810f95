//! The [`GatewayRuntime`] trait: the listener, sockets, timers, clock and spawner the gateway
//! server runs on.

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

/// What the gateway server needs from an async runtime. The driver task reads and writes
/// every socket itself without waiting ([`GatewayStream::try_read`],
/// [`GatewayStream::try_write`]); small spawned tasks only wait for readiness, accept, and
/// connect.
///
/// Time is whatever [`now`](Self::now) says, and [`sleep_until`](Self::sleep_until) measures
/// on the same clock, so a virtual clock (tokio's paused one) drives the gateway's timers.
///
/// # Implementations
///
/// | method        | `msn-http-tokio`             | `msn-http-async-std`                      |
/// |---------------|------------------------------|-------------------------------------------|
/// | `Listener`    | `tokio::net::TcpListener`    | `async_io::Async<std::net::TcpListener>`  |
/// | `Stream`      | over `tokio::net::TcpStream` | over `async_io::Async<std::net::TcpStream>` |
/// | `now`         | `tokio::time::Instant::now()`| `Instant::now()`                          |
/// | `sleep_until` | `tokio::time::sleep_until`   | `async_io::Timer::at`                     |
/// | `spawn`       | `tokio::spawn`               | the spawner the caller gives              |
pub trait GatewayRuntime: Clone + Debug + Send + Sync + 'static {
    /// A listening TCP socket.
    type Listener: Debug + Send + Sync + 'static;
    /// A connected TCP stream.
    type Stream: GatewayStream;

    /// The current time on the runtime's clock.
    fn now(&self) -> Instant;

    /// Accepts the next client connection. Dropping the future must lose no connection.
    fn accept(
        &self,
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    /// Connects to a backend at `host` (an IP address or a name to resolve) and `port`.
    fn connect(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// Completes once [`now`](Self::now) has reached `deadline` (at once if it has already).
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send;

    /// Runs `task` to completion on the runtime, detached.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static);
}

/// Which readiness a watcher waits for, or found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interest {
    /// Readable (or closed, or broken: a read will tell).
    pub read: bool,
    /// Writable (or broken: a write will tell).
    pub write: bool,
}

/// A connected, non-blocking TCP stream shared by the driver (which reads and writes it) and
/// its watcher (which waits for readiness).
pub trait GatewayStream: Debug + Send + Sync + 'static {
    /// Reads what is there without waiting: `WouldBlock` when nothing is, `0` at the end.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;

    /// Writes what the socket takes without waiting: `WouldBlock` when it takes nothing.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;

    /// Completes when the stream may be ready for one of `interest` (spurious readiness is
    /// allowed: the driver retries and gets `WouldBlock`), saying which. Dropping the future
    /// must be harmless.
    fn ready(&self, interest: Interest) -> impl Future<Output = io::Result<Interest>> + Send;

    /// Shuts the writing side down (the peer reads the end of the stream); the socket stays
    /// open for reading.
    fn shutdown_write(&self);

    /// Makes the coming close a reset that drops what the kernel still holds for the peer.
    fn abort(&self);
}
