//! Sockets shared by the driver and their watcher tasks. A watcher only waits for readiness
//! the driver asked for and reports it; the driver alone reads, writes (with the non-blocking
//! helpers at the end) and closes.

use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::Poll;
use std::time::Duration;

use async_channel::Sender;
use atomic_waker::AtomicWaker;
use futures_lite::future;
use msn_http_core::gateway::BackendId;

use super::runtime::{GatewayRuntime, GatewayStream, Interest};
use super::tasks::TaskGuard;

/// The driver wants to hear when the socket is readable.
pub(super) const WANT_READ: u8 = 1;
/// The driver has bytes waiting and wants to hear when the socket is writable.
pub(super) const WANT_WRITE: u8 = 2;
/// The driver is done with the socket: the watcher ends (dropping the last handle).
const CLOSE: u8 = 4;
/// With `CLOSE`: read and drop what the peer still sends, for a while, before closing.
const LINGER: u8 = 8;

/// Bytes a lingering close reads at most before it gives up on the peer.
const MAX_LINGER_BYTES: usize = 256 * 1024;

/// Which socket a notice is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Peer {
    Client(u64),
    Backend(BackendId),
}

/// What watchers, the accept loop and connecting tasks tell the driver.
#[derive(Debug)]
pub(super) enum Event<S> {
    /// A client connection, already watched (for reading).
    Accepted(u64, Arc<Socket<S>>),
    /// A backend connection was made (and is watched for reading), or could not be.
    Connected(BackendId, io::Result<Arc<Socket<S>>>),
    Readable(Peer),
    Writable(Peer),
    /// The watcher ended and dropped its handle: once the driver has dropped its own, the
    /// socket is closed.
    Closed(Peer),
    /// `accept` failed (out of descriptors, say).
    AcceptFailed,
}

/// A stream with the driver's wishes for its watcher.
#[derive(Debug)]
pub(super) struct Socket<S> {
    stream: S,
    state: AtomicU8,
    /// The watcher, waiting for a change of wishes.
    watcher: AtomicWaker,
}

impl<S: GatewayStream> Socket<S> {
    /// A socket whose watcher starts by waiting for it to be readable.
    pub(super) fn new(stream: S) -> Arc<Self> {
        Arc::new(Self { stream, state: AtomicU8::new(WANT_READ), watcher: AtomicWaker::new() })
    }

    /// Asks the watcher to report readiness (`WANT_READ`, `WANT_WRITE`).
    pub(super) fn want(&self, bits: u8) {
        self.state.fetch_or(bits, Ordering::AcqRel);
        self.watcher.wake();
    }

    /// Ends the watcher, which drops its handle; the stream closes when the driver drops its
    /// own. With `linger`, the writing side is shut down now (the peer sees the end of the
    /// last answer) and the watcher reads what the peer still sends for up to its linger time,
    /// so that unread input does not turn the close into a reset.
    pub(super) fn close(&self, linger: bool) {
        if linger {
            self.stream.shutdown_write();
        }
        self.want(if linger { CLOSE | LINGER } else { CLOSE });
    }

    /// Closes at once with a reset, dropping what the kernel still holds for the peer (one
    /// that does not read would otherwise keep those buffers after the close).
    pub(super) fn abort(&self) {
        self.stream.abort();
        self.want(CLOSE);
    }

    /// Reads without waiting.
    pub(super) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.try_read(buf)
    }

    /// Writes without waiting.
    pub(super) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.stream.try_write(buf)
    }

    /// Completes once the wishes differ from `seen`.
    async fn changed(&self, seen: u8) {
        poll_fn(|cx| {
            self.watcher.register(cx.waker());
            match self.state.load(Ordering::Acquire) != seen {
                true => Poll::Ready(()),
                false => Poll::Pending,
            }
        })
        .await;
    }
}

/// What every watcher needs: the runtime, the driver's channel, the linger time.
#[derive(Debug)]
pub(super) struct Watching<R: GatewayRuntime> {
    pub(super) runtime: R,
    pub(super) events: Sender<Event<R::Stream>>,
    pub(super) linger: Duration,
}

// By hand: a derive would ask for `R::Stream: Clone`, which no channel needs.
impl<R: GatewayRuntime> Clone for Watching<R> {
    fn clone(&self) -> Self {
        let (runtime, events) = (self.runtime.clone(), self.events.clone());
        Self { runtime, events, linger: self.linger }
    }
}

/// Watches `socket` for the driver until it is closed or the driver is gone, then says so.
pub(super) async fn watch<R: GatewayRuntime>(
    watching: Watching<R>,
    socket: Arc<Socket<R::Stream>>,
    peer: Peer,
    _guard: TaskGuard,
) {
    watch_until_closed(&watching, &socket, peer).await;
    drop(socket);
    let _ = watching.events.try_send(Event::Closed(peer));
}

async fn watch_until_closed<R: GatewayRuntime>(
    watching: &Watching<R>,
    socket: &Socket<R::Stream>,
    peer: Peer,
) {
    let Watching { runtime, events, linger } = watching;
    loop {
        let state = socket.state.load(Ordering::Acquire);
        if state & CLOSE != 0 {
            if state & LINGER != 0 {
                let deadline = runtime.now() + *linger;
                future::or(drain(&socket.stream), runtime.sleep_until(deadline)).await;
            }
            return;
        }
        let interest = Interest { read: state & WANT_READ != 0, write: state & WANT_WRITE != 0 };
        debug_assert_eq!(wishes(interest), state & (WANT_READ | WANT_WRITE));
        if interest == Interest::default() {
            socket.changed(state).await;
            continue;
        }
        // The driver's wishes first, so that a close is not held off by readiness.
        let ready = future::or(
            async {
                socket.changed(state).await;
                None
            },
            async { Some(socket.stream.ready(interest).await) },
        )
        .await;
        let Some(ready) = ready else { continue };
        let found = match ready {
            Ok(ready) => wishes(ready),
            // The reactor is gone: let the driver find out by reading.
            Err(_) => WANT_READ | WANT_WRITE,
        } & state;
        if found == 0 {
            continue;
        }
        // Cleared before reporting: the driver sets them again when it wants more.
        socket.state.fetch_and(!found, Ordering::AcqRel);
        let lost = (found & WANT_READ != 0 && events.try_send(Event::Readable(peer)).is_err())
            || (found & WANT_WRITE != 0 && events.try_send(Event::Writable(peer)).is_err());
        if lost {
            return;
        }
    }
}

/// The wish bits of `interest`.
fn wishes(interest: Interest) -> u8 {
    let read = if interest.read { WANT_READ } else { 0 };
    let write = if interest.write { WANT_WRITE } else { 0 };
    read | write
}

/// Reads and drops what the peer sends until it closes (bounded).
async fn drain<S: GatewayStream>(stream: &S) {
    let mut total = 0;
    while total < MAX_LINGER_BYTES {
        if stream.ready(Interest { read: true, write: false }).await.is_err() {
            return;
        }
        // The buffer lives only between awaits, so it does not enlarge the watcher's future.
        let read = {
            let mut sink = [0u8; 2048];
            stream.try_read(&mut sink)
        };
        match read {
            Ok(0) => return,
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Output buffers larger than this are released once written, so idle sockets hold nothing.
const RETAINED_CAPACITY: usize = 4096;

/// Writes `bytes` after whatever is already waiting; what the socket does not take waits for
/// its watcher's `Writable` notice.
pub(super) fn write_or_queue<S: GatewayStream>(
    socket: &Socket<S>,
    pending: &mut Vec<u8>,
    bytes: &[u8],
) -> io::Result<()> {
    if !pending.is_empty() {
        pending.extend_from_slice(bytes);
        return Ok(());
    }
    let mut written = 0;
    while written < bytes.len() {
        match socket.write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                pending.extend_from_slice(&bytes[written..]);
                socket.want(WANT_WRITE);
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes waiting bytes; `true` once none are left.
pub(super) fn flush<S: GatewayStream>(
    socket: &Socket<S>,
    pending: &mut Vec<u8>,
) -> io::Result<bool> {
    let mut written = 0;
    let result = loop {
        if written == pending.len() {
            break Ok(true);
        }
        match socket.write(&pending[written..]) {
            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                socket.want(WANT_WRITE);
                break Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    pending.drain(..written);
    if pending.is_empty() && pending.capacity() > RETAINED_CAPACITY {
        *pending = Vec::new();
    }
    result
}
