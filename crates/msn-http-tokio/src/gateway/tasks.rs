//! The tasks beside the driver: the accept loop, which hands new client connections to the
//! driver, and one connecting task per backend; both stop when the driver says so.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use msn_http_core::Endpoint;
use msn_http_core::gateway::BackendId;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::driver::now;
use super::socket::{Event, Peer, Socket, TaskGuard, Tasks, watch as watch_socket};

/// Pause after a failed `accept` (out of descriptors, say) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What the accept loop and the connecting tasks are told: go on, stop accepting, stop all.
pub(super) const RUNNING: u8 = 0;
pub(super) const DRAINING: u8 = 1;
pub(super) const STOPPED: u8 = 2;

/// Accepts client connections until told to stop; each gets a watcher.
pub(super) async fn accept_loop(
    listener: TcpListener,
    events: mpsc::UnboundedSender<Event>,
    mut control: watch::Receiver<u8>,
    linger: Duration,
    warning_interval: Duration,
    tasks: Arc<Tasks>,
) {
    let _guard = tasks.guard();
    let mut next_id = 0u64;
    let mut warnings = Warnings::new(warning_interval);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = control.wait_for(|state| *state >= DRAINING) => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, addr)) => {
                next_id += 1;
                tracing::trace!(connection = next_id, %addr, "accepted");
                let socket = Socket::new(stream);
                // The notice goes first, so the driver knows the connection before any
                // `Readable` from its watcher.
                if events.send(Event::Accepted(next_id, Arc::clone(&socket))).is_err() {
                    return;
                }
                tokio::spawn(watch_socket(
                    socket,
                    Peer::Client(next_id),
                    events.clone(),
                    linger,
                    tasks.guard(),
                ));
            }
            Err(error) => {
                let _ = events.send(Event::AcceptFailed);
                // Out of descriptors, it fails again at once: say so now and then, not each time.
                if let Some(unsaid) = warnings.due(now()) {
                    tracing::warn!(%error, since_last_warning = unsaid, "accept failed");
                }
                tokio::select! {
                    _ = control.wait_for(|state| *state >= DRAINING) => return,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
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

/// Connects a backend (bounded by the core's connect timeout), reports it, then watches it.
pub(super) async fn connect(
    backend: BackendId,
    endpoint: Endpoint,
    timeout: Duration,
    events: mpsc::UnboundedSender<Event>,
    mut control: watch::Receiver<u8>,
    linger: Duration,
    guard: TaskGuard,
) {
    let attempt =
        tokio::time::timeout(timeout, TcpStream::connect((endpoint.host(), endpoint.port())));
    let result = tokio::select! {
        biased;
        _ = control.wait_for(|state| *state >= STOPPED) => return,
        result = attempt => match result {
            Ok(result) => result,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        },
    };
    let result = result.map(Socket::new);
    let socket = result.as_ref().ok().map(Arc::clone);
    if events.send(Event::Connected(backend, result)).is_err() {
        return;
    }
    if let Some(socket) = socket {
        watch_socket(socket, Peer::Backend(backend), events, linger, guard).await;
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
