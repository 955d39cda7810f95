//! The sessions' slab: each session in a numbered slot whose generation changes when the
//! session ends, so a [`BackendId`] is never reused, and an index by the ID's stable part.

use std::collections::BTreeMap;
use std::fmt;

use super::session::Session;

/// A backend connection (one per session), named by the gateway. Never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendId {
    slot: u32,
    generation: u32,
}

impl BackendId {
    /// A number unique to this backend, for the driver's maps and logs.
    pub fn as_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.slot)
    }
}

impl fmt::Display for BackendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "backend-{}", self.as_u64())
    }
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    session: Option<Session>,
}

/// Every session, by [`BackendId`] and by the stable part of its ID.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_stable: BTreeMap<u64, u32>,
}

impl Sessions {
    /// Sessions open.
    pub(super) fn len(&self) -> usize {
        self.by_stable.len()
    }

    /// Whether a session has this stable part.
    pub(super) fn has_stable(&self, stable: u64) -> bool {
        self.by_stable.contains_key(&stable)
    }

    /// Adds a session (its stable part unused so far) in a free slot.
    pub(super) fn insert(&mut self, session: Session) -> BackendId {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                // `max_sessions` fits in a u32 (checked), and so does every slot index.
                self.slots.push(Slot { generation: 0, session: None });
                (self.slots.len() - 1) as u32
            }
        };
        self.by_stable.insert(session.stable(), slot);
        let entry = &mut self.slots[slot as usize];
        entry.session = Some(session);
        BackendId { slot, generation: entry.generation }
    }

    /// The session an ID names, if it is the latest issued: `stable.suffix`.
    pub(super) fn find(&self, stable: u64, suffix: u32) -> Option<BackendId> {
        let slot = *self.by_stable.get(&stable)?;
        let entry = &self.slots[slot as usize];
        let s = entry.session.as_ref()?;
        (s.suffix() == suffix).then_some(BackendId { slot, generation: entry.generation })
    }

    pub(super) fn get(&self, key: BackendId) -> Option<&Session> {
        let entry = self.slots.get(key.slot as usize)?;
        if entry.generation != key.generation {
            return None;
        }
        entry.session.as_ref()
    }

    pub(super) fn get_mut(&mut self, key: BackendId) -> Option<&mut Session> {
        let entry = self.slots.get_mut(key.slot as usize)?;
        if entry.generation != key.generation {
            return None;
        }
        entry.session.as_mut()
    }

    /// Takes a session out; its slot's next session gets another [`BackendId`].
    pub(super) fn remove(&mut self, key: BackendId) -> Option<Session> {
        let entry = self.slots.get_mut(key.slot as usize)?;
        if entry.generation != key.generation {
            return None;
        }
        let session = entry.session.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(key.slot);
        self.by_stable.remove(&session.stable());
        Some(session)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Session> {
        self.slots.iter().filter_map(|slot| slot.session.as_ref())
    }

    /// The memory of the slab itself (map nodes at 1.5 times their entries), sessions'
    /// buffers excluded.
    pub(super) fn memory_usage(&self) -> usize {
        use std::mem::size_of;
        self.slots.capacity() * size_of::<Slot>()
            + self.free.capacity() * size_of::<u32>()
            + self.by_stable.len() * size_of::<(u64, u32)>() * 3 / 2
    }
}
