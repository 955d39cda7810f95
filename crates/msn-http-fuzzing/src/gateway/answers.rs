//! The gateway's outputs, checked: answers matched to their requests, backend bytes followed
//! to the client, actions, the invariants after every operation, and the run-out at the end.

use msn_http_core::gateway::{Action, BackendId, ConnectionId, PingPolicy, Transmit};
use msn_http_core::wire::{HttpLimits, ResponseDecoder, ResponseStep, parse_messenger_header};

use super::world::{Backend, Known, World};

impl World {
    pub(super) fn drain(&mut self) {
        loop {
            self.transmits();
            self.take_actions();
            // Resumed backends get their kept bytes first.
            let ready: Vec<usize> = (0..self.backends.len())
                .filter(|&i| {
                    !self.backends[i].paused
                        && !self.backends[i].closed
                        && !self.backends[i].kept.is_empty()
                })
                .collect();
            if ready.is_empty() {
                return;
            }
            for i in ready {
                self.offer(i);
            }
        }
    }

    fn transmits(&mut self) {
        loop {
            self.out.clear();
            let Some(t) = self.gw.poll_transmit(self.now, &mut self.out) else {
                break;
            };
            match t {
                Transmit::Client { connection, len, close, interim } => {
                    assert_eq!(len, self.out.len());
                    assert_eq!(interim, self.out == b"HTTP/1.1 100 Continue\r\n\r\n");
                    let bytes = std::mem::take(&mut self.out);
                    self.on_answer(connection, &bytes, close);
                    self.out = bytes;
                    // A driver whose writes go through at once, and that closes at once.
                    self.gw.handle_client_written(self.now, connection, 0);
                    if close {
                        self.gw.handle_client_eof(self.now, connection);
                    }
                }
                Transmit::Backend { backend, len } => {
                    assert_eq!(len, self.out.len());
                    assert!(len > 0, "an empty backend write");
                    let b = self.announced_backend(backend);
                    assert!(!b.closed, "bytes for a closed backend");
                    assert!(b.connected && !b.failed, "bytes for a backend not connected");
                }
            }
        }
    }

    /// The backend `id`, which the gateway must have asked to connect.
    fn announced_backend(&mut self, id: BackendId) -> &mut Backend {
        let found = self.backends.iter_mut().find(|b| b.id == id);
        found.unwrap_or_else(|| panic!("{id:?} was never announced"))
    }

    pub(super) fn take_actions(&mut self) {
        while let Some(action) = self.gw.poll_action() {
            match action {
                Action::Connect { backend, .. } => {
                    assert!(self.backends.iter().all(|b| b.id != backend), "a backend ID reused");
                    self.backends.push(Backend::new(backend));
                }
                Action::PauseBackend(id) | Action::ResumeBackend(id) => {
                    let pause = matches!(action, Action::PauseBackend(_));
                    let b = self.announced_backend(id);
                    assert!(!b.closed, "{action:?} after CloseBackend");
                    b.paused = pause;
                }
                Action::CloseBackend(id) => {
                    let b = self.announced_backend(id);
                    assert!(!b.closed, "CloseBackend twice");
                    b.closed = true;
                    b.kept.clear();
                }
                Action::CloseClient(id) => {
                    if let Some(c) = self.conns.iter().find(|c| c.id == id) {
                        let waiting = c.requests.iter().any(|r| r.end <= c.delivered);
                        assert!(!c.clean || !waiting, "an idle close with a request unanswered");
                    }
                    self.conns.retain(|c| c.id != id);
                    self.gw.handle_client_eof(self.now, id);
                }
                other => panic!("an action the harness does not model: {other:?}"),
            }
        }
    }

    /// One answer written to a client: a whole response, matched to the request it answers.
    pub(super) fn on_answer(&mut self, id: ConnectionId, bytes: &[u8], close: bool) {
        if bytes == b"HTTP/1.1 100 Continue\r\n\r\n" {
            assert!(!close);
            return;
        }
        assert!(bytes.starts_with(b"HTTP/1.1 "), "not an HTTP/1.1 answer");
        let mut decoder =
            ResponseDecoder::new(HttpLimits { max_head_bytes: 1 << 16, max_body_bytes: 1 << 20 });
        let mut input = bytes;
        let mut body = Vec::new();
        loop {
            match decoder.decode(&mut input) {
                Ok(ResponseStep::Head) => {}
                Ok(ResponseStep::Body(b)) => body.extend_from_slice(b),
                Ok(ResponseStep::Complete) => break,
                Ok(ResponseStep::NeedMore) => {
                    panic!("an incomplete answer: {:?}", String::from_utf8_lossy(bytes))
                }
                Err(e) => panic!("an answer the client cannot read: {e:?}"),
            }
        }
        assert!(input.is_empty(), "more than one answer in one write");
        let head = decoder.head();
        let status = head.status();
        let sent = match self.conns.iter_mut().position(|c| c.id == id) {
            Some(i) => {
                let c = &mut self.conns[i];
                let request = if c.clean { c.requests.pop_front() } else { None };
                if let Some(r) = request.as_ref().filter(|_| status == 200) {
                    // Errors may come as soon as the head is read; a 200 needs the whole request.
                    assert!(r.end <= c.delivered, "an answer to a request not yet received");
                }
                if close {
                    self.conns.remove(i);
                }
                request
            }
            None => panic!("an answer to a connection the gateway closed"),
        };
        if status != 200 {
            assert!(head.messenger().is_none());
            assert!(body.is_empty());
            return;
        }
        let value = head.messenger().expect("X-MSN-Messenger on a 200");
        let header = parse_messenger_header(value).expect("a header the client can read");
        assert_eq!(header.gateway, Some("gw.test"));
        let sid = header.session_id.expect("a SessionID").to_owned();
        let (stable, _) = sid.split_once('.').expect("stable.suffix");
        let k = match self.known.iter().position(|s| s.stable == stable) {
            Some(k) => {
                let s = &mut self.known[k];
                assert!(!s.ended, "an answer after Session=close");
                assert!(s.latest != sid && !s.older.contains(&sid), "a SessionID issued twice");
                if let Some(r) = &sent {
                    assert!(!r.open, "an open answered with an existing session");
                    if let Some((named, used)) = &r.names {
                        // Only the latest ID is accepted, so a 200 answers the one request that used it.
                        assert_eq!(*named, k, "answered for another session");
                        assert_eq!(used, &s.latest, "a stale ID answered with 200");
                    }
                }
                let old = std::mem::replace(&mut s.latest, sid.clone());
                s.older.push(old);
                k
            }
            None => {
                if let Some(r) = &sent {
                    assert!(r.open, "a new session for a request that opened none");
                }
                self.known.push(Known {
                    stable: stable.to_owned(),
                    latest: sid.clone(),
                    older: Vec::new(),
                    backend: None,
                    offset: 0,
                    unchecked: matches!(self.config.ping, PingPolicy::Answer { .. }),
                    ended: false,
                });
                self.known.len() - 1
            }
        };
        self.known[k].ended = header.session_close;
        self.check_downstream(k, &body);
    }

    /// Bytes reach the client in the order the backend sent them, none twice, none invented.
    fn check_downstream(&mut self, k: usize, body: &[u8]) {
        if body.is_empty() || self.known[k].unchecked {
            return;
        }
        let b = match self.known[k].backend {
            Some(b) => b,
            None => {
                let candidates: Vec<usize> = (0..self.backends.len())
                    .filter(|&i| {
                        !self.backends[i].claimed && self.backends[i].accepted.starts_with(body)
                    })
                    .collect();
                match candidates.as_slice() {
                    [] => {
                        panic!("answer bytes no backend sent: {:?}", String::from_utf8_lossy(body))
                    }
                    [one] => {
                        self.backends[*one].claimed = true;
                        self.known[k].backend = Some(*one);
                        *one
                    }
                    _ => {
                        self.known[k].unchecked = true;
                        return;
                    }
                }
            }
        };
        let s = &mut self.known[k];
        let accepted = &self.backends[b].accepted;
        assert!(
            accepted[s.offset..].starts_with(body),
            "backend bytes reordered, duplicated or invented"
        );
        s.offset += body.len();
    }

    pub(super) fn check(&mut self) {
        assert!(self.gw.session_count() <= self.config.max_sessions, "max_sessions broken");
        assert!(
            self.gw.connection_count() <= self.config.max_connections,
            "max_connections broken"
        );
        let c = &self.config;
        // Per connection: a head being read and the pipelined input kept, each up to a head
        // and doubled at most by growth. Per session: the backend's bytes up to the queue limit
        // and the client's bodies up to the body limit, each with one command past it, doubled.
        let per_conn = 4 * c.http_limits.max_head_bytes;
        let command = c.framer_limits.max_line_bytes + 2 + c.framer_limits.max_payload_bytes;
        let body = usize::try_from(c.http_limits.max_body_bytes).unwrap_or(usize::MAX);
        let per_session = 2 * (c.max_queued_bytes + command) + 2 * (body + command);
        let bound = self.gw.connection_count() * per_conn + self.gw.session_count() * per_session;
        let held = self.gw.buffered_capacity();
        assert!(held <= bound, "buffers grew past the limits: {held} > {bound}");
        let live = self.backends.iter().filter(|b| !b.closed).count();
        assert_eq!(live, self.gw.session_count(), "one backend per session");
        if let Some(at) = self.gw.poll_timeout() {
            assert!(at > self.now, "a timer is due and handle_timeout did nothing");
        }
    }

    /// Lets every timer run out: every session ends, every Connect is closed, every connection
    /// is forgotten, and every whole request on a clean connection was answered.
    pub(super) fn finish(&mut self) {
        for _ in 0..10_000 {
            let Some(at) = self.gw.poll_timeout() else {
                break;
            };
            self.now = self.now.max(at);
            self.gw.handle_timeout(self.now);
            self.drain();
            self.check();
        }
        assert_eq!(self.gw.poll_timeout(), None, "timers never run out");
        assert_eq!(self.gw.session_count(), 0, "sessions outlive every timeout");
        assert!(self.backends.iter().all(|b| b.closed), "a Connect without CloseBackend");
        assert_eq!(self.gw.connection_count(), 0, "connections outlive every timeout");
        assert!(self.conns.is_empty(), "connections forgotten without a word: {:?}", self.conns);
    }
}
