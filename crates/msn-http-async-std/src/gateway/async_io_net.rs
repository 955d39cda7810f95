//! The gateway server's [`GatewayRuntime`] over `async-io`: `Async<TcpListener>`,
//! `Async<TcpStream>` read and written without waiting, `async_io::Timer`, the system clock,
//! and the spawner the caller gives.

use std::fmt;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use async_io::Async;
use futures_lite::future;
use msn_http_driver::Runtime;
use msn_http_driver::gateway::{GatewayRuntime, GatewayStream, Interest};

use super::Task;
use crate::AsyncIo;

/// [`AsyncIo`] with a way to spawn tasks on the caller's executor.
#[derive(Clone)]
pub(super) struct Spawning {
    spawner: Arc<dyn Fn(Task) + Send + Sync>,
}

impl Spawning {
    pub(super) fn new(spawner: impl Fn(Task) + Send + Sync + 'static) -> Self {
        Self { spawner: Arc::new(spawner) }
    }
}

impl fmt::Debug for Spawning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawning").finish_non_exhaustive()
    }
}

impl GatewayRuntime for Spawning {
    type Listener = Async<TcpListener>;
    type Stream = Stream;

    fn now(&self) -> Instant {
        AsyncIo.now()
    }

    async fn accept(&self, listener: &Async<TcpListener>) -> io::Result<(Stream, SocketAddr)> {
        let (stream, addr) = listener.accept().await?;
        // Answers are small and written whole: send them at once.
        let _ = stream.get_ref().set_nodelay(true);
        Ok((Stream(stream), addr))
    }

    async fn connect(&self, host: &str, port: u16) -> io::Result<Stream> {
        AsyncIo.connect(host, port).await.map(Stream)
    }

    async fn sleep_until(&self, deadline: Instant) {
        AsyncIo.sleep_until(deadline).await;
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        (self.spawner)(Box::pin(task));
    }
}

/// An `async-io` TCP stream, for the gateway driver.
#[derive(Debug)]
pub(super) struct Stream(Async<TcpStream>);

impl GatewayStream for Stream {
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // `Async` made the socket non-blocking: this never waits.
        self.0.get_ref().read(buf)
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.get_ref().write(buf)
    }

    async fn ready(&self, interest: Interest) -> io::Result<Interest> {
        const READ: Interest = Interest { read: true, write: false };
        const WRITE: Interest = Interest { read: false, write: true };
        let readable = async { self.0.readable().await.map(|()| READ) };
        let writable = async { self.0.writable().await.map(|()| WRITE) };
        match (interest.read, interest.write) {
            (true, true) => future::or(readable, writable).await,
            (false, true) => writable.await,
            _ => readable.await,
        }
    }

    fn shutdown_write(&self) {
        let _ = self.0.get_ref().shutdown(Shutdown::Write);
    }

    fn abort(&self) {
        // A zero linger turns the close into a reset. (Elsewhere than on Unix the close stays
        // graceful; the kernel then keeps what the peer did not read a while longer.)
        #[cfg(unix)]
        let _ = rustix::net::sockopt::set_socket_linger(
            self.0.get_ref(),
            Some(std::time::Duration::ZERO),
        );
    }
}
