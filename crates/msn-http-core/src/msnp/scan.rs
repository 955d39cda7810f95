//! The one MSNP scanner: how much of the command at the front of some bytes has arrived, and
//! where its name, line and payload lie. The framer, the client's outgoing queue and the
//! gateway's two streams all frame through it.

use crate::error::FrameError;

use super::command::parse_line;
use super::{FramerLimits, PayloadCommands};

/// How MSNP is framed: which commands carry payloads, and the limits of one command. The
/// client and the gateway each build it from their config's `payload_commands` and
/// `framer_limits`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Framing<'a> {
    pub(crate) rules: &'a PayloadCommands,
    pub(crate) limits: FramerLimits,
}

/// Where a command's parts lie, relative to its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Extent {
    /// The command name (`MSG`) or error code (`911`).
    pub(crate) name: [u8; 3],
    /// The line without its `\n` or `\r\n`.
    pub(crate) line_len: usize,
    /// The whole command: line, line ending and payload.
    len: usize,
    /// Where the payload starts, for a payload command (`MSG 1 N 0` is one, with an empty
    /// payload). The parts are kept as the framer hands them out, so its per-command work
    /// (which the decode benchmarks count) stays a copy.
    payload_start: Option<usize>,
}

impl Extent {
    /// The whole command: line, line ending and payload.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The line with its ending.
    pub(crate) fn head_len(&self) -> usize {
        self.payload_start.unwrap_or(self.len)
    }

    /// Where the payload starts, for a payload command.
    pub(crate) fn payload_start(&self) -> Option<usize> {
        self.payload_start
    }

    /// The announced payload length of a payload command.
    pub(crate) fn payload_len(&self) -> Option<usize> {
        self.payload_start.map(|start| self.len - start)
    }
}

/// How much of the command at the front of some bytes has arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scanned {
    /// Its line has not ended yet (and is still within the line limit).
    NoLineEnd,
    /// Its line has, and part of its payload.
    Partial(Extent),
    /// All of it.
    Whole(Extent),
}

/// Scans the command at the front of `data`. Its line end is searched from `from`: the bytes
/// before hold none, as an earlier scan found, so bytes arriving one at a time are not
/// searched again each time.
#[inline]
pub(crate) fn scan_command(
    data: &[u8],
    from: usize,
    framing: Framing<'_>,
) -> Result<Scanned, FrameError> {
    let max_line = framing.limits.max_line_bytes;
    let from = from.min(data.len());
    let Some(nl) = memchr::memchr(b'\n', &data[from..]).map(|at| from + at) else {
        if data.len() > max_line.saturating_add(1) {
            return Err(FrameError::LineTooLong { limit: max_line });
        }
        return Ok(Scanned::NoLineEnd);
    };
    let line_len = text_len(&data[..=nl]);
    if line_len > max_line {
        return Err(FrameError::LineTooLong { limit: max_line });
    }
    let info = parse_line(&data[..line_len], framing.rules, framing.limits.max_payload_bytes)?;
    let head_len = nl + 1;
    let extent = Extent {
        name: *info.name,
        line_len,
        // The length was checked against `max_payload_bytes`, a `usize`.
        len: head_len.saturating_add(info.payload_len.unwrap_or(0) as usize),
        payload_start: info.payload_len.map(|_| head_len),
    };
    Ok(if data.len() >= extent.len() { Scanned::Whole(extent) } else { Scanned::Partial(extent) })
}

/// The length of a line's text without its `\n` or `\r\n` ending.
fn text_len(line_with_ending: &[u8]) -> usize {
    let without_lf = line_with_ending.len().saturating_sub(1);
    match line_with_ending[..without_lf].last() {
        Some(b'\r') => without_lf - 1,
        _ => without_lf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(data: &[u8], from: usize) -> Result<Scanned, FrameError> {
        let rules = PayloadCommands::default();
        let limits = FramerLimits { max_line_bytes: 16, max_payload_bytes: 8 };
        scan_command(data, from, Framing { rules: &rules, limits })
    }

    fn extent(name: &[u8; 3], line_len: usize, head_len: usize, payload: Option<usize>) -> Extent {
        let len = head_len + payload.unwrap_or(0);
        Extent { name: *name, line_len, len, payload_start: payload.map(|_| head_len) }
    }

    #[test]
    fn extents_name_the_parts() {
        let cases: [(&[u8], Result<Scanned, FrameError>); 11] = [
            (b"VER 1 MSNP8\r\nCVR", Ok(Scanned::Whole(extent(b"VER", 11, 13, None)))),
            (b"CHL 0 1\n", Ok(Scanned::Whole(extent(b"CHL", 7, 8, None)))),
            (b"MSG a b 5\r\nhelloX", Ok(Scanned::Whole(extent(b"MSG", 9, 11, Some(5))))),
            (b"MSG a b 5\r\nhel", Ok(Scanned::Partial(extent(b"MSG", 9, 11, Some(5))))),
            (b"MSG a b 0\r\n", Ok(Scanned::Whole(extent(b"MSG", 9, 11, Some(0))))),
            (b"QRY 12\r\n", Ok(Scanned::Whole(extent(b"QRY", 6, 8, None)))),
            (b"VER 1 MSNP8", Ok(Scanned::NoLineEnd)),
            (b"VER 1 MSNP8 CVR0 x", Err(FrameError::LineTooLong { limit: 16 })),
            (b"VER 1 MSNP8 CVR0 \r\n", Err(FrameError::LineTooLong { limit: 16 })),
            (b"MSG a b 9\r\n", Err(FrameError::PayloadTooLarge { len: 9, limit: 8 })),
            (b"\r\n", Err(FrameError::InvalidCommand)),
        ];
        for (data, want) in cases {
            assert_eq!(scan(data, 0), want, "{}", data.escape_ascii());
        }
        let found = extent(b"MSG", 9, 11, Some(5));
        assert_eq!(
            (found.len(), found.payload_start(), found.payload_len()),
            (16, Some(11), Some(5))
        );
        let out = extent(b"OUT", 3, 5, None);
        assert_eq!((out.len(), out.payload_start(), out.payload_len()), (5, None, None));
    }

    #[test]
    fn the_line_end_is_searched_from_where_the_last_scan_stopped() {
        // A line end before `from` is not looked at again: the caller vouches there is none.
        assert_eq!(scan(b"A\nOUT\r\n", 2), Err(FrameError::InvalidCommand));
        assert_eq!(scan(b"OUT\r\n", 4), Ok(Scanned::Whole(extent(b"OUT", 3, 5, None))));
        assert_eq!(scan(b"OUT", 99), Ok(Scanned::NoLineEnd));
    }

    #[test]
    fn line_endings_are_not_text() {
        assert_eq!(text_len(b"ab\r\n"), 2);
        assert_eq!(text_len(b"ab\n"), 2);
        assert_eq!(text_len(b"\r\n"), 0);
        assert_eq!(text_len(b"\n"), 0);
    }
}
