//! The world around one gateway: client connections and backends as a driver sees them, and
//! the operations on them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use msn_http_core::gateway::{
    AcceptError, BackendId, ConnectFailure, ConnectionId, Gateway, GatewayConfig,
};

use super::{BodyChoice, IdChoice, Op, ReqKind, ReqSpec};

/// A request written to a connection, as the harness knows it.
#[derive(Clone, Debug)]
pub(super) struct Sent {
    /// Connection byte offset where it ends: it is complete once that much was delivered.
    pub(super) end: usize,
    pub(super) open: bool,
    /// The known session it names, and the ID it used.
    pub(super) names: Option<(usize, String)>,
}

#[derive(Debug)]
pub(super) struct Conn {
    pub(super) id: ConnectionId,
    pub(super) pending: Vec<u8>,
    pub(super) written: usize,
    pub(super) delivered: usize,
    pub(super) requests: VecDeque<Sent>,
    /// Only whole, well-formed requests were sent: answers can be matched to requests.
    pub(super) clean: bool,
}

#[derive(Debug)]
pub(super) struct Backend {
    pub(super) id: BackendId,
    pub(super) connected: bool,
    pub(super) failed: bool,
    pub(super) closed: bool,
    pub(super) paused: bool,
    pub(super) eof: bool,
    pub(super) kept: Vec<u8>,
    pub(super) accepted: Vec<u8>,
    pub(super) claimed: bool,
    pub(super) sent_commands: usize,
}

impl Backend {
    /// A backend the gateway just asked to connect.
    pub(super) fn new(id: BackendId) -> Backend {
        Backend {
            id,
            connected: false,
            failed: false,
            closed: false,
            paused: false,
            eof: false,
            kept: Vec::new(),
            accepted: Vec::new(),
            claimed: false,
            sent_commands: 0,
        }
    }
}

/// A session the harness learned of from a `200`.
#[derive(Debug)]
pub(super) struct Known {
    pub(super) stable: String,
    pub(super) latest: String,
    pub(super) older: Vec<String>,
    /// Its backend once the bytes told, and how much of that backend's stream was delivered.
    pub(super) backend: Option<usize>,
    pub(super) offset: usize,
    /// The bytes cannot be attributed (several backends sent the same).
    pub(super) unchecked: bool,
    pub(super) ended: bool,
}

pub(super) struct World {
    pub(super) config: GatewayConfig,
    pub(super) gw: Gateway,
    pub(super) now: Instant,
    pub(super) conns: Vec<Conn>,
    pub(super) next_conn: u64,
    pub(super) backends: Vec<Backend>,
    pub(super) known: Vec<Known>,
    pub(super) out: Vec<u8>,
}

pub(super) fn backend_command(backend: usize, n: usize) -> Vec<u8> {
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
    pub(super) fn new(config: &GatewayConfig, now: Instant) -> Option<World> {
        let config = config.clone();
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

    pub(super) fn step(&mut self, op: Op) {
        match op {
            Op::Accept => {
                if let Some(c) = self.conns.last() {
                    let again = self.gw.handle_accept(self.now, c.id);
                    assert_eq!(again, Err(AcceptError::DuplicateConnection));
                }
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
                    self.gone_connection(c.id);
                }
                // One never accepted.
                self.gone_connection(ConnectionId(u64::MAX - u64::from(conn)));
            }
            Op::Connected { backend } => {
                let usable = |b: &Backend| !b.connected && !b.failed && !b.closed;
                if let Some(i) = self.backend_index(backend, usable) {
                    self.backends[i].connected = true;
                    self.gw.handle_backend_connected(self.now, self.backends[i].id);
                } else if let Some(i) = self.backend_index(backend, |_| true) {
                    // Connected already, failed or closed: reported again, it changes nothing.
                    self.gw.handle_backend_connected(self.now, self.backends[i].id);
                }
            }
            Op::ConnectFailed { backend } => {
                let usable = |b: &Backend| !b.connected && !b.failed && !b.closed;
                let failure = ConnectFailure::Unreachable;
                if let Some(i) = self.backend_index(backend, usable) {
                    self.backends[i].failed = true;
                    self.gw.handle_backend_connect_failed(self.now, self.backends[i].id, failure);
                } else if let Some(i) = self.backend_index(backend, |_| true) {
                    // A late failure for a backend connected or gone changes nothing.
                    self.gw.handle_backend_connect_failed(self.now, self.backends[i].id, failure);
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
                } else if let Some(i) = self.backend_index(backend, |b| b.closed) {
                    // Input for a closed backend is taken and dropped.
                    let bytes = raw.unwrap_or_else(|| backend_command(i, 0));
                    let taken = self.gw.handle_backend_input(self.now, self.backends[i].id, &bytes);
                    assert_eq!(taken, bytes.len(), "input for a closed backend refused");
                }
            }
            Op::BackendEof { backend } => {
                let usable = |b: &Backend| !b.failed && !b.closed && !b.eof && b.kept.is_empty();
                if let Some(i) = self.backend_index(backend, usable) {
                    self.backends[i].eof = true;
                    self.gw.handle_backend_eof(self.now, self.backends[i].id);
                } else if let Some(i) = self.backend_index(backend, |b| b.closed) {
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
    pub(super) fn offer(&mut self, i: usize) {
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
                crate::write_chunked(&mut wire, &body, 7);
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

    /// A connection the gateway no longer knows: input is taken and dropped, no budget, and a
    /// second EOF does nothing (no answer may come for it: [`World::on_answer`] checks).
    fn gone_connection(&mut self, id: ConnectionId) {
        let request = b"POST /gateway/gateway.dll?Action=open&IP=messenger.test HTTP/1.1\r\n\r\n";
        assert_eq!(self.gw.handle_client_input(self.now, id, request), request.len());
        assert_eq!(self.gw.client_read_budget(id), 0, "a budget for a connection gone");
        self.gw.handle_client_eof(self.now, id);
    }
}
