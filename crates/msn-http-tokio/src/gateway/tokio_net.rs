//! The gateway server's [`GatewayRuntime`] over tokio: `TcpListener`, `TcpStream` read and
//! written without waiting, tokio's clock, timers and `spawn`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use msn_http_driver::Runtime;
use msn_http_driver::gateway::{GatewayRuntime, GatewayStream, Interest};
use tokio::net::{TcpListener, TcpStream};

use crate::runtime::Tokio;

impl GatewayRuntime for Tokio {
    type Listener = TcpListener;
    type Stream = ServerStream;

    fn now(&self) -> Instant {
        Runtime::now(self)
    }

    async fn accept(&self, listener: &TcpListener) -> io::Result<(ServerStream, SocketAddr)> {
        let (stream, addr) = listener.accept().await?;
        // Answers are small and written whole: send them at once.
        let _ = stream.set_nodelay(true);
        Ok((ServerStream(stream), addr))
    }

    async fn connect(&self, host: &str, port: u16) -> io::Result<ServerStream> {
        Runtime::connect(self, host, port).await.map(ServerStream)
    }

    async fn sleep_until(&self, deadline: Instant) {
        Runtime::sleep_until(self, deadline).await;
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(task);
    }
}

/// A tokio TCP stream as the gateway server's driver reads and writes it: without waiting,
/// its watcher task waiting for readiness.
#[derive(Debug)]
pub struct ServerStream(TcpStream);

impl GatewayStream for ServerStream {
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // `WouldBlock` also clears tokio's readiness, so the watcher waits for new input.
        self.0.try_read(buf)
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    async fn ready(&self, interest: Interest) -> io::Result<Interest> {
        use tokio::io::Interest as Tokio;
        let wanted = match (interest.read, interest.write) {
            (true, true) => Tokio::READABLE | Tokio::WRITABLE,
            (false, true) => Tokio::WRITABLE,
            _ => Tokio::READABLE,
        };
        let ready = self.0.ready(wanted).await?;
        Ok(Interest {
            read: ready.is_readable() || ready.is_read_closed() || ready.is_error(),
            write: ready.is_writable() || ready.is_write_closed() || ready.is_error(),
        })
    }

    fn shutdown_write(&self) {
        // tokio shuts down only a stream it owns: shut down a duplicate of the descriptor
        // (closed at once; the socket itself stays open).
        #[cfg(unix)]
        let owned = {
            use std::os::fd::AsFd;
            self.0.as_fd().try_clone_to_owned().map(std::net::TcpStream::from)
        };
        #[cfg(windows)]
        let owned = {
            use std::os::windows::io::AsSocket;
            self.0.as_socket().try_clone_to_owned().map(std::net::TcpStream::from)
        };
        #[cfg(any(unix, windows))]
        if let Ok(dup) = owned {
            let _ = dup.shutdown(std::net::Shutdown::Write);
        }
    }

    fn abort(&self) {
        // A zero linger never blocks on close, which is what the deprecation warns of.
        #[allow(deprecated)]
        let _ = self.0.set_linger(Some(Duration::ZERO));
    }
}
