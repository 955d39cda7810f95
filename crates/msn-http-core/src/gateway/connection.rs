//! One client connection's HTTP state: the request being read, the answer due, the one being
//! written; and the gateway's handling of connections, request by request.

use std::time::Instant;

use crate::wire::{ConnectionHeader, HttpLimits, HttpVersion, RequestDecoder, RequestStep};

use super::drive::{Action, ConnectionId, Transmit};
use super::machine::Gateway;
use super::refusal::Refusal;
use super::routing::{Route, classify};
use super::slab::BackendId;
use super::timers::TimerKey;

/// The answer due on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reply {
    /// The `200` of the session this request belongs to.
    Session(BackendId),
    Refused(Refusal),
    Preflight,
}

/// Where the body of the request being read goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sink {
    Session(BackendId),
    /// Read and drop it, then answer.
    Then(Reply),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    Idle {
        since: Instant,
    },
    /// A request is arriving; `sink` is known once its head is.
    Reading {
        since: Instant,
        sink: Option<Sink>,
    },
    /// The request is complete and its session holds it.
    Waiting(BackendId),
    /// The answer is due at the next `poll_transmit`.
    Replying(Reply),
    /// The answer was handed out and the driver has not yet reported all of it written; the
    /// next request waits. `since`: the answer, or the last write progress.
    Sending {
        since: Instant,
        unwritten: usize,
    },
    /// The driver was told to close the connection; it counts until the driver reports the
    /// socket closed. `since` while a last answer is still being written (the driver closes
    /// after it); `None` once it was told to close at once.
    Closing {
        since: Option<Instant>,
        unwritten: usize,
    },
}

impl ConnState {
    /// No byte of a request has arrived since the last answer was written.
    fn is_idle(self) -> bool {
        matches!(self, Self::Idle { .. })
    }

    /// A request has arrived whole and its answer is not written yet.
    fn outstanding(self) -> bool {
        matches!(self, Self::Waiting(_) | Self::Replying(_) | Self::Sending { .. })
    }

    /// The session whose request this connection holds (arriving, complete or being
    /// answered).
    fn session(self) -> Option<BackendId> {
        match self {
            Self::Reading { sink: Some(Sink::Session(key)), .. }
            | Self::Waiting(key)
            | Self::Replying(Reply::Session(key)) => Some(key),
            _ => None,
        }
    }
}

/// One client connection.
#[derive(Debug)]
pub(super) struct Conn {
    decoder: RequestDecoder,
    state: ConnState,
    /// Bytes that arrived while a request was outstanding (a pipelined request).
    stash: Vec<u8>,
    /// Close the connection after the answer.
    close_after: bool,
    in_ready: bool,
    continue_due: bool,
    pub(super) armed: Option<Instant>,
    /// Bytes of this connection counted in `Gateway::head_bytes`.
    accounted: usize,
}

impl Conn {
    pub(super) fn new(limits: HttpLimits, now: Instant) -> Self {
        Self {
            decoder: RequestDecoder::new(limits),
            state: ConnState::Idle { since: now },
            stash: Vec::new(),
            close_after: false,
            in_ready: false,
            continue_due: false,
            armed: None,
            accounted: 0,
        }
    }

    pub(super) fn is_idle(&self) -> bool {
        self.state.is_idle()
    }

    /// How many bytes it reads now, at most (`max_stash`: the pipelining budget).
    pub(super) fn read_budget(&self, max_stash: usize) -> usize {
        match self.state {
            ConnState::Closing { .. } => 0,
            state if state.outstanding() && self.close_after => 0,
            _ => max_stash.saturating_sub(self.stash.len()),
        }
    }

    /// Heap bytes held in its buffers.
    pub(super) fn buffered_capacity(&self) -> usize {
        self.stash.capacity() + self.decoder.buffered()
    }

    /// Heap bytes it holds, buffers and the decoder's own.
    pub(super) fn heap_capacity(&self) -> usize {
        self.decoder.heap_capacity() + self.stash.capacity()
    }
}

/// The parts of an answer's head every answer on a connection shares.
#[derive(Clone, Copy, Debug)]
pub(super) struct AnswerHead<'a> {
    pub(super) connection: ConnectionHeader,
    pub(super) origin: Option<&'a str>,
}

impl Gateway {
    /// The driver wrote answer bytes; see
    /// [`handle_client_written`](Self::handle_client_written).
    pub(super) fn client_written(&mut self, conn: ConnectionId, unwritten: usize) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match c.state {
            ConnState::Sending { .. } if unwritten == 0 => {
                c.state = ConnState::Idle { since: self.now };
                c.decoder.reset();
                let stash = std::mem::take(&mut c.stash);
                self.arm_conn(conn);
                if !stash.is_empty() {
                    let taken = self.feed(conn, &stash);
                    debug_assert_eq!(taken, stash.len(), "the stash fits the budget it came from");
                }
                self.account(conn);
                let idle = self.conns.get(&conn).is_some_and(Conn::is_idle);
                if self.shutting_down && idle {
                    self.close_idle(conn);
                }
            }
            ConnState::Sending { unwritten: before, .. } if unwritten < before => {
                c.state = ConnState::Sending { since: self.now, unwritten };
                self.arm_conn(conn);
            }
            ConnState::Closing { since: Some(_), unwritten: before } if unwritten < before => {
                c.state = ConnState::Closing { since: Some(self.now), unwritten };
                self.arm_conn(conn);
            }
            _ => {}
        }
    }

    /// The connection is gone: a request it carried is given up.
    pub(super) fn client_eof(&mut self, conn: ConnectionId) {
        let Some(c) = self.remove_conn(conn) else {
            return;
        };
        if let Some(key) = c.state.session() {
            self.release_request(key, conn);
        }
    }

    /// The next interim or final answer due on a connection.
    pub(super) fn transmit_client(&mut self, out: &mut Vec<u8>) -> Option<Transmit> {
        loop {
            let id = self.ready_conns.pop_front()?;
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            if !conn.in_ready {
                continue;
            }
            conn.in_ready = false;
            if conn.continue_due {
                conn.continue_due = false;
                if matches!(conn.state, ConnState::Replying(_)) {
                    conn.in_ready = true;
                    self.ready_conns.push_front(id);
                }
                let start = out.len();
                self.settings.encoder.encode_continue(out);
                let len = out.len() - start;
                return Some(Transmit::Client { connection: id, len, close: false, interim: true });
            }
            let ConnState::Replying(reply) = conn.state else {
                continue;
            };
            return Some(self.write_reply(id, reply, out));
        }
    }

    /// Brings `head_bytes` up to date with what a connection buffers; `false` if it is gone.
    pub(super) fn account(&mut self, id: ConnectionId) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        let held = conn.decoder.buffered() + conn.stash.len();
        self.head_bytes = self.head_bytes.saturating_sub(conn.accounted) + held;
        conn.accounted = held;
        true
    }

    /// The driver is to close the connection (after the answer just handed out, with `since`;
    /// at once, without): it reads nothing more and keeps no buffers, but counts until the
    /// driver reports the socket closed.
    fn begin_close(&mut self, id: ConnectionId, since: Option<Instant>) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.state = ConnState::Closing { since, unwritten: usize::MAX };
        conn.stash = Vec::new();
        conn.decoder.reset();
        conn.in_ready = false;
        conn.continue_due = false;
        self.arm_conn(id);
        self.account(id);
    }

    /// Asks the driver to close a connection now: it has no request in flight, or is stuck.
    pub(super) fn close_idle(&mut self, id: ConnectionId) {
        self.begin_close(id, None);
        self.actions.push_back(Action::CloseClient(id));
    }

    fn remove_conn(&mut self, id: ConnectionId) -> Option<Conn> {
        let conn = self.conns.remove(&id)?;
        self.head_bytes = self.head_bytes.saturating_sub(conn.accounted);
        Some(conn)
    }

    /// Decodes client bytes, request after request; returns how many it took. Bytes after a
    /// request whose answer is not written yet are kept, as many as the budget allows.
    pub(super) fn feed(&mut self, id: ConnectionId, bytes: &[u8]) -> usize {
        let max_stash = self.settings.config.http_limits.max_head_bytes;
        let mut input = bytes;
        loop {
            let Some(conn) = self.conns.get_mut(&id) else {
                return bytes.len();
            };
            if let ConnState::Closing { .. } = conn.state {
                return bytes.len();
            }
            if conn.state.outstanding() {
                if conn.close_after {
                    // Nothing after this request will be read.
                    return bytes.len();
                }
                let n = input.len().min(max_stash.saturating_sub(conn.stash.len()));
                conn.stash.extend_from_slice(&input[..n]);
                return bytes.len() - input.len() + n;
            }
            let step = conn.decoder.decode(&mut input);
            if let ConnState::Idle { .. } = conn.state {
                if conn.decoder.started() {
                    conn.state = ConnState::Reading { since: self.now, sink: None };
                    self.arm_conn(id);
                }
            }
            match step {
                Err(e) => {
                    self.fail_request(id, Refusal::Undecodable(e));
                    return bytes.len();
                }
                Ok(RequestStep::NeedMore) => return bytes.len(),
                Ok(RequestStep::Head) => self.on_head(id),
                Ok(RequestStep::Body(data)) => self.on_body(id, data),
                Ok(RequestStep::Complete) => {
                    self.on_complete(id);
                    let settled = self.conns.get(&id).is_none_or(|c| c.state.outstanding());
                    if !settled {
                        // Unreachable: every head routes its request. Stop rather than spin.
                        self.fail_request(id, Refusal::Internal);
                        return bytes.len();
                    }
                }
            }
        }
    }

    /// Answers with a refusal and closes: the request cannot be read further.
    pub(super) fn fail_request(&mut self, id: ConnectionId, why: Refusal) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if let ConnState::Closing { .. } = conn.state {
            return;
        }
        // A session request this connection holds is given up as on EOF; otherwise the
        // session would wait forever for a dead connection.
        let sink = conn.state.session();
        conn.state = ConnState::Replying(Reply::Refused(why));
        conn.close_after = true;
        conn.continue_due = false;
        conn.stash = Vec::new();
        self.push_ready(id);
        if let Some(key) = sink {
            self.release_request(key, id);
        }
    }

    fn on_head(&mut self, id: ConnectionId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let head = conn.decoder.head();
        conn.close_after = !head.keep_alive();
        let expect = head.expects_continue();
        let route = classify(head, &self.settings.config);
        let sink = match route {
            Route::Fail(why) => return self.fail_request(id, why),
            Route::Then(reply) => Ok(Sink::Then(reply)),
            Route::Open { ip, server } => self.open_session(id, ip, server),
            Route::Existing { id: sid, lifespan } => self.attach(id, sid, lifespan),
        };
        let sink = match sink {
            // A client waiting for `100 Continue` would hold back the body we mean to skip.
            Ok(Sink::Then(Reply::Refused(why))) | Err(why) if expect => {
                return self.fail_request(id, why);
            }
            Ok(sink) => sink,
            Err(why) => Sink::Then(Reply::Refused(why)),
        };
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if let ConnState::Reading { since, .. } = conn.state {
            conn.state = ConnState::Reading { since, sink: Some(sink) };
        }
        if expect {
            conn.continue_due = true;
            self.push_ready(id);
        }
    }

    fn on_body(&mut self, id: ConnectionId, data: &[u8]) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        if let ConnState::Reading { sink: Some(Sink::Session(key)), .. } = conn.state {
            if let Some(s) = self.sessions.get_mut(key) {
                s.up.stage(data);
            }
        }
    }

    fn on_complete(&mut self, id: ConnectionId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let ConnState::Reading { sink: Some(sink), .. } = conn.state else {
            return;
        };
        self.stats.requests += 1;
        match sink {
            Sink::Then(reply) => {
                conn.state = ConnState::Replying(reply);
                self.push_ready(id);
            }
            Sink::Session(key) => {
                conn.state = ConnState::Waiting(key);
                self.arm_conn(id);
                self.complete_session_request(id, key);
            }
        }
    }

    pub(super) fn set_reply(&mut self, id: ConnectionId, reply: Reply) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.state = ConnState::Replying(reply);
            self.push_ready(id);
        }
    }

    /// The session `key` ended under the request on `id`: it is refused for `why`, once its
    /// body is read if it is still arriving.
    pub(super) fn refuse_session_request(
        &mut self,
        id: ConnectionId,
        key: BackendId,
        why: Refusal,
    ) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        match conn.state {
            ConnState::Reading { since, sink: Some(Sink::Session(k)) } if k == key => {
                let sink = Some(Sink::Then(Reply::Refused(why)));
                conn.state = ConnState::Reading { since, sink };
            }
            ConnState::Waiting(k) | ConnState::Replying(Reply::Session(k)) if k == key => {
                self.set_reply(id, Reply::Refused(why));
            }
            _ => {}
        }
    }

    /// Writes the answer due on a connection, then readies it for its next request.
    fn write_reply(&mut self, id: ConnectionId, reply: Reply, out: &mut Vec<u8>) -> Transmit {
        let start = out.len();
        let mut ended = None;
        let mut resumed = None;
        let Some(conn) = self.conns.get(&id) else {
            return Transmit::Client { connection: id, len: 0, close: true, interim: false };
        };
        let request = conn.decoder.head();
        let close = conn.close_after;
        let head = AnswerHead {
            connection: ConnectionHeader::answering(
                request.version() == HttpVersion::Http10,
                !close,
            ),
            origin: self.settings.cors().and_then(|c| c.allow_origin(request.origin())),
        };
        let encoder = &self.settings.encoder;
        match reply {
            Reply::Refused(why) => {
                self.stats.error_responses += 1;
                encoder.encode_status(out, why.status(), head.connection, head.origin);
            }
            Reply::Preflight => {
                let max_age = self
                    .settings
                    .cors()
                    .map_or(0, |c| u32::try_from(c.max_age.as_secs()).unwrap_or(u32::MAX));
                encoder.encode_preflight(out, head.connection, head.origin, max_age);
            }
            Reply::Session(key) => match self.sessions.get_mut(key) {
                Some(s) => {
                    let done = s.write_answer(&self.settings, &mut self.ids, self.now, head, out);
                    self.stats.responses += 1;
                    if done.close {
                        ended = Some(key);
                    } else if done.resume {
                        resumed = Some(key);
                    }
                }
                None => {
                    self.stats.error_responses += 1;
                    let status = Refusal::SessionEnded.status();
                    encoder.encode_status(out, status, head.connection, head.origin);
                }
            },
        }
        if let Some(key) = resumed {
            self.actions.push_back(Action::ResumeBackend(key));
        }
        if let Some(key) = ended {
            self.end_session(key, Refusal::SessionEnded);
        }
        let len = out.len() - start;
        if close {
            self.begin_close(id, Some(self.now));
        } else if let Some(conn) = self.conns.get_mut(&id) {
            // The next request is read once this answer is written.
            conn.state = ConnState::Sending { since: self.now, unwritten: usize::MAX };
            self.arm_conn(id);
        }
        if let Reply::Session(key) = reply {
            if Some(key) != ended {
                self.arm_session(key);
            }
        }
        Transmit::Client { connection: id, len, close, interim: false }
    }

    /// The connection's timer fired: it idled past its keep-alive, its request is too slow,
    /// or it takes no answer bytes.
    pub(super) fn conn_timer(&mut self, id: ConnectionId) {
        let config = &self.settings.config;
        let (keep_alive, request_timeout) = (config.keep_alive_timeout, config.request_timeout);
        let send_timeout = config.send_timeout;
        let now = self.now;
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        match conn.state {
            ConnState::Idle { since } if now >= since + keep_alive => self.close_idle(id),
            ConnState::Reading { since, .. } if now >= since + request_timeout => {
                self.fail_request(id, Refusal::RequestTimeout);
            }
            ConnState::Sending { since, .. } | ConnState::Closing { since: Some(since), .. }
                if now >= since + send_timeout =>
            {
                self.stats.send_timeouts += 1;
                self.close_idle(id);
            }
            _ => {}
        }
    }

    pub(super) fn push_ready(&mut self, id: ConnectionId) {
        if let Some(conn) = self.conns.get_mut(&id) {
            if !conn.in_ready {
                conn.in_ready = true;
                self.ready_conns.push_back(id);
            }
        }
    }

    /// Makes sure the heap holds an entry no later than the connection's next deadline.
    pub(super) fn arm_conn(&mut self, id: ConnectionId) {
        let config = &self.settings.config;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let due = match conn.state {
            ConnState::Idle { since } => Some(since + config.keep_alive_timeout),
            ConnState::Reading { since, .. } => Some(since + config.request_timeout),
            ConnState::Sending { since, .. } | ConnState::Closing { since: Some(since), .. } => {
                Some(since + config.send_timeout)
            }
            ConnState::Waiting(_) | ConnState::Replying(_) | ConnState::Closing { .. } => None,
        };
        if let Some(at) = due {
            if conn.armed.is_none_or(|armed| at < armed) {
                conn.armed = Some(at);
                self.push_timer(at, TimerKey::Conn(id));
            }
        }
    }
}
