//! The task that owns the core [`Gateway`]: it takes notices from the watchers, reads and
//! writes every socket itself, feeds the core, and carries out the core's actions.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use futures_core::Stream;
use futures_lite::future;
use msn_http_core::gateway::{Action, BackendId, ConnectFailure, ConnectionId, Gateway, Transmit};
use tracing::Instrument;

use super::conns::{BackendConn, ClientConn};
use super::descriptors::out_of_resources;
use super::runtime::GatewayRuntime;
use super::socket::{Event, Peer, Socket, WANT_READ, Watching, flush, write_or_queue};
use super::tasks::{Control, Signal, Tasks, accept_loop, connect};
use super::{ServerOptions, ServerStats, SharedStats};

/// Notices taken from the channel per wake-up, at most.
const BATCH: usize = 512;
/// Reads from one socket per notice, at most, so that one busy peer cannot starve the rest.
const READS_PER_NOTICE: usize = 4;
/// Room for a `100 Continue` ahead of an answer in a client's write buffer.
const CONTINUE_BYTES: usize = 64;

/// What woke the driver.
enum Wake<S> {
    Shutdown,
    /// The first notice (the rest are taken without waiting); `None` once every sender is gone.
    Notice(Option<Event<S>>),
    Timer,
}

/// Owns the core and every socket's driver-side state.
pub(super) struct Driver<R: GatewayRuntime> {
    runtime: R,
    gw: Gateway,
    options: ServerOptions,
    connect_timeout: Duration,
    clients: HashMap<u64, ClientConn<R::Stream>>,
    backends: HashMap<BackendId, BackendConn<R::Stream>>,
    events: Sender<Event<R::Stream>>,
    receiver: Receiver<Event<R::Stream>>,
    control: Control,
    tasks: Tasks,
    /// Completes once every task holding a socket has ended.
    tasks_idle: Receiver<()>,
    /// The one read buffer.
    buf: Vec<u8>,
    /// The one output buffer, handed to the core.
    out: Vec<u8>,
    resumed: Vec<BackendId>,
    broken: Vec<Peer>,
    /// Set when a graceful shutdown began: its deadline.
    draining: Option<Instant>,
    /// Answer bytes waiting in client connections' buffers, all together.
    client_backlog: usize,
    stats: ServerStats,
    shared: SharedStats,
}

impl<R: GatewayRuntime> Driver<R> {
    pub(super) fn new(
        runtime: R,
        gw: Gateway,
        options: ServerOptions,
        connect_timeout: Duration,
        shared: SharedStats,
    ) -> Self {
        let (events, receiver) = async_channel::unbounded();
        let (tasks, tasks_idle) = Tasks::new();
        let buf = vec![0; options.read_buffer_bytes.max(1)];
        Self {
            runtime,
            gw,
            options,
            connect_timeout,
            clients: HashMap::new(),
            backends: HashMap::new(),
            events,
            receiver,
            control: Control { draining: Signal::new(), stopped: Signal::new() },
            tasks,
            tasks_idle,
            buf,
            out: Vec::with_capacity(16 * 1024),
            resumed: Vec::new(),
            broken: Vec::new(),
            draining: None,
            client_backlog: 0,
            stats: ServerStats::default(),
            shared,
        }
    }

    /// Serves `listener` until `shutdown` completes and the graceful shutdown is over.
    pub(super) async fn run<F: Future<Output = ()>>(
        mut self,
        listener: R::Listener,
        shutdown: F,
    ) -> ServerStats {
        self.runtime.spawn(
            accept_loop(
                self.watching(),
                listener,
                self.control.clone(),
                self.options.accept_warning_interval,
                self.tasks.clone(),
            )
            .in_current_span(),
        );
        let runtime = self.runtime.clone();
        let receiver = self.receiver.clone();
        let mut receiver = pin!(receiver);
        let mut shutdown = pin!(shutdown);
        let mut sleep = pin!(runtime.sleep_until(runtime.now()));
        let mut sleeping_until: Option<Instant> = None;
        loop {
            let wake = self.next_wake();
            if wake != sleeping_until {
                if let Some(at) = wake {
                    sleep.set(runtime.sleep_until(at));
                }
                sleeping_until = wake;
            }
            let draining = self.draining.is_some();
            // First the shutdown, so that a steady stream of notices cannot hold it off.
            let woken = poll_fn(|cx| {
                if !draining && shutdown.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Shutdown);
                }
                if let Poll::Ready(event) = receiver.as_mut().poll_next(cx) {
                    return Poll::Ready(Wake::Notice(event));
                }
                match sleeping_until.is_some() && sleep.as_mut().poll(cx).is_ready() {
                    true => Poll::Ready(Wake::Timer),
                    false => Poll::Pending,
                }
            })
            .await;
            match woken {
                Wake::Shutdown => self.begin_shutdown(runtime.now()),
                Wake::Notice(None) => break,
                Wake::Notice(Some(first)) => {
                    let now = runtime.now();
                    self.handle(now, first);
                    for _ in 1..BATCH {
                        let Ok(event) = receiver.try_recv() else { break };
                        self.handle(now, event);
                    }
                    // Timers are due even when notices never stop coming.
                    if self.gw.poll_timeout().is_some_and(|at| at <= now) {
                        self.gw.handle_timeout(now);
                        self.drain(now);
                    }
                }
                Wake::Timer => {
                    sleeping_until = None;
                    let now = runtime.now();
                    self.gw.handle_timeout(now);
                    self.drain(now);
                }
            }
            if let Some(deadline) = self.draining {
                // The core closes each connection once it has no request in flight.
                if self.clients.is_empty() || runtime.now() >= deadline {
                    break;
                }
            }
            self.publish();
        }
        self.finish().await
    }

    /// What a new watcher needs.
    fn watching(&self) -> Watching<R> {
        let runtime = self.runtime.clone();
        Watching { runtime, events: self.events.clone(), linger: self.options.linger }
    }

    /// The next instant something is due: a core timer, or the end of the shutdown grace.
    fn next_wake(&self) -> Option<Instant> {
        match (self.gw.poll_timeout(), self.draining) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn handle(&mut self, now: Instant, event: Event<R::Stream>) {
        match event {
            Event::Accepted(id, socket) => self.accepted(now, id, socket),
            Event::Connected(backend, result) => self.connected(now, backend, result),
            Event::Readable(Peer::Client(id)) => self.client_readable(now, id),
            Event::Readable(Peer::Backend(backend)) => self.backend_readable(now, backend),
            Event::Writable(peer) => self.writable(now, peer),
            // The core counts a connection it asked to close until its socket is closed.
            Event::Closed(Peer::Client(id)) => self.gw.handle_client_eof(now, ConnectionId(id)),
            Event::Closed(Peer::Backend(_)) => {}
            Event::AcceptFailed => self.stats.accept_failures += 1,
        }
        self.drain(now);
    }

    fn accepted(&mut self, now: Instant, id: u64, socket: Arc<Socket<R::Stream>>) {
        self.stats.connections_accepted += 1;
        match self.gw.handle_accept(now, ConnectionId(id)) {
            Ok(()) => {
                self.clients.insert(
                    id,
                    ClientConn { socket, pending: Vec::new(), armed: true, closing: false },
                );
            }
            Err(error) => {
                self.stats.connections_refused += 1;
                tracing::debug!(connection = id, %error, "connection refused");
                socket.close(false);
            }
        }
    }

    fn connected(
        &mut self,
        now: Instant,
        backend: BackendId,
        result: io::Result<Arc<Socket<R::Stream>>>,
    ) {
        let Some(entry) = self.backends.get_mut(&backend) else {
            // The session ended while connecting.
            if let Ok(socket) = result {
                socket.close(false);
            }
            return;
        };
        match result {
            Ok(socket) => {
                tracing::debug!(%backend, "backend connected");
                self.stats.backend_connects += 1;
                entry.socket = Some(socket);
                entry.armed = true;
                self.gw.handle_backend_connected(now, backend);
            }
            Err(error) => {
                tracing::debug!(%backend, %error, "backend connection failed");
                self.stats.backend_connect_errors += 1;
                self.backends.remove(&backend);
                // Out of descriptors here: the gateway is full (503), the backend is not at
                // fault (502).
                let cause = match out_of_resources(&error) {
                    true => ConnectFailure::OutOfResources,
                    false => ConnectFailure::Unreachable,
                };
                self.gw.handle_backend_connect_failed(now, backend, cause);
            }
        }
    }

    fn client_readable(&mut self, now: Instant, id: u64) {
        let Some(conn) = self.clients.get_mut(&id) else {
            return;
        };
        conn.armed = false;
        if conn.closing {
            return;
        }
        for _ in 0..READS_PER_NOTICE {
            let Some(conn) = self.clients.get_mut(&id) else {
                return;
            };
            if conn.closing {
                return;
            }
            // One request at a time: no more than the core takes now (nothing while an answer
            // is unwritten and the requests after it fill its budget).
            let budget = self.gw.client_read_budget(ConnectionId(id)).min(self.buf.len());
            if budget == 0 {
                return;
            }
            match conn.socket.read(&mut self.buf[..budget]) {
                Ok(0) => return self.client_gone(now, id),
                Ok(n) => {
                    self.stats.client_bytes_in += n as u64;
                    self.gw.handle_client_input(now, ConnectionId(id), &self.buf[..n]);
                    self.drain(now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.client_gone(now, id),
            }
        }
        self.rearm_client(id);
    }

    /// Forgets a client connection on the driver's side.
    fn take_client(&mut self, id: u64) -> Option<ClientConn<R::Stream>> {
        let conn = self.clients.remove(&id)?;
        self.client_backlog -= conn.pending.len();
        Some(conn)
    }

    /// A client closed or broke its connection.
    fn client_gone(&mut self, now: Instant, id: u64) {
        if let Some(conn) = self.take_client(id) {
            conn.socket.close(false);
            if !conn.closing {
                self.gw.handle_client_eof(now, ConnectionId(id));
            }
            tracing::trace!(connection = id, "client connection ended");
        }
    }

    /// Watches the client for input again if the core takes some now.
    fn rearm_client(&mut self, id: u64) {
        let budget = self.gw.client_read_budget(ConnectionId(id));
        if let Some(conn) = self.clients.get_mut(&id) {
            if !conn.armed && !conn.closing && budget > 0 {
                conn.armed = true;
                conn.socket.want(WANT_READ);
            }
        }
    }

    fn backend_readable(&mut self, now: Instant, backend: BackendId) {
        let Some(entry) = self.backends.get_mut(&backend) else {
            return;
        };
        entry.armed = false;
        for _ in 0..READS_PER_NOTICE {
            let Some(entry) = self.backends.get_mut(&backend) else {
                return;
            };
            if entry.paused || entry.eof || entry.closing || !entry.kept.is_empty() {
                return;
            }
            let Some(socket) = entry.socket.as_ref() else {
                return;
            };
            match socket.read(&mut self.buf) {
                Ok(0) => return self.backend_gone(now, backend),
                Ok(n) => {
                    let taken = self.gw.handle_backend_input(now, backend, &self.buf[..n]);
                    if taken < n {
                        // The core paused the backend; these wait for the resume.
                        entry.kept.extend_from_slice(&self.buf[taken..n]);
                    }
                    self.drain(now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.backend_gone(now, backend),
            }
        }
        self.rearm_backend(backend);
    }

    /// A backend closed or broke: the core delivers what it sent, then ends the session.
    fn backend_gone(&mut self, now: Instant, backend: BackendId) {
        if let Some(entry) = self.backends.get_mut(&backend) {
            if entry.eof {
                return;
            }
            entry.eof = true;
            entry.pending = Vec::new();
            self.stats.backend_hangups += 1;
            tracing::trace!(%backend, "backend ended");
            self.gw.handle_backend_eof(now, backend);
        }
    }

    fn rearm_backend(&mut self, backend: BackendId) {
        if let Some(entry) = self.backends.get_mut(&backend) {
            let idle = !entry.paused && entry.kept.is_empty() && !entry.eof && !entry.closing;
            if let (false, true, Some(socket)) = (entry.armed, idle, entry.socket.as_ref()) {
                entry.armed = true;
                socket.want(WANT_READ);
            }
        }
    }

    fn writable(&mut self, now: Instant, peer: Peer) {
        match peer {
            Peer::Client(id) => {
                let Some(conn) = self.clients.get_mut(&id) else {
                    return;
                };
                let before = conn.pending.len();
                let flushed = flush(&conn.socket, &mut conn.pending);
                let unwritten = conn.pending.len();
                self.client_backlog -= before - unwritten;
                match flushed {
                    Ok(false) => self.gw.handle_client_written(now, ConnectionId(id), unwritten),
                    Ok(true) if conn.closing => {
                        if let Some(conn) = self.take_client(id) {
                            conn.socket.close(true);
                        }
                    }
                    Ok(true) => {
                        // The answer is out: the core reads the next request now.
                        self.gw.handle_client_written(now, ConnectionId(id), 0);
                        self.drain(now);
                        self.rearm_client(id);
                    }
                    Err(_) => self.client_gone(now, id),
                }
            }
            Peer::Backend(backend) => {
                let Some(entry) = self.backends.get_mut(&backend) else {
                    return;
                };
                let Some(socket) = entry.socket.as_ref() else {
                    return;
                };
                match flush(socket, &mut entry.pending) {
                    Ok(false) => {}
                    Ok(true) if entry.closing => self.close_backend(backend),
                    Ok(true) => {}
                    Err(_) => self.backend_gone(now, backend),
                }
            }
        }
    }

    /// Writes everything the core has to say and carries out its actions, until it is quiet.
    fn drain(&mut self, now: Instant) {
        loop {
            loop {
                self.out.clear();
                match self.gw.poll_transmit(now, &mut self.out) {
                    None => break,
                    Some(Transmit::Client { connection, close, .. }) => {
                        self.send_client(now, connection.0, close)
                    }
                    Some(Transmit::Backend { backend, .. }) => self.send_backend(backend),
                }
            }
            while let Some(action) = self.gw.poll_action() {
                self.act(action);
            }
            if let Some(peer) = self.broken.pop() {
                match peer {
                    Peer::Client(id) => self.client_gone(now, id),
                    Peer::Backend(backend) => self.backend_gone(now, backend),
                }
            } else if let Some(backend) = self.resumed.pop() {
                self.resume(now, backend);
            } else {
                break;
            }
        }
    }

    fn send_client(&mut self, now: Instant, id: u64, close: bool) {
        let Some(conn) = self.clients.get_mut(&id) else {
            return;
        };
        self.stats.client_bytes_out += self.out.len() as u64;
        let before = conn.pending.len();
        let written = write_or_queue(&conn.socket, &mut conn.pending, &self.out);
        self.client_backlog += conn.pending.len() - before;
        // The core serves one request at a time, so this holds one answer at most.
        let over = conn.pending.len() > self.gw.max_answer_bytes() + CONTINUE_BYTES;
        if written.is_err() || over {
            if close {
                if let Some(conn) = self.take_client(id) {
                    conn.socket.close(false);
                }
            } else {
                self.broken.push(Peer::Client(id));
            }
            return;
        }
        let unwritten = conn.pending.len();
        if close {
            conn.closing = true;
            if unwritten == 0 {
                if let Some(conn) = self.take_client(id) {
                    conn.socket.close(true);
                }
            }
        }
        self.gw.handle_client_written(now, ConnectionId(id), unwritten);
        // Written whole: the core may take the next request now.
        self.rearm_client(id);
    }

    fn send_backend(&mut self, backend: BackendId) {
        let cap = self.options.max_pending_write_bytes;
        let Some(entry) = self.backends.get_mut(&backend) else {
            return;
        };
        let Some(socket) = entry.socket.as_ref() else {
            return;
        };
        if entry.eof {
            return;
        }
        let written = write_or_queue(socket, &mut entry.pending, &self.out);
        if written.is_err() || entry.pending.len() > cap {
            if written.is_ok() {
                tracing::warn!(%backend, "backend does not read: ending its session");
            }
            self.broken.push(Peer::Backend(backend));
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Connect { backend, endpoint, .. } => {
                tracing::debug!(%backend, %endpoint, "connecting backend");
                self.backends.insert(backend, BackendConn::default());
                self.runtime.spawn(
                    connect(
                        self.watching(),
                        backend,
                        endpoint,
                        self.connect_timeout,
                        self.control.clone(),
                        self.tasks.guard(),
                    )
                    .in_current_span(),
                );
            }
            Action::PauseBackend(backend) => {
                if let Some(entry) = self.backends.get_mut(&backend) {
                    entry.paused = true;
                }
            }
            Action::ResumeBackend(backend) => self.resumed.push(backend),
            Action::CloseBackend(backend) => {
                if let Some(entry) = self.backends.get_mut(&backend) {
                    entry.closing = true;
                    if entry.pending.is_empty() || entry.eof {
                        self.close_backend(backend);
                    }
                }
            }
            Action::CloseClient(id) => {
                // Idle past its keep-alive (nothing unwritten: a graceful close), or stuck
                // (what it did not take is dropped, with the kernel's copy).
                if let Some(conn) = self.take_client(id.0) {
                    match conn.pending.is_empty() {
                        true => conn.socket.close(true),
                        false => conn.socket.abort(),
                    }
                }
            }
            _ => {}
        }
    }

    fn close_backend(&mut self, backend: BackendId) {
        if let Some(entry) = self.backends.remove(&backend) {
            if let Some(socket) = entry.socket {
                tracing::trace!(%backend, "closing backend");
                socket.close(!entry.eof);
            }
        }
    }

    /// The core resumed a backend: offer the kept bytes first, then read it again.
    fn resume(&mut self, now: Instant, backend: BackendId) {
        let Some(entry) = self.backends.get_mut(&backend) else {
            return;
        };
        entry.paused = false;
        if !entry.kept.is_empty() {
            let taken = self.gw.handle_backend_input(now, backend, &entry.kept);
            entry.kept.drain(..taken);
            if entry.kept.is_empty() {
                entry.kept = Vec::new();
            }
        }
        // A pause this input caused is carried out by the caller's next round, before any
        // read: `backend_readable` checks `paused` and `kept` first.
        self.rearm_backend(backend);
    }

    fn begin_shutdown(&mut self, now: Instant) {
        tracing::info!(
            sessions = self.gw.session_count(),
            connections = self.clients.len(),
            "graceful shutdown started"
        );
        self.draining = Some(now + self.options.shutdown_grace);
        self.stats.shutting_down = true;
        self.control.draining.raise();
        self.gw.begin_shutdown(now);
        self.drain(now);
    }

    /// Closes everything, and waits (bounded) for the watchers to let go of their sockets.
    async fn finish(mut self) -> ServerStats {
        self.control.stopped.raise();
        self.control.draining.raise();
        for (_, conn) in self.clients.drain() {
            conn.socket.close(conn.pending.is_empty());
        }
        for (_, entry) in self.backends.drain() {
            if let Some(socket) = entry.socket {
                socket.close(!entry.eof);
            }
        }
        // Sockets still travelling in notices were never served: close them too.
        self.receiver.close();
        while let Ok(event) = self.receiver.try_recv() {
            if let Event::Accepted(_, socket) | Event::Connected(_, Ok(socket)) = event {
                socket.close(false);
            }
        }
        self.publish();
        let stats = self.stats;
        let runtime = self.runtime.clone();
        let idle = self.tasks_idle.clone();
        // Lingering sockets close within `linger`; a little more for the rest to notice.
        let bound = runtime.now() + self.options.linger + Duration::from_secs(1);
        drop(self);
        let waited = future::or(
            async {
                // Nothing is ever sent: this ends once the last task let go of its sender.
                let _ = idle.recv().await;
                true
            },
            async {
                runtime.sleep_until(bound).await;
                false
            },
        );
        if !waited.await {
            tracing::debug!("some sockets were still closing when the shutdown ended");
        }
        tracing::info!(
            sessions_opened = stats.core.sessions_opened,
            requests = stats.core.requests,
            "gateway stopped"
        );
        stats
    }

    /// Refreshes the counters callers read.
    fn publish(&mut self) {
        self.stats.core = self.gw.stats();
        self.stats.sessions = self.gw.session_count();
        self.stats.client_connections = self.clients.len();
        self.stats.backend_connections = self.backends.len();
        self.stats.client_write_backlog = self.client_backlog;
        self.shared.set(self.stats);
    }
}

impl<R: GatewayRuntime> Drop for Driver<R> {
    fn drop(&mut self) {
        // Connecting tasks and the accept loop stop with the driver, however it ends.
        self.control.stopped.raise();
        self.control.draining.raise();
    }
}
