//! The command API: open a tunnelled NS or SB session, send MSNP bytes, receive whole commands.
//!
//! [`Client::open`] creates the core [`Session`](msn_http_core::client::Session) and returns
//! it with its [`Driver`]: the future that owns the session's TCP connection and timers, to
//! spawn on the executor of your choice (see the [crate docs](crate#spawning-the-driver)).
//! The handles share the session with that driver; nothing is buffered outside the core, so
//! the core's limits bound the memory:
//!
//! - [`ClientSender`] (cloneable, usable from many tasks) queues bytes straight into the
//!   core's outgoing queue; when the queue is full, [`send`](ClientSender::send) waits until
//!   the gateway confirms earlier bytes.
//! - [`ClientReceiver`] takes events out of the core. While nobody takes them, the core stops
//!   polling once `max_inbound_bytes` wait undelivered: the gateway keeps the rest.
//!
//! The handles, events and errors are those of `msn-http-driver`, shared with the other
//! adapters.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use msn_http_core::client::{ClientConfig, Target};
use msn_http_core::error::SendError;
use msn_http_core::msnp::OwnedCommand;
pub use msn_http_driver::OpenError;
pub use msn_http_driver::client::{ClientReceiver, ClientSender, MAX_UNREAD_BYTES};
pub use msn_http_driver::events::{ClientEvent, Notice, RecvError, SessionEnd};
use msn_http_driver::{Driver, Runtime};

use crate::AsyncIo;

/// One tunnelled MSNP connection (an NS or an SB): a [`ClientSender`] and a
/// [`ClientReceiver`] in one value. [`split`](Self::split) separates them.
///
/// Dropping every handle without [`close`](Self::close) aborts the session (no `OUT`); after
/// [`ClientSender::close`], the close completes in the background (as long as the driver
/// runs).
pub struct Client {
    inner: msn_http_driver::Client,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// Opens a session to `target` through the gateway (or proxy) in `config`. Spawn the
    /// returned [`Driver`] (`async_std::task::spawn(driver)`, `smol::spawn(driver).detach()`):
    /// the session makes no progress without it, and ends if it is dropped. Nothing goes on
    /// the wire until the first [`send`](Self::send) (`VER ...` for an NS, `USR`/`ANS` for
    /// an SB).
    ///
    /// `config.output` is ignored: this API always receives whole commands.
    pub fn open(config: ClientConfig, target: Target) -> Result<(Self, Driver), OpenError> {
        Self::open_with(AsyncIo, config, target)
    }

    /// [`open`](Self::open), on another [`Runtime`] than [`AsyncIo`]: one with a virtual
    /// clock for tests, or with sockets of its own.
    pub fn open_with<R: Runtime>(
        runtime: R,
        config: ClientConfig,
        target: Target,
    ) -> Result<(Self, Driver), OpenError> {
        let (inner, driver) = msn_http_driver::Client::open(runtime, config, target)?;
        Ok((Self { inner }, driver))
    }

    /// Connects to the gateway at `url` (`http://host[:port][/path]`), as
    /// `TcpStream::connect` does, and opens a session to `target` on that connection with
    /// default settings. A gateway that cannot be reached is an error here. Spawn the returned
    /// [`Driver`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), msn_http_async_std::OpenError> {
    /// use msn_http_async_std::{Client, Target};
    ///
    /// let (client, driver) =
    ///     Client::connect("http://127.0.0.1:8080", Target::notification("messenger.hotmail.com"))
    ///         .await?;
    /// smol::spawn(driver).detach();
    /// # drop(client);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str, target: Target) -> Result<(Self, Driver), OpenError> {
        let config = ClientConfig::from_url(url).map_err(OpenError::Config)?;
        Self::connect_with(AsyncIo, config, target).await
    }

    /// [`connect`](Self::connect) with `config`, on `runtime`.
    pub async fn connect_with<R: Runtime>(
        runtime: R,
        config: ClientConfig,
        target: Target,
    ) -> Result<(Self, Driver), OpenError> {
        let (inner, driver) = msn_http_driver::Client::connect(runtime, config, target).await?;
        Ok((Self { inner }, driver))
    }

    /// Queues MSNP bytes; see [`ClientSender::send`].
    pub async fn send(&self, msnp: &[u8]) -> Result<(), SendError> {
        self.inner.send(msnp).await
    }

    /// The next received command; see [`ClientReceiver::recv`].
    pub async fn recv(&mut self) -> Result<OwnedCommand, RecvError> {
        self.inner.recv().await
    }

    /// The next received command or notice; see [`ClientReceiver::recv_event`].
    pub async fn recv_event(&mut self) -> Option<ClientEvent> {
        self.inner.recv_event().await
    }

    /// Closes cleanly and reports how the session ended; see [`ClientReceiver::close`].
    pub async fn close(self) -> SessionEnd {
        self.inner.close().await
    }

    /// How the session ended, once the receiver has seen the end.
    pub fn end(&self) -> Option<&SessionEnd> {
        self.inner.end()
    }

    /// Another sender for this session.
    pub fn sender(&self) -> ClientSender {
        self.inner.sender()
    }

    /// Separates the sending and receiving halves.
    pub fn split(self) -> (ClientSender, ClientReceiver) {
        self.inner.split()
    }
}

/// The received commands; see [`ClientReceiver`]'s `Stream`.
impl Stream for Client {
    type Item = Result<OwnedCommand, RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().inner).poll_next(cx)
    }
}
