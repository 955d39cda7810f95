//! The driver: the only code of a client session that touches sockets and timers, through a
//! [`Runtime`]. It follows the core's drive contract — feed input, then `poll_transmit`, then
//! wait for the socket, the `poll_timeout` deadline or the caller — and leaves every protocol
//! decision to the core.

use std::fmt;
use std::future::{Future, pending};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::TRACING_TARGET;
use futures_lite::future::or;
use msn_http_core::Endpoint;
use msn_http_core::client::{Connection, Session};
use tracing::{Instrument, debug, trace, warn};

use crate::events::{Taken, next_event};
use crate::runtime::Runtime;
use crate::secure::{Link, Route, SetupFailure, TlsClient, set_up};
use crate::shared::Shared;

/// Bytes read from the socket at a time. The buffer is allocated once per session.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// The task that runs one session: spawn it on the runtime it was opened with (the adapters'
/// `open` functions do so, or hand it to the caller to spawn).
///
/// It completes once the session has ended. Dropping it before that — never spawning it, or
/// the runtime shutting down — aborts the session, so no handle waits forever.
#[must_use = "a session makes no progress until its driver is spawned"]
pub struct Driver {
    task: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.task.as_mut().poll(cx)
    }
}

impl Driver {
    /// The driver of `shared` on `runtime`, inside the session's span, starting with the
    /// connection `first` when the caller made one.
    pub(crate) fn new<R: Runtime>(
        runtime: R,
        shared: Arc<Shared>,
        first: Option<(Endpoint, R::Stream)>,
        tls: Option<TlsClient>,
    ) -> Self {
        // Built outside the task, so that dropping a driver that never ran ends the session.
        let end = EndOnDrop(Arc::clone(&shared));
        let span = shared.span.clone();
        let task = async move {
            let _end = end;
            run(runtime, shared, first, tls).await;
        };
        Self { task: Box::pin(task.instrument(span)) }
    }
}

/// The open connection, and where it goes.
struct Conn<S> {
    link: Link<S>,
    route: Route,
    /// Made by `connect` before the first request, and not used yet: as fresh as a new one.
    unused: bool,
}

/// What ended a wait.
enum Wake {
    Read(io::Result<usize>),
    Deadline,
    Caller,
}

/// Why writing a request failed.
enum WriteFailure {
    Io(io::Error),
    Deadline,
}

/// Ends the session if the driver stops for any reason (dropped unspawned, dropped with the
/// runtime, or a panic), so no handle waits forever.
struct EndOnDrop(Arc<Shared>);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        if !state.session.is_closed() {
            state.session.abort();
        }
        state.wake_all();
    }
}

/// The driver's state between steps: the connection, its buffers, and the armed timer.
struct Loop<'r, R: Runtime> {
    rt: &'r R,
    shared: Arc<Shared>,
    conn: Option<Conn<R::Stream>>,
    /// For an `https://` gateway.
    tls: Option<TlsClient>,
    /// Where the request to write goes, and how.
    route: Option<Route>,
    /// The request to write, reused.
    out: Vec<u8>,
    /// What a read fills, reused.
    buf: Vec<u8>,
    /// The armed wake-up timer and its deadline. It is kept while later deadlines come along
    /// (it then fires early, a harmless spurious wake-up) and replaced only when it fired or
    /// an earlier one is needed: in steady round trips no timer is registered per request.
    armed: Option<(Instant, Timer<'r>)>,
}

/// A runtime's sleep, boxed so it can be kept between waits.
type Timer<'r> = Pin<Box<dyn Future<Output = ()> + Send + 'r>>;

/// What the session wants next.
enum Step {
    /// Write the request in `out` (to `route`), over a new connection if `fresh`.
    Write { fresh: bool, deadline: Option<Instant> },
    /// Wait for the socket, the caller, or this instant.
    Wait { until: Option<Instant> },
    /// The session has ended.
    Stop,
}

async fn run<R: Runtime>(
    rt: R,
    shared: Arc<Shared>,
    first: Option<(Endpoint, R::Stream)>,
    tls: Option<TlsClient>,
) {
    let conn = first.map(|(destination, stream)| Conn {
        link: Link::Tcp(stream),
        route: Route::plain(destination),
        unused: true,
    });
    let mut driver = Loop {
        rt: &rt,
        shared,
        conn,
        tls,
        route: None,
        out: Vec::with_capacity(1024),
        buf: vec![0u8; READ_BUFFER_BYTES],
        armed: None,
    };
    debug!(target: TRACING_TARGET, "driver started");
    loop {
        match driver.plan() {
            Step::Write { fresh, deadline } => driver.write(fresh, deadline).await,
            Step::Wait { until } => {
                let wake = driver.wait(until).await;
                driver.woken(wake);
            }
            Step::Stop => break,
        }
    }
    debug!(target: TRACING_TARGET, "driver stopped");
}

impl<'r, R: Runtime> Loop<'r, R> {
    /// Under the lock: the handles' state, then the next request, or where the wait ends.
    fn plan(&mut self) -> Step {
        let mut state = self.shared.lock();
        if state.handles() == 0 && !state.close_requested && !state.session.is_closed() {
            debug!(target: TRACING_TARGET, "every handle dropped; aborting");
            state.session.abort();
        }
        if !state.reader_alive {
            discard_events(&mut state.session);
        }
        if state.end_on_uncertain_delivery && state.session.awaiting_decision().is_some() {
            debug!(target: TRACING_TARGET, "delivery uncertain; ending the stream");
            state.session.abort();
        }
        if state.session.is_closed() {
            state.wake_all();
            return Step::Stop;
        }
        self.out.clear();
        let now = self.rt.now();
        let conn = &self.conn;
        let request = state.session.poll_transmit(now, &mut self.out).map(|t| {
            let route = Route::of(&t);
            // The connection made before the first request is plain TCP to the destination:
            // it is set up for the route (tunnel, TLS) when it is first used.
            let reuse = conn.as_ref().is_some_and(|c| match c.unused {
                true => c.route.destination == route.destination,
                false => t.connection == Connection::Reuse && c.route == route,
            });
            trace!(target: TRACING_TARGET, kind = %t.kind, destination = %t.destination, reuse, bytes = t.len, "request");
            (route, !reuse)
        });
        let deadline = state.session.poll_timeout();
        match request {
            Some((route, fresh)) => {
                self.route = Some(route);
                Step::Write { fresh, deadline }
            }
            // While a response is awaited, wake no later than the soonest poll the session
            // can want after it (see `Session::poll_wait_hint`).
            None => Step::Wait {
                until: match (deadline, state.session.poll_wait_hint()) {
                    (Some(at), Some(hint)) if state.session.in_flight().is_some() => {
                        Some(at.min(now + hint))
                    }
                    _ => deadline,
                },
            },
        }
    }

    /// Writes the request, connecting (and setting the connection up) first when needed;
    /// failures go to the session.
    async fn write(&mut self, fresh: bool, deadline: Option<Instant>) {
        let Some(route) = self.route.take() else {
            return;
        };
        if fresh {
            // A fresh connection: the core asked for one, or there is none to this host.
            self.conn = None;
            let destination = &route.destination;
            match connect(self.rt, destination, deadline).await {
                Ok(stream) => {
                    debug!(target: TRACING_TARGET, %destination, "connected");
                    let plain = Route::plain(destination.clone());
                    self.conn = Some(Conn { link: Link::Tcp(stream), route: plain, unused: true });
                }
                Err(error) => {
                    warn!(target: TRACING_TARGET, %destination, %error, "connect failed");
                    let mut state = self.shared.lock();
                    state.session.handle_connect_failed(self.rt.now(), error.kind());
                    state.wake_all();
                    return;
                }
            }
        }
        if !self.set_up(route, deadline).await {
            return;
        }
        // The caller may have aborted while we connected.
        if self.shared.lock().session.is_closed() {
            return;
        }
        let Some(c) = self.conn.as_mut() else {
            return;
        };
        c.unused = false;
        if let Err(failure) = write_request(self.rt, &mut c.link, &self.out, deadline).await {
            self.conn = None;
            let mut state = self.shared.lock();
            match failure {
                WriteFailure::Io(error) => {
                    debug!(target: TRACING_TARGET, %error, "write failed");
                    state.session.handle_eof(self.rt.now());
                }
                WriteFailure::Deadline => {
                    debug!(target: TRACING_TARGET, "write stalled past the request deadline");
                    state.session.handle_timeout(self.rt.now());
                }
            }
            state.wake_all();
        }
    }

    /// Sets a connection not used yet up for `route` (the tunnel, the TLS handshake); `false`
    /// when that failed (the session is told) or there is no connection.
    async fn set_up(&mut self, route: Route, deadline: Option<Instant>) -> bool {
        let Some(c) = self.conn.take() else {
            return false;
        };
        if !c.unused || !route.needs_setup() {
            self.conn = Some(Conn { route, ..c });
            return true;
        }
        let Link::Tcp(tcp) = c.link else {
            self.conn = Some(c);
            return true;
        };
        match set_up(self.rt, tcp, &route, self.tls.as_ref(), deadline).await {
            Ok(link) => {
                debug!(target: TRACING_TARGET, destination = %route.destination, "connection set up");
                self.conn = Some(Conn { link, route, unused: true });
                true
            }
            Err(failure) => {
                let now = self.rt.now();
                let mut state = self.shared.lock();
                match failure {
                    SetupFailure::Io(error) => {
                        warn!(target: TRACING_TARGET, %error, "connection set-up failed");
                        state.session.handle_connect_failed(now, error.kind());
                    }
                    SetupFailure::Tunnel(error) => {
                        warn!(target: TRACING_TARGET, %error, "tunnel refused");
                        state.session.handle_tunnel_failed(now, error);
                    }
                    SetupFailure::Tls(error) => {
                        warn!(target: TRACING_TARGET, %error, "TLS failed");
                        state.session.handle_tls_failed(now, error);
                    }
                }
                state.wake_all();
                false
            }
        }
    }

    /// Waits for the socket (a response, or the gateway closing an idle connection), the
    /// session's deadline `until`, or the caller — polled in that order.
    async fn wait(&mut self, until: Option<Instant>) -> Wake {
        if let Some(at) = until
            && self.armed.as_ref().is_none_or(|(armed_at, _)| at < *armed_at)
        {
            self.armed = Some((at, Box::pin(self.rt.sleep_until(at))));
        }
        let (conn, buf, armed, rt) = (&mut self.conn, &mut self.buf, &mut self.armed, self.rt);
        let read = async {
            match conn.as_mut() {
                Some(c) => Wake::Read(c.link.read(rt, buf).await),
                None => pending().await,
            }
        };
        let sleep = async {
            match armed.as_mut() {
                Some((_, timer)) if until.is_some() => timer.as_mut().await,
                _ => pending().await,
            }
            Wake::Deadline
        };
        let woken = async {
            self.shared.driver_woken().await;
            Wake::Caller
        };
        or(read, or(sleep, woken)).await
    }

    /// Hands what ended the wait to the session.
    fn woken(&mut self, wake: Wake) {
        let now = self.rt.now();
        let mut state = self.shared.lock();
        match wake {
            Wake::Read(Ok(n)) if n > 0 => state.session.handle_input(now, &self.buf[..n]),
            Wake::Read(result) => {
                match result {
                    Ok(_) => debug!(target: TRACING_TARGET, "connection closed by the peer"),
                    Err(error) => debug!(target: TRACING_TARGET, %error, "read failed"),
                }
                self.conn = None;
                state.session.handle_eof(now);
            }
            Wake::Deadline => {
                self.armed = None;
                let was_in_flight = state.session.in_flight().is_some();
                state.session.handle_timeout(now);
                if was_in_flight && state.session.in_flight().is_none() {
                    // A late answer on this connection must not be taken for the next one.
                    debug!(target: TRACING_TARGET, "request timed out");
                    self.conn = None;
                }
            }
            Wake::Caller => return,
        }
        state.wake_all();
    }
}

/// Drops every waiting event (after tracing it): nobody will take them, and undelivered
/// events would otherwise hold the session back.
fn discard_events(session: &mut Session) {
    let mut sink = |_: &[u8]| {};
    while let Some(taken) = next_event(session, &mut sink) {
        if let Taken::Command(cmd) = taken {
            trace!(target: TRACING_TARGET, name = cmd.name(), "command discarded: no receiver");
        }
    }
}

/// Connects to `destination`, giving up at `deadline`.
pub(crate) async fn connect<R: Runtime>(
    rt: &R,
    destination: &Endpoint,
    deadline: Option<Instant>,
) -> io::Result<R::Stream> {
    let connecting = rt.connect(destination.host(), destination.port());
    match deadline {
        Some(at) => or(async { Some(connecting.await) }, async {
            rt.sleep_until(at).await;
            None
        })
        .await
        .unwrap_or_else(|| Err(io::ErrorKind::TimedOut.into())),
        None => connecting.await,
    }
}

/// Writes a whole request (head and body, one buffer: one `write` when the socket has room).
async fn write_request<R: Runtime>(
    rt: &R,
    link: &mut Link<R::Stream>,
    request: &[u8],
    deadline: Option<Instant>,
) -> Result<(), WriteFailure> {
    let writing = link.write_all(rt, request);
    match deadline {
        Some(at) => or(async { Some(writing.await) }, async {
            rt.sleep_until(at).await;
            None
        })
        .await
        .ok_or(WriteFailure::Deadline)?
        .map_err(WriteFailure::Io),
        None => writing.await.map_err(WriteFailure::Io),
    }
}
