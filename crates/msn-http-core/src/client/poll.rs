//! When the next poll is due under each [`PollPolicy`].

use std::time::{Duration, Instant};

use super::PollPolicy;

/// Under [`PollPolicy::LongPoll`], the pause before the next held poll after a response that
/// carried data or answered a send: a command the caller writes in reaction goes out at once
/// instead of waiting behind a held poll.
pub const LONG_POLL_SETTLE: Duration = Duration::from_millis(50);

/// The poll timer of one session.
#[derive(Clone, Debug)]
pub(crate) struct PollSchedule {
    policy: PollPolicy,
    /// The adaptive wait; unused by the other policies.
    interval: Duration,
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
        Self { policy, interval, last_response: None, next_poll: None }
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

    /// A successful response arrived at `now`.
    pub(crate) fn response(&mut self, now: Instant, carried_data: bool, was_poll: bool) {
        self.last_response = Some(now);
        let wait = match self.policy {
            PollPolicy::Official { interval } => interval,
            // After data or a send the caller is likely to answer: let it, rather than hold a
            // poll its command would have to wait behind.
            PollPolicy::LongPoll { .. } if carried_data || !was_poll => LONG_POLL_SETTLE,
            PollPolicy::LongPoll { .. } => Duration::ZERO,
            PollPolicy::Adaptive { min, max } => {
                self.interval = if carried_data || !was_poll {
                    min
                } else {
                    self.interval.saturating_mul(2).clamp(min, max)
                };
                self.interval
            }
        };
        self.next_poll = Some(now + wait);
    }

    /// The caller queued commands: adaptive polling snaps back to its shortest wait.
    pub(crate) fn caller_sent(&mut self) {
        if let PollPolicy::Adaptive { min, .. } = self.policy {
            self.interval = min;
            if let (Some(last), Some(next)) = (self.last_response, self.next_poll) {
                self.next_poll = Some(next.min(last + min));
            }
        }
    }

    /// `Lifespan=` for polls under [`PollPolicy::LongPoll`].
    pub(crate) fn lifespan(&self) -> Option<u32> {
        match self.policy {
            PollPolicy::LongPoll { lifespan_secs } => Some(lifespan_secs),
            _ => None,
        }
    }
}
