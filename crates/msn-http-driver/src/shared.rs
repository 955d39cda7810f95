//! The state a session's handles share with its driver: the core session behind a mutex
//! (never held across an `.await`), the wakers of parked callers, and the driver's wake-up.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use msn_http_core::client::{OutputMode, Session};
use msn_http_core::error::SendError;
use tracing::Span;

use crate::events::{Taken, next_event};

/// What handles and the driver share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Wakes the driver: bytes were queued, events were taken, a handle went away.
    driver: Signal,
    /// The session's span: the driver runs in it, and handles enter it to report events.
    pub(crate) span: Span,
}

/// The mutable part, behind the mutex.
pub(crate) struct State {
    pub(crate) session: Session,
    /// Tasks waiting for an event (`recv`, `poll_read`, `poll_shutdown`) or for room in the
    /// queue (`send`, `poll_write`). Several, since the halves of a split stream may wait from
    /// different tasks; one entry per task.
    waiters: Vec<Waker>,
    /// Handles alive (senders, receiver, stream).
    handles: usize,
    /// Whether a receiver still takes events; without one the driver discards them.
    pub(crate) reader_alive: bool,
    /// Whether a request whose delivery is uncertain ends the session at once (the byte
    /// stream, which has no one to ask: like a TCP connection reset).
    pub(crate) end_on_uncertain_delivery: bool,
    /// Why the byte stream ended, when it ended it (both halves report it).
    pub(crate) stream_failure: Option<crate::stream::StreamError>,
    /// Whether the caller asked for a clean close: the driver then finishes it even after the
    /// last handle is gone.
    pub(crate) close_requested: bool,
}

/// A one-permit wake-up for the driver task: [`notify`](Self::notify) stores a permit (waking
/// the task if it waits); [`poll_notified`](Self::poll_notified) takes it, or registers the
/// task's waker.
struct Signal(Mutex<SignalSlot>);

struct SignalSlot {
    notified: bool,
    waker: Option<Waker>,
}

impl Signal {
    fn new() -> Self {
        Self(Mutex::new(SignalSlot { notified: false, waker: None }))
    }

    fn lock(&self) -> MutexGuard<'_, SignalSlot> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self) {
        let waker = {
            let mut slot = self.lock();
            slot.notified = true;
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn poll_notified(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut slot = self.lock();
        if std::mem::take(&mut slot.notified) {
            return Poll::Ready(());
        }
        match &mut slot.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Shared {
    /// The shared state of a new `session`, run in `span`, with `handles` handles alive.
    pub(crate) fn new(session: Session, span: Span, handles: usize, output: OutputMode) -> Self {
        Self {
            state: Mutex::new(State {
                session,
                waiters: Vec::new(),
                handles,
                reader_alive: true,
                end_on_uncertain_delivery: output == OutputMode::Bytes,
                stream_failure: None,
                close_requested: false,
            }),
            driver: Signal::new(),
            span,
        }
    }

    /// Locks the state. A panic while it was held cannot leave the session half-updated in a
    /// way that matters more than the panic itself, so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the driver (or lets its next wait return at once).
    pub(crate) fn wake_driver(&self) {
        self.driver.notify();
    }

    /// Waits for [`wake_driver`](Self::wake_driver).
    pub(crate) async fn driver_woken(&self) {
        std::future::poll_fn(|cx| self.driver.poll_notified(cx)).await;
    }

    /// A new handle to the session.
    pub(crate) fn acquire(&self) {
        self.lock().handles += 1;
    }

    /// A handle went away; `reader` when it was the one taking events.
    pub(crate) fn release(&self, reader: bool) {
        let mut state = self.lock();
        state.handles -= 1;
        if reader {
            state.reader_alive = false;
        }
        drop(state);
        self.wake_driver();
    }

    /// Queues `bytes`: all of them, or with `partial` the longest prefix that fits. Waits
    /// (returns `Pending`, waker registered) while the queue is full; fails at once when the
    /// bytes could never fit or the core refuses them.
    pub(crate) fn poll_send(
        &self,
        cx: &mut Context<'_>,
        bytes: &[u8],
        partial: bool,
    ) -> Poll<Result<usize, SendError>> {
        let mut state = self.lock();
        let result = match state.session.send(bytes) {
            Err(SendError::QueueFull { queued, limit }) if partial && queued < limit => {
                let room = limit - queued;
                state.session.send(&bytes[..room]).map(|()| room)
            }
            result => result.map(|()| bytes.len()),
        };
        match result {
            Ok(n) => {
                // With a request in flight the bytes wait for its response anyway, and the
                // driver looks at the queue again after every response.
                if state.session.in_flight().is_none() {
                    self.wake_driver();
                }
                Poll::Ready(Ok(n))
            }
            // Room never comes back while earlier commands wait for the caller's decision.
            Err(SendError::QueueFull { .. }) if state.session.awaiting_decision().is_some() => {
                Poll::Ready(Err(SendError::AwaitingDecision))
            }
            // Room comes back when the gateway confirms queued bytes (unless the bytes are
            // larger than the whole queue: then they never fit).
            Err(SendError::QueueFull { queued, .. })
                if queued > 0 && state.session.fits_when_empty(bytes.len()) =>
            {
                state.park(cx.waker());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Queues `bytes` if there is room now, without waiting.
    pub(crate) fn try_send(&self, bytes: &[u8]) -> Result<(), SendError> {
        let mut state = self.lock();
        state.session.send(bytes)?;
        if state.session.in_flight().is_none() {
            self.wake_driver();
        }
        Ok(())
    }

    /// Takes the next event, or parks the reader until the driver has one. Taking events is
    /// what lets the core make further requests once it held back for undelivered input.
    pub(crate) fn poll_take(
        &self,
        cx: &mut Context<'_>,
        on_data: &mut dyn FnMut(&[u8]),
    ) -> Poll<Taken> {
        let mut state = self.lock();
        let stalled = state.stalled();
        let taken = self.span.in_scope(|| next_event(&mut state.session, on_data));
        match taken {
            Some(taken) => {
                if stalled {
                    self.wake_driver();
                }
                Poll::Ready(taken)
            }
            None => {
                state.park(cx.waker());
                Poll::Pending
            }
        }
    }

    /// Asks for a clean close (`OUT`, then the gateway's answer).
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.close_requested = true;
        state.session.close();
        state.wake_all();
        drop(state);
        self.wake_driver();
    }

    /// Ends the session at once, without telling the gateway.
    pub(crate) fn abort(&self) {
        let mut state = self.lock();
        state.session.abort();
        state.wake_all();
        drop(state);
        self.wake_driver();
    }

    /// After `Recovery::AwaitingDecision`: sends the unconfirmed commands again.
    pub(crate) fn resend_unconfirmed(&self) {
        self.lock().session.resend_unconfirmed();
        self.wake_driver();
    }

    /// After `Recovery::AwaitingDecision`: drops the unconfirmed commands.
    pub(crate) fn discard_unconfirmed(&self) -> usize {
        let mut state = self.lock();
        let dropped = state.session.discard_unconfirmed();
        state.wake_all();
        drop(state);
        self.wake_driver();
        dropped
    }
}

impl State {
    /// Handles alive.
    pub(crate) fn handles(&self) -> usize {
        self.handles
    }

    fn park(&mut self, waker: &Waker) {
        if !self.waiters.iter().any(|w| w.will_wake(waker)) {
            self.waiters.push(waker.clone());
        }
    }

    /// Wakes every parked caller: after input reached the session, events or room may be there.
    pub(crate) fn wake_all(&mut self) {
        for waiter in self.waiters.drain(..) {
            waiter.wake();
        }
    }

    /// Whether the session waits for the caller alone: open, nothing in flight, nothing due
    /// (it holds back for undelivered input, or has nothing to send yet).
    fn stalled(&self) -> bool {
        !self.session.is_closed()
            && self.session.in_flight().is_none()
            && self.session.poll_timeout().is_none()
    }
}
