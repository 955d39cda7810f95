//! A virtual clock for the adapters' tests: time moves only when a test (or its executor)
//! advances it, so timeouts and back-off are exact and instant; nothing sleeps for real. A
//! test runtime's `now` and `sleep_until` read it. Shared by the driver's and the adapters'
//! tests.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::future::{self, poll_once};

/// How many clock steps [`Clock::advance_until`] takes before failing the test.
const MAX_STEPS: usize = 100_000;

/// A clock that stands still until [`advance`](Clock::advance)d, with the sleepers waiting on
/// it.
pub struct Clock {
    start: Instant,
    state: Mutex<ClockState>,
}

struct ClockState {
    now: Instant,
    next_id: u64,
    /// Registered sleepers: id, deadline (always later than `now`), waker.
    sleepers: Vec<(u64, Instant, Waker)>,
    /// Tasks waiting in [`Clock::next_deadline`].
    watchers: Vec<Waker>,
}

impl Clock {
    /// A clock standing at the present instant.
    pub fn new() -> Arc<Self> {
        let start = Instant::now();
        Arc::new(Self {
            start,
            state: Mutex::new(ClockState {
                now: start,
                next_id: 0,
                sleepers: Vec::new(),
                watchers: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ClockState> {
        self.state.lock().unwrap()
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.lock().now
    }

    /// Virtual time since the clock was made.
    pub fn elapsed(&self) -> Duration {
        self.now() - self.start
    }

    /// Moves the clock on by `by`, waking the sleepers due.
    pub fn advance(&self, by: Duration) {
        let to = self.now() + by;
        self.advance_to(to);
    }

    /// Moves the clock to `to` (never back) and wakes the sleepers due by then.
    pub fn advance_to(&self, to: Instant) {
        let mut state = self.lock();
        state.now = state.now.max(to);
        let now = state.now;
        let mut due = Vec::new();
        state.sleepers.retain(|(_, deadline, waker)| {
            let keep = *deadline > now;
            if !keep {
                due.push(waker.clone());
            }
            keep
        });
        drop(state);
        due.into_iter().for_each(Waker::wake);
    }

    /// Completes once the clock has reached `deadline`.
    pub fn sleep_until(self: &Arc<Self>, deadline: Instant) -> Sleep {
        Sleep { clock: Arc::clone(self), deadline, id: None }
    }

    /// The earliest deadline a sleeper waits for, if any.
    pub fn earliest_deadline(&self) -> Option<Instant> {
        self.lock().sleepers.iter().map(|(_, at, _)| *at).min()
    }

    /// The earliest deadline a sleeper waits for, once there is one.
    pub async fn next_deadline(&self) -> Instant {
        poll_fn(|cx| {
            let mut state = self.lock();
            match state.sleepers.iter().map(|(_, at, _)| *at).min() {
                Some(at) => Poll::Ready(at),
                None => {
                    state.watchers.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Runs `fut` to completion, moving the clock to the next sleeper's deadline whenever
    /// `fut` cannot go on — like tokio's paused clock. Only for stretches where nothing
    /// else (no answer on the wire) is under way: a jump does not wait for real I/O.
    ///
    /// Whatever completes `fut` is reported before the driver next sleeps, so the clock
    /// stops at the step that completed it: the time then is exact.
    pub async fn advance_until<T>(&self, fut: impl Future<Output = T>) -> T {
        self.advance_by(fut, || self.next_deadline()).await
    }

    /// [`advance_until`](Self::advance_until), moving the clock to where `next` says, each
    /// time: a deadline it found safe to move to.
    pub async fn advance_by<T, N: Future<Output = Instant>>(
        &self,
        fut: impl Future<Output = T>,
        mut next: impl FnMut() -> N,
    ) -> T {
        let mut fut = pin!(fut);
        for _ in 0..MAX_STEPS {
            let next =
                future::or(async { Err(fut.as_mut().await) }, async { Ok(next().await) }).await;
            match next {
                Err(out) => return out,
                Ok(at) => {
                    // The sleeper may have come after what completes `fut`: look again.
                    if let Some(out) = poll_once(fut.as_mut()).await {
                        return out;
                    }
                    self.advance_to(at);
                }
            }
        }
        panic!("no result after {MAX_STEPS} clock steps");
    }
}

/// A sleep on a [`Clock`].
pub struct Sleep {
    clock: Arc<Clock>,
    deadline: Instant,
    id: Option<u64>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let clock = Arc::clone(&self.clock);
        let mut state = clock.lock();
        if state.now >= self.deadline {
            if let Some(id) = self.id.take() {
                state.sleepers.retain(|(i, _, _)| *i != id);
            }
            return Poll::Ready(());
        }
        let id = match self.id {
            Some(id) => id,
            None => {
                state.next_id += 1;
                self.id = Some(state.next_id);
                state.next_id
            }
        };
        let deadline = self.deadline;
        match state.sleepers.iter_mut().find(|(i, _, _)| *i == id) {
            Some(entry) => entry.2 = cx.waker().clone(),
            None => state.sleepers.push((id, deadline, cx.waker().clone())),
        }
        let watchers = std::mem::take(&mut state.watchers);
        drop(state);
        watchers.into_iter().for_each(Waker::wake);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.clock.lock().sleepers.retain(|(i, _, _)| *i != id);
        }
    }
}
