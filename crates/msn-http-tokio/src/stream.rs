//! The byte-stream face: a [`ClientStream`] reads and writes the MSNP byte stream like a
//! `TcpStream` to the MSNP server would, through the HTTP gateway.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, Stats, Target};
pub use msn_http_driver::StreamError;
use msn_http_driver::{ByteReader, ByteStream, ByteWriter};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::client::{Notice, OpenError, SessionEnd};
use crate::runtime::{self, Tokio};

/// An MSNP connection through the HTTP gateway, as a byte stream: implements tokio's
/// [`AsyncRead`] and [`AsyncWrite`], so an MSNP client written against a `TcpStream` switches
/// to the gateway by swapping the stream type.
///
/// - Writes queue bytes in the core (whole commands or pieces); a write waits while the queue
///   is full, and accepts the prefix that fits. `PNG` never goes on the wire: the stream
///   answers it itself with `QNG 50` at the next command boundary, as a TCP client expects
///   (see [`msn_http_core::client::PingPolicy`]).
/// - Reads return the MSNP bytes the gateway delivered, in order; end of stream after a clean
///   end (`Session=close`, or the answer to `OUT`), an error otherwise.
/// - [`poll_flush`](AsyncWrite::poll_flush) returns at once, as a `TcpStream`'s does.
/// - [`poll_shutdown`](AsyncWrite::poll_shutdown) closes the session cleanly (`OUT`) and
///   completes when it has ended; bytes that arrived meanwhile stay readable.
/// - Dropping the stream without shutting it down aborts the session.
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
    /// Opens a session to `target` through the gateway (or proxy) in `config`, and spawns its
    /// driver on the current tokio runtime. The first bytes written open the session.
    ///
    /// `config.output` is ignored: the stream always receives raw bytes.
    pub fn open(config: ClientConfig, target: Target) -> Result<Self, OpenError> {
        let handle = runtime::current()?;
        let (inner, driver) = ByteStream::open(Tokio, config, target)?;
        handle.spawn(driver);
        Ok(Self { inner })
    }

    /// Connects to the gateway at `url` (`http://host[:port][/path]`), as
    /// `TcpStream::connect` does, and opens a session to `target` on that connection with
    /// default settings, its driver spawned on the current runtime. A gateway that cannot be
    /// reached is an error here, with the operating system's kind (`ConnectionRefused`...).
    pub async fn connect(url: &str, target: Target) -> io::Result<Self> {
        let config = ClientConfig::from_url(url).map_err(|e| OpenError::Config(e).into_io())?;
        Self::connect_with(config, target).await
    }

    /// [`connect`](Self::connect) with `config`.
    pub async fn connect_with(config: ClientConfig, target: Target) -> io::Result<Self> {
        let handle = runtime::current().map_err(OpenError::into_io)?;
        let (inner, driver) =
            ByteStream::connect(Tokio, config, target).await.map_err(OpenError::into_io)?;
        handle.spawn(driver);
        Ok(Self { inner })
    }

    /// The notices since the last call (at most the latest 32).
    pub fn take_notices(&mut self) -> Vec<Notice> {
        self.inner.take_notices()
    }

    /// How the session ended, once a read or the shutdown has seen the end.
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

    /// The reading and the writing half, owned, for two tasks (as
    /// `TcpStream::into_split`). Shutting the writing half down queues `OUT` and returns at
    /// once; the reading half then reads to the end. Dropping both without a shutdown aborts
    /// the session.
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
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(self.get_mut().inner.poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
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

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().inner.poll_shutdown(cx)
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(self.get_mut().inner.poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
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

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().inner.poll_shutdown(cx)
    }
}
