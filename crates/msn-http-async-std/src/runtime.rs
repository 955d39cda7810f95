//! [`AsyncIo`], the [`Runtime`] over `async-io`: `Async<TcpStream>` and `async_io::Timer`, the
//! reactor that async-std and smol both run on.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Instant;

use async_io::{Async, Timer};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use msn_http_driver::Runtime;

/// `async-io`'s sockets and timers, on the system clock: what [`Client::open`](crate::Client::open)
/// and [`ClientStream::open`](crate::ClientStream::open) run sessions on. Works under any
/// executor (async-std, smol, `async_io::block_on`...): the `async-io` reactor needs none.
///
/// Host names are resolved on a short-lived thread of their own (IP addresses need none), so
/// no executor thread blocks on DNS.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncIo;

impl Runtime for AsyncIo {
    type Stream = Async<TcpStream>;

    fn now(&self) -> Instant {
        Instant::now()
    }

    async fn connect(&self, host: &str, port: u16) -> io::Result<Async<TcpStream>> {
        let mut last_error = None;
        for addr in resolve(host, port).await? {
            match Async::<TcpStream>::connect(addr).await {
                Ok(stream) => {
                    stream.get_ref().set_nodelay(true)?;
                    return Ok(stream);
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "the host name resolved to no address")
        }))
    }

    async fn write_all(&self, stream: &mut Async<TcpStream>, buf: &[u8]) -> io::Result<()> {
        stream.write_all(buf).await
    }

    async fn read(&self, stream: &mut Async<TcpStream>, buf: &mut [u8]) -> io::Result<usize> {
        stream.read(buf).await
    }

    async fn sleep_until(&self, deadline: Instant) {
        Timer::at(deadline).await;
    }
}

/// The addresses of `host`: itself when it is an IP address, else what the system resolver
/// says, asked on a thread of its own (the call blocks).
async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = async_channel::bounded(1);
    let name = host.to_owned();
    std::thread::Builder::new().name("msn-http-resolve".to_owned()).spawn(move || {
        let addrs = (name.as_str(), port).to_socket_addrs().map(Iterator::collect);
        // The receiver is gone when the connect was given up: nothing to tell.
        let _ = tx.send_blocking(addrs);
    })?;
    rx.recv().await.map_err(|_| io::Error::other("the resolver thread ended without an answer"))?
}
