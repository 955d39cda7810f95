//! Switchboard tickets (the cookies of `XFR SB` and `RNG`): who may open or join a board, for
//! how long, and how many one user may hold, so a client repeating `XFR SB` cannot make the
//! server remember without bound. The time is an argument, never read here.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long a ticket lasts by default: clients connect to the switchboard at once.
pub const DEFAULT_TICKET_LIFETIME: Duration = Duration::from_secs(120);
/// How many tickets one user holds at most by default.
pub const DEFAULT_TICKETS_PER_USER: usize = 16;

/// The bounds of the ticket store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TicketLimits {
    /// A ticket not used within this long is gone. Default [`DEFAULT_TICKET_LIFETIME`].
    pub(crate) lifetime: Duration,
    /// Tickets one user holds at most (referrals and invitations together); a new one beyond
    /// this replaces the user's oldest. Default [`DEFAULT_TICKETS_PER_USER`].
    pub(crate) max_per_user: usize,
}

impl Default for TicketLimits {
    fn default() -> Self {
        Self { lifetime: DEFAULT_TICKET_LIFETIME, max_per_user: DEFAULT_TICKETS_PER_USER }
    }
}

/// What a ticket lets its user do on the switchboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admits {
    /// Open a new board (`USR`, after `XFR SB`).
    NewBoard,
    /// Join this board (`ANS`, after `RNG`).
    Board(u64),
}

#[derive(Debug)]
struct Ticket {
    cookie: String,
    admits: Admits,
    expires: Instant,
}

/// The tickets issued and not yet used, per user, oldest first.
#[derive(Debug)]
pub(crate) struct TicketStore {
    limits: TicketLimits,
    /// One lifetime for all, so issue order is expiry order.
    by_user: HashMap<&'static str, VecDeque<Ticket>>,
}

impl TicketStore {
    pub(crate) fn new(limits: TicketLimits) -> Self {
        Self { limits, by_user: HashMap::new() }
    }

    /// Records `cookie` for `email` at `now`, dropping expired tickets and, past the cap,
    /// the user's oldest.
    pub(crate) fn issue(
        &mut self,
        now: Instant,
        email: &'static str,
        admits: Admits,
        cookie: String,
    ) {
        self.expire(now);
        let tickets = self.by_user.entry(email).or_default();
        while tickets.len() >= self.limits.max_per_user.max(1) {
            tickets.pop_front();
        }
        tickets.push_back(Ticket { cookie, admits, expires: now + self.limits.lifetime });
    }

    /// Uses up `email`'s ticket `cookie`: what it admits to, if it was issued and has not
    /// expired by `now`.
    pub(crate) fn take(&mut self, now: Instant, email: &str, cookie: &str) -> Option<Admits> {
        self.expire(now);
        let tickets = self.by_user.get_mut(email)?;
        let at = tickets.iter().position(|t| t.cookie == cookie)?;
        tickets.remove(at).map(|t| t.admits)
    }

    /// Forgets the invitations to a board that has ended.
    pub(crate) fn forget_board(&mut self, board: u64) {
        for tickets in self.by_user.values_mut() {
            tickets.retain(|t| t.admits != Admits::Board(board));
        }
        self.by_user.retain(|_, tickets| !tickets.is_empty());
    }

    /// How many tickets are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_user.values().map(VecDeque::len).sum()
    }

    fn expire(&mut self, now: Instant) {
        for tickets in self.by_user.values_mut() {
            while tickets.front().is_some_and(|t| t.expires <= now) {
                tickets.pop_front();
            }
        }
        self.by_user.retain(|_, tickets| !tickets.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "alice@example.com";
    const BOB: &str = "bob@example.com";

    fn store() -> TicketStore {
        TicketStore::new(TicketLimits { lifetime: Duration::from_secs(60), max_per_user: 4 })
    }

    #[test]
    fn a_ticket_admits_its_user_once() {
        let (mut store, now) = (store(), Instant::now());
        store.issue(now, ALICE, Admits::NewBoard, "1.1".into());
        store.issue(now, BOB, Admits::Board(7), "2.2".into());
        assert_eq!(store.take(now, BOB, "1.1"), None, "alice's cookie is not bob's");
        assert_eq!(store.take(now, ALICE, "1.1"), Some(Admits::NewBoard));
        assert_eq!(store.take(now, ALICE, "1.1"), None, "used up");
        assert_eq!(store.take(now, BOB, "2.2"), Some(Admits::Board(7)));
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn tickets_expire_after_their_lifetime() {
        let (mut store, start) = (store(), Instant::now());
        store.issue(start, ALICE, Admits::NewBoard, "old".into());
        store.issue(start + Duration::from_secs(30), ALICE, Admits::NewBoard, "new".into());
        let later = start + Duration::from_secs(60);
        assert_eq!(store.take(later, ALICE, "old"), None, "expired at 60 s");
        assert_eq!(store.len(), 1, "the expired ticket is no longer held");
        assert_eq!(store.take(later, ALICE, "new"), Some(Admits::NewBoard), "30 s old");
        // Expired tickets of other users go when anyone is issued one.
        store.issue(start, BOB, Admits::Board(1), "bob".into());
        store.issue(start + Duration::from_secs(61), ALICE, Admits::NewBoard, "x".into());
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn a_user_past_the_cap_loses_the_oldest_ticket() {
        let (mut store, now) = (store(), Instant::now());
        for i in 0..10 {
            store.issue(now, ALICE, Admits::NewBoard, format!("a{i}"));
        }
        store.issue(now, BOB, Admits::NewBoard, "b".into());
        assert_eq!(store.len(), 4 + 1);
        assert_eq!(store.take(now, ALICE, "a5"), None, "replaced by newer ones");
        assert_eq!(store.take(now, ALICE, "a6"), Some(Admits::NewBoard));
        assert_eq!(store.take(now, ALICE, "a9"), Some(Admits::NewBoard));
        assert_eq!(store.take(now, BOB, "b"), Some(Admits::NewBoard), "other users keep theirs");
    }

    #[test]
    fn an_ended_board_takes_its_invitations_along() {
        let (mut store, now) = (store(), Instant::now());
        store.issue(now, BOB, Admits::Board(1), "to-1".into());
        store.issue(now, BOB, Admits::Board(2), "to-2".into());
        store.issue(now, BOB, Admits::NewBoard, "new".into());
        store.forget_board(1);
        assert_eq!(store.take(now, BOB, "to-1"), None);
        assert_eq!(store.len(), 2);
    }
}
