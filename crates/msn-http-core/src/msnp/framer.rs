//! Reassembles whole MSNP commands from a byte stream pushed in pieces of any size.

use crate::error::FrameError;

use super::PayloadCommands;
use super::command::Command;
use super::scan::{Extent, Framing, Scanned, scan_command};

/// Limits on what one command may hold. Exceeding one is a [`FrameError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FramerLimits {
    /// The longest command line, line ending excluded. Default 16 KiB.
    pub max_line_bytes: usize,
    /// The largest payload a payload command may announce. Default 1 MiB.
    pub max_payload_bytes: usize,
}

impl FramerLimits {
    /// The most bytes one command may take: its line, the line ending and its payload.
    pub const fn max_command_bytes(&self) -> usize {
        self.max_line_bytes + 2 + self.max_payload_bytes
    }
}

impl Default for FramerLimits {
    fn default() -> Self {
        Self { max_line_bytes: 16 * 1024, max_payload_bytes: 1024 * 1024 }
    }
}

/// Frames MSNP commands out of a byte stream.
///
/// Push bytes as they arrive with [`push`](Self::push); take whole commands with
/// [`next_command`](Self::next_command). A command is handed out only when all of it (line and
/// payload) has arrived, and is consumed when the next one is asked for, so the borrow needs no
/// copy. The buffer holds at most the bytes not yet taken.
#[derive(Clone, Debug)]
pub struct CommandFramer {
    buf: Vec<u8>,
    start: usize,
    pending: usize,
    consumed: u64,
    rules: PayloadCommands,
    limits: FramerLimits,
    /// What is known of the next command from earlier looks, so bytes arriving one at a time
    /// are not scanned again each time (which would be quadratic in the line length).
    scan: Scan,
}

/// The progress of looking at the next command, relative to its first byte.
#[derive(Clone, Copy, Debug, Default)]
enum Scan {
    #[default]
    Fresh,
    /// The first `n` bytes hold no line ending.
    NoLineEnd(usize),
    /// The line is parsed (all of the command may be here, or the payload may still be
    /// arriving).
    Parsed(Extent),
}

impl CommandFramer {
    /// A framer for the given payload commands and limits.
    pub fn new(rules: PayloadCommands, limits: FramerLimits) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            pending: 0,
            consumed: 0,
            rules,
            limits,
            scan: Scan::Fresh,
        }
    }

    /// Appends stream bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.release();
        let reclaim =
            self.start == self.buf.len() || self.buf.len() + bytes.len() > self.buf.capacity();
        if self.start > 0 && reclaim {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole command, if one has arrived.
    pub fn next_command(&mut self) -> Result<Option<Command<'_>>, FrameError> {
        self.next_command_within(u64::MAX)
    }

    /// The next whole command if it ends at or before stream offset `end`.
    pub(crate) fn next_command_within(
        &mut self,
        end: u64,
    ) -> Result<Option<Command<'_>>, FrameError> {
        self.release();
        let Some(found) = self.peek_and_remember()? else {
            return Ok(None);
        };
        let len = found.len();
        if self.consumed + len as u64 > end {
            return Ok(None);
        }
        self.pending = len;
        self.scan = Scan::Fresh;
        let bytes = &self.buf[self.start..self.start + len];
        Ok(Some(Command::new(bytes, found.line_len, found.payload_start())))
    }

    /// The stream offset where the next whole command ends, if one is waiting.
    pub(crate) fn next_command_end(&mut self) -> Result<Option<u64>, FrameError> {
        let found = self.peek_and_remember()?;
        Ok(found.map(|found| self.position() + found.len() as u64))
    }

    /// Looks over the whole commands waiting from stream offset `from` (a command boundary at
    /// or after [`position`](Self::position); earlier offsets mean the position), without
    /// taking them: `visit` gets each one with the stream offset where it ends and says whether
    /// to go on. Returns the offset where the look stopped: the end of the last command
    /// visited and kept. A stream that cannot be framed at `from` is an error; one that breaks
    /// further on stops the look there (the error comes when that command is next).
    pub(crate) fn scan_whole(
        &mut self,
        from: u64,
        mut visit: impl FnMut(u64, Command<'_>) -> Visit,
    ) -> Result<u64, FrameError> {
        self.release();
        let mut end = from.max(self.position()).min(self.end());
        let mut at = self.start + (end - self.consumed) as usize;
        let mut found = match end == self.position() {
            true => self.peek_and_remember()?,
            false => self.command_len(&self.buf[at..])?,
        };
        while let Some(extent) = found {
            let len = extent.len();
            let bytes = &self.buf[at..at + len];
            let command_end = end + len as u64;
            match visit(command_end, Command::new(bytes, extent.line_len, extent.payload_start())) {
                Visit::StopBefore => break,
                Visit::StopAfter => return Ok(command_end),
                Visit::Continue => {}
            }
            (end, at) = (command_end, at + len);
            found = self.command_len(&self.buf[at..]).ok().flatten();
        }
        Ok(end)
    }

    /// Whether the bytes buffered from stream offset `from` (or from the first not taken)
    /// contain `needle`. For the short needles it is used with, a scan for the first byte
    /// beats building a substring searcher on every call.
    pub(crate) fn contains_from(&self, from: u64, needle: &[u8]) -> bool {
        let skip = from.saturating_sub(self.position()).min(self.buffered() as u64) as usize;
        let data = &self.buf[self.start + self.pending + skip..];
        let Some((&first, _)) = needle.split_first() else { return true };
        memchr::memchr_iter(first, data).any(|at| data[at..].starts_with(needle))
    }

    /// Whether a whole command is waiting (or the stream cannot be framed, which the next
    /// look reports).
    pub(crate) fn has_whole_command(&self) -> bool {
        !matches!(self.peek(), Ok(None))
    }

    /// Takes raw stream bytes up to stream offset `end`, for callers that frame MSNP themselves.
    pub(crate) fn take_bytes_within(&mut self, end: u64) -> &[u8] {
        self.release();
        let available = self.buf.len() - self.start;
        let allowed = end.saturating_sub(self.consumed);
        let n = usize::try_from(allowed).map_or(available, |allowed| allowed.min(available));
        self.pending = n;
        self.scan = Scan::Fresh;
        &self.buf[self.start..self.start + n]
    }

    /// Whether everything pushed and not yet taken is whole commands: a place where other
    /// commands may be inserted without cutting one. (Unframable bytes count as no boundary.)
    pub(crate) fn ends_on_boundary(&self) -> bool {
        let mut at = self.start + self.pending;
        while at < self.buf.len() {
            match self.command_len(&self.buf[at..]) {
                Ok(Some(extent)) => at += extent.len(),
                _ => return false,
            }
        }
        true
    }

    /// Bytes pushed and not yet taken.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start - self.pending
    }

    /// Stream offset of the first byte not yet taken.
    pub fn position(&self) -> u64 {
        self.consumed + self.pending as u64
    }

    /// Stream offset just past the last byte pushed.
    pub fn end(&self) -> u64 {
        self.consumed + (self.buf.len() - self.start) as u64
    }

    /// Drops everything buffered (the stream is over).
    pub fn clear(&mut self) {
        self.release();
        self.consumed += (self.buf.len() - self.start) as u64;
        self.buf.clear();
        self.start = 0;
        self.scan = Scan::Fresh;
    }

    /// Consumes what the last call handed out.
    fn release(&mut self) {
        if self.pending > 0 {
            self.scan = Scan::Fresh;
        }
        self.start += self.pending;
        self.consumed += self.pending as u64;
        self.pending = 0;
    }

    /// Where the parts of the next command not yet handed out lie, if all of it is here.
    fn peek(&self) -> Result<Option<Extent>, FrameError> {
        self.look().map(|(found, _)| found)
    }

    /// [`peek`](Self::peek), remembering what it learnt for the next look.
    #[inline]
    fn peek_and_remember(&mut self) -> Result<Option<Extent>, FrameError> {
        let (found, scan) = self.look()?;
        self.scan = scan;
        Ok(found)
    }

    /// The next command if it is whole, and what is known of it for the next look.
    ///
    /// Always inlined: as a call, with the scanner inside it, decoding 4 KiB of commands costs
    /// 11% more instructions.
    #[inline(always)]
    fn look(&self) -> Result<(Option<Extent>, Scan), FrameError> {
        let data = &self.buf[self.start + self.pending..];
        let from = match self.scan {
            Scan::Parsed(found) => {
                return Ok(((data.len() >= found.len()).then_some(found), self.scan));
            }
            Scan::NoLineEnd(n) => n,
            Scan::Fresh => 0,
        };
        Ok(match scan_command(data, from, self.framing())? {
            // Remembered too: the session asks where a command ends, then takes it.
            Scanned::Whole(found) => (Some(found), Scan::Parsed(found)),
            Scanned::NoLineEnd => (None, Scan::NoLineEnd(data.len())),
            Scanned::Partial(found) => (None, Scan::Parsed(found)),
        })
    }

    /// Where the parts of the command at the start of `data` lie, if all of it is there.
    fn command_len(&self, data: &[u8]) -> Result<Option<Extent>, FrameError> {
        Ok(match scan_command(data, 0, self.framing())? {
            Scanned::Whole(found) => Some(found),
            Scanned::NoLineEnd | Scanned::Partial(_) => None,
        })
    }

    /// How this framer frames: its payload commands and limits.
    fn framing(&self) -> Framing<'_> {
        Framing { rules: &self.rules, limits: self.limits }
    }
}

/// What [`CommandFramer::scan_whole`] does after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Visit {
    /// Keep it, and look at the next.
    Continue,
    /// Keep it, and stop.
    StopAfter,
    /// Stop before it.
    StopBefore,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_all(stream: &[u8], step: usize) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut framer = CommandFramer::new(PayloadCommands::default(), FramerLimits::default());
        let mut out = Vec::new();
        for piece in stream.chunks(step.max(1)) {
            framer.push(piece);
            while let Some(cmd) = framer.next_command()? {
                out.push(cmd.as_bytes().to_vec());
            }
        }
        assert_eq!(framer.buffered(), 0, "leftover bytes");
        Ok(out)
    }

    #[test]
    fn commands_come_out_whole_at_every_split() {
        let stream =
            b"VER 1 MSNP8\r\nMSG a@b.c A 12\r\nMSG x\r\nPNG\r\nNOT 3\r\nabcCHL 0 1\n911 4\r\n";
        let want: Vec<&[u8]> = vec![
            b"VER 1 MSNP8\r\n",
            b"MSG a@b.c A 12\r\nMSG x\r\nPNG\r\n",
            b"NOT 3\r\nabc",
            b"CHL 0 1\n",
            b"911 4\r\n",
        ];
        for step in 1..=stream.len() {
            assert_eq!(frame_all(stream, step).unwrap(), want, "step {step}");
        }
    }

    #[test]
    fn limits_hold_without_a_line_ending() {
        let mut framer = CommandFramer::new(
            PayloadCommands::default(),
            FramerLimits { max_line_bytes: 8, max_payload_bytes: 4 },
        );
        framer.push(b"VER 1 MS");
        assert_eq!(framer.next_command(), Ok(None));
        framer.push(b"NP");
        assert_eq!(framer.next_command(), Err(FrameError::LineTooLong { limit: 8 }));

        let mut framer = CommandFramer::new(
            PayloadCommands::default(),
            FramerLimits { max_line_bytes: 64, max_payload_bytes: 4 },
        );
        framer.push(b"MSG 1 N 5\r\n");
        assert_eq!(framer.next_command(), Err(FrameError::PayloadTooLarge { len: 5, limit: 4 }));
    }

    #[test]
    fn a_line_trickling_in_is_scanned_once() {
        let mut framer = CommandFramer::new(PayloadCommands::default(), FramerLimits::default());
        let line = format!("ILN 1 NLN {} x\r\n", "a".repeat(8000));
        for byte in line.as_bytes() {
            framer.push(std::slice::from_ref(byte));
            if *byte != b'\n' {
                assert_eq!(framer.next_command(), Ok(None));
                // What was looked at is remembered: the next look starts at the new byte.
                assert!(matches!(framer.scan, Scan::NoLineEnd(n) if n == framer.buffered()));
            }
        }
        assert_eq!(framer.next_command().unwrap().map(|c| c.as_bytes().len()), Some(line.len()));
        framer.push(b"MSG a b 10\r\nhello");
        assert_eq!(framer.next_command(), Ok(None));
        let Scan::Parsed(found) = framer.scan else { panic!("not parsed: {:?}", framer.scan) };
        let parts = (found.name, found.line_len, found.payload_start(), found.len());
        assert_eq!(parts, (*b"MSG", 10, Some(12), 22));
        framer.push(b"world");
        assert_eq!(
            framer.next_command().unwrap().and_then(|c| c.payload()),
            Some(&b"helloworld"[..])
        );
    }

    #[test]
    fn offsets_track_the_stream() {
        let mut framer = CommandFramer::new(PayloadCommands::default(), FramerLimits::default());
        framer.push(b"OUT\r\nVER 1");
        assert_eq!(framer.next_command_within(4), Ok(None));
        assert_eq!(framer.next_command_within(5).unwrap().map(|c| c.name()), Some("OUT"));
        assert_eq!(framer.next_command(), Ok(None));
        assert_eq!((framer.position(), framer.end(), framer.buffered()), (5, 10, 5));
        assert_eq!(framer.take_bytes_within(7), b"VE");
        assert_eq!(framer.take_bytes_within(u64::MAX), b"R 1");
        assert_eq!(framer.position(), 10);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 128,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x6672_616d),
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Raw-byte delivery with command-bounded windows, as the session's byte mode uses it,
        /// over any stream cut anywhere: every byte comes out once, in order, never past its
        /// window. (The fuzz harnesses reach the framer only through its public API.)
        #[test]
        fn windowed_takes_hand_out_every_byte_once(
            stream in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(b'\n'),
                    proptest::strategy::Just(b' '),
                    proptest::strategy::Just(b'M'),
                    proptest::strategy::Just(b'1'),
                    proptest::prelude::any::<u8>(),
                ],
                0..400,
            ),
            cuts in proptest::collection::vec(1usize..40, 1..40),
            max_line_bytes in 1usize..64,
            max_payload_bytes in 0usize..64,
        ) {
            let limits = FramerLimits { max_line_bytes, max_payload_bytes };
            let mut framer = CommandFramer::new(PayloadCommands::default(), limits);
            let mut taken = Vec::new();
            let mut rest = &stream[..];
            for &cut in cuts.iter().cycle().take(stream.len()) {
                let (piece, tail) = rest.split_at(cut.min(rest.len()));
                rest = tail;
                framer.push(piece);
                let end = framer.position() + (piece.len() as u64).div_ceil(2);
                if let Ok(Some(cmd)) = framer.next_command_within(end) {
                    taken.extend_from_slice(cmd.as_bytes());
                    proptest::prop_assert!(framer.position() <= end, "a command past the window");
                }
                let before = framer.position();
                taken.extend_from_slice(framer.take_bytes_within(end));
                proptest::prop_assert!(framer.position() <= end.max(before), "bytes past the window");
            }
            taken.extend_from_slice(framer.take_bytes_within(u64::MAX));
            proptest::prop_assert_eq!(taken, stream);
            proptest::prop_assert_eq!(framer.buffered(), 0);
        }
    }
}
