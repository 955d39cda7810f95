//! The command API: open a tunnelled NS or SB session, send MSNP bytes, receive whole commands.
//!
//! [`Client::open`] creates the core [`Session`](msn_http_core::client::Session) and spawns
//! one driver task that owns its TCP connection and timers. The handles share the session with
//! that task; nothing is buffered outside the core, so the core's limits bound the memory:
//!
//! - [`ClientSender`] (cloneable, usable from many tasks) queues bytes straight into the
//!   core's outgoing queue; when the queue is full, [`send`](ClientSender::send) waits until
//!   the gateway confirms earlier bytes.
//! - [`ClientReceiver`] takes events out of the core. While nobody takes them, the core stops
//!   polling once `max_inbound_bytes` wait undelivered: the gateway keeps the rest.
//!
//! The handles, events and errors are those of `msn-http-driver`, shared with the other
//! adapters; this module adds the tokio-spawned [`Client`].

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

use crate::runtime::{self, Tokio};

/// One tunnelled MSNP connection (an NS or an SB): a [`ClientSender`] and a
/// [`ClientReceiver`] in one value. [`split`](Self::split) separates them.
///
/// Dropping every handle without [`close`](Self::close) aborts the session (no `OUT`); after
/// [`ClientSender::close`], the close completes in the background.
pub struct Client {
    inner: msn_http_driver::Client,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// Opens a session to `target` through the gateway (or proxy) in `config`, and spawns its
    /// driver on the current tokio runtime. Nothing goes on the wire until the first
    /// [`send`](Self::send) (`VER ...` for an NS, `USR`/`ANS` for an SB).
    ///
    /// `config.output` is ignored: this API always receives whole commands.
    pub fn open(config: ClientConfig, target: Target) -> Result<Self, OpenError> {
        let handle = runtime::current()?;
        let (inner, driver) = msn_http_driver::Client::open(Tokio, config, target)?;
        handle.spawn(driver);
        Ok(Self { inner })
    }

    /// Connects to the gateway at `url` (`http://host[:port][/path]`), as
    /// `TcpStream::connect` does, and opens a session to `target` on that connection with
    /// default settings, its driver spawned on the current runtime. A gateway that cannot be
    /// reached is an error here.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), msn_http_tokio::OpenError> {
    /// use msn_http_tokio::{Client, Target};
    ///
    /// let client =
    ///     Client::connect("http://127.0.0.1:8080", Target::notification("messenger.hotmail.com"))
    ///         .await?;
    /// # drop(client);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str, target: Target) -> Result<Self, OpenError> {
        let config = ClientConfig::from_url(url).map_err(OpenError::Config)?;
        Self::connect_with(config, target).await
    }

    /// [`connect`](Self::connect) with `config`.
    pub async fn connect_with(config: ClientConfig, target: Target) -> Result<Self, OpenError> {
        let handle = runtime::current()?;
        let (inner, driver) = msn_http_driver::Client::connect(Tokio, config, target).await?;
        handle.spawn(driver);
        Ok(Self { inner })
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
