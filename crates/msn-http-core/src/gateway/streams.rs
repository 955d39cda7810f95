//! The two byte streams of a gateway session: MSNP from the backend waiting for the client's
//! next response (cut at command boundaries), and request bodies waiting for the backend
//! (scanned for `PNG` and `OUT`).

use crate::msnp::{Framing, Scanned, scan_command};
use crate::ping::{PingPolicy, PingStep};

/// Buffers whose capacity grew past this are released once empty, so idle sessions hold
/// almost no memory.
pub(crate) const RETAINED_CAPACITY: usize = 512;

fn release_if_empty(buf: &mut Vec<u8>) {
    if buf.is_empty() && buf.capacity() > RETAINED_CAPACITY {
        *buf = Vec::new();
    }
}

/// Where a response cuts the backend stream, and what the stream looks like afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cut {
    /// Bytes the response takes.
    pub(crate) len: usize,
    front_skip: usize,
    raw: bool,
}

/// Backend bytes waiting for the client's next response.
#[derive(Debug, Default)]
pub(crate) struct Downstream {
    buf: Vec<u8>,
    /// Bytes at the front that finish a command an earlier response had to cut.
    front_skip: usize,
    /// The stream could not be framed (a newer protocol, or not MSNP): cut anywhere from now.
    raw: bool,
}

impl Downstream {
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether a command starts at the front (so the gateway may put its own command there).
    pub(crate) fn at_boundary(&self) -> bool {
        self.front_skip == 0 && !self.raw
    }

    /// Where a response of at most `cap` bytes should cut. Whole commands that fit go; a whole
    /// command larger than `cap` goes in `cap`-sized pieces; a command still arriving waits,
    /// unless `force` (the backend closed, or the queue is full and only it is left).
    pub(crate) fn cut(&self, cap: usize, force: bool, framing: Framing<'_>) -> Cut {
        let len = self.buf.len();
        let max = len.min(cap);
        if max == 0 {
            return Cut { len: 0, front_skip: self.front_skip, raw: self.raw };
        }
        if self.raw {
            return Cut { len: max, front_skip: 0, raw: true };
        }
        let mut pos = self.front_skip;
        if pos > max {
            // The rest of a command already cut: go on cutting it.
            return Cut { len: max, front_skip: pos - max, raw: false };
        }
        while pos < len {
            match scan_command(&self.buf[pos..], 0, framing) {
                Err(_) => {
                    return Cut { len: max, front_skip: 0, raw: true };
                }
                Ok(Scanned::Whole(command)) if pos + command.len() <= cap => pos += command.len(),
                Ok(Scanned::Whole(_)) if pos > 0 => break,
                Ok(Scanned::Whole(command)) => {
                    return Cut { len: cap, front_skip: command.len() - cap, raw: false };
                }
                Ok(Scanned::Partial(_) | Scanned::NoLineEnd) if pos > 0 || !force => break,
                Ok(Scanned::Partial(command)) => {
                    return Cut { len: max, front_skip: command.len() - max, raw: false };
                }
                // Cut inside a line: where the next command starts is unknowable.
                Ok(Scanned::NoLineEnd) => return Cut { len: max, front_skip: 0, raw: true },
            }
        }
        Cut { len: pos, front_skip: 0, raw: false }
    }

    /// The first `n` bytes.
    pub(crate) fn front(&self, n: usize) -> &[u8] {
        &self.buf[..n.min(self.buf.len())]
    }

    /// Drops what a response took.
    pub(crate) fn consume(&mut self, cut: Cut) {
        self.buf.drain(..cut.len.min(self.buf.len()));
        self.front_skip = cut.front_skip;
        self.raw = cut.raw;
        release_if_empty(&mut self.buf);
    }
}

/// What committing a request body found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Commit {
    /// The body is queued for the backend.
    Queued {
        /// The client sent `OUT`: nothing after it was kept.
        out: bool,
        /// `PNG`s removed for the gateway to answer.
        pings: u32,
    },
    /// A `PNG` under [`PingPolicy::Refuse`]: the body was dropped.
    PingRefused,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum UpScan {
    /// A command line starts at `ready`.
    #[default]
    Line,
    /// This many payload bytes are still to come.
    Payload { left: u64 },
    /// The stream could not be framed: pass everything.
    Raw,
}

/// Request bodies waiting for the backend. A body is staged while it arrives and committed
/// only when complete, so a request the client abandons halfway reaches the backend not at
/// all (the client will send it again). Only whole command lines are passed on, so a `PNG`
/// split across two requests is still seen.
#[derive(Debug, Default)]
pub(crate) struct Upstream {
    buf: Vec<u8>,
    /// Bytes at the front ready for the backend.
    ready: usize,
    /// Bytes at the front that belong to complete requests; the rest is the body arriving.
    committed: usize,
    scan: UpScan,
}

impl Upstream {
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends body bytes of the request arriving.
    pub(crate) fn stage(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Body bytes of the request arriving.
    pub(crate) fn staged(&self) -> usize {
        self.buf.len() - self.committed
    }

    /// Forgets the request arriving.
    pub(crate) fn abort(&mut self) {
        self.buf.truncate(self.committed);
        release_if_empty(&mut self.buf);
    }

    /// Forgets everything (the backend is gone).
    pub(crate) fn clear(&mut self) {
        self.buf = Vec::new();
        self.ready = 0;
        self.committed = 0;
    }

    /// The request is complete: scan its body and queue it.
    pub(crate) fn commit(&mut self, framing: Framing<'_>, ping: PingPolicy) -> Commit {
        let mut pos = self.ready;
        let mut pings = 0u32;
        let mut out = false;
        loop {
            let len = self.buf.len();
            match self.scan {
                UpScan::Raw => {
                    pos = len;
                    break;
                }
                UpScan::Payload { left } => {
                    let take = usize::try_from(left).map_or(len - pos, |l| l.min(len - pos));
                    pos += take;
                    let left = left - take as u64;
                    if left > 0 {
                        self.scan = UpScan::Payload { left };
                        break;
                    }
                    self.scan = UpScan::Line;
                }
                UpScan::Line => {
                    let command = match scan_command(&self.buf[pos..], 0, framing) {
                        Ok(Scanned::NoLineEnd) => break,
                        Ok(Scanned::Partial(command) | Scanned::Whole(command)) => command,
                        Err(_) => {
                            self.scan = UpScan::Raw;
                            continue;
                        }
                    };
                    let end = pos + command.head_len();
                    match ping.step(&command.name) {
                        PingStep::Refuse => {
                            self.abort();
                            return Commit::PingRefused;
                        }
                        PingStep::Strip => {
                            self.buf.drain(pos..end);
                            pings = pings.saturating_add(1);
                            continue;
                        }
                        PingStep::Keep => {}
                    }
                    if &command.name == b"OUT" {
                        self.buf.truncate(end);
                        pos = end;
                        out = true;
                        break;
                    }
                    pos = end;
                    if let Some(left @ 1..) = command.payload_len() {
                        self.scan = UpScan::Payload { left: left as u64 };
                    }
                }
            }
        }
        self.ready = pos;
        self.committed = self.buf.len();
        Commit::Queued { out, pings }
    }

    /// Bytes ready for the backend.
    pub(crate) fn ready(&self) -> &[u8] {
        &self.buf[..self.ready]
    }

    /// The ready bytes were handed to the backend.
    pub(crate) fn take_ready(&mut self) {
        self.buf.drain(..self.ready);
        self.committed -= self.ready;
        self.ready = 0;
        release_if_empty(&mut self.buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msnp::{FramerLimits, PayloadCommands};

    fn framing(rules: &PayloadCommands) -> Framing<'_> {
        Framing { rules, limits: FramerLimits { max_line_bytes: 64, max_payload_bytes: 1000 } }
    }

    /// Takes responses of `cap` bytes until the queue is empty; returns the bodies.
    fn responses(down: &mut Downstream, cap: usize, force: bool) -> Vec<Vec<u8>> {
        let rules = PayloadCommands::default();
        let mut out = Vec::new();
        loop {
            let cut = down.cut(cap, force, framing(&rules));
            if cut.len == 0 {
                return out;
            }
            out.push(down.front(cut.len).to_vec());
            down.consume(cut);
        }
    }

    fn queue(bytes: &[u8]) -> Downstream {
        let mut down = Downstream::default();
        down.push(bytes);
        down
    }

    #[test]
    fn responses_hold_whole_commands_up_to_the_cap() {
        let mut down = queue(b"VER 1 MSNP8\r\nCVR 2 x\r\nMSG a b 5\r\nhelloUSR 3 OK a\r\n");
        assert_eq!(
            responses(&mut down, 30, false),
            [&b"VER 1 MSNP8\r\nCVR 2 x\r\n"[..], b"MSG a b 5\r\nhelloUSR 3 OK a\r\n"]
        );
    }

    #[test]
    fn a_partial_command_waits_unless_forced() {
        let mut down = queue(b"VER 1\r\nMSG a b 10\r\nhel");
        assert_eq!(responses(&mut down, 100, false), [b"VER 1\r\n"]);
        assert_eq!(down.len(), 15);
        down.push(b"lo");
        assert!(responses(&mut down, 100, false).is_empty());
        // Forced (the backend closed): what there is goes, and framing resumes after it.
        assert_eq!(responses(&mut down, 100, true), [b"MSG a b 10\r\nhello"]);
        down.push(b"worldOUT\r\n");
        assert_eq!(responses(&mut down, 100, false), [b"worldOUT\r\n"]);
        assert!(down.at_boundary());
    }

    #[test]
    fn a_command_larger_than_the_cap_goes_in_pieces() {
        let mut stream = b"MSG a b 25\r\n".to_vec();
        stream.extend_from_slice(&[b'x'; 25]);
        stream.extend_from_slice(b"QNG 50\r\n");
        let mut down = queue(&stream);
        let bodies = responses(&mut down, 10, false);
        assert_eq!(bodies.concat(), stream);
        assert_eq!(bodies.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 10, 7, 8]);
        assert!(down.at_boundary());
    }

    #[test]
    fn unframable_streams_go_raw() {
        let mut down = queue(b"VER 1\r\n\x01\x02 garbage\r\nmore");
        assert_eq!(
            responses(&mut down, 8, false),
            [&b"VER 1\r\n\x01"[..], b"\x02 garbag", b"e\r\nmore"]
        );
        assert!(!down.at_boundary());
        let mut down = queue(&[b'A'; 70]);
        assert_eq!(responses(&mut down, 100, false).concat(), [b'A'; 70]);
    }

    fn commit(up: &mut Upstream, body: &[u8], ping: PingPolicy) -> Commit {
        let rules = PayloadCommands::default();
        up.stage(body);
        up.commit(framing(&rules), ping)
    }

    #[test]
    fn bodies_are_scanned_for_png_and_out() {
        let mut up = Upstream::default();
        let got =
            commit(&mut up, b"CHG 1 NLN\r\nPNG\r\nMSG 2 N 5\r\nPNG\r\n", PingPolicy::answer());
        assert_eq!(got, Commit::Queued { out: false, pings: 1 });
        assert_eq!(up.ready(), b"CHG 1 NLN\r\nMSG 2 N 5\r\nPNG\r\n", "a payload is not a command");
        up.take_ready();
        assert_eq!(
            commit(&mut up, b"PN", PingPolicy::Refuse),
            Commit::Queued { out: false, pings: 0 }
        );
        assert_eq!(up.ready(), b"", "a partial line waits for its end");
        assert_eq!(commit(&mut up, b"G\r\n", PingPolicy::Refuse), Commit::PingRefused);
        assert_eq!(up.staged(), 0, "the refused body is gone");
        let mut up = Upstream::default();
        assert_eq!(
            commit(&mut up, b"OUT\r\nVER 9\r\n", PingPolicy::Refuse),
            Commit::Queued { out: true, pings: 0 }
        );
        assert_eq!(up.ready(), b"OUT\r\n", "nothing after OUT is kept");
    }

    #[test]
    fn abandoned_bodies_are_dropped() {
        let mut up = Upstream::default();
        commit(&mut up, b"VER 1\r\nCV", PingPolicy::Forward);
        up.stage(b"R 2\r\n");
        assert_eq!(up.staged(), 5);
        up.abort();
        assert_eq!(up.staged(), 0);
        assert_eq!(up.ready(), b"VER 1\r\n");
        up.take_ready();
        assert_eq!(
            commit(&mut up, b"R 2\r\nPNG\r\n", PingPolicy::Forward),
            Commit::Queued { out: false, pings: 0 }
        );
        assert_eq!(up.ready(), b"CVR 2\r\nPNG\r\n");
        up.take_ready();
        commit(&mut up, b"\x01\x02\r\nPNG\r\n", PingPolicy::Refuse);
        assert_eq!(up.ready(), b"\x01\x02\r\nPNG\r\n", "unframable: passed as it is");
    }
}
