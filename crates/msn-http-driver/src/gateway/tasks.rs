//! The tasks beside the driver: the accept loop, which hands new client connections to the
//! driver, and one connecting task per backend; both stop when the driver says so. Also the
//! count of tasks holding sockets, which a shutdown waits for.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use futures_lite::future;
use msn_http_core::Endpoint;
use msn_http_core::gateway::BackendId;

use super::runtime::GatewayRuntime;
use super::socket::{Event, Peer, Socket, Watching, watch as watch_socket};

/// Pause after a failed `accept` (out of descriptors, say) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// One signal the driver gives once: a channel nothing is sent on, closed to signal.
#[derive(Clone, Debug)]
pub(super) struct Signal(Sender<()>, Receiver<()>);

impl Signal {
    pub(super) fn new() -> Self {
        let (sender, receiver) = async_channel::bounded(1);
        Self(sender, receiver)
    }

    pub(super) fn raise(&self) {
        self.0.close();
    }

    /// Completes once the signal is raised.
    pub(super) async fn raised(&self) {
        let _ = self.1.recv().await;
    }
}

/// What the accept loop and the connecting tasks are told: stop accepting (`draining`), stop
/// all (`stopped`, which implies `draining`).
#[derive(Clone, Debug)]
pub(super) struct Control {
    pub(super) draining: Signal,
    pub(super) stopped: Signal,
}

/// Counts the tasks that hold sockets, so a shutdown can wait for the last to close: each
/// holds a sender of a channel nothing is sent on, which closes when the last is dropped.
#[derive(Clone, Debug)]
pub(super) struct Tasks(Sender<()>);

/// Held by a counted task; dropping it ends the count.
#[derive(Debug)]
pub(super) struct TaskGuard {
    _counted: Sender<()>,
}

impl Tasks {
    /// The count, and what completes once no counted task (and no `Tasks`) is left.
    pub(super) fn new() -> (Self, Receiver<()>) {
        let (sender, receiver) = async_channel::bounded(1);
        (Self(sender), receiver)
    }

    pub(super) fn guard(&self) -> TaskGuard {
        TaskGuard { _counted: self.0.clone() }
    }
}

/// Accepts client connections until told to stop; each gets a watcher.
pub(super) async fn accept_loop<R: GatewayRuntime>(
    watching: Watching<R>,
    listener: R::Listener,
    control: Control,
    warning_interval: Duration,
    tasks: Tasks,
) {
    let runtime = &watching.runtime;
    let _guard = tasks.guard();
    let mut next_id = 0u64;
    let mut warnings = Warnings::new(warning_interval);
    loop {
        let accepted = future::or(
            async {
                control.draining.raised().await;
                None
            },
            async { Some(runtime.accept(&listener).await) },
        )
        .await;
        match accepted {
            None => return,
            Some(Ok((stream, addr))) => {
                next_id += 1;
                tracing::trace!(connection = next_id, %addr, "accepted");
                let socket = Socket::new(stream);
                // The notice goes first, so the driver knows the connection before any
                // `Readable` from its watcher.
                let accepted = Event::Accepted(next_id, Arc::clone(&socket));
                if watching.events.try_send(accepted).is_err() {
                    return;
                }
                let peer = Peer::Client(next_id);
                runtime.spawn(watch_socket(watching.clone(), socket, peer, tasks.guard()));
            }
            Some(Err(error)) => {
                let _ = watching.events.try_send(Event::AcceptFailed);
                // Out of descriptors, it fails again at once: say so now and then, not each time.
                if let Some(unsaid) = warnings.due(runtime.now()) {
                    tracing::warn!(%error, since_last_warning = unsaid, "accept failed");
                }
                let backoff = runtime.sleep_until(runtime.now() + ACCEPT_BACKOFF);
                let stop = async {
                    control.draining.raised().await;
                    true
                };
                if future::or(stop, async {
                    backoff.await;
                    false
                })
                .await
                {
                    return;
                }
            }
        }
    }
}

/// At most one warning per interval, counting the failures in between.
#[derive(Debug)]
struct Warnings {
    interval: Duration,
    last: Option<Instant>,
    unsaid: u64,
}

impl Warnings {
    fn new(interval: Duration) -> Self {
        Self { interval, last: None, unsaid: 0 }
    }

    /// A failure at `now`: `Some(failures not warned of since the last warning)` if a
    /// warning is due.
    fn due(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|last| now < last + self.interval) {
            self.unsaid += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unsaid))
    }
}

/// Connects a backend (bounded by the core's connect timeout), reports it, and spawns its
/// watcher.
pub(super) async fn connect<R: GatewayRuntime>(
    watching: Watching<R>,
    backend: BackendId,
    endpoint: Endpoint,
    timeout: Duration,
    control: Control,
    guard: TaskGuard,
) {
    let runtime = &watching.runtime;
    let deadline = runtime.now() + timeout;
    let attempt = future::or(
        async { Some(runtime.connect(endpoint.host(), endpoint.port()).await) },
        async {
            runtime.sleep_until(deadline).await;
            None
        },
    );
    let result = future::or(
        async {
            control.stopped.raised().await;
            None
        },
        async { Some(attempt.await.unwrap_or_else(|| Err(io::ErrorKind::TimedOut.into()))) },
    )
    .await;
    let Some(result) = result else { return };
    let result = result.map(Socket::new);
    let socket = result.as_ref().ok().map(Arc::clone);
    if watching.events.try_send(Event::Connected(backend, result)).is_err() {
        return;
    }
    // On a task of its own: the connecting future is larger than a watcher, and would
    // otherwise be held as long as the backend connection.
    if let Some(socket) = socket {
        let runtime = watching.runtime.clone();
        runtime.spawn(watch_socket(watching, socket, Peer::Backend(backend), guard));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_come_at_most_once_per_interval_with_the_count_in_between() {
        let start = Instant::now();
        let mut warnings = Warnings::new(Duration::from_secs(10));
        let ms = |n: u64| start + Duration::from_millis(n);
        assert_eq!(warnings.due(ms(0)), Some(0));
        let said: Vec<Option<u64>> = (1..=250).map(|i| warnings.due(ms(i * 50))).collect();
        // 250 failures 50 ms apart over 12.5 s: one more warning, at 10 s, telling of 199.
        assert_eq!(said.iter().flatten().collect::<Vec<_>>(), [&199]);
        assert_eq!(said.iter().position(Option::is_some), Some(199));
        assert_eq!(warnings.due(ms(20_000)), Some(50));
    }
}
