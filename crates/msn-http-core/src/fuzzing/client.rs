//! Harnesses for the client [`Session`]: operation sequences against a model of the documented
//! resend policy, and one response fed whole or cut.
//!
//! The model predicts, from what the driver did, how each request ends and which event says
//! so. Hostile bytes (`Garbage`) make a request's ending unpredictable: the harness then learns
//! it from the events and keeps checking everything else.
//!
//! What the documented resend policy allows, and so what the model checks:
//! - every request body is whole commands starting at the first unconfirmed byte of what
//!   `send` accepted, as many as fit in `max_request_body_bytes` (one larger command alone);
//!   a poll goes only when no whole command waits;
//! - a 2xx answer that arrived whole confirms the body: the next request starts after it;
//! - a connect failure resends the same body; so does any failed poll;
//! - a 400 head ends the session, whether or not its body arrives;
//! - a command request that failed with no byte of its answer (or a 5xx head) starts at
//!   the same byte again under `Resend` or after `resend_unconfirmed`, skips exactly its body
//!   under `Discard` or after `discard_unconfirmed`, and nothing goes while `Ask` waits;
//! - a failure after bytes of a possible 2xx answer ends the session: nothing is resent, and
//!   `unsent()` holds every unconfirmed byte;
//! - more than `max_consecutive_failures` failures in a row end the session.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};

use crate::Endpoint;
use crate::client::{
    ClientConfig, CloseReason, Connection, Event, Notice, OutputMode, PollPolicy, Proxy, Recovery,
    RequestKind, Session, Target, UnconfirmedPolicy,
};
use crate::error::{HttpError, NetworkError, RemoteError, SendError, SessionError};
use crate::msnp::{CommandFramer, FramerLimits, PayloadCommands};
use crate::wire::{HttpLimits, QueryAction, RequestDecoder, RequestStep};

use super::split;

const MAX_LINE: usize = 64;
const MAX_PAYLOAD: usize = 128;
const TARGET_IP: &str = "messenger.test";

fn gateway_endpoint() -> Endpoint {
    Endpoint::new("gw.test", 80).unwrap_or_else(|_| unreachable!("a valid host"))
}

fn proxy_endpoint() -> Endpoint {
    Endpoint::new("proxy.test", 3128).unwrap_or_else(|_| unreachable!("a valid host"))
}

#[derive(Arbitrary, Clone, Copy, Debug)]
struct Params {
    unconfirmed: u8,
    poll: u8,
    bytes_output: bool,
    proxy: bool,
    max_queued: u8,
    max_request_body: u8,
    max_inbound: u8,
    max_body: u8,
    max_failures: u8,
    timeout_secs: u8,
}

impl Params {
    fn policy(&self) -> UnconfirmedPolicy {
        [UnconfirmedPolicy::Ask, UnconfirmedPolicy::Resend, UnconfirmedPolicy::Discard]
            [usize::from(self.unconfirmed % 3)]
    }

    fn max_queued(&self) -> usize {
        32 + usize::from(self.max_queued)
    }

    fn max_request_body(&self) -> usize {
        1 + usize::from(self.max_request_body)
    }

    fn max_body(&self) -> u64 {
        16 + 2 * u64::from(self.max_body)
    }

    fn max_failures(&self) -> u32 {
        1 + u32::from(self.max_failures % 4)
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_secs(1 + u64::from(self.timeout_secs % 30))
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new(gateway_endpoint());
        c.unconfirmed = self.policy();
        c.poll_policy = [PollPolicy::official(), PollPolicy::adaptive(), PollPolicy::long_poll()]
            [usize::from(self.poll % 3)];
        c.output = if self.bytes_output { OutputMode::Bytes } else { OutputMode::Commands };
        if self.proxy {
            c.proxy = Some(Proxy { endpoint: proxy_endpoint(), credentials: None });
        }
        c.request_timeout = self.request_timeout();
        c.max_queued_bytes = self.max_queued();
        c.max_request_body_bytes = self.max_request_body();
        c.max_inbound_bytes = 1 + 4 * usize::from(self.max_inbound);
        c.max_consecutive_failures = self.max_failures();
        c.http_limits = HttpLimits { max_head_bytes: 1024, max_body_bytes: self.max_body() };
        c.framer_limits = FramerLimits { max_line_bytes: MAX_LINE, max_payload_bytes: MAX_PAYLOAD };
        c
    }
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
enum AnswerKind {
    Ok,
    OkClose,
    Rejected,
    ServerError,
    ProxyAuth,
    Redirect,
    NoHeader,
}

#[derive(Arbitrary, Clone, Copy, Debug)]
struct Answer {
    kind: AnswerKind,
    framing: u8,
    interim: bool,
    close: bool,
    new_commands: u8,
    take: u16,
    id: u8,
    gw: u8,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// The caller sends its next command, in two pieces.
    Send {
        payload: Option<u8>,
        split: u8,
    },
    /// The caller sends bytes of its own (may be refused).
    SendRaw(Vec<u8>),
    /// The gateway writes its answer to the request in flight.
    Respond(Answer),
    /// Up to this many bytes of the answer reach the session (0: all).
    Deliver(u8),
    /// Hostile bytes reach the session.
    Garbage(Vec<u8>),
    Eof,
    ConnectFail,
    /// The clock jumps to `poll_timeout()`.
    Timeout,
    Advance(u16),
    Close,
    Abort,
    Drain {
        resend: bool,
    },
}

/// How a gateway answer will end the request once all of it has arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Success {
        close: bool,
    },
    Rejected,
    ServerError(u16),
    /// Ends the session as soon as the head is read.
    Fatal(RemoteError),
}

#[derive(Clone, Debug)]
struct Reply {
    final_start: usize,
    body_start: usize,
    outcome: Outcome,
    close_delimited: bool,
    keep_alive: bool,
    id: String,
    /// Server bytes it carries: `sent` before it and after it.
    sent_before: usize,
    sent_after: usize,
}

#[derive(Clone, Debug)]
struct Flight {
    kind: RequestKind,
    len: usize,
    fresh: bool,
    deadline: Instant,
    tainted: bool,
    reply: Option<Reply>,
    /// Bytes of the reply delivered.
    delivered: usize,
}

/// A request failure or close the session must report next.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expect {
    Failed {
        kind: RequestKind,
        error: SessionError,
        recovery: Recovery,
    },
    Closed(CloseReason),
    /// A tainted request ended: whatever event (or none) the session reports.
    Any(RequestKind),
}

/// How the request in flight ended, as the driver saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    Delivered,
    /// EOF ended a close-delimited answer that had arrived whole.
    EofComplete,
    Eof,
    Timeout,
    ConnectFailed,
}

struct World {
    p: Params,
    session: Session,
    now: Instant,
    // The caller's stream and what the gateway confirmed of it.
    stream: Vec<u8>,
    confirmed: usize,
    close_end: Option<usize>,
    awaiting: Option<usize>,
    raw_sent: bool,
    pending_pieces: VecDeque<Vec<u8>>,
    next_command: usize,
    failures: u32,
    opened: bool,
    /// Set once the session ends: later calls must do nothing.
    closed: bool,
    // The request in flight and its connection.
    flight: Option<Flight>,
    wire: Vec<u8>,
    must_fresh: bool,
    gateway_at_last_request: Endpoint,
    // The gateway's side.
    outbox: Vec<u8>,
    server_commands: usize,
    sent: usize,
    id_counter: u32,
    latest_id: Option<String>,
    first_id: Option<String>,
    /// 2xx body bytes the session must have taken in.
    pushed: u64,
    // What the caller saw.
    expected: VecDeque<Expect>,
    delivered: Vec<u8>,
    established: bool,
    closed_event: bool,
    inbound_tainted: bool,
    out: Vec<u8>,
    /// Body length of the request just checked.
    last_body_len: usize,
    /// Bytes of the tainted request whose ending is being learned.
    learned_len: Option<usize>,
}

fn server_command(n: usize) -> Vec<u8> {
    let payload = |len: usize| -> Vec<u8> {
        b"<x>\r\nMSG 1 N 2\r\n".iter().copied().cycle().take(len).collect()
    };
    match n % 3 {
        0 => format!("ILN {n} NLN u{n}@test U{n}\r\n").into_bytes(),
        1 => {
            let body = payload(n % 90);
            [format!("MSG Hotmail Hotmail {}\r\n", body.len()).into_bytes(), body].concat()
        }
        _ => {
            let body = payload(n % 40);
            [format!("NOT {}\r\n", body.len()).into_bytes(), body].concat()
        }
    }
}

fn caller_command(n: usize, payload: Option<u8>) -> Vec<u8> {
    match payload {
        None => format!("CHG {n} NLN\r\n").into_bytes(),
        Some(len) => {
            let len = usize::from(len) % MAX_PAYLOAD;
            let body: Vec<u8> =
                b"hi PNG\r\nMSG 1 N 9\r\n".iter().copied().cycle().take(len).collect();
            [format!("MSG {n} N {len}\r\n").into_bytes(), body].concat()
        }
    }
}

/// Lengths of the whole commands at the front of `bytes`, framed as the session frames them.
fn command_lengths(bytes: &[u8]) -> Vec<usize> {
    let limits = FramerLimits { max_line_bytes: MAX_LINE, max_payload_bytes: MAX_PAYLOAD };
    let mut framer = CommandFramer::new(PayloadCommands::default(), limits);
    framer.push(bytes);
    let mut lengths = Vec::new();
    loop {
        match framer.next_command() {
            Ok(Some(cmd)) => lengths.push(cmd.as_bytes().len()),
            Ok(None) => return lengths,
            Err(e) => panic!("the session accepted bytes the framer refuses: {e:?}"),
        }
    }
}

impl World {
    fn new(p: Params, start: Instant) -> Option<World> {
        let session = Session::new(p.config(), Target::notification(TARGET_IP), start).ok()?;
        Some(World {
            p,
            session,
            now: start,
            stream: Vec::new(),
            confirmed: 0,
            close_end: None,
            awaiting: None,
            raw_sent: false,
            pending_pieces: VecDeque::new(),
            next_command: 0,
            failures: 0,
            opened: false,
            closed: false,
            flight: None,
            wire: Vec::new(),
            must_fresh: true,
            gateway_at_last_request: gateway_endpoint(),
            outbox: Vec::new(),
            server_commands: 0,
            sent: 0,
            id_counter: 0,
            latest_id: None,
            first_id: None,
            pushed: 0,
            expected: VecDeque::new(),
            delivered: Vec::new(),
            established: false,
            closed_event: false,
            inbound_tainted: false,
            out: Vec::new(),
            last_body_len: 0,
            learned_len: None,
        })
    }

    fn step(&mut self, op: Op) {
        let mut cause = None;
        match op {
            Op::Send { payload, split } => self.send_command(payload, split),
            Op::SendRaw(bytes) => self.send_raw(&bytes),
            Op::Respond(answer) => self.respond(answer),
            Op::Deliver(n) => {
                self.deliver(if n == 0 { usize::MAX } else { usize::from(n) });
                cause = Some(Cause::Delivered);
            }
            Op::Garbage(bytes) => {
                if let Some(f) = self.flight.as_mut() {
                    // The bytes may become body bytes of the answer in progress.
                    f.tainted = true;
                    self.inbound_tainted = true;
                }
                self.session.handle_input(self.now, &bytes);
            }
            Op::Eof => {
                cause = Some(self.eof_cause());
                self.session.handle_eof(self.now);
                self.wire.clear();
                self.must_fresh = true;
            }
            Op::ConnectFail => {
                let connecting = self.flight.as_ref().is_some_and(|f| {
                    f.fresh && f.delivered == 0 && !f.tainted && f.reply.is_none()
                });
                if connecting {
                    self.session.handle_connect_failed(self.now, io::ErrorKind::ConnectionRefused);
                    self.must_fresh = true;
                    cause = Some(Cause::ConnectFailed);
                }
            }
            Op::Timeout => {
                if let Some(at) = self.session.poll_timeout() {
                    self.now = self.now.max(at);
                }
                self.session.handle_timeout(self.now);
                cause = Some(Cause::Timeout);
            }
            Op::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(ms));
                self.session.handle_timeout(self.now);
                cause = Some(Cause::Timeout);
            }
            Op::Close => self.close(),
            Op::Abort => {
                self.session.abort();
                if !self.closed {
                    self.expected.push_back(Expect::Closed(CloseReason::Aborted));
                    self.closed = true;
                }
                self.flight = None;
            }
            Op::Drain { resend } => self.drain(resend),
        }
        self.settle_flight(cause);
        self.pump();
        self.check();
    }

    // The caller.

    fn after_send(&mut self, piece: &[u8], result: Result<(), SendError>, generated: bool) {
        let queued = self.stream.len() - self.confirmed;
        match result {
            Ok(()) => {
                assert!(!self.closed && self.close_end.is_none(), "send accepted after close");
                assert!(queued + piece.len() <= self.p.max_queued(), "queue limit broken");
                self.stream.extend_from_slice(piece);
            }
            Err(SendError::QueueFull { queued: q, limit }) => {
                assert_eq!((q, limit), (queued, self.p.max_queued()));
                assert!(q + piece.len() > limit, "refused though it fits");
            }
            Err(SendError::Closed) => {
                assert!(self.closed || self.close_end.is_some(), "refused as closed while open")
            }
            Err(e) => assert!(!generated || self.raw_sent, "a valid command refused: {e:?}"),
        }
        assert_eq!(self.session.queued_bytes(), self.stream.len() - self.confirmed);
    }

    fn send_command(&mut self, payload: Option<u8>, split_at: u8) {
        if self.pending_pieces.is_empty() {
            let bytes = caller_command(self.next_command, payload);
            self.next_command += 1;
            let cut = usize::from(split_at) % bytes.len();
            let (a, b) = bytes.split_at(cut);
            self.pending_pieces
                .extend([a, b].into_iter().filter(|p| !p.is_empty()).map(<[u8]>::to_vec));
        }
        // In order, until one is refused; the caller keeps the rest for later.
        while let Some(piece) = self.pending_pieces.pop_front() {
            let result = self.session.send(&piece);
            let refused = matches!(result, Err(SendError::QueueFull { .. }));
            self.after_send(&piece, result, true);
            if refused {
                self.pending_pieces.push_front(piece);
                return;
            }
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.raw_sent = true;
        let result = self.session.send(bytes);
        self.after_send(bytes, result, false);
    }

    fn close(&mut self) {
        self.session.close();
        if self.closed || self.close_end.is_some() {
            return;
        }
        // A partial command at the end is dropped.
        let whole: usize = command_lengths(&self.stream[self.confirmed..]).iter().sum();
        self.stream.truncate(self.confirmed + whole);
        self.pending_pieces.clear();
        // Nothing to tell the gateway: closed at once.
        if !self.opened && self.flight.is_none() && whole == 0 {
            self.closed = true;
            self.expected.push_back(Expect::Closed(CloseReason::LocalClose));
            return;
        }
        // Undecided commands cannot go before `OUT`: ended at once.
        if self.awaiting.is_some() {
            self.closed = true;
            self.expected.push_back(Expect::Closed(CloseReason::Aborted));
            return;
        }
        // `OUT` queued after the commands.
        self.stream.extend_from_slice(b"OUT\r\n");
        self.close_end = Some(self.stream.len());
        self.pending_pieces.clear();
        assert_eq!(self.session.unsent(), &self.stream[self.confirmed..]);
    }

    fn drain(&mut self, resend: bool) {
        while let Some(event) = self.session.poll_event() {
            let event = owned(event);
            self.on_event(event);
        }
        assert!(
            self.expected.iter().all(|e| matches!(e, Expect::Any(_))),
            "events not reported: {:?}",
            self.expected
        );
        if self.closed {
            // A closed session waits for no decision.
            self.awaiting = None;
        }
        match self.awaiting.take() {
            Some(_) if resend => self.session.resend_unconfirmed(),
            Some(len) => {
                assert_eq!(self.session.discard_unconfirmed(), len);
                self.confirmed += len;
                if self.close_end.is_some_and(|end| self.confirmed >= end) {
                    self.close_with(CloseReason::Aborted);
                }
            }
            None => {
                assert_eq!(self.session.discard_unconfirmed(), 0);
                self.session.resend_unconfirmed();
            }
        }
    }

    fn on_event(&mut self, event: Owned) {
        assert!(!self.closed_event, "{event:?} after Closed");
        match event {
            Owned::Established(id) => {
                assert!(!self.established, "Established twice");
                if let Some(first) = &self.first_id {
                    assert_eq!(&id, first);
                }
                self.established = true;
            }
            Owned::Inbound(bytes) => {
                assert!(!bytes.is_empty());
                self.delivered.extend_from_slice(&bytes);
                if !self.inbound_tainted {
                    assert!(
                        self.outbox.starts_with(&self.delivered),
                        "server bytes lost, reordered or duplicated"
                    );
                }
            }
            Owned::Failed(kind, error, recovery) => match self.expected.pop_front() {
                Some(Expect::Any(k)) => {
                    assert_eq!(k, kind);
                    self.learn_failure(kind, recovery);
                }
                Some(want) => {
                    assert_eq!(want, Expect::Failed { kind, error, recovery }, "wrong report")
                }
                None => panic!("unexpected failure {kind:?} {error:?} {recovery:?}"),
            },
            Owned::Closed(reason, unsent) => {
                self.closed_event = true;
                self.closed = true;
                let msnp_failure = matches!(
                    reason,
                    CloseReason::Failed(SessionError::Remote(RemoteError::Msnp(_)))
                );
                if msnp_failure && self.inbound_tainted {
                    // Unframable input ends the session ahead of what was queued; the tainted
                    // request may have been confirmed first.
                    self.expected.clear();
                    let len = self.learned_len.take().unwrap_or(0);
                    let queued = self.stream.len() - self.confirmed;
                    assert!(unsent == queued || unsent + len == queued, "unsent bytes");
                    self.confirmed = self.stream.len() - unsent;
                } else {
                    match self.expected.pop_front() {
                        Some(Expect::Any(_)) => {
                            // The tainted request may have been confirmed before the close.
                            let len = self.learned_len.take().unwrap_or(0);
                            let queued = self.stream.len() - self.confirmed;
                            assert!(unsent == queued || unsent + len == queued, "unsent bytes");
                            self.confirmed = self.stream.len() - unsent;
                        }
                        Some(want) => assert_eq!(want, Expect::Closed(reason), "wrong close"),
                        None => panic!("unexpected close {reason:?}"),
                    }
                    assert!(self.expected.is_empty(), "not reported: {:?}", self.expected);
                }
                assert_eq!(unsent, self.stream.len() - self.confirmed, "unsent bytes");
                assert_eq!(self.session.unsent(), &self.stream[self.confirmed..]);
            }
            Owned::Note(_) => {}
        }
    }

    /// The session reported how a tainted request failed: follow it, checking it is a
    /// recovery the policy allows.
    fn learn_failure(&mut self, kind: RequestKind, recovery: Recovery) {
        self.failures += 1;
        let len = self.learned_len.take().unwrap_or(0);
        let policy = self.p.policy();
        match recovery {
            Recovery::Resending => {
                assert!(kind == RequestKind::Poll || policy == UnconfirmedPolicy::Resend);
            }
            Recovery::Discarded { bytes } => {
                assert!(kind != RequestKind::Poll && policy == UnconfirmedPolicy::Discard);
                assert_eq!(bytes, len);
                self.confirmed += len;
                if self.close_end.is_some_and(|end| self.confirmed >= end) {
                    self.close_with(CloseReason::Aborted);
                }
            }
            Recovery::AwaitingDecision => {
                assert!(kind != RequestKind::Poll && policy == UnconfirmedPolicy::Ask);
                self.awaiting = Some(len);
            }
        }
    }

    // The gateway.

    fn respond(&mut self, a: Answer) {
        let Some(flight) = self.flight.as_ref() else {
            return;
        };
        if flight.reply.is_some() || self.closed {
            return;
        }
        let mut wire = Vec::new();
        if a.interim {
            wire.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let final_start = wire.len();
        let close_delimited = a.framing % 4 == 3;
        let version = if close_delimited { "1.0" } else { "1.1" };
        let ok = matches!(a.kind, AnswerKind::Ok | AnswerKind::OkClose);
        let (status, outcome) = match a.kind {
            AnswerKind::Ok => (200, Outcome::Success { close: false }),
            AnswerKind::OkClose => (200, Outcome::Success { close: true }),
            AnswerKind::Rejected => (400, Outcome::Rejected),
            AnswerKind::ServerError => {
                let status = [500, 502, 503][usize::from(a.id % 3)];
                (status, Outcome::ServerError(status))
            }
            AnswerKind::ProxyAuth => {
                (407, Outcome::Fatal(RemoteError::ProxyAuthenticationRequired))
            }
            AnswerKind::Redirect => (302, Outcome::Fatal(RemoteError::UnexpectedStatus(302))),
            AnswerKind::NoHeader => (200, Outcome::Fatal(RemoteError::MissingMessengerHeader)),
        };
        wire.extend_from_slice(format!("HTTP/{version} {status} Whatever\r\n").as_bytes());
        self.id_counter += 1;
        let id = match a.id % 4 {
            0 => format!("954547325.{}", self.id_counter),
            1 => "ee242912-db5a-4b93-bc49-d615b0fa7965".to_owned(),
            2 => format!("a%26b={}", self.id_counter),
            _ => format!("{}", self.id_counter),
        };
        if ok {
            let gw = match a.gw % 6 {
                0 => String::new(),
                1 => "; GW-IP=".to_owned(),
                2 => "; GW-IP=gw.test".to_owned(),
                3 => "; GW-IP=gw2.test".to_owned(),
                4 => "; GW-IP=gw3.test:81".to_owned(),
                _ => "; GW-IP=bad host".to_owned(),
            };
            let close = if a.kind == AnswerKind::OkClose { "; Session=close" } else { "" };
            wire.extend_from_slice(
                format!("X-MSN-Messenger: SessionID={id}{gw}{close}\r\n").as_bytes(),
            );
            if a.gw & 0x80 != 0 {
                wire.extend_from_slice(b"X-MSN-Host: gw4.test\r\n");
            }
        }
        if a.close {
            wire.extend_from_slice(b"Connection: close\r\n");
        }
        let sent_before = self.sent;
        let body = if ok {
            for _ in 0..a.new_commands % 4 {
                self.outbox.extend_from_slice(&server_command(self.server_commands));
                self.server_commands += 1;
            }
            let available = self.outbox.len() - self.sent;
            let max = usize::try_from(self.p.max_body()).unwrap_or(usize::MAX);
            let n = usize::from(a.take).min(available).min(max);
            self.sent += n;
            self.outbox[sent_before..self.sent].to_vec()
        } else {
            b"err".to_vec()
        };
        match a.framing % 4 {
            0 | 1 => {
                wire.extend_from_slice(
                    format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                );
            }
            2 => wire.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n"),
            _ => wire.extend_from_slice(b"\r\n"),
        }
        let body_start = wire.len();
        if a.framing % 4 == 2 {
            let size = 1 + usize::from(a.framing >> 2);
            for chunk in body.chunks(size) {
                wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                wire.extend_from_slice(chunk);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
        } else {
            wire.extend_from_slice(&body);
        }
        let keep_alive = !a.close && !close_delimited;
        let reply = Reply {
            final_start,
            body_start,
            outcome,
            close_delimited,
            keep_alive,
            id,
            sent_before,
            sent_after: self.sent,
        };
        self.wire = wire;
        if let Some(f) = self.flight.as_mut() {
            f.reply = Some(reply);
        }
    }

    fn deliver(&mut self, n: usize) {
        let Some(f) = self.flight.as_mut() else {
            return;
        };
        let from = f.delivered.min(self.wire.len());
        let to = from.saturating_add(n).min(self.wire.len());
        if from == to {
            return;
        }
        f.delivered = to;
        let bytes = self.wire[from..to].to_vec();
        self.session.handle_input(self.now, &bytes);
    }

    fn eof_cause(&self) -> Cause {
        match &self.flight {
            // EOF ends a close-delimited body wherever it is: a cut one is not detectable.
            Some(Flight { reply: Some(r), delivered, .. })
                if r.close_delimited && *delivered >= r.body_start =>
            {
                Cause::EofComplete
            }
            _ => Cause::Eof,
        }
    }

    // Model of how a request ends.

    fn close_with(&mut self, reason: CloseReason) {
        if !self.closed {
            self.closed = true;
            self.expected.push_back(Expect::Closed(reason));
        }
    }

    /// A failure that leaves open whether the gateway got the commands: retry, ask or drop.
    fn fail(&mut self, f: &Flight, error: SessionError) {
        self.failures += 1;
        if self.failures > self.p.max_failures() {
            let last = Box::new(error);
            let error = NetworkError::TooManyFailures { failures: self.failures, last };
            return self.close_with(CloseReason::Failed(error.into()));
        }
        let recovery = match (f.kind, self.p.policy()) {
            (RequestKind::Poll, _) | (_, UnconfirmedPolicy::Resend) => Recovery::Resending,
            (_, UnconfirmedPolicy::Discard) => {
                self.confirmed += f.len;
                Recovery::Discarded { bytes: f.len }
            }
            (_, UnconfirmedPolicy::Ask) => {
                self.awaiting = Some(f.len);
                Recovery::AwaitingDecision
            }
        };
        self.expected.push_back(Expect::Failed { kind: f.kind, error, recovery });
        if matches!(recovery, Recovery::Discarded { .. })
            && self.close_end.is_some_and(|end| self.confirmed >= end)
        {
            self.close_with(CloseReason::Aborted);
        }
    }

    fn succeed(&mut self, f: &Flight, r: &Reply) {
        self.confirmed += f.len;
        self.failures = 0;
        self.opened = true;
        self.latest_id = Some(r.id.clone());
        self.first_id.get_or_insert_with(|| r.id.clone());
        let mut body = r.sent_after - r.sent_before;
        if r.close_delimited {
            // Only what arrived before EOF; the gateway model wrote no more.
            body = body.min(f.delivered.saturating_sub(r.body_start));
            self.sent = r.sent_before + body;
        }
        self.pushed += body as u64;
        if !r.keep_alive {
            self.must_fresh = true;
        }
        if r.outcome == (Outcome::Success { close: true }) {
            self.close_with(CloseReason::ServerClosed);
        } else if self.close_end.is_some_and(|end| self.confirmed >= end) {
            self.close_with(CloseReason::LocalClose);
        }
    }

    /// After an operation: if the request in flight ended, predict (or learn) how.
    fn settle_flight(&mut self, cause: Option<Cause>) {
        let Some(f) = self.flight.clone() else {
            return;
        };
        if self.closed {
            // Aborted by the caller.
            self.flight = None;
            return;
        }
        let ended = self.session.in_flight().is_none();
        if f.tainted {
            if ended {
                self.flight = None;
                self.wire.clear();
                self.resync(&f);
            }
            return;
        }
        let delivered = f.delivered;
        match cause {
            None => assert!(!ended, "a request ended by itself"),
            Some(Cause::ConnectFailed) => {
                assert!(ended, "a failed connect left the request in flight");
                self.flight = None;
                let address = if self.p.proxy {
                    proxy_endpoint()
                } else {
                    self.gateway_at_last_request.clone()
                };
                let error = SessionError::from(NetworkError::ConnectFailed {
                    kind: io::ErrorKind::ConnectionRefused,
                    address,
                });
                if !self.opened {
                    // Nothing was ever reachable: the session fails at once.
                    self.close_with(CloseReason::Failed(error));
                    return;
                }
                self.failures += 1;
                if self.failures > self.p.max_failures() {
                    let last = Box::new(error);
                    let error = NetworkError::TooManyFailures { failures: self.failures, last };
                    self.close_with(CloseReason::Failed(error.into()));
                } else {
                    self.expected.push_back(Expect::Failed {
                        kind: f.kind,
                        error,
                        recovery: Recovery::Resending,
                    });
                }
            }
            Some(Cause::Delivered | Cause::EofComplete) => {
                let due = f.reply.as_ref().is_some_and(|r| match r.outcome {
                    Outcome::Fatal(_) => delivered >= r.body_start,
                    _ if r.close_delimited => cause == Some(Cause::EofComplete),
                    _ => delivered == self.wire.len(),
                });
                assert_eq!(
                    ended,
                    due,
                    "request ended at the wrong byte ({delivered} of {})",
                    self.wire.len()
                );
                if let (true, Some(r)) = (ended, f.reply.as_ref()) {
                    self.flight = None;
                    self.end_with_reply(&f, r);
                }
            }
            Some(Cause::Eof | Cause::Timeout) => {
                let timed_out = cause == Some(Cause::Timeout);
                if timed_out {
                    assert_eq!(ended, self.now >= f.deadline, "deadline not kept");
                } else {
                    assert!(ended, "EOF left the request in flight");
                }
                if !ended {
                    return;
                }
                self.flight = None;
                self.wire.clear();
                self.must_fresh = true;
                let reply = f.reply.as_ref();
                let started = reply.is_some_and(|r| delivered > 0 && delivered != r.final_start);
                let error: SessionError = if timed_out {
                    NetworkError::Timeout { response_started: started }.into()
                } else {
                    NetworkError::ConnectionClosed { response_started: started }.into()
                };
                // A 400 or 5xx head says no MSNP bytes came with it.
                let harmless = reply.is_some_and(|r| {
                    delivered >= r.body_start
                        && matches!(r.outcome, Outcome::Rejected | Outcome::ServerError(_))
                });
                if let Some(r) = reply.filter(|_| !started) {
                    // Nothing of the answer arrived: the gateway keeps what it would have sent.
                    self.sent = r.sent_before;
                }
                // A 400 head ends the session however its body ends.
                let rejected = reply.is_some_and(|r| {
                    delivered >= r.body_start && matches!(r.outcome, Outcome::Rejected)
                });
                if rejected {
                    self.close_with(CloseReason::SessionRejected);
                } else if started && !harmless {
                    self.close_with(CloseReason::Failed(error));
                } else {
                    self.fail(&f, error);
                }
            }
        }
    }

    /// The whole answer arrived (or its head, for answers that end the session).
    fn end_with_reply(&mut self, f: &Flight, r: &Reply) {
        match r.outcome {
            Outcome::Success { .. } => self.succeed(f, r),
            Outcome::Rejected => self.close_with(CloseReason::SessionRejected),
            Outcome::ServerError(status) => {
                if !r.keep_alive {
                    self.must_fresh = true;
                }
                self.fail(f, RemoteError::ServerError(status).into());
            }
            Outcome::Fatal(e) => self.close_with(CloseReason::Failed(e.into())),
        }
    }

    /// A request whose answer held hostile bytes ended: learn from the events how.
    fn resync(&mut self, f: &Flight) {
        self.inbound_tainted = true;
        self.must_fresh = false;
        self.expected.push_back(Expect::Any(f.kind));
        self.learned_len = Some(f.len);
        while let Some(event) = self.session.poll_event() {
            let event = owned(event);
            self.on_event(event);
        }
        let unreported = self.expected.iter().any(|e| matches!(e, Expect::Any(_)));
        self.expected.retain(|e| !matches!(e, Expect::Any(_)));
        self.learned_len = None;
        if unreported && !self.closed {
            // No failure reported: the answer was taken as a success.
            assert!(!self.session.is_closed());
            self.confirmed += f.len;
            self.failures = 0;
            self.opened = true;
            self.latest_id = self.session.session_id().map(str::to_owned);
        }
    }

    // The driver.

    fn pump(&mut self) {
        loop {
            self.out.clear();
            let Some(t) = self.session.poll_transmit(self.now, &mut self.out) else {
                return;
            };
            let (destination, connection, kind, len) =
                (t.destination.clone(), t.connection, t.kind, t.len);
            assert!(!self.closed, "a request after the session ended");
            assert!(self.flight.is_none(), "two requests in flight");
            assert!(
                self.awaiting.is_none() || kind == RequestKind::Poll,
                "commands sent while awaiting a decision"
            );
            assert_eq!(len, self.out.len());
            assert_eq!(self.session.in_flight(), Some(kind));
            assert!(self.session.poll_transmit(self.now, &mut Vec::new()).is_none());
            let gateway = self.session.gateway().clone();
            let want = if self.p.proxy { proxy_endpoint() } else { gateway.clone() };
            assert_eq!(destination, want);
            if self.must_fresh || gateway != self.gateway_at_last_request {
                assert_eq!(connection, Connection::Fresh, "a dead connection reused");
            }
            self.gateway_at_last_request = gateway;
            self.check_request(kind);
            let mut deadline = self.now + self.p.request_timeout();
            if kind == RequestKind::Poll && self.p.poll % 3 == 2 {
                deadline += Duration::from_secs(10);
            }
            let body_len = self.last_body_len;
            self.flight = Some(Flight {
                kind,
                len: body_len,
                fresh: connection == Connection::Fresh,
                deadline,
                tainted: false,
                reply: None,
                delivered: 0,
            });
            self.wire.clear();
            self.must_fresh = false;
        }
    }

    /// Decodes the request as the gateway would and checks it against the caller's stream.
    fn check_request(&mut self, kind: RequestKind) {
        let limits = HttpLimits { max_head_bytes: 1 << 16, max_body_bytes: 1 << 20 };
        let mut decoder = RequestDecoder::new(limits);
        let mut input = self.out.as_slice();
        let mut body = Vec::new();
        loop {
            match decoder.decode(&mut input) {
                Ok(RequestStep::Head | RequestStep::NeedMore) => {}
                Ok(RequestStep::Body(b)) => body.extend_from_slice(b),
                Ok(RequestStep::Complete) => break,
                Err(e) => panic!("the gateway refuses the request: {e:?}"),
            }
            assert!(decoder.started(), "an empty request");
        }
        assert!(input.is_empty(), "bytes after the request");
        let query = decoder.head().query().expect("a valid query");
        match kind {
            RequestKind::Open => {
                assert!(!self.opened, "an open request after the session opened");
                assert_eq!(query.action(), Some(QueryAction::Open));
                assert_eq!(query.ip(), Some(TARGET_IP));
                assert!(!body.is_empty());
            }
            RequestKind::Send | RequestKind::Poll => {
                assert!(self.opened, "a {kind:?} before the session opened");
                let action = (kind == RequestKind::Poll).then_some(QueryAction::Poll);
                assert_eq!(query.action(), action);
                assert_eq!(body.is_empty(), kind == RequestKind::Poll);
                if let Some(id) = &self.latest_id {
                    assert_eq!(query.session_id(), Some(id.as_str()), "not the latest SessionID");
                }
            }
        }
        // The body is the caller's next commands, whole, from the first unconfirmed byte.
        let queued = &self.stream[self.confirmed..];
        assert!(queued.starts_with(&body), "the body is not the next queued bytes");
        let lengths = command_lengths(queued);
        let mut total = 0;
        let mut count = 0;
        while total < body.len() {
            total += lengths.get(count).copied().expect("the body ends inside a command");
            count += 1;
        }
        assert_eq!(total, body.len(), "the body ends inside a command");
        if kind == RequestKind::Poll {
            assert!(
                lengths.is_empty() || self.awaiting.is_some(),
                "a poll while whole commands wait"
            );
        } else {
            assert!(count == 1 || total <= self.p.max_request_body(), "request body too large");
            if let Some(next) = lengths.get(count) {
                assert!(total + next > self.p.max_request_body(), "commands not coalesced");
            }
        }
        self.last_body_len = body.len();
    }

    /// Invariants after every operation.
    fn check(&mut self) {
        assert_eq!(self.session.queued_bytes(), self.stream.len() - self.confirmed);
        assert!(self.session.queued_bytes() <= self.p.max_queued() + 5, "queue limit broken");
        let waiting = (1 + 4 * usize::from(self.p.max_inbound)).max(MAX_LINE + 2 + MAX_PAYLOAD);
        let bound = waiting + self.p.max_body() as usize;
        assert!(self.session.inbound_bytes() <= bound, "inbound limit broken");
        if let Some(at) = self.session.poll_timeout() {
            assert!(at > self.now, "poll_timeout() is due but nothing happens");
        }
        if self.closed {
            assert!(self.session.is_closed(), "the session should have ended");
        }
        if self.session.is_closed() {
            if !self.closed {
                // Only unframable server bytes end a session unforeseen.
                assert!(self.inbound_tainted, "the session ended unforeseen");
                self.closed = true;
                self.flight = None;
            }
            assert!(self.session.poll_transmit(self.now, &mut Vec::new()).is_none());
            assert_eq!(self.session.poll_timeout(), None);
            return;
        }
        // Conservation: every 2xx body byte taken in is delivered or still held.
        let held = self.delivered.len() as u64 + self.session.inbound_bytes() as u64;
        assert_eq!(held, self.session.stats().msnp_bytes_received, "inbound bytes lost");
        if !self.inbound_tainted && self.flight.is_none() {
            assert_eq!(self.session.stats().msnp_bytes_received, self.pushed);
        }
        if let Some(f) = &self.flight {
            assert_eq!(self.session.in_flight(), Some(f.kind));
            assert_eq!(self.session.poll_timeout(), Some(f.deadline));
        }
    }

    /// Answers every request well until every whole command is confirmed: nothing may stall.
    fn finish(&mut self) {
        let ok = Answer {
            kind: AnswerKind::Ok,
            framing: 0,
            interim: false,
            close: false,
            new_commands: 0,
            take: 0,
            id: 0,
            gw: 0,
        };
        for _ in 0..4096 {
            self.drain(true);
            if self.session.is_closed() {
                break;
            }
            let whole: usize = command_lengths(&self.stream[self.confirmed..]).iter().sum();
            // A poll in flight carries nothing (long polling always has one); one whose answer
            // is arriving is let finish, so that its bytes are counted.
            let idle_poll =
                |f: &Flight| f.kind == RequestKind::Poll && f.delivered == 0 && !f.tainted;
            if whole == 0 && self.flight.as_ref().is_none_or(idle_poll) {
                break;
            }
            if self.session.is_closed() {
                break;
            }
            if self
                .flight
                .as_ref()
                .is_some_and(|f| f.tainted || f.reply.as_ref().is_some_and(|r| r.close_delimited))
            {
                self.step(Op::Deliver(0));
                self.step(Op::Eof);
            } else if self.flight.is_some() {
                self.step(Op::Respond(ok));
                self.step(Op::Deliver(0));
            } else {
                assert!(self.session.poll_timeout().is_some(), "commands wait and nothing is due");
                self.step(Op::Timeout);
            }
        }
        self.drain(true);
        if !self.session.is_closed() {
            let whole: usize = command_lengths(&self.stream[self.confirmed..]).iter().sum();
            assert_eq!(whole, 0, "whole commands never confirmed");
            if !self.inbound_tainted {
                let held = self.delivered.len() + self.session.inbound_bytes();
                assert_eq!(held as u64, self.pushed);
            }
        }
    }
}

/// An event copied out of the session.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Owned {
    Established(String),
    Inbound(Vec<u8>),
    Failed(RequestKind, SessionError, Recovery),
    Closed(CloseReason, usize),
    /// Anything else, described.
    Note(String),
}

fn owned(event: Event<'_>) -> Owned {
    match event {
        Event::Notice(Notice::Established { session_id }) => Owned::Established(session_id),
        Event::Command(cmd) => Owned::Inbound(cmd.as_bytes().to_vec()),
        Event::Data(bytes) => Owned::Inbound(bytes.to_vec()),
        Event::Notice(Notice::RequestFailed { kind, error, recovery }) => {
            Owned::Failed(kind, error, recovery)
        }
        Event::Closed(closed) => Owned::Closed(closed.reason, closed.unsent_bytes),
        other => Owned::Note(format!("{other:?}")),
    }
}

/// Sessions driven by an arbitrary sequence of caller, gateway, network and clock operations
/// on a fake clock starting at `epoch`: one request in flight, limits held, commands neither
/// lost nor reordered beyond what the resend policy allows, failures reported as the policy
/// says, and nothing stalls.
pub fn client_session(data: &[u8], epoch: Instant) {
    let mut u = Unstructured::new(data);
    let Ok(p) = Params::arbitrary(&mut u) else {
        return;
    };
    let Some(mut w) = World::new(p, epoch) else {
        return;
    };
    let mut ops = 0;
    while !u.is_empty() && ops < 512 {
        let Ok(op) = Op::arbitrary(&mut u) else {
            break;
        };
        w.step(op);
        ops += 1;
    }
    w.finish();
}

/// A close that only an error found early in a head causes (a partial head is parsed again
/// only once a line ends in it).
fn head_error(e: &Owned) -> bool {
    matches!(
        e,
        Owned::Closed(
            CloseReason::Failed(SessionError::Remote(RemoteError::Http(
                HttpError::MalformedHead(_)
                    | HttpError::TooManyHeaders
                    | HttpError::HeadTooLarge { .. }
            ))),
            _
        )
    )
}

/// What the other run may report instead of an early head error: the error itself, or the
/// connection ending inside the head.
fn late_head_error(e: &Owned) -> bool {
    head_error(e)
        || matches!(
            e,
            Owned::Closed(
                CloseReason::Failed(SessionError::Network(NetworkError::ConnectionClosed {
                    response_started: true
                })),
                _
            )
        )
}

/// One response to an open request, fed whole and cut as the input says: the same events and
/// the same session state, except that a bad byte in a partial head shows when its line ends.
///
/// Input: a settings byte, a cutting byte, then the response.
pub fn session_split(data: &[u8], epoch: Instant) {
    let Some((&[cfg, cut_seed], wire)) = data.split_first_chunk::<2>() else {
        return;
    };
    let whole = split_run(cfg, &[wire], epoch);
    let cut = split_run(cfg, &split(wire, u64::from(cut_seed) << 32 | wire.len() as u64), epoch);
    if whole == cut {
        return;
    }
    let (a, b) = if whole.0.len() >= cut.0.len() { (&whole.0, &cut.0) } else { (&cut.0, &whole.0) };
    let same_prefix =
        a.len() - b.len() <= 1 && a[..b.len().min(a.len() - 1)] == b[..b.len().min(a.len() - 1)];
    assert!(same_prefix && !a.is_empty(), "events differ: {:?} vs {:?}", whole.0, cut.0);
    let last = &a[a.len() - 1];
    let ok = if a.len() == b.len() {
        let other = &b[b.len() - 1];
        (head_error(last) && late_head_error(other)) || (head_error(other) && late_head_error(last))
    } else {
        // The other run still waits for the end of the bad line.
        head_error(last)
    };
    assert!(ok, "events differ: {:?} vs {:?}", whole.0, cut.0);
}

fn split_run(cfg: u8, pieces: &[&[u8]], now: Instant) -> (Vec<Owned>, String) {
    let mut config = ClientConfig::new(gateway_endpoint());
    config.output = if cfg & 1 == 0 { OutputMode::Commands } else { OutputMode::Bytes };
    config.http_limits = HttpLimits {
        max_head_bytes: [64, 256, 1024, 16384][usize::from(cfg >> 1 & 3)],
        max_body_bytes: [16, 256, 4096, 1 << 20][usize::from(cfg >> 3 & 3)],
    };
    config.framer_limits = FramerLimits { max_line_bytes: 32, max_payload_bytes: 64 };
    let eof = cfg & 0x20 != 0;
    let Ok(mut s) = Session::new(config, Target::notification(TARGET_IP), now) else {
        return (Vec::new(), String::new());
    };
    let _ = s.send(b"VER 1 MSNP8 CVR0\r\n");
    assert!(s.poll_transmit(now, &mut Vec::new()).is_some());
    for piece in pieces {
        s.handle_input(now, piece);
    }
    if eof {
        s.handle_eof(now);
    }
    let mut events = Vec::new();
    while let Some(e) = s.poll_event() {
        events.push(owned(e));
    }
    let closed = events.last().is_some_and(|e| matches!(e, Owned::Closed(..)));
    let state = if closed {
        String::new()
    } else {
        format!(
            "id={:?} gw={} in_flight={:?} queued={} timeout={:?} stats={:?}",
            s.session_id(),
            s.gateway(),
            s.in_flight(),
            s.queued_bytes(),
            s.poll_timeout().map(|t| t - now),
            s.stats()
        )
    };
    (events, state)
}
