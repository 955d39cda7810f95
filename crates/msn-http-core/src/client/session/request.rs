//! The session's one request slot: idle, a request in flight, or a failed one due again.

use std::time::Instant;

use crate::client::RequestKind;

/// The request on the wire, and what it carries.
#[derive(Clone, Copy, Debug)]
pub(super) struct InFlight {
    pub(super) kind: RequestKind,
    /// Queued bytes the request carries.
    pub(super) len: usize,
    /// When it went out (long polls learn from it whether the gateway holds them).
    pub(super) sent_at: Instant,
    /// When the session gives up on it.
    pub(super) deadline: Instant,
}

/// The session's one request: none, one in flight, or a failed one to make again.
#[derive(Clone, Copy, Debug)]
pub(super) enum Request {
    Idle,
    InFlight(InFlight),
    /// A request failed and is due again at `at` (a poll, when no command may go).
    Retry {
        at: Instant,
    },
}

impl Request {
    pub(super) fn in_flight(&self) -> Option<&InFlight> {
        match self {
            Self::InFlight(flight) => Some(flight),
            _ => None,
        }
    }

    /// The request in flight, taken out (the slot becomes idle).
    pub(super) fn take_in_flight(&mut self) -> Option<InFlight> {
        match *self {
            Self::InFlight(flight) => {
                *self = Self::Idle;
                Some(flight)
            }
            _ => None,
        }
    }

    pub(super) fn retry_at(&self) -> Option<Instant> {
        match self {
            Self::Retry { at } => Some(*at),
            _ => None,
        }
    }
}
