//! One session: the state of its backend connection, the one request it holds, the bytes
//! queued both ways, and the answers it gives; and the gateway's handling of sessions.

use std::time::{Duration, Instant};

use crate::wire::SessionResponse;

use super::connection::{AnswerHead, Reply};
use super::drive::{Action, ConnectionId, Transmit};
use super::ids::{IdSource, IdText};
use super::machine::{Gateway, Settings};
use super::refusal::Refusal;
use super::slab::BackendId;
use super::streams::{Commit, Downstream, Upstream};
use super::timers::TimerKey;

/// The session's connection to its backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BackendState {
    /// The connection is being made.
    Connecting,
    /// Connected; `paused` while its queue is full (the driver does not read it).
    Open { paused: bool },
    /// The backend closed: what it sent still goes to the client.
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReqState {
    /// The body is arriving.
    Receiving,
    /// Complete, held until `until` (or until something can be answered).
    Held { until: Instant },
    /// The answer is due at the next `poll_transmit`.
    Answering,
}

/// The one request a session has in flight.
#[derive(Clone, Copy, Debug)]
pub(super) struct Request {
    pub(super) conn: ConnectionId,
    pub(super) state: ReqState,
    lifespan: Option<u32>,
    has_body: bool,
    /// Its commands were passed on: it waits for what the backend sends after them.
    forwarded: bool,
    /// While waiting for that reply: the latest the answer may go, once bytes flow.
    reply_cap: Option<Instant>,
}

impl Request {
    pub(super) fn new(conn: ConnectionId, lifespan: Option<u32>) -> Self {
        Self {
            conn,
            state: ReqState::Receiving,
            lifespan,
            has_body: false,
            forwarded: false,
            reply_cap: None,
        }
    }
}

/// One gateway session: the MSNP connection to its backend and the bytes queued both ways.
#[derive(Debug)]
pub(super) struct Session {
    stable: u64,
    suffix: u32,
    pub(super) backend: BackendState,
    /// The next response ends the session (after `OUT`, or a concurrent request).
    pub(super) closing: bool,
    /// A response gave the client this session's ID.
    issued: bool,
    in_backend_queue: bool,
    /// The client sent `PNG`s the gateway answers with a `QNG` in the next response.
    qng_due: bool,
    pub(super) request: Option<Request>,
    idle_since: Instant,
    /// The earliest timer entry this session has in the heap.
    pub(super) armed: Option<Instant>,
    pub(super) down: Downstream,
    pub(super) up: Upstream,
}

/// What writing a session's answer left to do.
pub(super) struct AnswerDone {
    /// It carried `Session=close`: end the session.
    pub(super) close: bool,
    /// The queue drained enough to read the paused backend again.
    pub(super) resume: bool,
}

impl Session {
    /// A session opened by the request on `conn`, connecting to its backend.
    pub(super) fn new(stable: u64, conn: ConnectionId, now: Instant) -> Self {
        Self {
            stable,
            suffix: 0,
            backend: BackendState::Connecting,
            closing: false,
            issued: false,
            in_backend_queue: false,
            qng_due: false,
            request: Some(Request::new(conn, None)),
            idle_since: now,
            armed: None,
            down: Downstream::default(),
            up: Upstream::default(),
        }
    }

    /// The part of the ID that stays.
    pub(super) fn stable(&self) -> u64 {
        self.stable
    }

    /// The part of the ID that changes with every response.
    pub(super) fn suffix(&self) -> u32 {
        self.suffix
    }

    /// Heap bytes held in its queues.
    pub(super) fn buffered_capacity(&self) -> usize {
        self.down.capacity() + self.up.capacity()
    }

    /// Its request is complete and held for something to answer with.
    pub(super) fn is_held(&self) -> bool {
        matches!(self.request, Some(Request { state: ReqState::Held { .. }, .. }))
    }

    /// Whether a response would carry something (or must go now).
    fn deliverable(&self, settings: &Settings) -> bool {
        let ended = self.closing || self.backend == BackendState::Closed;
        if ended || (self.qng_due && self.down.at_boundary()) {
            return true;
        }
        let config = &settings.config;
        let force = self.down.len() >= config.max_queued_bytes;
        self.down.cut(config.max_response_body_bytes, force, settings.framing()).len > 0
    }

    /// When its timer should fire: the end of the hold, or of the idle time.
    fn deadline(&self, idle_timeout: Duration) -> Option<Instant> {
        match self.request {
            Some(Request { state: ReqState::Held { until }, .. }) => Some(until),
            Some(_) => None,
            None => Some(self.idle_since + idle_timeout),
        }
    }

    /// Writes a `200`: the gateway's `QNG` if one is due, whole commands up to the cap, the
    /// new ID, and `Session=close` when this is the last answer. The request is answered.
    pub(super) fn write_answer(
        &mut self,
        settings: &Settings,
        ids: &mut IdSource,
        now: Instant,
        head: AnswerHead<'_>,
        out: &mut Vec<u8>,
    ) -> AnswerDone {
        let config = &settings.config;
        let qng = config.ping.qng().filter(|_| self.qng_due && self.down.at_boundary());
        if qng.is_some() {
            self.qng_due = false;
        }
        let qng = qng.as_ref().map_or(&[][..], |qng| qng.as_bytes());
        let backend_closed = self.backend == BackendState::Closed;
        let force = backend_closed || self.closing || self.down.len() >= config.max_queued_bytes;
        let cap = config.max_response_body_bytes - qng.len();
        let cut = self.down.cut(cap, force, settings.framing());
        let close = self.closing || (backend_closed && self.down.len() == cut.len);
        self.suffix = ids.suffix(self.suffix);
        self.issued = true;
        let id = IdText::new(self.stable, self.suffix);
        settings.encoder.encode_session(
            out,
            &SessionResponse {
                session_id: id.as_str(),
                session_close: close,
                connection: head.connection,
                allow_origin: head.origin,
                body: &[qng, self.down.front(cut.len)],
            },
        );
        self.down.consume(cut);
        self.request = None;
        self.idle_since = now;
        let drained = self.down.len() <= config.max_queued_bytes / 2;
        let resume = self.backend == BackendState::Open { paused: true } && drained;
        if resume {
            self.backend = BackendState::Open { paused: false };
        }
        AnswerDone { close, resume }
    }
}

impl Gateway {
    /// Bytes from a backend, as many as its queue takes; see
    /// [`handle_backend_input`](Self::handle_backend_input).
    pub(super) fn backend_input(&mut self, now: Instant, key: BackendId, bytes: &[u8]) -> usize {
        let max = self.settings.config.max_queued_bytes;
        let Some(s) = self.sessions.get_mut(key) else {
            return bytes.len();
        };
        match s.backend {
            BackendState::Closed => return bytes.len(),
            // Data proves the connection; the driver may report it later or never.
            BackendState::Connecting => self.handle_backend_connected(now, key),
            BackendState::Open { .. } => {}
        }
        let Some(s) = self.sessions.get_mut(key) else {
            return bytes.len();
        };
        let n = bytes.len().min(max.saturating_sub(s.down.len()));
        s.down.push(&bytes[..n]);
        let pause = s.backend == BackendState::Open { paused: false } && s.down.len() >= max;
        if pause {
            s.backend = BackendState::Open { paused: true };
        }
        let held = s.is_held() && matches!(s.backend, BackendState::Open { .. });
        self.stats.bytes_from_backends += n as u64;
        if pause {
            self.stats.backend_pauses += 1;
            self.actions.push_back(Action::PauseBackend(key));
        }
        if held && n > 0 {
            self.heard(key);
        }
        n
    }

    /// The next bytes for a backend, if one has some ready.
    pub(super) fn transmit_backend(&mut self, out: &mut Vec<u8>) -> Option<Transmit> {
        while let Some(key) = self.ready_backends.pop_front() {
            let Some(s) = self.sessions.get_mut(key) else {
                continue;
            };
            s.in_backend_queue = false;
            let ready = s.up.ready();
            if !matches!(s.backend, BackendState::Open { .. }) || ready.is_empty() {
                continue;
            }
            out.extend_from_slice(ready);
            let len = ready.len();
            s.up.take_ready();
            self.stats.bytes_to_backends += len as u64;
            return Some(Transmit::Backend { backend: key, len });
        }
        None
    }

    /// A session's request arrived whole: its commands are queued for the backend (`PNG`s
    /// taken out as the policy says), and it is answered or held.
    pub(super) fn complete_session_request(&mut self, id: ConnectionId, key: BackendId) {
        let framing = self.settings.framing();
        let ping = self.settings.config.ping;
        let Some(s) = self.sessions.get_mut(key) else {
            return self.set_reply(id, Reply::Refused(Refusal::SessionEnded));
        };
        let staged = s.up.staged();
        let mut pings = 0;
        // A session ending for a concurrent request still passes this request's commands on:
        // its answer (a `200`) confirms them. Only a backend that is gone cannot take them.
        if s.backend == BackendState::Closed {
            s.up.abort();
        } else {
            match s.up.commit(framing, ping) {
                Commit::PingRefused => {
                    self.stats.refused_pings += 1;
                    return self.end_session(key, Refusal::PingRefused);
                }
                Commit::Queued { out, pings: found } => {
                    s.closing |= out;
                    pings = found;
                }
            }
        }
        s.qng_due |= pings > 0;
        let forward = !s.up.ready().is_empty();
        if let Some(request) = s.request.as_mut() {
            request.has_body = staged > 0;
            request.forwarded = forward;
        }
        self.stats.answered_pings += u64::from(pings);
        if forward {
            self.queue_backend(key);
        }
        self.settle(key);
    }

    /// A session's request is complete (or its backend just connected): answer it now, or
    /// hold it.
    pub(super) fn settle(&mut self, key: BackendId) {
        let config = &self.settings.config;
        let now = self.now;
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let deliverable = s.deliverable(&self.settings);
        let (backend, closing, full) =
            (s.backend, s.closing, s.down.len() >= config.max_response_body_bytes);
        let Some(request) = s.request.as_mut() else {
            return;
        };
        if backend == BackendState::Connecting {
            request.state = ReqState::Held { until: now + config.connect_timeout };
            return self.arm_session(key);
        }
        let reply_wait = config.reply_wait;
        let ended = closing || backend == BackendState::Closed;
        if request.forwarded && !reply_wait.is_zero() && !full && !ended {
            // Answer with what the backend sends after these commands, not with what it
            // queued before them: hold until it has said something and paused.
            request.reply_cap = Some(now + reply_wait + config.reply_quiet_gap);
            request.state = ReqState::Held { until: now + reply_wait };
            return self.arm_session(key);
        }
        if deliverable {
            return self.answer(key);
        }
        let hold = if request.has_body {
            reply_wait
        } else {
            request.lifespan.map_or(Duration::ZERO, |secs| {
                Duration::from_secs(u64::from(secs)).min(config.max_lifespan)
            })
        };
        if hold.is_zero() {
            return self.answer(key);
        }
        request.state = ReqState::Held { until: now + hold };
        self.arm_session(key);
    }

    /// The backend sent bytes while the session's request is held. A poll is answered as soon
    /// as a whole command is queued; a request that carried commands once the backend has been
    /// quiet for [`GatewayConfig::reply_quiet_gap`](super::GatewayConfig::reply_quiet_gap) (a
    /// reply written line by line leaves in one answer), or at once when a whole response is
    /// queued.
    fn heard(&mut self, key: BackendId) {
        let config = &self.settings.config;
        let (quiet_gap, cap) = (config.reply_quiet_gap, config.max_response_body_bytes);
        let now = self.now;
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let full = s.down.len() >= cap;
        let deliverable = s.deliverable(&self.settings);
        let Some(request) = s.request.as_mut() else {
            return;
        };
        if let (Some(reply_cap), false, false) = (request.reply_cap, quiet_gap.is_zero(), full) {
            request.state = ReqState::Held { until: (now + quiet_gap).min(reply_cap) };
            return self.arm_session(key);
        }
        if deliverable {
            self.answer(key);
        }
    }

    /// The session's request is answered at the next `poll_transmit`.
    pub(super) fn answer(&mut self, key: BackendId) {
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let Some(request) = s.request.as_mut() else {
            return;
        };
        request.state = ReqState::Answering;
        let conn = request.conn;
        self.set_reply(conn, Reply::Session(key));
    }

    /// The client gave up on the session's request (its connection ended or timed out).
    pub(super) fn release_request(&mut self, key: BackendId, conn: ConnectionId) {
        let now = self.now;
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        if s.request.is_none_or(|r| r.conn != conn) {
            return;
        }
        if s.request.is_some_and(|r| r.state == ReqState::Receiving) {
            s.up.abort();
        }
        s.request = None;
        s.idle_since = now;
        // An open the client never saw answered, or a session that was ending anyway.
        if !s.issued || s.closing {
            return self.end_session(key, Refusal::SessionEnded);
        }
        self.arm_session(key);
    }

    /// Ends a session: the backend is closed, the ID forgotten. A request still waiting for an
    /// answer is refused for `why`.
    pub(super) fn end_session(&mut self, key: BackendId, why: Refusal) {
        let Some(s) = self.sessions.remove(key) else {
            return;
        };
        self.actions.push_back(Action::CloseBackend(key));
        self.stats.sessions_ended += 1;
        if let Some(request) = s.request {
            self.refuse_session_request(request.conn, key, why);
        }
    }

    /// The session's timer fired: a hold is over, or the session idled out.
    pub(super) fn session_timer(&mut self, key: BackendId) {
        let now = self.now;
        let idle_timeout = self.settings.config.idle_timeout;
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        match s.request {
            Some(Request { state: ReqState::Held { until }, .. }) if now >= until => {
                if s.backend == BackendState::Connecting {
                    self.stats.backend_connect_failures += 1;
                    self.end_session(key, Refusal::BackendTimeout);
                } else {
                    self.answer(key);
                }
            }
            None if now >= s.idle_since + idle_timeout => {
                self.stats.sessions_expired += 1;
                self.end_session(key, Refusal::SessionEnded);
            }
            _ => {}
        }
    }

    /// Offers the session's ready bytes to the backend at the next `poll_transmit`.
    pub(super) fn queue_backend(&mut self, key: BackendId) {
        if let Some(s) = self.sessions.get_mut(key) {
            if !s.in_backend_queue && matches!(s.backend, BackendState::Open { .. }) {
                s.in_backend_queue = true;
                self.ready_backends.push_back(key);
            }
        }
    }

    /// Makes sure the heap holds an entry no later than the session's next deadline.
    pub(super) fn arm_session(&mut self, key: BackendId) {
        let idle_timeout = self.settings.config.idle_timeout;
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let Some(at) = s.deadline(idle_timeout) else {
            return;
        };
        if s.armed.is_none_or(|armed| at < armed) {
            s.armed = Some(at);
            self.push_timer(at, TimerKey::Session(key));
        }
    }
}
