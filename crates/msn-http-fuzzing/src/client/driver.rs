//! The driver's side of the world: requests written and checked as the gateway would read
//! them, the invariants after every operation, and the run-out at the end.

use std::time::Duration;

use msn_http_core::Endpoint;
use msn_http_core::client::{Connection, OutputMode, PollPolicy, RequestKind};
use msn_http_core::error::SendError;
use msn_http_core::wire::{
    HttpLimits, HttpVersion, Method, QueryAction, RequestDecoder, RequestStep, ServerKind,
};

use super::world::{Flight, World};
use super::{
    Answer, AnswerKind, MAX_COMMAND, Op, TARGET_IP, command_lengths, gateway_endpoint,
    proxy_endpoint,
};

/// How a request names its gateway in `Host`.
fn authority(gateway: &Endpoint) -> String {
    match gateway.port() {
        80 => gateway.host().to_owned(),
        port => format!("{}:{port}", gateway.host()),
    }
}

/// The `Host` and `Content-Length` fields of a request head, as any HTTP server reads them.
fn host_and_length(request: &[u8]) -> (Option<String>, Option<usize>) {
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut head = httparse::Request::new(&mut fields);
    assert!(head.parse(request).is_ok_and(|s| s.is_complete()), "a request head httparse refuses");
    let field = |name: &str| {
        head.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    (field("Host"), field("Content-Length").map(|v| v.parse().expect("a decimal length")))
}

impl World {
    pub(super) fn pump(&mut self) {
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
            let first = self.first_after_success.get_or_insert_with(|| gateway.clone());
            let unproven =
                gateway != self.answered_at && *first == gateway && gateway != gateway_endpoint();
            self.gateway_at_last_request = gateway.clone();
            self.check_request(kind);
            let lifespan = Duration::from_secs(self.last_lifespan.map_or(0, u64::from));
            let deadline = self.now + self.p.request_timeout + lifespan;
            let body_len = self.last_body_len;
            self.flight = Some(Flight {
                kind,
                len: body_len,
                fresh: connection == Connection::Fresh,
                deadline,
                tainted: false,
                reply: None,
                delivered: 0,
                gateway,
                unproven,
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
        let head = decoder.head();
        assert_eq!((head.method(), head.version()), (Method::Post, HttpVersion::Http11));
        let (host, length) = host_and_length(&self.out);
        assert_eq!(host, Some(authority(self.session.gateway())), "Host names another gateway");
        assert_eq!(length, Some(body.len()), "no Content-Length, or a wrong one");
        let query = head.query().expect("a valid query");
        self.last_lifespan = query.lifespan();
        if let Some(secs) = query.lifespan() {
            let asked = match self.p.poll {
                PollPolicy::LongPoll { lifespan_secs } => Some(lifespan_secs),
                _ => None,
            };
            assert_eq!((kind, Some(secs)), (RequestKind::Poll, asked), "Lifespan= off a long poll");
        }
        match kind {
            RequestKind::Open => {
                assert!(!self.opened, "an open request after the session opened");
                assert_eq!(query.action(), Some(QueryAction::Open));
                assert_eq!(query.server(), Some(ServerKind::Notification));
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
            assert!(count == 1 || total <= self.p.max_request_body_bytes, "request body too large");
            if let Some(next) = lengths.get(count) {
                assert!(total + next > self.p.max_request_body_bytes, "commands not coalesced");
            }
        }
        self.last_body_len = body.len();
    }

    /// Invariants after every operation.
    pub(super) fn check(&mut self) {
        assert_eq!(self.session.queued_bytes(), self.stream.len() - self.confirmed);
        // Only `close()` goes past the limit: by its `OUT`.
        let out = if self.close_end.is_some() { b"OUT\r\n".len() } else { 0 };
        let limit = self.p.max_queued_bytes.max(MAX_COMMAND) + MAX_COMMAND;
        assert!(self.session.queued_bytes() <= limit + out, "queue limit broken");
        // A request goes only while fewer than `max_inbound_bytes` wait, or all that waits is
        // one partial command (a line and a payload); its answer adds one body.
        let waiting = self.p.max_inbound_bytes.max(MAX_COMMAND);
        let bound = waiting - 1 + self.p.max_body_bytes as usize;
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

    /// Answers every request well, carrying every server byte, until every command is
    /// confirmed and every server byte delivered: nothing may stall.
    pub(super) fn finish(&mut self) {
        let ok = Answer {
            kind: AnswerKind::Ok,
            framing: 0,
            interim: false,
            close: false,
            new_commands: 0,
            take: u16::MAX,
            id: 0,
            gw: 0,
        };
        for _ in 0..4096 {
            self.drain(true);
            if self.session.is_closed() {
                break;
            }
            self.offer_pieces();
            let whole: usize = command_lengths(&self.stream[self.confirmed..]).iter().sum();
            // What hostile bytes did to the server's stream is unknown: then only commands count.
            // Nor can a session that never learned its SessionID (its open was lost and
            // discarded) fetch what the gateway holds for it.
            let server_left = !self.inbound_tainted
                && self.opened
                && (self.sent < self.outbox.len() || self.session.inbound_bytes() > 0);
            // A poll in flight carries nothing (long polling always has one); one whose answer
            // is arriving is let finish, so that its bytes are counted.
            // (One already answered with server bytes is not idle: they count as sent.)
            let idle_poll = |f: &Flight| {
                f.kind == RequestKind::Poll
                    && f.delivered == 0
                    && !f.tainted
                    && f.reply.as_ref().is_none_or(|r| r.server_bytes.is_empty())
            };
            let work = whole > 0 || !self.pending_pieces.is_empty() || server_left;
            if !work && self.flight.as_ref().is_none_or(idle_poll) {
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
                assert!(self.session.poll_timeout().is_some(), "work waits and nothing is due");
                self.step(Op::Timeout);
            }
        }
        self.drain(true);
        if self.opened && !self.inbound_tainted {
            assert!(self.established, "the session opened without Established");
        }
        if self.session.is_closed() {
            let refused = self.session.send(b"CHG 0 NLN\r\n");
            assert_eq!(refused, Err(SendError::Closed), "a closed session takes commands");
            return;
        }
        let whole: usize = command_lengths(&self.stream[self.confirmed..]).iter().sum();
        assert_eq!(whole, 0, "whole commands never confirmed");
        assert!(self.pending_pieces.is_empty(), "the caller's command never accepted");
        if !self.inbound_tainted && self.opened {
            assert_eq!(self.delivered, self.outbox, "server bytes never delivered");
            assert_eq!(self.session.inbound_bytes(), 0, "server bytes held back");
            if self.p.output == OutputMode::Commands {
                assert_eq!(self.delivered_commands, self.server_commands.len());
            }
            assert_eq!(self.delivered.len() as u64, self.pushed);
        }
    }
}
