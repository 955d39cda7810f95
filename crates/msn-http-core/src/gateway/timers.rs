//! The timer heap: one entry per deadline a session or connection armed, earliest first.
//! Entries are never removed early; stale ones are skipped when they fire.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::drive::ConnectionId;
use super::slab::BackendId;

/// Whose deadline an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKey {
    Session(BackendId),
    Conn(ConnectionId),
}

/// Deadlines, earliest first.
#[derive(Debug, Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerKey)>>,
}

impl Timers {
    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the earliest entry if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerKey)> {
        let &Reverse((at, key)) = self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        Some((at, key))
    }

    /// Adds an entry. Entries of ended sessions and closed connections, and entries superseded
    /// by earlier ones, stay until they fire; when they outnumber the `live` sessions and
    /// connections the heap keeps only the entries `armed` says are current, so its size
    /// follows the number of sessions and connections.
    pub(super) fn push(
        &mut self,
        at: Instant,
        key: TimerKey,
        live: usize,
        armed: impl Fn(Instant, TimerKey) -> bool,
    ) {
        self.heap.push(Reverse((at, key)));
        if self.heap.len() <= 4 * live + 64 {
            return;
        }
        self.heap.retain(|&Reverse((at, key))| armed(at, key));
    }

    /// Heap bytes held.
    pub(super) fn memory_usage(&self) -> usize {
        self.heap.capacity() * std::mem::size_of::<Reverse<(Instant, TimerKey)>>()
    }
}
