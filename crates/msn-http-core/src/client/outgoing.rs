//! The outgoing MSNP queue: bounded, checked command by command as bytes arrive (so `PNG` is
//! refused and requests are cut only between commands), and kept until the gateway confirms.

use std::collections::VecDeque;

use crate::error::SendError;
use crate::msnp::{FramerLimits, Framing, Scanned, scan_command};
use crate::ping::{PingPolicy, PingStep};

/// Where the scan of queued bytes stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Scan {
    /// Stream offset scanned up to (a line end is searched from here).
    pos: u64,
    /// Stream offset where the command being scanned starts.
    command_start: u64,
    /// Payload bytes still to come for the command being scanned.
    payload_left: u64,
}

/// Queued bytes, addressed by stream offset. Bytes before `confirmed` are gone; the rest stay
/// until a response confirms them (or the caller gives them up).
#[derive(Debug)]
pub(crate) struct OutgoingQueue {
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Stream offset of the first unconfirmed byte.
    confirmed: u64,
    /// Stream offsets where whole commands end, after `confirmed`.
    boundaries: VecDeque<u64>,
    scan: Scan,
    limit: usize,
}

impl OutgoingQueue {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            base: 0,
            confirmed: 0,
            boundaries: VecDeque::new(),
            scan: Scan::default(),
            limit,
        }
    }

    /// Stream offset just past the last queued byte.
    pub(crate) fn end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// Whether the queue ends with a whole `OUT` command of the caller's, not yet confirmed:
    /// the logout a TCP client writes before it closes.
    pub(crate) fn ends_with_out(&self) -> bool {
        let end = self.end();
        if self.boundaries.back() != Some(&end) {
            return false;
        }
        let start = self.boundaries.iter().rev().nth(1).copied().unwrap_or(self.confirmed);
        &self.buf[(start - self.base) as usize..] == b"OUT\r\n"
    }

    /// Stream offset of the first unconfirmed byte.
    pub(crate) fn confirmed(&self) -> u64 {
        self.confirmed
    }

    /// Bytes queued and not yet confirmed.
    pub(crate) fn len(&self) -> usize {
        (self.end() - self.confirmed) as usize
    }

    /// The unconfirmed bytes.
    pub(crate) fn unconfirmed(&self) -> &[u8] {
        &self.buf[(self.confirmed - self.base) as usize..]
    }

    /// Whether `len` more bytes may be queued now. Within the limit, always. While the queue
    /// holds no whole command, whatever would fit an empty queue: the bytes queued then are
    /// at most the start of one command, which cannot be sent until the caller completes it,
    /// so refusing would wait forever (a command longer than the limit, or the end of one
    /// sent together with the next). The queue so stays below
    /// `max(limit, max_command_bytes) + max_command_bytes`.
    fn takes(&self, len: usize, limits: FramerLimits) -> bool {
        self.len() + len <= self.limit
            || (self.boundaries.is_empty() && self.fits_when_empty(len, limits))
    }

    /// Whether `len` bytes can be queued at all, once everything before them is confirmed.
    pub(crate) fn fits_when_empty(&self, len: usize, limits: FramerLimits) -> bool {
        len <= self.limit.max(limits.max_command_bytes())
    }

    /// Queues `bytes`, all or nothing, and returns how many `PNG` commands were stripped
    /// (refused, stripped or kept as `ping` says). `check_limit` is false only for the
    /// session's own `OUT`.
    pub(crate) fn push(
        &mut self,
        bytes: &[u8],
        framing: Framing<'_>,
        check_limit: bool,
        ping: PingPolicy,
    ) -> Result<usize, SendError> {
        let queued = self.len();
        if check_limit && !self.takes(bytes.len(), framing.limits) {
            return Err(SendError::QueueFull { queued, limit: self.limit });
        }
        let (old_len, old_boundaries, old_scan) =
            (self.buf.len(), self.boundaries.len(), self.scan);
        // A stripped `PNG` may have begun in an earlier call: keep its start to restore it.
        let earlier_part = self.buf[(old_scan.command_start - self.base) as usize..].to_vec();
        self.buf.extend_from_slice(bytes);
        match self.scan(framing, ping) {
            Ok(stripped) => Ok(stripped),
            Err(e) => {
                self.buf.truncate((old_scan.command_start - self.base) as usize);
                self.buf.extend_from_slice(&earlier_part);
                debug_assert_eq!(self.buf.len(), old_len);
                self.boundaries.truncate(old_boundaries);
                self.scan = old_scan;
                Err(e)
            }
        }
    }

    /// Finds the command boundaries in the newly queued bytes; returns the `PNG`s stripped.
    fn scan(&mut self, framing: Framing<'_>, ping: PingPolicy) -> Result<usize, SendError> {
        let mut stripped = 0;
        let mut end = self.end();
        while self.scan.pos < end {
            if self.scan.payload_left > 0 {
                let n = self.scan.payload_left.min(end - self.scan.pos);
                self.scan.pos += n;
                self.scan.payload_left -= n;
                if self.scan.payload_left == 0 {
                    self.finish_command();
                }
                continue;
            }
            let line_start = (self.scan.command_start - self.base) as usize;
            let searched = (self.scan.pos - self.scan.command_start) as usize;
            let command = match scan_command(&self.buf[line_start..], searched, framing)? {
                Scanned::NoLineEnd => {
                    self.scan.pos = end;
                    break;
                }
                Scanned::Partial(command) | Scanned::Whole(command) => command,
            };
            match ping.step(&command.name) {
                PingStep::Refuse => return Err(SendError::PingNotAllowed),
                PingStep::Keep => {}
                PingStep::Strip => {
                    self.buf.drain(line_start..line_start + command.head_len());
                    end = self.end();
                    self.scan.pos = self.scan.command_start;
                    stripped += 1;
                    continue;
                }
            }
            self.scan.pos = self.scan.command_start + command.head_len() as u64;
            match command.payload_len() {
                Some(len) if len > 0 => self.scan.payload_left = len as u64,
                _ => self.finish_command(),
            }
        }
        Ok(stripped)
    }

    fn finish_command(&mut self) {
        self.boundaries.push_back(self.scan.pos);
        self.scan.command_start = self.scan.pos;
    }

    /// Drops a partial command at the end of the queue; returns how many bytes went.
    pub(crate) fn drop_partial_command(&mut self) -> usize {
        let keep = (self.scan.command_start - self.base) as usize;
        let dropped = self.buf.len() - keep;
        self.buf.truncate(keep);
        self.scan = Scan {
            pos: self.scan.command_start,
            command_start: self.scan.command_start,
            payload_left: 0,
        };
        dropped
    }

    /// How many bytes from the first unconfirmed one the next request should carry: whole
    /// commands up to `max` bytes, or the first command alone if it is larger.
    pub(crate) fn next_request_len(&self, max: usize) -> usize {
        let limit = self.confirmed.saturating_add(max as u64);
        let mut end = None;
        for &boundary in &self.boundaries {
            if end.is_some() && boundary > limit {
                break;
            }
            end = Some(boundary);
        }
        end.map_or(0, |end| (end - self.confirmed) as usize)
    }

    /// Drops the first `len` unconfirmed bytes (the gateway confirmed them, or they are given up).
    pub(crate) fn confirm(&mut self, len: usize) {
        self.confirmed = (self.confirmed + len as u64).min(self.end());
        while self.boundaries.front().is_some_and(|&b| b <= self.confirmed) {
            self.boundaries.pop_front();
        }
        let dead = (self.confirmed - self.base) as usize;
        let dead_up_to_scan = (self.scan.command_start.min(self.confirmed) - self.base) as usize;
        // Keep the partial command being scanned; drop the rest once it is worth a copy.
        let drop = dead.min(dead_up_to_scan);
        if drop > 0 && (drop == self.buf.len() || drop >= self.buf.len() / 2) {
            self.buf.drain(..drop);
            self.base += drop as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FrameError;
    use crate::msnp::PayloadCommands;

    fn queue() -> OutgoingQueue {
        OutgoingQueue::new(100)
    }

    const LIMITS: FramerLimits = FramerLimits { max_line_bytes: 32, max_payload_bytes: 64 };

    fn push(q: &mut OutgoingQueue, bytes: &[u8]) -> Result<(), SendError> {
        let rules = PayloadCommands::default();
        q.push(bytes, Framing { rules: &rules, limits: LIMITS }, true, PingPolicy::Refuse)
            .map(|_| ())
    }

    #[test]
    fn requests_are_cut_between_commands() {
        let mut q = queue();
        push(&mut q, b"VER 1 MSNP8 CVR0\r\nCVR 2 0x0409 winnt").unwrap();
        assert_eq!(q.next_request_len(1000), 18);
        push(&mut q, b" 5.1\r\nMSG 3 N 5\r\nhel").unwrap();
        assert_eq!(q.next_request_len(1000), 18 + 24);
        assert_eq!(q.next_request_len(20), 18);
        assert_eq!(q.next_request_len(5), 18, "a large first command goes whole");
        push(&mut q, b"lo").unwrap();
        assert_eq!(q.next_request_len(1000), q.len());
        q.confirm(18);
        assert_eq!(q.unconfirmed(), b"CVR 2 0x0409 winnt 5.1\r\nMSG 3 N 5\r\nhello");
        q.confirm(q.len());
        assert_eq!((q.len(), q.next_request_len(1000)), (0, 0));
    }

    #[test]
    fn refused_bytes_leave_no_trace() {
        let mut q = queue();
        push(&mut q, b"CHG 1 NLN\r\n").unwrap();
        assert_eq!(push(&mut q, b"QRY 2 x 4\r\nabcdPNG\r\n"), Err(SendError::PingNotAllowed));
        assert_eq!(push(&mut q, b"PN"), Ok(()));
        assert_eq!(push(&mut q, b"G\r\n"), Err(SendError::PingNotAllowed));
        assert_eq!(q.unconfirmed(), b"CHG 1 NLN\r\nPN");
        assert_eq!(
            push(&mut q, &[b'a'; 100]),
            Err(SendError::QueueFull { queued: 13, limit: 100 })
        );
        assert_eq!(
            push(&mut q, &[b'a'; 40]),
            Err(SendError::Malformed(FrameError::LineTooLong { limit: 32 }))
        );
        assert_eq!(push(&mut q, b"\r\n"), Err(SendError::Malformed(FrameError::InvalidCommand)));
        assert_eq!(
            push(&mut q, b"X\r\nMSG 1 N 65\r\n"),
            Err(SendError::Malformed(FrameError::PayloadTooLarge { len: 65, limit: 64 }))
        );
        assert_eq!(q.unconfirmed(), b"CHG 1 NLN\r\nPN");
    }

    #[test]
    fn a_command_longer_than_the_queue_limit_still_gets_in_alone() {
        // A 32-byte queue and a 52-byte MSG the framer allows: refused forever before, so a
        // byte-stream writer that had queued its first 32 bytes waited for room forever.
        let mut q = OutgoingQueue::new(32);
        let msg = [&b"MSG 1 N 40\r\n"[..], &[b'x'; 40]].concat();
        push(&mut q, b"CHG 1 NLN\r\n").unwrap();
        assert_eq!(push(&mut q, &msg), Err(SendError::QueueFull { queued: 11, limit: 32 }));
        q.confirm(11);
        let (start, rest) = msg.split_at(32);
        push(&mut q, start).unwrap();
        push(&mut q, rest).unwrap();
        assert_eq!(q.unconfirmed(), &msg[..]);
        assert_eq!(
            push(&mut q, b"CHG 2 NLN\r\n"),
            Err(SendError::QueueFull { queued: 52, limit: 32 })
        );
        // The end of a command sent with the next one: taken though past the limit, since
        // the start alone could never be sent.
        // A 98-byte command (the largest the framer allows) cut after 90 bytes.
        q.confirm(52);
        let largest = [&b"MSG 3 "[..], &[b'N'; 23], b" 64\r\n", &[b'y'; 64]].concat();
        push(&mut q, &largest[..90]).unwrap();
        let rest_and_next = [&largest[90..], b"CHG 4 NLN\r\n"].concat();
        push(&mut q, &rest_and_next).unwrap();
        assert_eq!(q.len(), 109);
        assert!(q.fits_when_empty(98, LIMITS) && !q.fits_when_empty(99, LIMITS));
    }

    #[test]
    fn stripped_pings_leave_the_other_commands_whole() {
        let rules = PayloadCommands::default();
        let framing = Framing { rules: &rules, limits: LIMITS };
        let mut q = queue();
        assert_eq!(q.push(b"CHG 1 NLN\r\nPN", framing, true, PingPolicy::answer()), Ok(0));
        assert_eq!(
            q.push(b"G\r\nMSG 2 N 5\r\nPNG\r\nPNG\r\n", framing, true, PingPolicy::answer()),
            Ok(2)
        );
        assert_eq!(q.unconfirmed(), b"CHG 1 NLN\r\nMSG 2 N 5\r\nPNG\r\n");
        assert_eq!(q.next_request_len(1000), q.len());
        // A refused push after a partial ping restores the partial ping exactly.
        assert_eq!(q.push(b"PN", framing, true, PingPolicy::answer()), Ok(0));
        assert_eq!(
            q.push(b"G\r\nG 1\r\n", framing, true, PingPolicy::answer()),
            Err(SendError::Malformed(FrameError::InvalidCommand))
        );
        assert_eq!(q.unconfirmed(), b"CHG 1 NLN\r\nMSG 2 N 5\r\nPNG\r\nPN");
    }

    #[test]
    fn forwarded_pings_stay_and_refused_ones_refuse_the_push() {
        let rules = PayloadCommands::default();
        let framing = Framing { rules: &rules, limits: LIMITS };
        let mut q = queue();
        let forward = PingPolicy::Forward;
        assert_eq!(q.push(b"CHG 1 NLN\r\nPNG\r\n", framing, true, forward), Ok(0));
        assert_eq!(q.unconfirmed(), b"CHG 1 NLN\r\nPNG\r\n");
        assert_eq!(q.next_request_len(1000), q.len(), "a forwarded PNG is a whole command");
        let refuse = PingPolicy::Refuse;
        assert_eq!(
            q.push(b"MSG 2 N 0\r\nPNG\r\n", framing, true, refuse),
            Err(SendError::PingNotAllowed)
        );
        assert_eq!(q.unconfirmed(), b"CHG 1 NLN\r\nPNG\r\n", "all or nothing");
    }

    #[test]
    fn png_inside_a_payload_is_just_payload() {
        let mut q = queue();
        push(&mut q, b"MSG 1 N 5\r\nPNG\r\n").unwrap();
        assert_eq!(q.next_request_len(1000), 16);
    }
}
