//! The byte-stream face, runtime-agnostic: a [`ByteStream`] reads and writes the MSNP byte
//! stream like a `TcpStream` to the MSNP server would, through the HTTP gateway. Adapters name
//! it with their runtime filled in; it implements tokio's and `futures-io`'s `AsyncRead` and
//! `AsyncWrite` (features `tokio` and `futures-io`, module [`io_traits`](crate::io_traits)).

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use msn_http_core::Endpoint;
use msn_http_core::client::{
    ClientConfig, CloseReason, OutputMode, PingPolicy, Recovery, RequestKind, Stats, Target,
};
use msn_http_core::error::{NetworkError, SendError, SessionError};

use crate::driver::Driver;
use crate::events::{Notice, SessionEnd, Taken};
use crate::launch::{self, Detached, Spawn, Spawned, Start};
use crate::open::{self, OpenError};
use crate::runtime::Runtime;
use crate::shared::Shared;

/// Notices kept for [`ByteStream::take_notices`]; older ones are dropped (they were traced).
const MAX_KEPT_NOTICES: usize = 32;

/// Why a byte-stream operation failed. It travels inside the [`io::Error`]; get it back
/// with `error.get_ref().and_then(|e| e.downcast_ref::<StreamError>())`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamError {
    /// The core refused written bytes (`PNG`, a malformed command) or the session is closing
    /// (`SendError::Closed`).
    Send(SendError),
    /// The session ended other than cleanly.
    Ended(CloseReason),
    /// A request carrying written bytes failed in a way that leaves open whether the gateway
    /// received them, under [`UnconfirmedPolicy::Ask`](msn_http_core::client::UnconfirmedPolicy::Ask).
    /// A byte stream has no way to ask, so, like a TCP connection reset, the stream ends.
    /// Configure `Resend` or `Discard` to survive such failures instead.
    DeliveryUncertain {
        /// The kind of the failed request.
        kind: RequestKind,
        /// What went wrong.
        error: SessionError,
    },
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Send(e) => write!(f, "the gateway session refused the bytes: {e}"),
            Self::Ended(reason) => reason.fmt(f),
            Self::DeliveryUncertain { kind, error } => write!(
                f,
                "a {kind} request failed ({error}) and whether the gateway got its commands is \
                 unknown, so the stream ended"
            ),
        }
    }
}

impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Send(e) => Some(e),
            Self::Ended(reason) => reason.error().map(|e| e as _),
            Self::DeliveryUncertain { error, .. } => Some(error),
        }
    }
}

/// The `io::ErrorKind` a TCP stream would have failed with for `error`.
fn io_kind(error: &SessionError) -> io::ErrorKind {
    match error {
        SessionError::Network(NetworkError::ConnectFailed { kind, .. }) => *kind,
        SessionError::Network(NetworkError::Timeout { .. }) => io::ErrorKind::TimedOut,
        SessionError::Network(NetworkError::TooManyFailures { last, .. }) => io_kind(last),
        SessionError::Network(NetworkError::ConnectionClosed { .. }) => {
            io::ErrorKind::ConnectionReset
        }
        _ => io::ErrorKind::ConnectionAborted,
    }
}

impl StreamError {
    fn kind(&self) -> io::ErrorKind {
        match self {
            Self::Send(SendError::Closed) => io::ErrorKind::BrokenPipe,
            Self::Send(_) => io::ErrorKind::InvalidInput,
            Self::Ended(CloseReason::SessionRejected) => io::ErrorKind::ConnectionReset,
            Self::Ended(CloseReason::Failed(error)) => io_kind(error),
            Self::Ended(_) | Self::DeliveryUncertain { .. } => io::ErrorKind::ConnectionAborted,
        }
    }

    fn into_io(self) -> io::Error {
        io::Error::new(self.kind(), self)
    }
}

/// How the byte stream answers `PNG` unless configured otherwise: `QNG 50`, the official
/// server's usual answer.
pub const DEFAULT_PING_ANSWER: PingPolicy = PingPolicy::answer();

/// An MSNP connection through the HTTP gateway, as a byte stream, with the `poll_*` methods
/// of `AsyncRead` and `AsyncWrite` over plain slices: the adapters' `ClientStream` types wrap
/// it to implement their runtime's I/O traits.
///
/// - Writes queue bytes in the core (whole commands or pieces); a write waits while the queue
///   is full, and accepts the prefix that fits. `PNG` never goes on the wire (over the gateway,
///   polling keeps the session alive and the official server disconnects clients that ping):
///   the stream answers it itself with `QNG 50`, read back at the next command boundary, as
///   a TCP client expects ([`PingPolicy::Answer`]; set `config.ping` to choose another
///   number).
/// - Reads return the MSNP bytes the gateway delivered, in order; end of stream (`Ok(0)`)
///   after a clean end (`Session=close`, the server's `OUT`, or the answer to ours), an error
///   otherwise.
/// - [`poll_shutdown`](Self::poll_shutdown) closes the session cleanly (`OUT`) and completes
///   when it has ended; bytes that arrived meanwhile stay readable.
/// - [`into_split`](Self::into_split) gives a reading and a writing half, for two tasks.
/// - Dropping the stream (both halves) without shutting it down aborts the session.
///
/// Notices (gateway moves, failed requests...) are traced and kept for
/// [`take_notices`](Self::take_notices).
///
/// # Cancel safety
///
/// A read that returns `Pending` has taken nothing, a write that returns `Pending` has queued
/// nothing.
///
/// `L` says how the session's [`Driver`] runs, and so what the constructors return
/// ([`Spawned`] or [`Detached`], see [`launch`]).
pub struct ByteStream<L = Detached> {
    reader: ByteReader,
    writer: ByteWriter,
    launch: PhantomData<fn() -> L>,
}

impl<L> fmt::Debug for ByteStream<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteStream")
            .field("reader", &self.reader)
            .field("writer", &self.writer)
            .finish()
    }
}

/// The reading half of a [`ByteStream`].
pub struct ByteReader {
    shared: Arc<Shared>,
    /// Received bytes that did not fit the caller's buffer, from `unread_pos` on.
    unread: Vec<u8>,
    unread_pos: usize,
    notices: VecDeque<Notice>,
    end: Option<SessionEnd>,
}

/// The writing half of a [`ByteStream`].
pub struct ByteWriter {
    shared: Arc<Shared>,
    closing: bool,
}

impl fmt::Debug for ByteReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteReader")
            .field("unread", &(self.unread.len() - self.unread_pos))
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ByteWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteWriter").field("closing", &self.closing).finish_non_exhaustive()
    }
}

impl Drop for ByteReader {
    fn drop(&mut self) {
        self.shared.release(true);
    }
}

impl Drop for ByteWriter {
    fn drop(&mut self) {
        self.shared.release(false);
    }
}

impl<L> Start for ByteStream<L> {
    /// `PingPolicy::Refuse` becomes [`DEFAULT_PING_ANSWER`]: a byte stream could only refuse
    /// a ping with an error.
    fn start<R: Runtime>(
        runtime: R,
        mut config: ClientConfig,
        target: Target,
        first: Option<(Endpoint, R::Stream)>,
    ) -> Result<(Self, Driver), OpenError> {
        if config.ping == PingPolicy::Refuse {
            config.ping = DEFAULT_PING_ANSWER;
        }
        let (shared, driver) = open::open(runtime, config, target, OutputMode::Bytes, 2, first)?;
        let reader = ByteReader {
            shared: Arc::clone(&shared),
            unread: Vec::new(),
            unread_pos: 0,
            notices: VecDeque::new(),
            end: None,
        };
        let writer = ByteWriter { shared, closing: false };
        Ok((Self { reader, writer, launch: PhantomData }, driver))
    }
}

impl<R: Spawn> ByteStream<Spawned<R>> {
    /// Opens a session to `target` through the gateway (or proxy) in `config`, and spawns its
    /// driver on the current runtime. The first bytes written open the session.
    ///
    /// `config.output` is ignored: the stream always receives raw bytes.
    pub fn open(config: ClientConfig, target: Target) -> Result<Self, OpenError> {
        launch::open_spawned::<R, _>(config, target)
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
        launch::connect_spawned::<R, _>(config, target).await.map_err(OpenError::into_io)
    }
}

impl<R: Runtime + Default> ByteStream<Detached<R>> {
    /// Opens a session to `target` through the gateway (or proxy) in `config`, on
    /// `R::default()`. Spawn the returned [`Driver`], as with
    /// [`Client::open`](crate::Client::open). The first bytes written open the session.
    ///
    /// `config.output` is ignored: the stream always receives raw bytes.
    pub fn open(config: ClientConfig, target: Target) -> Result<(Self, Driver), OpenError> {
        Self::open_with(R::default(), config, target)
    }

    /// Connects to the gateway at `url` (`http://host[:port][/path]`), as
    /// `TcpStream::connect` does, and opens a session to `target` on that connection with
    /// default settings. A gateway that cannot be reached is an error here, with the operating
    /// system's kind (`ConnectionRefused`...). Spawn the returned [`Driver`].
    pub async fn connect(url: &str, target: Target) -> io::Result<(Self, Driver)> {
        let config = ClientConfig::from_url(url).map_err(|e| OpenError::Config(e).into_io())?;
        Self::connect_with(R::default(), config, target).await
    }
}

impl<R> ByteStream<Detached<R>> {
    /// [`open`](Self::open), on `runtime`.
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
    ) -> io::Result<(Self, Driver)> {
        launch::connect_detached(runtime, config, target).await.map_err(OpenError::into_io)
    }
}

impl<L> ByteStream<L> {
    /// The reading and the writing half, to use from two tasks. Dropping both without
    /// shutting the writer down aborts the session.
    pub fn into_split(self) -> (ByteReader, ByteWriter) {
        (self.reader, self.writer)
    }

    /// The notices since the last call (at most the latest 32).
    pub fn take_notices(&mut self) -> Vec<Notice> {
        self.reader.take_notices()
    }

    /// How the session ended, once a read or the shutdown has seen the end.
    pub fn end(&self) -> Option<&SessionEnd> {
        self.reader.end()
    }

    /// The gateway the next request goes to.
    pub fn gateway(&self) -> Endpoint {
        self.reader.shared.lock().session.gateway().clone()
    }

    /// The session's counters.
    pub fn stats(&self) -> Stats {
        self.reader.shared.lock().session.stats()
    }

    /// Reads received MSNP bytes into `buf`: how many, `0` at a clean end of the session (or
    /// when `buf` is empty), an error after any other end.
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.reader.poll_read(cx, buf)
    }

    /// Queues MSNP bytes to send: all of `data`, or the prefix that fits in the core's queue;
    /// `Pending` while the queue is full.
    pub fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.writer.poll_write(cx, data)
    }

    /// Closes the session cleanly (`OUT`); ready once it has ended. Bytes that arrive
    /// meanwhile stay readable.
    pub fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer.close();
        // Take events until the end, keeping the bytes for later reads: the session must not
        // hold back for undelivered input while `OUT` waits to go out.
        while self.reader.end.is_none() {
            let mut unread = std::mem::take(&mut self.reader.unread);
            let polled =
                self.reader.poll_take_bytes(cx, &mut |bytes| unread.extend_from_slice(bytes));
            self.reader.unread = unread;
            ready!(polled);
        }
        Poll::Ready(self.reader.end_result())
    }
}

impl ByteReader {
    /// The notices since the last call (at most the latest 32).
    pub fn take_notices(&mut self) -> Vec<Notice> {
        self.notices.drain(..).collect()
    }

    /// How the session ended, once a read has seen the end.
    pub fn end(&self) -> Option<&SessionEnd> {
        self.end.as_ref()
    }

    fn note(&mut self, notice: Notice) {
        if let Notice::RequestFailed { kind, error, recovery: Recovery::AwaitingDecision } = &notice
        {
            // The driver has ended the session already (before any further request).
            let failure = StreamError::DeliveryUncertain { kind: *kind, error: error.clone() };
            self.shared.lock().stream_failure = Some(failure);
        }
        if self.notices.len() == MAX_KEPT_NOTICES {
            self.notices.pop_front();
        }
        self.notices.push_back(notice);
    }

    /// What reads return once the session has ended: end of stream, or the error.
    fn end_result(&self) -> io::Result<()> {
        match &self.end {
            Some(end) if !end.is_clean() => {
                let failure = self.shared.lock().stream_failure.clone();
                Err(match (failure, &end.reason) {
                    (Some(failure), CloseReason::Aborted) => failure,
                    (_, reason) => StreamError::Ended(reason.clone()),
                }
                .into_io())
            }
            _ => Ok(()),
        }
    }

    /// Takes events until one delivers bytes to `sink` or ends the session.
    fn poll_take_bytes(&mut self, cx: &mut Context<'_>, sink: &mut dyn FnMut(&[u8])) -> Poll<()> {
        loop {
            match ready!(self.shared.poll_take(cx, sink)) {
                Taken::Data => return Poll::Ready(()),
                // Not produced in byte mode; deliver it as bytes all the same.
                Taken::Command(cmd) => {
                    sink(cmd.as_bytes());
                    return Poll::Ready(());
                }
                Taken::Notice(notice) => self.note(notice),
                Taken::Closed(end) => {
                    self.end = Some(end);
                    return Poll::Ready(());
                }
                Taken::Skipped => {}
            }
        }
    }

    /// Reads received MSNP bytes into `buf`: how many, `0` at a clean end of the session (or
    /// when `buf` is empty), an error after any other end.
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.unread_pos < self.unread.len() {
            let n = buf.len().min(self.unread.len() - self.unread_pos);
            buf[..n].copy_from_slice(&self.unread[self.unread_pos..self.unread_pos + n]);
            self.unread_pos += n;
            if self.unread_pos == self.unread.len() {
                self.unread.clear();
                self.unread_pos = 0;
            }
            return Poll::Ready(Ok(n));
        }
        if self.end.is_some() {
            return Poll::Ready(self.end_result().map(|()| 0));
        }
        let mut unread = std::mem::take(&mut self.unread);
        let mut filled = 0;
        let polled = self.poll_take_bytes(cx, &mut |bytes| {
            let n = bytes.len().min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&bytes[..n]);
            filled += n;
            unread.extend_from_slice(&bytes[n..]);
        });
        self.unread = unread;
        ready!(polled);
        if filled == 0 && self.end.is_some() {
            return Poll::Ready(self.end_result().map(|()| 0));
        }
        Poll::Ready(Ok(filled))
    }
}

impl ByteWriter {
    /// Queues MSNP bytes to send: all of `data`, or the prefix that fits in the core's queue;
    /// `Pending` while the queue is full.
    pub fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if let Some(failure) = self.shared.lock().stream_failure.clone() {
            return Poll::Ready(Err(failure.into_io()));
        }
        if self.closing {
            return Poll::Ready(Err(StreamError::Send(SendError::Closed).into_io()));
        }
        let sent = ready!(self.shared.poll_send(cx, data, true));
        Poll::Ready(sent.map_err(|e| StreamError::Send(e).into_io()))
    }

    /// Starts a clean close (`OUT`), as shutting a TCP stream's writing side down: it returns
    /// at once; the reading half sees the end once the gateway has answered.
    pub fn poll_shutdown(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.close();
        Poll::Ready(Ok(()))
    }

    fn close(&mut self) {
        if !self.closing {
            self.closing = true;
            self.shared.close();
        }
    }
}
