//! The [`Runtime`] trait: the sockets, timers and clock a [`Driver`](crate::Driver) runs on.

use std::future::Future;
use std::io;
use std::time::Instant;

/// What the session driver needs from an async runtime: a clock, TCP connections, and a timer.
/// Nothing else — spawning is left to the adapter or the caller, which receives the
/// [`Driver`](crate::Driver) future.
///
/// The driver calls these from one task, one operation at a time, and may drop any returned
/// future before it completes (a read that lost the race against a timer, a connect that ran
/// past the request deadline): every future must be cancel-safe in the `AsyncRead` sense, a
/// dropped read having consumed nothing.
///
/// Time is whatever [`now`](Self::now) says: the driver never calls `Instant::now()` itself,
/// so a runtime with a virtual clock (tokio's paused clock, a test clock advanced by hand)
/// drives the session's timers — request deadlines, polls, retry back-off — without real
/// waiting. [`sleep_until`](Self::sleep_until) must measure deadlines on the same clock.
///
/// # Implementations
///
/// | method        | `msn-http-tokio`                     | `msn-http-async-std` (`AsyncIo`)          |
/// |---------------|--------------------------------------|-------------------------------------------|
/// | `Stream`      | `tokio::net::TcpStream`              | `async_io::Async<std::net::TcpStream>`    |
/// | `now`         | `tokio::time::Instant::now()`        | `Instant::now()`                          |
/// | `connect`     | `TcpStream::connect`, `set_nodelay`  | resolve, `Async::connect`, `set_nodelay`  |
/// | `write_all`   | `AsyncWriteExt::write_all`           | `futures_lite::AsyncWriteExt::write_all`  |
/// | `read`        | `AsyncReadExt::read`                 | `futures_lite::AsyncReadExt::read`        |
/// | `sleep_until` | `tokio::time::sleep_until`           | `async_io::Timer::at`                     |
///
/// Tests implement it with a virtual clock: `now` reads the clock, `sleep_until` waits for it
/// to be advanced.
pub trait Runtime: Send + Sync + 'static {
    /// A connected TCP stream.
    type Stream: Send + 'static;

    /// The current time on the runtime's clock.
    fn now(&self) -> Instant;

    /// Connects to `host` (an IP address or a name to resolve) at `port`. Implementations
    /// should disable Nagle's algorithm: each request is written whole, and waits for its
    /// answer.
    fn connect(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// Writes all of `buf` (one request, head and body in one buffer).
    fn write_all(
        &self,
        stream: &mut Self::Stream,
        buf: &[u8],
    ) -> impl Future<Output = io::Result<()>> + Send;

    /// Reads what is available into `buf`: the number of bytes read, `0` at end of stream.
    fn read(
        &self,
        stream: &mut Self::Stream,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send;

    /// Completes once [`now`](Self::now) has reached `deadline` (at once if it has already).
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send;
}
