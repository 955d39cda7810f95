//! Session IDs in the official `number.number` shape: the part before the dot is 64 random bits
//! fixed for the session, the part after the dot is drawn anew for every response. Randomness
//! comes from ChaCha20 seeded by the caller; the core reads no OS randomness.

use std::fmt;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// Draws session ID parts.
pub(crate) struct IdSource {
    rng: ChaCha20Rng,
}

impl fmt::Debug for IdSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The generator state would reveal every future ID.
        f.write_str("IdSource { .. }")
    }
}

impl IdSource {
    pub(crate) fn new(seed: [u8; 32]) -> Self {
        Self { rng: ChaCha20Rng::from_seed(seed) }
    }

    /// A new stable part: 64 random bits, never zero.
    pub(crate) fn stable(&mut self) -> u64 {
        loop {
            let value = self.rng.next_u64();
            if value != 0 {
                return value;
            }
        }
    }

    /// A new suffix, different from `previous` so that every response changes the ID.
    pub(crate) fn suffix(&mut self, previous: u32) -> u32 {
        loop {
            let value = self.rng.next_u32();
            if value != previous {
                return value;
            }
        }
    }
}

/// A session ID rendered on the stack: at most 20 digits, a dot and 10 digits.
pub(crate) struct IdText {
    buf: [u8; 31],
    len: usize,
}

impl IdText {
    pub(crate) fn new(stable: u64, suffix: u32) -> Self {
        let mut buf = [0u8; 31];
        let mut first = itoa::Buffer::new();
        let mut second = itoa::Buffer::new();
        let a = first.format(stable).as_bytes();
        buf[..a.len()].copy_from_slice(a);
        buf[a.len()] = b'.';
        let mut len = a.len() + 1;
        let b = second.format(suffix).as_bytes();
        buf[len..len + b.len()].copy_from_slice(b);
        len += b.len();
        Self { buf, len }
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).expect("IdText holds ASCII digits and a dot")
    }
}

/// Splits `stable.suffix` into its numbers; `None` for anything else, and for the same numbers
/// spelt otherwise (`0012.03`): an ID is the exact string issued.
pub(crate) fn parse_session_id(text: &str) -> Option<(u64, u32)> {
    let (stable, suffix) = text.split_once('.')?;
    let parts = (number(stable)?, number(suffix)?);
    (IdText::new(parts.0, parts.1).as_str() == text).then_some(parts)
}

fn number<T: std::str::FromStr>(digits: &str) -> Option<T> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_render_and_parse_back() {
        for (stable, suffix) in [(1, 0), (u64::MAX, u32::MAX), (954547325, 13160)] {
            let text = IdText::new(stable, suffix);
            assert_eq!(parse_session_id(text.as_str()), Some((stable, suffix)));
        }
        assert_eq!(IdText::new(954547325, 13160).as_str(), "954547325.13160");
        for bad in [
            "",
            "1",
            "1.",
            ".1",
            "1.2.3",
            "+1.2",
            "1.-2",
            "18446744073709551616.1",
            "1.4294967296",
            "ee242912-db5a-4b93-bc49-d615b0fa7965",
            "01.2",
            "1.02",
            "00.0",
        ] {
            assert_eq!(parse_session_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_seed_decides_the_sequence_and_suffixes_always_change() {
        let mut a = IdSource::new([7; 32]);
        let mut b = IdSource::new([7; 32]);
        let mut c = IdSource::new([8; 32]);
        let (x, y, z) = (a.stable(), b.stable(), c.stable());
        assert_eq!(x, y);
        assert_ne!(x, z);
        let mut previous = 0;
        for _ in 0..1000 {
            let next = a.suffix(previous);
            assert_ne!(next, previous);
            previous = next;
        }
        assert_eq!(format!("{a:?}"), "IdSource { .. }");
    }
}
