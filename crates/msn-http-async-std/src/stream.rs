//! The byte-stream face: a [`ClientStream`] reads and writes the MSNP byte stream like a
//! `TcpStream` to the MSNP server would, through the HTTP gateway.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, Stats, Target};
pub use msn_http_driver::StreamError;
use msn_http_driver::{ByteReader, ByteStream, ByteWriter, Driver, Runtime};

use crate::AsyncIo;
use crate::client::{Notice, OpenError, SessionEnd};

/// An MSNP connection through the HTTP gateway, as a byte stream: implements `futures-io`'s
/// [`AsyncRead`] and [`AsyncWrite`] (the traits of async-std and smol), so an MSNP client
/// written against a `TcpStream` switches to the gateway by swapping the stream type.
///
/// - Writes queue bytes in the core (whole commands or pieces); a write waits while the queue
///   is full, and accepts the prefix that fits. `PNG` never goes on the wire: the stream
///   answers it itself with `QNG 50` at the next command boundary, as a TCP client expects
///   (see [`msn_http_core::client::PingPolicy`]).
/// - Reads return the MSNP bytes the gateway delivered, in order; end of stream after a clean
///   end (`Session=close`, or the answer to `OUT`), an error otherwise.
/// - [`poll_flush`](AsyncWrite::poll_flush) returns at once, as a `TcpStream`'s does.
/// - [`poll_close`](AsyncWrite::poll_close) closes the session cleanly (`OUT`) and completes
///   when it has ended; bytes that arrived meanwhile stay readable.
/// - Dropping the stream without closing it aborts the session.
///
/// Notices (gateway moves, failed requests...) are traced and kept for
/// [`take_notices`](Self::take_notices).
///
/// # Cancel safety
///
/// Reading and writing follow the `AsyncRead`/`AsyncWrite` contracts: a read that returns
/// `Pending` has taken nothing, a write that returns `Pending` has queued nothing.
pub struct ClientStream {
    inner: ByteStream,
}

impl fmt::Debug for ClientStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClientStream").field(&self.inner).finish()
    }
}

impl ClientStream {
    /// Opens a session to `target` through the gateway (or proxy) in `config`. Spawn the
    /// returned [`Driver`], as with [`Client::open`](crate::Client::open). The first bytes
    /// written open the session.
    ///
    /// `config.output` is ignored: the stream always receives raw bytes.
    pub fn open(config: ClientConfig, target: Target) -> Result<(Self, Driver), OpenError> {
        Self::open_with(AsyncIo, config, target)
    }

    /// Connects to the gateway at `url` (`http://host[:port][/path]`), as
    /// `TcpStream::connect` does, and opens a session to `target` on that connection with
    /// default settings. A gateway that cannot be reached is an error here, with the operating
    /// system's kind (`ConnectionRefused`...). Spawn the returned [`Driver`].
    pub async fn connect(url: &str, target: Target) -> io::Result<(Self, Driver)> {
        let config = ClientConfig::from_url(url).map_err(|e| OpenError::Config(e).into_io())?;
        Self::connect_with(AsyncIo, config, target).await
    }

    /// [`connect`](Self::connect) with `config`, on `runtime`.
    pub async fn connect_with<R: Runtime>(
        runtime: R,
        config: ClientConfig,
        target: Target,
    ) -> io::Result<(Self, Driver)> {
        let (inner, driver) =
            ByteStream::connect(runtime, config, target).await.map_err(OpenError::into_io)?;
        Ok((Self { inner }, driver))
    }

    /// [`open`](Self::open), on another [`Runtime`] than [`AsyncIo`].
    pub fn open_with<R: Runtime>(
        runtime: R,
        config: ClientConfig,
        target: Target,
    ) -> Result<(Self, Driver), OpenError> {
        let (inner, driver) = ByteStream::open(runtime, config, target)?;
        Ok((Self { inner }, driver))
    }

    /// The notices since the last call (at most the latest 32).
    pub fn take_notices(&mut self) -> Vec<Notice> {
        self.inner.take_notices()
    }

    /// How the session ended, once a read or the close has seen the end.
    pub fn end(&self) -> Option<&SessionEnd> {
        self.inner.end()
    }

    /// The gateway the next request goes to.
    pub fn gateway(&self) -> Endpoint {
        self.inner.gateway()
    }

    /// The session's counters.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// The reading and the writing half, owned, for two tasks. Closing the writing half
    /// queues `OUT` and returns at once; the reading half then reads to the end. Dropping
    /// both without a close aborts the session.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let (reader, writer) = self.inner.into_split();
        (OwnedReadHalf { inner: reader }, OwnedWriteHalf { inner: writer })
    }
}

/// The reading half of a [`ClientStream`], from [`ClientStream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf {
    inner: ByteReader,
}

/// The writing half of a [`ClientStream`], from [`ClientStream::into_split`].
#[derive(Debug)]
pub struct OwnedWriteHalf {
    inner: ByteWriter,
}

impl OwnedReadHalf {
    /// The notices since the last call (at most the latest 32).
    pub fn take_notices(&mut self) -> Vec<Notice> {
        self.inner.take_notices()
    }

    /// How the session ended, once a read has seen the end.
    pub fn end(&self) -> Option<&SessionEnd> {
        self.inner.end()
    }
}

impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().inner.poll_read(cx, buf)
    }
}

impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().inner.poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().inner.poll_shutdown(cx)
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().inner.poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().inner.poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().inner.poll_shutdown(cx)
    }
}
