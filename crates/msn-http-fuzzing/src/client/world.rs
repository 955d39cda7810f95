//! The world around one session and the caller's side of it: commands sent in pieces, close
//! and abort, decisions, and every event checked against what the model expects.

use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::time::{Duration, Instant};

use msn_http_core::Endpoint;
use msn_http_core::client::{
    ClientConfig, CloseReason, Notice, OutputMode, PollPolicy, Proxy, Recovery, RequestKind,
    Session, Target, UnconfirmedPolicy,
};
use msn_http_core::error::{RemoteError, SendError, SessionError};
use msn_http_core::msnp::FramerLimits;
use msn_http_core::wire::HttpLimits;

use super::{
    MAX_COMMAND, MAX_LINE, MAX_PAYLOAD, Op, Owned, Params, TARGET_IP, caller_command,
    command_lengths, gateway_endpoint, owned, proxy_endpoint,
};

/// How a gateway answer will end the request once all of it has arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Success {
        close: bool,
    },
    Rejected,
    ServerError(u16),
    /// Ends the session as soon as the head is read.
    Fatal(RemoteError),
}

#[derive(Clone, Debug)]
pub(super) struct Reply {
    /// Where its final head (after any interim `100`) and its body start in the wire.
    pub(super) final_start: usize,
    pub(super) body_start: usize,
    pub(super) outcome: Outcome,
    pub(super) close_delimited: bool,
    pub(super) keep_alive: bool,
    /// The server bytes it carries: this range of the gateway's outbox.
    pub(super) server_bytes: Range<usize>,
    /// The `SessionID` its head names, the gateways it names (`GW-IP`, `X-MSN-Host`), and
    /// whether it names a bad one.
    pub(super) id: String,
    pub(super) named: Vec<Endpoint>,
    pub(super) names_bad_host: bool,
}

#[derive(Clone, Debug)]
pub(super) struct Flight {
    pub(super) kind: RequestKind,
    pub(super) len: usize,
    pub(super) fresh: bool,
    pub(super) deadline: Instant,
    pub(super) tainted: bool,
    pub(super) reply: Option<Reply>,
    /// Bytes of the reply delivered.
    pub(super) delivered: usize,
    /// Where it went.
    pub(super) gateway: Endpoint,
    /// It went to a host a move led to, where nothing has answered yet: a broken head there
    /// is a failed request (no gateway), not the end of the session.
    pub(super) unproven: bool,
}

/// A request failure or close the session must report next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Expect {
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
pub(super) enum Cause {
    Delivered,
    /// EOF ended a close-delimited answer that had arrived whole.
    EofComplete,
    Eof,
    Timeout,
    ConnectFailed,
}

pub(super) struct World {
    pub(super) p: Params,
    pub(super) session: Session,
    pub(super) now: Instant,
    // The caller's stream and what the gateway confirmed of it.
    pub(super) stream: Vec<u8>,
    pub(super) confirmed: usize,
    pub(super) close_end: Option<usize>,
    pub(super) awaiting: Option<usize>,
    pub(super) raw_sent: bool,
    pub(super) pending_pieces: VecDeque<Vec<u8>>,
    pub(super) next_command: usize,
    pub(super) failures: u32,
    pub(super) opened: bool,
    /// Set once the session ends: later calls must do nothing.
    pub(super) closed: bool,
    // The request in flight and its connection.
    pub(super) flight: Option<Flight>,
    pub(super) wire: Vec<u8>,
    pub(super) must_fresh: bool,
    pub(super) gateway_at_last_request: Endpoint,
    // The gateway's side.
    pub(super) outbox: Vec<u8>,
    /// The commands in `outbox`, in order.
    pub(super) server_commands: Vec<Vec<u8>>,
    pub(super) sent: usize,
    pub(super) id_counter: u32,
    pub(super) latest_id: Option<String>,
    /// The `SessionID` of the first 2xx head that reached the session.
    pub(super) first_id: Option<String>,
    /// 2xx body bytes the session must have taken in.
    pub(super) pushed: u64,
    /// Gateways the heads that reached the session named, and whether one named a bad host.
    pub(super) named: Vec<Endpoint>,
    pub(super) bad_host_named: bool,
    /// Bytes arrived with no request in flight.
    pub(super) unsolicited_sent: bool,
    // What the caller saw.
    pub(super) expected: VecDeque<Expect>,
    pub(super) delivered: Vec<u8>,
    pub(super) delivered_commands: usize,
    pub(super) established: bool,
    pub(super) closed_event: bool,
    /// Where the events say requests go.
    pub(super) announced: Endpoint,
    /// The host whose answer last completed as a success (the configured gateway at first).
    pub(super) answered_at: Endpoint,
    /// Where the first request after that success went: a move took effect then, and only a
    /// fallback changes the host again before the next success.
    pub(super) first_after_success: Option<Endpoint>,
    pub(super) inbound_tainted: bool,
    pub(super) out: Vec<u8>,
    /// Body length and `Lifespan=` of the request just checked.
    pub(super) last_body_len: usize,
    pub(super) last_lifespan: Option<u32>,
    /// Bytes of the tainted request whose ending is being learned.
    pub(super) learned_len: Option<usize>,
}

impl World {
    pub(super) fn new(p: Params, start: Instant) -> Option<World> {
        let mut c = ClientConfig::new(gateway_endpoint());
        c.unconfirmed = p.unconfirmed;
        c.poll_policy = p.poll;
        c.output = p.output;
        if p.proxy {
            c.proxy = Some(Proxy { endpoint: proxy_endpoint(), credentials: None });
        }
        c.request_timeout = p.request_timeout;
        c.max_queued_bytes = p.max_queued_bytes;
        c.max_request_body_bytes = p.max_request_body_bytes;
        c.max_inbound_bytes = p.max_inbound_bytes;
        c.max_consecutive_failures = p.max_consecutive_failures;
        c.http_limits = HttpLimits { max_head_bytes: 1024, max_body_bytes: p.max_body_bytes };
        c.framer_limits = FramerLimits { max_line_bytes: MAX_LINE, max_payload_bytes: MAX_PAYLOAD };
        let session = Session::new(c, Target::notification(TARGET_IP), start).ok()?;
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
            server_commands: Vec::new(),
            sent: 0,
            id_counter: 0,
            latest_id: None,
            first_id: None,
            pushed: 0,
            named: Vec::new(),
            bad_host_named: false,
            unsolicited_sent: false,
            expected: VecDeque::new(),
            delivered: Vec::new(),
            delivered_commands: 0,
            established: false,
            closed_event: false,
            announced: gateway_endpoint(),
            answered_at: gateway_endpoint(),
            first_after_success: None,
            inbound_tainted: false,
            out: Vec::new(),
            last_body_len: 0,
            last_lifespan: None,
            learned_len: None,
        })
    }

    pub(super) fn step(&mut self, op: Op) {
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
                match self.flight.as_mut() {
                    Some(f) => {
                        // The bytes may become body bytes of the answer in progress.
                        f.tainted = true;
                        self.inbound_tainted = true;
                    }
                    // With no request in flight they are reported, and dropped.
                    None => self.unsolicited_sent |= !bytes.is_empty(),
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

    fn after_send(&mut self, piece: &[u8], result: Result<(), SendError>, generated: bool) {
        let queued = self.stream.len() - self.confirmed;
        match result {
            Ok(()) => {
                assert!(!self.closed && self.close_end.is_none(), "send accepted after close");
                // Past the limit only while no whole command waits, by at most one command.
                let alone = command_lengths(&self.stream[self.confirmed..]).is_empty();
                assert!(
                    queued + piece.len() <= self.p.max_queued_bytes
                        || (alone && piece.len() <= self.p.max_queued_bytes.max(MAX_COMMAND)),
                    "queue limit broken"
                );
                self.stream.extend_from_slice(piece);
            }
            Err(SendError::QueueFull { queued: q, limit }) => {
                assert_eq!((q, limit), (queued, self.p.max_queued_bytes));
                let alone = command_lengths(&self.stream[self.confirmed..]).is_empty();
                assert!(q + piece.len() > limit, "refused though it fits");
                assert!(!alone || piece.len() > limit.max(MAX_COMMAND), "refused for good");
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
        self.offer_pieces();
    }

    /// Offers the pieces of the current command in order, until one is refused; the caller
    /// keeps the rest for later.
    pub(super) fn offer_pieces(&mut self) {
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
        assert_eq!(self.session.unsent(), &self.stream[self.confirmed..]);
    }

    pub(super) fn drain(&mut self, resend: bool) {
        while let Some(event) = self.session.poll_event() {
            let event = owned(event);
            self.on_event(event);
        }
        assert!(
            self.expected.iter().all(|e| matches!(e, Expect::Any(_))),
            "events not reported: {:?}",
            self.expected
        );
        assert_eq!(self.session.gateway(), &self.announced, "the gateway moved unannounced");
        // Drained, an open session always has something ahead: it never waits on nothing,
        // even while a decision is pending.
        if self.established && !self.session.is_closed() {
            assert!(self.session.poll_timeout().is_some(), "an open session waits on nothing");
        }
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

    pub(super) fn on_event(&mut self, event: Owned) {
        assert!(!self.closed_event, "{event:?} after Closed");
        match event {
            Owned::Command(bytes) => {
                assert_eq!(self.p.output, OutputMode::Commands, "a command in byte mode");
                if !self.inbound_tainted {
                    let want = self.server_commands.get(self.delivered_commands);
                    assert_eq!(Some(&bytes), want, "not the next server command, whole");
                }
                self.delivered_commands += 1;
                self.on_inbound(&bytes);
            }
            Owned::Data(bytes) => {
                assert_eq!(self.p.output, OutputMode::Bytes, "bytes in command mode");
                assert!(!bytes.is_empty());
                self.on_inbound(&bytes);
            }
            Owned::Notice(notice) => self.on_notice(notice),
            Owned::Closed(reason, unsent) => self.on_closed(reason, unsent),
        }
    }

    fn on_inbound(&mut self, bytes: &[u8]) {
        self.delivered.extend_from_slice(bytes);
        if !self.inbound_tainted {
            assert!(
                self.outbox.starts_with(&self.delivered),
                "server bytes lost, reordered or duplicated"
            );
        }
    }

    fn on_notice(&mut self, notice: Notice) {
        let trusted = !self.inbound_tainted;
        match notice {
            Notice::Established { session_id } => {
                assert!(!self.established, "Established twice");
                if let Some(first) = &self.first_id {
                    assert_eq!(&session_id, first, "not the first SessionID");
                }
                self.established = true;
            }
            Notice::RequestFailed { kind, error, recovery } => match self.expected.pop_front() {
                Some(Expect::Any(k)) => {
                    assert_eq!(k, kind);
                    self.learn_failure(kind, recovery);
                }
                Some(want) => {
                    assert_eq!(want, Expect::Failed { kind, error, recovery }, "wrong report")
                }
                None => panic!("unexpected failure {kind:?} {error:?} {recovery:?}"),
            },
            Notice::GatewayMoved { from, to } => {
                assert_eq!(from, self.announced, "a move from elsewhere");
                assert!(!trusted || self.named.contains(&to), "moved to {to}, never named");
                self.announced = to;
            }
            Notice::GatewayFallback { unreachable, to } => {
                assert_eq!(unreachable, self.announced, "a fallback from elsewhere");
                assert_eq!(to, gateway_endpoint(), "a fallback to another than the configured");
                self.announced = to;
            }
            Notice::MoveRefused { to, .. } => {
                assert!(!trusted || self.named.contains(&to), "refused {to}, never named");
            }
            Notice::PollsHeld { .. } => {
                let long_poll = matches!(self.p.poll, PollPolicy::LongPoll { .. });
                assert!(long_poll, "PollsHeld without long polling");
            }
            Notice::Warning(error) => {
                let explained = match &error {
                    SessionError::Remote(RemoteError::InvalidGatewayAddress(_)) => {
                        self.bad_host_named
                    }
                    SessionError::Remote(RemoteError::UnsolicitedData { .. }) => {
                        self.unsolicited_sent
                    }
                    _ => false,
                };
                assert!(!trusted || explained, "an unexplained warning: {error:?}");
            }
            other => panic!("a notice the harness does not model: {other:?}"),
        }
    }

    fn on_closed(&mut self, reason: CloseReason, unsent: usize) {
        self.closed_event = true;
        self.closed = true;
        let msnp_failure =
            matches!(reason, CloseReason::Failed(SessionError::Remote(RemoteError::Msnp(_))));
        if msnp_failure && self.inbound_tainted {
            // Unframable input ends the session ahead of what was queued; the tainted request
            // may have been confirmed first.
            self.expected.clear();
            self.learn_unsent(unsent);
        } else {
            match self.expected.pop_front() {
                // The tainted request may have been confirmed before the close.
                Some(Expect::Any(_)) => self.learn_unsent(unsent),
                Some(want) => assert_eq!(want, Expect::Closed(reason), "wrong close"),
                None => panic!("unexpected close {reason:?}"),
            }
            assert!(self.expected.is_empty(), "not reported: {:?}", self.expected);
        }
        assert_eq!(unsent, self.stream.len() - self.confirmed, "unsent bytes");
        assert_eq!(self.session.unsent(), &self.stream[self.confirmed..]);
    }

    /// A close ended a tainted request: its bytes were confirmed or are all unsent.
    fn learn_unsent(&mut self, unsent: usize) {
        let len = self.learned_len.take().unwrap_or(0);
        let queued = self.stream.len() - self.confirmed;
        assert!(unsent == queued || unsent + len == queued, "unsent bytes");
        self.confirmed = self.stream.len() - unsent;
    }

    /// The session reported how a tainted request failed: follow it, checking it is a
    /// recovery the policy allows.
    fn learn_failure(&mut self, kind: RequestKind, recovery: Recovery) {
        self.failures += 1;
        let len = self.learned_len.take().unwrap_or(0);
        let policy = self.p.unconfirmed;
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
}
