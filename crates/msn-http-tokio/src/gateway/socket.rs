//! Sockets shared by the driver and their watcher tasks. A watcher only waits for readiness
//! the driver asked for and reports it; the driver alone reads, writes (with the non-blocking
//! helpers at the end) and closes.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use msn_http_core::gateway::BackendId;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};

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
pub(super) enum Event {
    /// A client connection, already watched (for reading).
    Accepted(u64, Arc<Socket>),
    /// A backend connection was made (and is watched for reading), or could not be.
    Connected(BackendId, io::Result<Arc<Socket>>),
    Readable(Peer),
    Writable(Peer),
    /// The watcher ended and dropped its handle: once the driver has dropped its own, the
    /// socket is closed.
    Closed(Peer),
    /// `accept` failed (out of descriptors, say).
    AcceptFailed,
}

/// A TCP stream with the driver's wishes for its watcher.
#[derive(Debug)]
pub(super) struct Socket {
    stream: TcpStream,
    state: AtomicU8,
    notify: Notify,
}

impl Socket {
    /// A socket whose watcher starts by waiting for it to be readable.
    pub(super) fn new(stream: TcpStream) -> Arc<Self> {
        // Answers and MSNP commands are small and written whole: send them at once.
        let _ = stream.set_nodelay(true);
        Arc::new(Self { stream, state: AtomicU8::new(WANT_READ), notify: Notify::new() })
    }

    /// Asks the watcher to report readiness (`WANT_READ`, `WANT_WRITE`).
    pub(super) fn want(&self, bits: u8) {
        self.state.fetch_or(bits, Ordering::AcqRel);
        self.notify.notify_one();
    }

    /// Ends the watcher, which drops its handle; the stream closes when the driver drops its
    /// own. With `linger`, the writing side is shut down now (the peer sees the end of the
    /// last answer) and the watcher reads what the peer still sends for up to its linger time,
    /// so that unread input does not turn the close into a reset.
    pub(super) fn close(&self, linger: bool) {
        if linger {
            shutdown_write(&self.stream);
        }
        self.want(if linger { CLOSE | LINGER } else { CLOSE });
    }

    /// Closes at once with a reset, dropping what the kernel still holds for the peer (one
    /// that does not read would otherwise keep those buffers after the close).
    pub(super) fn abort(&self) {
        // A zero linger never blocks on close, which is what the deprecation warns of.
        #[allow(deprecated)]
        let _ = self.stream.set_linger(Some(Duration::ZERO));
        self.want(CLOSE);
    }

    /// Reads without waiting. `WouldBlock` also re-arms tokio's readiness for the watcher.
    pub(super) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.try_read(buf)
    }

    /// Writes without waiting.
    pub(super) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.stream.try_write(buf)
    }
}

/// Counts the tasks that hold sockets, so a shutdown can wait for the last to close.
#[derive(Debug, Default)]
pub(super) struct Tasks {
    live: AtomicUsize,
    idle: Notify,
}

impl Tasks {
    pub(super) fn guard(self: &Arc<Self>) -> TaskGuard {
        self.live.fetch_add(1, Ordering::AcqRel);
        TaskGuard(Arc::clone(self))
    }

    /// Waits until no counted task is left.
    pub(super) async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.live.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Held by a counted task; dropping it ends the count.
#[derive(Debug)]
pub(super) struct TaskGuard(Arc<Tasks>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Watches `socket` for the driver until it is closed or the driver is gone, then says so.
pub(super) async fn watch(
    socket: Arc<Socket>,
    peer: Peer,
    events: mpsc::UnboundedSender<Event>,
    linger: Duration,
    _guard: TaskGuard,
) {
    watch_until_closed(&socket, peer, &events, linger).await;
    drop(socket);
    let _ = events.send(Event::Closed(peer));
}

async fn watch_until_closed(
    socket: &Socket,
    peer: Peer,
    events: &mpsc::UnboundedSender<Event>,
    linger: Duration,
) {
    loop {
        let state = socket.state.load(Ordering::Acquire);
        if state & CLOSE != 0 {
            if state & LINGER != 0 {
                let _ = tokio::time::timeout(linger, drain(&socket.stream)).await;
            }
            return;
        }
        let interest = match (state & WANT_READ != 0, state & WANT_WRITE != 0) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        };
        tokio::select! {
            biased;
            () = socket.notify.notified() => {}
            ready = socket.stream.ready(interest.unwrap_or(Interest::READABLE)), if interest.is_some() => {
                let found = match ready {
                    Ok(ready) => {
                        let mut found = 0;
                        if ready.is_readable() || ready.is_read_closed() || ready.is_error() {
                            found |= WANT_READ;
                        }
                        if ready.is_writable() || ready.is_write_closed() || ready.is_error() {
                            found |= WANT_WRITE;
                        }
                        found
                    }
                    // The reactor is gone: let the driver find out by reading.
                    Err(_) => WANT_READ | WANT_WRITE,
                } & state;
                if found == 0 {
                    continue;
                }
                // Cleared before reporting: the driver sets them again when it wants more.
                socket.state.fetch_and(!found, Ordering::AcqRel);
                let lost = (found & WANT_READ != 0 && events.send(Event::Readable(peer)).is_err())
                    || (found & WANT_WRITE != 0 && events.send(Event::Writable(peer)).is_err());
                if lost {
                    return;
                }
            }
        }
    }
}

/// Reads and drops what the peer sends until it closes (bounded).
async fn drain(stream: &TcpStream) {
    let mut total = 0;
    while total < MAX_LINGER_BYTES {
        if stream.readable().await.is_err() {
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

/// Shuts down the writing side of a stream the caller only borrows (a duplicate of its
/// descriptor is shut down and closed; the socket itself stays open).
fn shutdown_write(stream: &TcpStream) {
    #[cfg(unix)]
    let owned = {
        use std::os::fd::AsFd;
        stream.as_fd().try_clone_to_owned().map(std::net::TcpStream::from)
    };
    #[cfg(windows)]
    let owned = {
        use std::os::windows::io::AsSocket;
        stream.as_socket().try_clone_to_owned().map(std::net::TcpStream::from)
    };
    #[cfg(any(unix, windows))]
    if let Ok(dup) = owned {
        let _ = dup.shutdown(std::net::Shutdown::Write);
    }
    #[cfg(not(any(unix, windows)))]
    let _ = stream;
}

/// Output buffers larger than this are released once written, so idle sockets hold nothing.
const RETAINED_CAPACITY: usize = 4096;

/// Writes `bytes` after whatever is already waiting; what the socket does not take waits for
/// its watcher's `Writable` notice.
pub(super) fn write_or_queue(
    socket: &Socket,
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
pub(super) fn flush(socket: &Socket, pending: &mut Vec<u8>) -> io::Result<bool> {
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
