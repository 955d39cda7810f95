//! Harness for the [`Gateway`]: client connections sending well-formed and hostile requests,
//! backends sending MSNP and garbage, EOFs and time, with the drive contract's promises checked
//! after every operation and once all timers have run out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};

use msn_http_core::gateway::{
    Action, AllowedOrigins, BackendAllowlist, BackendId, ConnectFailure, ConnectionId, CorsPolicy,
    Gateway, GatewayConfig, PingPolicy, Transmit,
};
use msn_http_core::msnp::FramerLimits;
use msn_http_core::wire::{HttpLimits, ResponseDecoder, ResponseStep, parse_messenger_header};

#[derive(Arbitrary, Clone, Copy, Debug)]
struct Params {
    max_sessions: u8,
    max_connections: u8,
    head: u8,
    body: u8,
    queued: u8,
    response_body: u8,
    ping: u8,
    cors: bool,
    reply_wait_ms: u16,
    lifespan_s: u8,
    idle_s: u8,
    connect_s: u8,
    request_s: u8,
    keep_alive_s: u8,
    buffered_heads: u16,
}

impl Params {
    fn config(&self) -> GatewayConfig {
        let backends =
            BackendAllowlist::new().allow("messenger.test", None).allow("sb.test", Some(1864));
        let mut c = GatewayConfig::new("gw.test", [7; 32]).with_backends(backends);
        c.max_sessions = 1 + usize::from(self.max_sessions % 6);
        c.max_connections = 1 + usize::from(self.max_connections % 8);
        c.http_limits = HttpLimits {
            max_head_bytes: 64 + 8 * usize::from(self.head),
            max_body_bytes: 4 * u64::from(self.body),
        };
        c.max_buffered_head_bytes = c.http_limits.max_head_bytes + usize::from(self.buffered_heads);
        c.max_queued_bytes = 1 + 2 * usize::from(self.queued);
        c.max_response_body_bytes = 64 + usize::from(self.response_body);
        c.ping = match self.ping % 3 {
            0 => PingPolicy::Refuse,
            1 => PingPolicy::answer(),
            _ => PingPolicy::Forward,
        };
        if self.cors {
            c.cors = Some(CorsPolicy {
                allowed_origins: AllowedOrigins::List(vec!["https://a.example".into()]),
                max_age: Duration::from_secs(5),
            });
        }
        c.reply_wait = Duration::from_millis(u64::from(self.reply_wait_ms % 2000));
        c.max_lifespan = Duration::from_secs(u64::from(self.lifespan_s % 40));
        c.idle_timeout = Duration::from_secs(1 + u64::from(self.idle_s % 90));
        c.connect_timeout = Duration::from_secs(1 + u64::from(self.connect_s % 20));
        c.request_timeout = Duration::from_secs(1 + u64::from(self.request_s % 40));
        c.keep_alive_timeout = Duration::from_secs(1 + u64::from(self.keep_alive_s % 150));
        c.framer_limits = FramerLimits { max_line_bytes: 96, max_payload_bytes: 256 };
        c
    }
}

#[derive(Arbitrary, Clone, Copy, Debug)]
enum ReqKind {
    OpenNs,
    OpenSb,
    OpenDenied,
    OpenBadIp,
    Poll,
    Send,
    Options,
    Get,
    WrongPath,
    NoLength,
}

#[derive(Arbitrary, Clone, Copy, Debug)]
enum IdChoice {
    Latest,
    Stale,
    Unknown,
    Missing,
}

#[derive(Arbitrary, Clone, Debug)]
enum BodyChoice {
    Empty,
    Commands(u8),
    Ping,
    Out,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Clone, Debug)]
struct ReqSpec {
    kind: ReqKind,
    session: u8,
    id: IdChoice,
    body: BodyChoice,
    chunked: bool,
    close: bool,
    http10: bool,
    expect: bool,
    lifespan: Option<u8>,
    absolute: bool,
    origin: bool,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Accept,
    /// A well-formed (or deliberately wrong) request, queued on a connection.
    Request {
        conn: u8,
        spec: ReqSpec,
    },
    /// Up to this many queued bytes of a connection reach the gateway (0: all).
    Deliver {
        conn: u8,
        n: u16,
    },
    /// Hostile bytes on a connection.
    Raw {
        conn: u8,
        bytes: Vec<u8>,
    },
    ClientEof {
        conn: u8,
    },
    Connected {
        backend: u8,
    },
    ConnectFailed {
        backend: u8,
    },
    /// A backend sends commands, or raw bytes.
    BackendSend {
        backend: u8,
        commands: u8,
        raw: Option<Vec<u8>>,
    },
    BackendEof {
        backend: u8,
    },
    Advance(u16),
    Timeout,
}

/// A request written to a connection, as the harness knows it.
#[derive(Clone, Debug)]
struct Sent {
    /// Connection byte offset where it ends: it is complete once that much was delivered.
    end: usize,
    open: bool,
    /// The known session it names, and the ID it used.
    names: Option<(usize, String)>,
}

#[derive(Debug)]
struct Conn {
    id: ConnectionId,
    pending: Vec<u8>,
    written: usize,
    delivered: usize,
    requests: VecDeque<Sent>,
    /// Only whole, well-formed requests were sent: answers can be matched to requests.
    clean: bool,
}

#[derive(Debug)]
struct Backend {
    id: BackendId,
    connected: bool,
    failed: bool,
    closed: bool,
    paused: bool,
    eof: bool,
    kept: Vec<u8>,
    accepted: Vec<u8>,
    claimed: bool,
    sent_commands: usize,
}

/// A session the harness learned of from a `200`.
#[derive(Debug)]
struct Known {
    stable: String,
    latest: String,
    older: Vec<String>,
    /// Its backend once the bytes told, and how much of that backend's stream was delivered.
    backend: Option<usize>,
    offset: usize,
    /// The bytes cannot be attributed (several backends sent the same).
    unchecked: bool,
    ended: bool,
}

struct World {
    config: GatewayConfig,
    gw: Gateway,
    now: Instant,
    conns: Vec<Conn>,
    next_conn: u64,
    backends: Vec<Backend>,
    known: Vec<Known>,
    out: Vec<u8>,
}

fn backend_command(backend: usize, n: usize) -> Vec<u8> {
    if n % 3 == 1 {
        let payload: Vec<u8> =
            format!("<b{backend} {n}>\r\n").bytes().cycle().take(n % 70).collect();
        [format!("MSG b{backend}@t B{backend} {}\r\n", payload.len()).into_bytes(), payload]
            .concat()
    } else {
        format!("ILN {n} NLN b{backend}@t {n}\r\n").into_bytes()
    }
}

impl World {
    fn new(p: Params, now: Instant) -> Option<World> {
        let config = p.config();
        let gw = Gateway::new(config.clone(), now).ok()?;
        Some(World {
            config,
            gw,
            now,
            conns: Vec::new(),
            next_conn: 0,
            backends: Vec::new(),
            known: Vec::new(),
            out: Vec::new(),
        })
    }

    fn conn_index(&self, n: u8) -> Option<usize> {
        (!self.conns.is_empty()).then(|| usize::from(n) % self.conns.len())
    }

    fn backend_index(&self, n: u8, usable: impl Fn(&Backend) -> bool) -> Option<usize> {
        let live: Vec<usize> =
            (0..self.backends.len()).filter(|&i| usable(&self.backends[i])).collect();
        (!live.is_empty()).then(|| live[usize::from(n) % live.len()])
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Accept => {
                if self.conns.len() < 8 {
                    self.next_conn += 1;
                    let id = ConnectionId(self.next_conn);
                    let full = self.gw.connection_count() >= self.config.max_connections;
                    match self.gw.handle_accept(self.now, id) {
                        Ok(()) => {
                            assert!(!full, "accepted past max_connections");
                            self.conns.push(Conn {
                                id,
                                pending: Vec::new(),
                                written: 0,
                                delivered: 0,
                                requests: VecDeque::new(),
                                clean: true,
                            });
                        }
                        Err(e) => assert!(full, "refused below the limit: {e:?}"),
                    }
                }
            }
            Op::Request { conn, spec } => {
                if let Some(i) = self.conn_index(conn) {
                    self.write_request(i, &spec);
                }
            }
            Op::Deliver { conn, n } => {
                if let Some(i) = self.conn_index(conn) {
                    let c = &mut self.conns[i];
                    let n =
                        if n == 0 { c.pending.len() } else { usize::from(n).min(c.pending.len()) };
                    let id = c.id;
                    if n > 0 {
                        let taken = self.gw.handle_client_input(self.now, id, &c.pending[..n]);
                        assert!(taken <= n);
                        if taken < n {
                            // Only with an answer unwritten and the pipelining budget used up.
                            assert!(taken >= self.gw.client_read_budget(id).min(n));
                        }
                        c.pending.drain(..taken);
                        c.delivered += taken;
                    }
                }
            }
            Op::Raw { conn, bytes } => {
                if let Some(i) = self.conn_index(conn) {
                    let c = &mut self.conns[i];
                    c.clean = false;
                    let id = c.id;
                    self.gw.handle_client_input(self.now, id, &bytes);
                }
            }
            Op::ClientEof { conn } => {
                if let Some(i) = self.conn_index(conn) {
                    let c = self.conns.remove(i);
                    self.gw.handle_client_eof(self.now, c.id);
                }
            }
            Op::Connected { backend } => {
                let usable = |b: &Backend| !b.connected && !b.failed && !b.closed;
                if let Some(i) = self.backend_index(backend, usable) {
                    self.backends[i].connected = true;
                    self.gw.handle_backend_connected(self.now, self.backends[i].id);
                }
            }
            Op::ConnectFailed { backend } => {
                let usable = |b: &Backend| !b.connected && !b.failed && !b.closed;
                if let Some(i) = self.backend_index(backend, usable) {
                    self.backends[i].failed = true;
                    self.gw.handle_backend_connect_failed(
                        self.now,
                        self.backends[i].id,
                        ConnectFailure::Unreachable,
                    );
                }
            }
            Op::BackendSend { backend, commands, raw } => {
                let usable = |b: &Backend| !b.failed && !b.closed && !b.eof;
                if let Some(i) = self.backend_index(backend, usable) {
                    let b = &mut self.backends[i];
                    b.connected = true;
                    match raw {
                        Some(raw) => b.kept.extend_from_slice(&raw),
                        None => {
                            for _ in 0..commands % 5 {
                                let command = backend_command(i, b.sent_commands);
                                b.kept.extend_from_slice(&command);
                                b.sent_commands += 1;
                            }
                        }
                    }
                    self.offer(i);
                }
            }
            Op::BackendEof { backend } => {
                let usable = |b: &Backend| !b.failed && !b.closed && !b.eof && b.kept.is_empty();
                if let Some(i) = self.backend_index(backend, usable) {
                    self.backends[i].eof = true;
                    self.gw.handle_backend_eof(self.now, self.backends[i].id);
                }
            }
            Op::Advance(ms) => self.now += Duration::from_millis(u64::from(ms)),
            Op::Timeout => {
                if let Some(at) = self.gw.poll_timeout() {
                    self.now = self.now.max(at);
                }
            }
        }
        // A driver calls this whenever it wakes; spurious calls do nothing.
        self.gw.handle_timeout(self.now);
        self.drain();
        self.check();
    }

    /// Offers a backend's kept bytes unless it is paused.
    fn offer(&mut self, i: usize) {
        let b = &mut self.backends[i];
        if b.paused || b.closed || b.kept.is_empty() {
            return;
        }
        let n = self.gw.handle_backend_input(self.now, b.id, &b.kept);
        assert!(n <= b.kept.len());
        b.accepted.extend_from_slice(&b.kept[..n]);
        b.kept.drain(..n);
        if !self.backends[i].kept.is_empty() {
            // Fewer taken only with the queue full, and then a pause is issued.
            self.take_actions();
            let b = &self.backends[i];
            assert!(b.paused || b.closed, "input refused without PauseBackend");
        }
    }

    fn write_request(&mut self, i: usize, spec: &ReqSpec) {
        let named = (!self.known.is_empty()).then(|| usize::from(spec.session) % self.known.len());
        let id = named.map(|k| {
            let s = &self.known[k];
            match spec.id {
                IdChoice::Latest | IdChoice::Missing => s.latest.clone(),
                IdChoice::Stale => {
                    s.older.last().cloned().unwrap_or_else(|| format!("{}.0", s.stable))
                }
                IdChoice::Unknown => format!("{}.{}", s.stable.len(), s.latest.len()),
            }
        });
        let missing = matches!(spec.id, IdChoice::Missing) || id.is_none();
        let sid = id.clone().unwrap_or_default();
        let lifespan = spec.lifespan.map(|l| format!("&Lifespan={}", l % 50)).unwrap_or_default();
        let with_id = |action: &str| -> String {
            if missing { action.to_owned() } else { format!("{action}SessionID={sid}{lifespan}") }
        };
        let (method, query, open) = match spec.kind {
            ReqKind::OpenNs => ("POST", "Action=open&Server=NS&IP=messenger.test".to_owned(), true),
            ReqKind::OpenSb => ("POST", "Action=open&Server=SB&IP=sb.test:1864".to_owned(), true),
            ReqKind::OpenDenied => {
                ("POST", "Action=open&Server=NS&IP=elsewhere.test".to_owned(), true)
            }
            ReqKind::OpenBadIp => ("POST", "Action=open&Server=NS&IP=bad%20host".to_owned(), true),
            ReqKind::Poll => ("POST", with_id("Action=poll&"), missing),
            ReqKind::Send => ("POST", with_id(""), missing),
            ReqKind::Options => ("OPTIONS", String::new(), false),
            ReqKind::Get => ("GET", with_id(""), false),
            ReqKind::WrongPath => ("POST", with_id(""), false),
            ReqKind::NoLength => ("POST", with_id(""), false),
        };
        let path = if matches!(spec.kind, ReqKind::WrongPath) {
            "/other.dll"
        } else {
            "/gateway/gateway.dll"
        };
        let authority = if spec.absolute { "http://gw.test" } else { "" };
        let version = if spec.http10 { 0 } else { 1 };
        let mut wire =
            format!("{method} {authority}{path}?{query} HTTP/1.{version}\r\nHost: gw.test\r\n")
                .into_bytes();
        let body: Vec<u8> = match &spec.body {
            BodyChoice::Empty => Vec::new(),
            BodyChoice::Commands(n) => (0..usize::from(n % 4))
                .flat_map(|k| format!("CHG {k} NLN\r\n").into_bytes())
                .collect(),
            BodyChoice::Ping => b"CHG 1 NLN\r\nPNG\r\n".to_vec(),
            BodyChoice::Out => b"OUT\r\n".to_vec(),
            BodyChoice::Raw(raw) => raw.clone(),
        };
        let no_length = matches!(spec.kind, ReqKind::NoLength);
        if !no_length {
            if spec.chunked && !spec.http10 {
                wire.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            } else {
                wire.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
            }
        }
        if spec.close {
            wire.extend_from_slice(b"Connection: close\r\n");
        }
        if spec.expect && !spec.http10 {
            wire.extend_from_slice(b"Expect: 100-continue\r\n");
        }
        if spec.origin {
            wire.extend_from_slice(b"Origin: https://a.example\r\n");
        }
        wire.extend_from_slice(b"\r\n");
        if !no_length {
            if spec.chunked && !spec.http10 {
                for chunk in body.chunks(7) {
                    wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    wire.extend_from_slice(chunk);
                    wire.extend_from_slice(b"\r\n");
                }
                wire.extend_from_slice(b"0\r\n\r\n");
            } else {
                wire.extend_from_slice(&body);
            }
        }
        let c = &mut self.conns[i];
        c.written += wire.len();
        c.pending.extend_from_slice(&wire);
        let names = if open || missing { None } else { named.zip(id) };
        c.requests.push_back(Sent {
            end: c.written,
            open: matches!(spec.kind, ReqKind::OpenNs | ReqKind::OpenSb),
            names,
        });
    }

    fn drain(&mut self) {
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
                Transmit::Client { connection, len, close } => {
                    assert_eq!(len, self.out.len());
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
                    let b = self
                        .backends
                        .iter()
                        .find(|b| b.id == backend)
                        .expect("bytes for a backend never announced");
                    assert!(!b.closed, "bytes for a closed backend");
                    assert!(b.connected && !b.failed, "bytes for a backend not connected");
                }
            }
        }
    }

    fn take_actions(&mut self) {
        while let Some(action) = self.gw.poll_action() {
            match action {
                Action::Connect { backend, .. } => {
                    assert!(self.backends.iter().all(|b| b.id != backend), "a backend ID reused");
                    self.backends.push(Backend {
                        id: backend,
                        connected: false,
                        failed: false,
                        closed: false,
                        paused: false,
                        eof: false,
                        kept: Vec::new(),
                        accepted: Vec::new(),
                        claimed: false,
                        sent_commands: 0,
                    });
                }
                Action::PauseBackend(id) | Action::ResumeBackend(id) => {
                    let pause = matches!(action, Action::PauseBackend(_));
                    let b = self
                        .backends
                        .iter_mut()
                        .find(|b| b.id == id)
                        .expect("an announced backend");
                    assert!(!b.closed, "{action:?} after CloseBackend");
                    b.paused = pause;
                }
                Action::CloseBackend(id) => {
                    let b = self
                        .backends
                        .iter_mut()
                        .find(|b| b.id == id)
                        .expect("an announced backend");
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
    fn on_answer(&mut self, id: ConnectionId, bytes: &[u8], close: bool) {
        if bytes == b"HTTP/1.1 100 Continue\r\n\r\n" {
            assert!(!close);
            return;
        }
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

    fn check(&mut self) {
        assert!(self.gw.session_count() <= self.config.max_sessions, "max_sessions broken");
        assert!(
            self.gw.connection_count() <= self.config.max_connections,
            "max_connections broken"
        );
        let c = &self.config;
        let per_conn = 4 * c.http_limits.max_head_bytes + 4096;
        let per_session = 4 * c.max_queued_bytes + 4 * c.http_limits.max_body_bytes as usize + 8192;
        let bound = self.gw.connection_count() * per_conn + self.gw.session_count() * per_session;
        assert!(self.gw.buffered_capacity() <= bound, "buffers grew past the limits");
        let live = self.backends.iter().filter(|b| !b.closed).count();
        assert_eq!(live, self.gw.session_count(), "one backend per session");
        if let Some(at) = self.gw.poll_timeout() {
            assert!(at > self.now, "a timer is due and handle_timeout did nothing");
        }
    }

    /// Lets every timer run out: every session ends, every Connect is closed, every connection
    /// is forgotten, and every whole request on a clean connection was answered.
    fn finish(&mut self) {
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

/// A gateway driven by an arbitrary sequence of client, backend and clock operations on a fake
/// clock starting at `epoch`: limits held, one `CloseBackend` per `Connect`, no bytes for a
/// closed backend, a `200` only for the one request holding a session's latest ID, backend
/// bytes delivered in order and once, and every timer running out in the end.
pub fn gateway(data: &[u8], epoch: Instant) {
    let mut u = Unstructured::new(data);
    let Ok(p) = Params::arbitrary(&mut u) else {
        return;
    };
    let Some(mut w) = World::new(p, epoch) else {
        return;
    };
    let mut ops = 0;
    while !u.is_empty() && ops < 256 {
        let Ok(op) = Op::arbitrary(&mut u) else {
            break;
        };
        w.step(op);
        ops += 1;
    }
    w.finish();
}
