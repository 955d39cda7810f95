//! The command API: a tunnelled NS or SB session, MSNP bytes sent, whole commands received.
//!
//! [`Client::open`] creates the core [`Session`](msn_http_core::client::Session) and the
//! [`Driver`] that owns its TCP connection and timers (spawned by the adapter or the caller,
//! see [`launch`]). The handles share the session with that
//! driver; nothing is buffered outside the core, so the core's limits bound the memory:
//!
//! - [`ClientSender`] (cloneable, usable from many tasks) queues bytes straight into the
//!   core's outgoing queue; when the queue is full, [`send`](ClientSender::send) waits until
//!   the gateway confirms earlier bytes.
//! - [`ClientReceiver`] takes events out of the core. While nobody takes them, the core stops
//!   polling once `max_inbound_bytes` wait undelivered: the gateway keeps the rest.

use std::fmt;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, OutputMode, Recovery, Stats, Target};
use msn_http_core::error::SendError;
use msn_http_core::msnp::OwnedCommand;

use crate::driver::Driver;
use crate::events::{ClientEvent, Notice, RecvError, SessionEnd, Taken};
use crate::launch::{self, Detached, Spawn, Spawned, Start};
use crate::open::{self, OpenError};
use crate::runtime::Runtime;
use crate::shared::Shared;

/// The most command bytes [`ClientReceiver::close`] keeps in [`SessionEnd::unread`]; later
/// commands are dropped (and counted), so closing a busy session cannot take unbounded memory.
pub const MAX_UNREAD_BYTES: usize = 1024 * 1024;

/// One tunnelled MSNP connection (an NS or an SB): a [`ClientSender`] and a
/// [`ClientReceiver`] in one value. [`split`](Self::split) separates them.
///
/// `L` says how the session's [`Driver`] runs, and so what the constructors return: each
/// adapter names this type with its runtime filled in (`msn_http_tokio::Client` spawns the
/// driver, [`Spawned`]; `msn_http_async_std::Client` returns it, [`Detached`]).
///
/// Dropping every handle without [`close`](Self::close) aborts the session (no `OUT`); after
/// [`ClientSender::close`], the close completes in the background (as long as the driver
/// runs).
pub struct Client<L = Detached> {
    sender: ClientSender,
    receiver: ClientReceiver,
    launch: PhantomData<fn() -> L>,
}

impl<L> fmt::Debug for Client<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl<L> Start for Client<L> {
    fn start<R: Runtime>(
        runtime: R,
        config: ClientConfig,
        target: Target,
        first: Option<(Endpoint, R::Stream)>,
    ) -> Result<(Self, Driver), OpenError> {
        let (shared, driver) = open::open(runtime, config, target, OutputMode::Commands, 2, first)?;
        let client = Self {
            sender: ClientSender { shared: Arc::clone(&shared) },
            receiver: ClientReceiver { shared, end: None },
            launch: PhantomData,
        };
        Ok((client, driver))
    }
}

impl<R: Spawn> Client<Spawned<R>> {
    /// Opens a session to `target` through the gateway (or proxy) in `config`, and spawns its
    /// driver on the current runtime. Nothing goes on the wire until the first
    /// [`send`](Self::send) (`VER ...` for an NS, `USR`/`ANS` for an SB).
    ///
    /// `config.output` is ignored: this API always receives whole commands.
    pub fn open(config: ClientConfig, target: Target) -> Result<Self, OpenError> {
        launch::open_spawned::<R, _>(config, target)
    }

    /// Connects to the gateway at `url` (`http://host[:port][/path]`), as
    /// `TcpStream::connect` does, and opens a session to `target` on that connection with
    /// default settings, its driver spawned on the current runtime. A gateway that cannot be
    /// reached is an error here ([`OpenError::Connect`]) instead of the session's end.
    pub async fn connect(url: &str, target: Target) -> Result<Self, OpenError> {
        let config = ClientConfig::from_url(url).map_err(OpenError::Config)?;
        Self::connect_with(config, target).await
    }

    /// [`connect`](Self::connect) with `config`.
    pub async fn connect_with(config: ClientConfig, target: Target) -> Result<Self, OpenError> {
        launch::connect_spawned::<R, _>(config, target).await
    }
}

impl<R: Runtime + Default> Client<Detached<R>> {
    /// Opens a session to `target` through the gateway (or proxy) in `config`, on
    /// `R::default()`. Spawn the returned [`Driver`] (`async_std::task::spawn(driver)`,
    /// `smol::spawn(driver).detach()`): the session makes no progress without it, and ends if
    /// it is dropped. Nothing goes on the wire until the first [`send`](Self::send)
    /// (`VER ...` for an NS, `USR`/`ANS` for an SB).
    ///
    /// `config.output` is ignored: this API always receives whole commands.
    pub fn open(config: ClientConfig, target: Target) -> Result<(Self, Driver), OpenError> {
        Self::open_with(R::default(), config, target)
    }

    /// Connects to the gateway at `url` (`http://host[:port][/path]`), as
    /// `TcpStream::connect` does, and opens a session to `target` on that connection with
    /// default settings. A gateway that cannot be reached is an error here
    /// ([`OpenError::Connect`]). Spawn the returned [`Driver`].
    pub async fn connect(url: &str, target: Target) -> Result<(Self, Driver), OpenError> {
        let config = ClientConfig::from_url(url).map_err(OpenError::Config)?;
        Self::connect_with(R::default(), config, target).await
    }
}

impl<R> Client<Detached<R>> {
    /// [`open`](Self::open), on `runtime`: one with a virtual clock for tests, or with
    /// sockets of its own.
    pub fn open_with<Q: Runtime>(
        runtime: Q,
        config: ClientConfig,
        target: Target,
    ) -> Result<(Self, Driver), OpenError> {
        Self::start(runtime, config, target, None)
    }

    /// [`connect`](Self::connect) with `config`, on `runtime`.
    pub async fn connect_with<Q: Runtime>(
        runtime: Q,
        config: ClientConfig,
        target: Target,
    ) -> Result<(Self, Driver), OpenError> {
        launch::connect_detached(runtime, config, target).await
    }
}

impl<L> Client<L> {
    /// Queues MSNP bytes; see [`ClientSender::send`].
    pub async fn send(&self, msnp: &[u8]) -> Result<(), SendError> {
        self.sender.send(msnp).await
    }

    /// The next received command; see [`ClientReceiver::recv`].
    pub async fn recv(&mut self) -> Result<OwnedCommand, RecvError> {
        self.receiver.recv().await
    }

    /// The next received command or notice; see [`ClientReceiver::recv_event`].
    pub async fn recv_event(&mut self) -> Option<ClientEvent> {
        self.receiver.recv_event().await
    }

    /// Closes cleanly and reports how the session ended; see [`ClientReceiver::close`].
    pub async fn close(self) -> SessionEnd {
        self.receiver.close().await
    }

    /// How the session ended, once the receiver has seen the end.
    pub fn end(&self) -> Option<&SessionEnd> {
        self.receiver.end()
    }

    /// Another sender for this session.
    pub fn sender(&self) -> ClientSender {
        self.sender.clone()
    }

    /// Separates the sending and receiving halves.
    pub fn split(self) -> (ClientSender, ClientReceiver) {
        (self.sender, self.receiver)
    }
}

/// The sending half of a session. Clone it to send from several tasks; bytes of one `send`
/// call are queued together, so whole commands from different tasks never interleave.
pub struct ClientSender {
    shared: Arc<Shared>,
}

impl Clone for ClientSender {
    fn clone(&self) -> Self {
        self.shared.acquire();
        Self { shared: Arc::clone(&self.shared) }
    }
}

impl Drop for ClientSender {
    fn drop(&mut self) {
        self.shared.release(false);
    }
}

impl fmt::Debug for ClientSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSender").finish_non_exhaustive()
    }
}

impl ClientSender {
    /// Queues MSNP bytes: whole commands, or pieces of them (a partial command waits for its
    /// rest). All or nothing: a refused call queues no byte. Waits while the core's queue is
    /// full (`max_queued_bytes`) until the gateway confirms earlier bytes.
    ///
    /// Fails at once with the core's [`SendError`]: `Closed` after the session ended or began
    /// closing, `PingNotAllowed` for `PNG`, `Malformed`
    /// for malformed commands, and `QueueFull` when `msnp` is larger than the whole queue.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the bytes are queued in the same step that completes the future, so a
    /// `send` dropped before completing (for example the losing branch of a `select`)
    /// has queued nothing.
    pub async fn send(&self, msnp: &[u8]) -> Result<(), SendError> {
        poll_fn(|cx| self.shared.poll_send(cx, msnp, false).map_ok(|_| ())).await
    }

    /// Queues MSNP bytes if there is room now, without waiting.
    pub fn try_send(&self, msnp: &[u8]) -> Result<(), SendError> {
        self.shared.try_send(msnp)
    }

    /// Starts a clean close: queues `OUT`; the session ends once the gateway has answered the
    /// request carrying it. Receivers get the commands still arriving, then the end. The close
    /// completes even if every handle is dropped afterwards.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Ends the session at once, without telling the gateway
    /// ([`CloseReason::Aborted`](msn_http_core::client::CloseReason::Aborted)).
    pub fn abort(&self) {
        self.shared.abort();
    }

    /// After a [`Notice::RequestFailed`] with
    /// [`Recovery::AwaitingDecision`]:
    /// send the unconfirmed commands again (the gateway may see them twice).
    pub fn resend_unconfirmed(&self) {
        self.shared.resend_unconfirmed();
    }

    /// After a [`Notice::RequestFailed`] with
    /// [`Recovery::AwaitingDecision`]:
    /// drop the unconfirmed commands (the gateway may never have seen them). Returns how many
    /// bytes were dropped.
    pub fn discard_unconfirmed(&self) -> usize {
        self.shared.discard_unconfirmed()
    }

    /// Whether the session has ended (the receiver may still have events to take).
    pub fn is_closed(&self) -> bool {
        self.shared.lock().session.is_closed()
    }

    /// The gateway the next request goes to.
    pub fn gateway(&self) -> Endpoint {
        self.shared.lock().session.gateway().clone()
    }

    /// The latest session ID, once the gateway gave one.
    pub fn session_id(&self) -> Option<String> {
        self.shared.lock().session.session_id().map(str::to_owned)
    }

    /// The session's counters.
    pub fn stats(&self) -> Stats {
        self.shared.lock().session.stats()
    }
}

/// The received commands as a [`Stream`]: `Ok` commands, `Err` for a
/// [`RecvError::DeliveryUncertain`] (the stream goes on) and for an end that was not clean
/// ([`RecvError::Ended`]); a clean end finishes the stream. [`end`](ClientReceiver::end) says
/// how it ended.
impl Stream for ClientReceiver {
    type Item = Result<OwnedCommand, RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let was_over = this.end.is_some();
        match std::task::ready!(this.poll_recv(cx)) {
            Err(RecvError::Ended(end)) if was_over || end.is_clean() => Poll::Ready(None),
            item => Poll::Ready(Some(item)),
        }
    }
}

/// The received commands of the session, as [`ClientReceiver`]'s `Stream`.
impl<L> Stream for Client<L> {
    type Item = Result<OwnedCommand, RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().receiver).poll_next(cx)
    }
}

/// The receiving half of a session. Dropping it while senders live makes the driver discard
/// received commands (each is still traced), so the session keeps going.
pub struct ClientReceiver {
    shared: Arc<Shared>,
    end: Option<SessionEnd>,
}

impl Drop for ClientReceiver {
    fn drop(&mut self) {
        self.shared.release(true);
    }
}

impl fmt::Debug for ClientReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientReceiver").field("end", &self.end).finish_non_exhaustive()
    }
}

impl ClientReceiver {
    /// The next whole command, or why there is none:
    ///
    /// - [`RecvError::Ended`] once the session has ended (and on every later call; then
    ///   [`end`](Self::end) says the same);
    /// - [`RecvError::DeliveryUncertain`] when a request carrying commands failed and, under
    ///   the default [`UnconfirmedPolicy::Ask`](msn_http_core::client::UnconfirmedPolicy::Ask),
    ///   the caller must decide whether they go again. The session keeps receiving meanwhile
    ///   (call `recv` again), but sends no command until
    ///   [`ClientSender::resend_unconfirmed`] or [`ClientSender::discard_unconfirmed`].
    ///
    /// So a caller that only calls `recv` is never left waiting on a decision it was not told
    /// about. Other notices are skipped here (they are still traced); use
    /// [`recv_event`](Self::recv_event) to see them.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a command is taken out of the session only in the step that returns it.
    pub async fn recv(&mut self) -> Result<OwnedCommand, RecvError> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// What [`recv`](Self::recv) returns, as a poll.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<OwnedCommand, RecvError>> {
        if let Some(end) = &self.end {
            return Poll::Ready(Err(RecvError::Ended(end.clone())));
        }
        loop {
            return Poll::Ready(match std::task::ready!(self.poll_event(cx)) {
                ClientEvent::Command(cmd) => Ok(cmd),
                ClientEvent::Notice(Notice::RequestFailed {
                    kind,
                    error,
                    recovery: Recovery::AwaitingDecision,
                }) => {
                    let bytes = self.shared.lock().session.awaiting_decision().unwrap_or(0);
                    Err(RecvError::DeliveryUncertain { kind, error, bytes })
                }
                ClientEvent::Notice(_) => continue,
                ClientEvent::Closed(end) => Err(RecvError::Ended(end)),
            });
        }
    }

    /// The next command or notice, then [`ClientEvent::Closed`] once, then `None`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, like [`recv`](Self::recv).
    pub async fn recv_event(&mut self) -> Option<ClientEvent> {
        if self.end.is_some() {
            return None;
        }
        Some(poll_fn(|cx| self.poll_event(cx)).await)
    }

    /// Takes the next event; must not be called after the end was taken.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<ClientEvent> {
        loop {
            let taken = std::task::ready!(self.shared.poll_take(cx, &mut |_| {}));
            return Poll::Ready(match taken {
                Taken::Command(cmd) => ClientEvent::Command(cmd),
                Taken::Notice(notice) => ClientEvent::Notice(notice),
                Taken::Closed(end) => {
                    self.end = Some(end.clone());
                    ClientEvent::Closed(end)
                }
                Taken::Data | Taken::Skipped => continue,
            });
        }
    }

    /// Closes cleanly: queues `OUT`, keeps the session going until the gateway has answered
    /// it (or the session fails), and reports how it ended. Commands that arrive meanwhile
    /// are returned in [`SessionEnd::unread`] (up to [`MAX_UNREAD_BYTES`]); notices are
    /// traced. To handle every remaining command yourself, call [`ClientSender::close`] and
    /// keep calling [`recv`](Self::recv) until it returns `None`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops this receiver, but the close goes on in the background.
    pub async fn close(mut self) -> SessionEnd {
        if let Some(end) = &self.end {
            return end.clone();
        }
        self.shared.close();
        let (mut unread, mut kept, mut dropped) = (Vec::new(), 0, 0);
        loop {
            match poll_fn(|cx| self.poll_event(cx)).await {
                ClientEvent::Command(cmd) if kept + cmd.as_bytes().len() <= MAX_UNREAD_BYTES => {
                    kept += cmd.as_bytes().len();
                    unread.push(cmd);
                }
                ClientEvent::Command(cmd) => {
                    self.shared.span.in_scope(|| {
                        tracing::warn!(target: crate::TRACING_TARGET, name = cmd.name(), "command dropped while closing");
                    });
                    dropped += 1;
                }
                ClientEvent::Notice(_) => {}
                ClientEvent::Closed(mut end) => {
                    end.unread = unread;
                    end.dropped_commands = dropped;
                    return end;
                }
            }
        }
    }

    /// How the session ended, once [`recv`](Self::recv) or
    /// [`recv_event`](Self::recv_event) has returned the end.
    pub fn end(&self) -> Option<&SessionEnd> {
        self.end.as_ref()
    }
}
