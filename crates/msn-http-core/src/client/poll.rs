//! When the next poll is due under each [`PollPolicy`].

use std::time::{Duration, Instant};

use super::PollPolicy;

/// Under [`PollPolicy::LongPoll`], the pause before the next held poll after a response that
/// carried data or answered a send: a command the caller writes in reaction goes out at once
/// instead of waiting behind a held poll.
pub const LONG_POLL_SETTLE: Duration = Duration::from_millis(50);

/// Under [`PollPolicy::LongPoll`], the schedule used while the gateway does not hold polls
/// (it answers an empty poll at once, ignoring `Lifespan=`): the adaptive one.
const UNHELD_SCHEDULE: PollPolicy = PollPolicy::adaptive();

/// The poll timer of one session.
#[derive(Clone, Debug)]
pub(crate) struct PollSchedule {
    policy: PollPolicy,
    /// The adaptive wait (also under a long poll the gateway does not hold); unused otherwise.
    interval: Duration,
    /// Under a long poll: whether the gateway was last seen holding polls.
    held: bool,
    last_response: Option<Instant>,
    next_poll: Option<Instant>,
}

impl PollSchedule {
    pub(crate) fn new(policy: PollPolicy) -> Self {
        let interval = match policy {
            PollPolicy::Adaptive { min, .. } => min,
            PollPolicy::Official { interval } => interval,
            PollPolicy::LongPoll { .. } => Duration::ZERO,
        };
        Self { policy, interval, held: true, last_response: None, next_poll: None }
    }

    /// The policy in use.
    pub(crate) fn policy(&self) -> PollPolicy {
        self.policy
    }

    /// The instant the next poll is due, if one is scheduled.
    pub(crate) fn next_poll(&self) -> Option<Instant> {
        self.next_poll
    }

    /// A request is going out: no poll is due until its response.
    pub(crate) fn request_sent(&mut self) {
        self.next_poll = None;
    }

    /// A successful response arrived at `now` for a request sent at `sent_at`. Returns whether
    /// long polls are now held, when that changed.
    pub(crate) fn response(
        &mut self,
        now: Instant,
        sent_at: Instant,
        carried_data: bool,
        was_poll: bool,
    ) -> Option<bool> {
        self.last_response = Some(now);
        let active = carried_data || !was_poll;
        let mut changed = None;
        if let PollPolicy::LongPoll { lifespan_secs } = self.policy {
            if was_poll && !carried_data {
                // Held for at least half its lifespan: the gateway holds polls. An empty answer
                // sooner means it ignores `Lifespan=`, and polling again at once would spin.
                let held = now.saturating_duration_since(sent_at)
                    >= Duration::from_secs(u64::from(lifespan_secs)) / 2;
                if held != self.held {
                    self.held = held;
                    changed = Some(held);
                    if let PollPolicy::Adaptive { min, .. } = UNHELD_SCHEDULE {
                        self.interval = min;
                    }
                }
            }
        }
        let wait = match self.effective() {
            PollPolicy::Official { interval } => interval,
            // After data or a send the caller is likely to answer: let it, rather than hold a
            // poll its command would have to wait behind.
            PollPolicy::LongPoll { .. } if active => LONG_POLL_SETTLE,
            PollPolicy::LongPoll { .. } => Duration::ZERO,
            PollPolicy::Adaptive { min, max } => {
                self.interval = if active || changed.is_some() {
                    min
                } else {
                    self.interval.saturating_mul(2).clamp(min, max)
                };
                self.interval
            }
        };
        self.next_poll = Some(now + wait);
        changed
    }

    /// The caller queued commands: adaptive polling snaps back to its shortest wait.
    pub(crate) fn caller_sent(&mut self) {
        if let PollPolicy::Adaptive { min, .. } = self.effective() {
            self.interval = min;
            if let (Some(last), Some(next)) = (self.last_response, self.next_poll) {
                self.next_poll = Some(next.min(last + min));
            }
        }
    }

    /// Under a long poll: whether the gateway was last seen holding polls (always true for
    /// the other policies).
    pub(crate) fn holding(&self) -> bool {
        self.held
    }

    /// The schedule in force: the policy, or the adaptive one for a long poll not held.
    fn effective(&self) -> PollPolicy {
        match self.policy {
            PollPolicy::LongPoll { .. } if !self.held => UNHELD_SCHEDULE,
            policy => policy,
        }
    }

    /// The shortest wait before a poll this schedule can set after a response (`None` when it
    /// may poll at once).
    pub(crate) fn shortest_wait(&self) -> Option<Duration> {
        match self.effective() {
            PollPolicy::Official { interval } => Some(interval),
            PollPolicy::Adaptive { min, .. } => Some(min),
            PollPolicy::LongPoll { .. } => None,
        }
        .filter(|wait| !wait.is_zero())
    }

    /// `Lifespan=` for polls under [`PollPolicy::LongPoll`].
    pub(crate) fn lifespan(&self) -> Option<u32> {
        match self.policy {
            PollPolicy::LongPoll { lifespan_secs } => Some(lifespan_secs),
            _ => None,
        }
    }
}
