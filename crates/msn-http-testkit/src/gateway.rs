//! The fake gateway: what it answers to each request, as bytes, given the time. An echoing
//! MSNP backend sits behind it (every command the gateway passes on comes back, in order), so
//! whatever a client sends can be accounted for.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use msn_http_core::client::RequestKind;

use crate::request::RawRequest;

/// Something the gateway does wrong (or specially) to one request, by request number
/// (0-based, counted over all listeners).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A `200` head announcing the whole body, then only this many body bytes, then close.
    DropMidBody(usize),
    /// Answers with this status and an empty body; the request's commands are not processed.
    Status(u16),
    /// Reads the request and never answers; holds the connection until the client drops it.
    Stall,
    /// Processes the request and ends the session: `Session=close`.
    SessionClose,
    /// Answers normally after this long.
    Delay(Duration),
}

/// What `GW-IP` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GwIp {
    /// The `IP=` value of the open request, port and all, as revival gateways answer.
    EchoIp,
    /// A fixed value.
    Fixed(String),
}

/// The session IDs the gateway hands out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionIds {
    /// `954547325.N`, the suffix changing with every answer (the official gateway); only the
    /// latest is accepted.
    Rotating,
    /// One UUID for the whole session, never rotated (revival gateways).
    ConstantUuid,
}

/// The behaviours of today's gateways and servers (PROTOCOL.md §7), one switch each. The
/// default is the official gateway: rotating IDs, `Session=close` after a server `OUT`, no
/// expiry, every reply written at once — except that polls are never held, which most
/// gateways do not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quirks {
    /// Honour `Lifespan=`: hold an empty poll until data arrives or the lifespan ends. `false`
    /// answers every poll at once.
    pub hold_polls: bool,
    /// How session IDs look and change.
    pub session_ids: SessionIds,
    /// After the backend sent `OUT` (and hung up), the answer carrying it says
    /// `Session=close`. `false`: the gateway keeps answering polls with empty `200`s, and
    /// commands sent then reach no one.
    pub close_after_server_out: bool,
    /// A request after the session was idle this long gets `400`.
    pub idle_expiry: Option<Duration>,
    /// A payload command whose length has a leading zero (`MSG 1 N 05`, which strict revival
    /// parsers reject) gets `500`, the commands unprocessed, and the session is wedged: every
    /// later request gets `500` too.
    pub malformed_length_500: bool,
    /// The backend writes each command of a reply on its own, this far apart: a gateway that
    /// answers as soon as one command is queued sends part of a reply.
    pub reply_line_gap: Option<Duration>,
}

impl Default for Quirks {
    fn default() -> Self {
        Self {
            hold_polls: false,
            session_ids: SessionIds::Rotating,
            close_after_server_out: true,
            idle_expiry: None,
            malformed_length_500: false,
            reply_line_gap: None,
        }
    }
}

impl Quirks {
    /// A revival gateway as captured today: `GW-IP` echoes `IP=` (the [`Script`] default),
    /// polls are not held, one constant UUID, no `Session=close` after a server `OUT`, 400
    /// after 60 s idle, 500 on a malformed payload length, replies written line by line.
    pub fn revival() -> Self {
        Self {
            hold_polls: false,
            session_ids: SessionIds::ConstantUuid,
            close_after_server_out: false,
            idle_expiry: Some(Duration::from_secs(60)),
            malformed_length_500: true,
            reply_line_gap: Some(Duration::from_millis(5)),
        }
    }
}

/// How the gateway behaves.
#[derive(Clone, Debug)]
pub struct Script {
    /// Faults of single requests, by request number.
    pub faults: HashMap<usize, Fault>,
    /// `Connection: close` and a close after every response.
    pub close_each: bool,
    /// `HTTP/1.0` responses without `Content-Length`: the body ends when the connection does.
    pub close_delimited: bool,
    /// `Transfer-Encoding: chunked`, in chunks of this many bytes, each written separately.
    pub chunked: Option<usize>,
    /// `100 Continue` before every response.
    pub continue_first: bool,
    /// What `GW-IP` says. Default: it echoes `IP=`.
    pub gw_ip: GwIp,
    /// At most this many MSNP bytes per response body (cut anywhere).
    pub max_body: usize,
    /// The field's behaviours.
    pub quirks: Quirks,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            faults: HashMap::new(),
            close_each: false,
            close_delimited: false,
            chunked: None,
            continue_first: false,
            gw_ip: GwIp::EchoIp,
            max_body: usize::MAX,
            quirks: Quirks::default(),
        }
    }
}

impl Script {
    /// The script with `fault` for request number `request`.
    pub fn fault(mut self, request: usize, fault: Fault) -> Self {
        self.faults.insert(request, fault);
        self
    }

    /// The script with `quirks`.
    pub fn quirks(mut self, quirks: Quirks) -> Self {
        self.quirks = quirks;
        self
    }
}

/// A request as the gateway saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Which listener it came in on (0 = the first).
    pub listener: usize,
    /// Which connection of that listener (0-based, in accept order).
    pub connection: usize,
    /// Open, send or poll.
    pub kind: RequestKind,
    /// The request target.
    pub target: String,
    /// The `Host` header.
    pub host: Option<String>,
    /// The `SessionID` parameter.
    pub session_id: Option<String>,
    /// The `Lifespan` parameter.
    pub lifespan: Option<u32>,
    /// The body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Hold the connection, never answering.
    Stall,
    /// Write `parts` (after `delay`), each on its own; then close if `close`.
    Respond {
        /// How long to wait first.
        delay: Option<Duration>,
        /// The pieces to write.
        parts: Vec<Vec<u8>>,
        /// Close the connection after the last piece.
        close: bool,
    },
    /// An empty poll held for its lifespan: ask [`FakeGateway::release`] for the answer,
    /// until `until` at the latest (or when [`FakeGateway::next_wakeup`] says).
    Hold {
        /// When the lifespan ends.
        until: Instant,
    },
}

/// The echoing MSNP backend behind the gateway.
#[derive(Debug, Default)]
pub struct Backend {
    /// MSNP bytes it processed, in order.
    pub received: Vec<u8>,
    /// Bytes it will write at the given times (replies written line by line, pushes).
    scheduled: VecDeque<(Instant, Vec<u8>)>,
    /// It sent `OUT` and hung up: nothing it receives is processed any more.
    pub gone: bool,
}

/// The gateway's state, shared by its listeners. One session at a time: an open request
/// starts a new one.
#[derive(Debug)]
pub struct FakeGateway {
    /// How it behaves.
    pub script: Script,
    /// Every request, in arrival order.
    pub requests: Vec<Seen>,
    /// Connections accepted, per listener.
    pub connections: Vec<usize>,
    /// MSNP bytes the backend processed, in order.
    pub received: Vec<u8>,
    /// MSNP bytes queued for the client.
    pub outbox: Vec<u8>,
    /// The backend's schedule and state.
    pub backend: Backend,
    ip: String,
    session_seq: u32,
    session_open: bool,
    session_closed: bool,
    wedged: bool,
    last_request: Option<Instant>,
    held: Option<Instant>,
}

impl Default for FakeGateway {
    fn default() -> Self {
        Self::new(Script::default())
    }
}

/// The UUID a constant-ID gateway hands out.
const UUID: &str = "ee242912-db5a-4b93-bc49-d615b0fa7965";

impl FakeGateway {
    /// A gateway following `script`.
    pub fn new(script: Script) -> Self {
        Self {
            script,
            requests: Vec::new(),
            connections: Vec::new(),
            received: Vec::new(),
            outbox: Vec::new(),
            backend: Backend::default(),
            ip: String::new(),
            session_seq: 0,
            session_open: false,
            session_closed: false,
            wedged: false,
            last_request: None,
            held: None,
        }
    }

    /// Queues MSNP bytes from the backend at once (delivered with the next answer).
    pub fn push(&mut self, msnp: &[u8]) {
        self.outbox.extend_from_slice(msnp);
    }

    /// Has the backend write `msnp` at `at` (an unsolicited command, say).
    pub fn push_at(&mut self, at: Instant, msnp: &[u8]) {
        let index = self.backend.scheduled.partition_point(|(t, _)| *t <= at);
        self.backend.scheduled.insert(index, (at, msnp.to_vec()));
    }

    /// Moves what the backend has written by `now` into the outbox.
    pub fn advance(&mut self, now: Instant) {
        while self.backend.scheduled.front().is_some_and(|(at, _)| *at <= now) {
            let (_, bytes) = self.backend.scheduled.pop_front().expect("checked");
            self.outbox.extend_from_slice(&bytes);
        }
    }

    /// When the gateway next has something to do by itself: a held poll's end, or the
    /// backend writing.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let write = self.backend.scheduled.front().map(|(at, _)| *at);
        let held = self.held.map(|until| match write {
            Some(at) => at.min(until),
            None => until,
        });
        held.or(write)
    }

    /// The answer to the held poll, once data is queued or its lifespan is over.
    pub fn release(&mut self, now: Instant) -> Option<Plan> {
        let until = self.held?;
        self.advance(now);
        if self.outbox.is_empty() && now < until {
            return None;
        }
        self.held = None;
        Some(self.answer(now, None))
    }

    /// Whether a poll is held.
    pub fn holding(&self) -> bool {
        self.held.is_some()
    }

    /// Records a request and decides the answer.
    pub fn handle(
        &mut self,
        now: Instant,
        listener: usize,
        connection: usize,
        request: &RawRequest,
    ) -> Plan {
        self.advance(now);
        let index = self.requests.len();
        let kind = match request.param("Action").as_deref() {
            Some("open") => RequestKind::Open,
            Some("poll") => RequestKind::Poll,
            _ => RequestKind::Send,
        };
        let lifespan = request.param("Lifespan").and_then(|l| l.parse().ok());
        self.requests.push(Seen {
            listener,
            connection,
            kind,
            target: request.target.clone(),
            host: request.header("Host").map(str::to_owned),
            session_id: request.param("SessionID"),
            lifespan,
            body: request.body.clone(),
            at: now,
        });
        let idle_since = self.last_request.replace(now);
        let fault = self.script.faults.get(&index).cloned();
        match fault {
            Some(Fault::Stall) => return Plan::Stall,
            Some(Fault::Status(code)) => return status(code),
            _ => {}
        }
        match kind {
            RequestKind::Open => {
                self.ip = request.param("IP").unwrap_or_default();
                self.session_seq = 0;
                self.session_open = true;
                self.session_closed = false;
                self.wedged = false;
                self.backend.gone = false;
            }
            RequestKind::Send | RequestKind::Poll => {
                let expired =
                    self.script.quirks.idle_expiry.zip(idle_since).is_some_and(
                        |(expiry, since)| now.saturating_duration_since(since) >= expiry,
                    );
                if expired {
                    self.session_closed = true;
                }
                if self.session_closed || request.param("SessionID") != self.current_id() {
                    return status(400);
                }
                if self.wedged {
                    return status(500);
                }
            }
        }
        if self.script.quirks.malformed_length_500 && has_zero_padded_length(&request.body) {
            self.wedged = true;
            return status(500);
        }
        self.take_commands(now, &request.body);
        let client_out = request.body.split(|&b| b == b'\n').any(|line| line.starts_with(b"OUT"));
        if client_out || fault == Some(Fault::SessionClose) {
            self.session_closed = true;
        }
        let delay = match fault {
            Some(Fault::Delay(d)) => Some(d),
            _ => None,
        };
        let held = kind == RequestKind::Poll
            && self.script.quirks.hold_polls
            && self.outbox.is_empty()
            && !self.session_closed;
        if let (true, Some(secs)) = (held, lifespan) {
            let until = now + Duration::from_secs(u64::from(secs));
            self.held = Some(until);
            return Plan::Hold { until };
        }
        if let Some(Fault::DropMidBody(keep)) = fault {
            let (messenger, body) = self.next_answer();
            let mut part = head_200(&messenger, Framing::Length(body.len()), false);
            part.extend_from_slice(&body[..keep.min(body.len())]);
            return Plan::Respond { delay, parts: vec![part], close: true };
        }
        self.answer(now, delay)
    }

    /// The backend takes the commands of a request: it echoes them, at once or line by line.
    fn take_commands(&mut self, now: Instant, body: &[u8]) {
        if self.backend.gone {
            return;
        }
        self.received.extend_from_slice(body);
        self.backend.received.extend_from_slice(body);
        match self.script.quirks.reply_line_gap {
            None => self.outbox.extend_from_slice(body),
            Some(gap) => {
                let mut at = now;
                let mut first = true;
                for line in body.split_inclusive(|&b| b == b'\n') {
                    if first {
                        self.outbox.extend_from_slice(line);
                        first = false;
                    } else {
                        at += gap;
                        self.push_at(at, line);
                    }
                }
            }
        }
    }

    /// A `200` with what is queued (up to the body cap), the next ID and `GW-IP`.
    fn answer(&mut self, now: Instant, delay: Option<Duration>) -> Plan {
        self.advance(now);
        let (messenger, body) = self.next_answer();
        self.encode(&messenger, &body, delay)
    }

    /// The next `X-MSN-Messenger` value and body, taken out of the outbox.
    fn next_answer(&mut self) -> (String, Vec<u8>) {
        let take = self.outbox.len().min(self.script.max_body);
        let body: Vec<u8> = self.outbox.drain(..take).collect();
        let server_out = body.split(|&b| b == b'\n').any(|line| line.starts_with(b"OUT"));
        if server_out {
            // The server hung up after `OUT`.
            self.backend.gone = true;
            if self.script.quirks.close_after_server_out {
                self.session_closed = true;
            }
        }
        self.session_seq += 1;
        let gw_ip = match &self.script.gw_ip {
            GwIp::EchoIp => self.ip.clone(),
            GwIp::Fixed(value) => value.clone(),
        };
        let id = self.current_id().unwrap_or_default();
        let mut messenger = format!("SessionID={id}; GW-IP={gw_ip}");
        if self.session_closed {
            messenger.push_str("; Session=close");
        }
        (messenger, body)
    }

    /// The session ID the next request must carry.
    fn current_id(&self) -> Option<String> {
        if !self.session_open {
            return None;
        }
        Some(match self.script.quirks.session_ids {
            SessionIds::Rotating => format!("954547325.{}", self.session_seq),
            SessionIds::ConstantUuid => UUID.to_owned(),
        })
    }

    fn encode(&self, messenger: &str, body: &[u8], delay: Option<Duration>) -> Plan {
        let script = &self.script;
        let mut parts = Vec::new();
        if script.continue_first {
            parts.push(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec());
        }
        let close = script.close_each || script.close_delimited;
        if script.close_delimited {
            let mut part = head_200(messenger, Framing::CloseDelimited, true);
            part.extend_from_slice(body);
            parts.push(part);
        } else if let Some(size) = script.chunked {
            parts.push(head_200(messenger, Framing::Chunked, close));
            for chunk in body.chunks(size.max(1)) {
                let mut part = format!("{:x}\r\n", chunk.len()).into_bytes();
                part.extend_from_slice(chunk);
                part.extend_from_slice(b"\r\n");
                parts.push(part);
            }
            parts.push(b"0\r\n\r\n".to_vec());
        } else {
            let mut part = head_200(messenger, Framing::Length(body.len()), close);
            part.extend_from_slice(body);
            parts.push(part);
        }
        Plan::Respond { delay, parts, close }
    }
}

/// Whether `body` holds a payload command line whose length has a leading zero.
fn has_zero_padded_length(body: &[u8]) -> bool {
    body.split(|&b| b == b'\n').any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let last = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
        line.starts_with(b"MSG ")
            && last.len() > 1
            && last[0] == b'0'
            && last.iter().all(u8::is_ascii_digit)
    })
}

fn status(code: u16) -> Plan {
    let reason = match code {
        400 => "Bad Request",
        500 => "Internal Server Error",
        _ => "Whatever",
    };
    Plan::Respond {
        delay: None,
        parts: vec![format!("HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\n\r\n").into_bytes()],
        close: false,
    }
}

enum Framing {
    Length(usize),
    Chunked,
    CloseDelimited,
}

fn head_200(messenger: &str, framing: Framing, close: bool) -> Vec<u8> {
    let version = match framing {
        Framing::CloseDelimited => "1.0",
        _ => "1.1",
    };
    let mut head = format!(
        "HTTP/{version} 200 OK\r\nx-msn-messenger: {messenger}\r\nContent-Type: application/x-msn-messenger\r\n"
    );
    match framing {
        Framing::Length(len) => head.push_str(&format!("Content-Length: {len}\r\n")),
        Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        Framing::CloseDelimited => {}
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str, body: &[u8]) -> RawRequest {
        RawRequest {
            target: target.to_owned(),
            headers: vec![("Host".into(), "gw".into())],
            body: body.to_vec(),
            wire: Vec::new(),
        }
    }

    fn body(plan: &Plan) -> String {
        let Plan::Respond { parts, .. } = plan else { panic!("{plan:?}") };
        String::from_utf8_lossy(&parts.concat()).into_owned()
    }

    const OPEN: &str = "/gateway/gateway.dll?Action=open&Server=NS&IP=10.1.2.3:1863";

    #[test]
    fn a_revival_gateway_echoes_ip_keeps_its_id_and_expires_idle_sessions() {
        let t0 = Instant::now();
        let mut gw = FakeGateway::new(Script::default().quirks(Quirks::revival()));
        let open = gw.handle(t0, 0, 0, &request(OPEN, b"VER 1 MSNP8\r\n"));
        let text = body(&open);
        assert!(text.contains(&format!("SessionID={UUID}; GW-IP=10.1.2.3:1863\r\n")), "{text}");
        let poll = format!("/gateway/gateway.dll?Action=poll&SessionID={UUID}");
        let at = t0 + Duration::from_secs(59);
        assert!(body(&gw.handle(at, 0, 0, &request(&poll, b""))).starts_with("HTTP/1.1 200"));
        let late = at + Duration::from_secs(60);
        assert!(body(&gw.handle(late, 0, 0, &request(&poll, b""))).starts_with("HTTP/1.1 400"));
    }

    #[test]
    fn a_server_out_without_session_close_leaves_a_dead_session_answering() {
        let t0 = Instant::now();
        let mut gw = FakeGateway::new(Script::default().quirks(Quirks::revival()));
        gw.handle(t0, 0, 0, &request(OPEN, b"VER 1 MSNP8\r\n"));
        gw.push(b"OUT OTH\r\n");
        let poll = format!("/gateway/gateway.dll?Action=poll&SessionID={UUID}");
        let text = body(&gw.handle(t0, 0, 0, &request(&poll, b"")));
        assert!(text.ends_with("\r\n\r\nOUT OTH\r\n") && !text.contains("Session=close"), "{text}");
        let send = format!("/gateway/gateway.dll?SessionID={UUID}");
        let text = body(&gw.handle(t0, 0, 0, &request(&send, b"CHG 2 NLN\r\n")));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
        assert_eq!(gw.received, b"VER 1 MSNP8\r\n", "nobody took the CHG");
    }

    #[test]
    fn replies_written_line_by_line_come_out_one_line_per_answer() {
        let t0 = Instant::now();
        let quirks = Quirks { reply_line_gap: Some(Duration::from_millis(5)), ..Quirks::default() };
        let mut gw = FakeGateway::new(Script::default().quirks(quirks));
        let text = body(&gw.handle(t0, 0, 0, &request(OPEN, b"VER 1 MSNP8\r\nCVR 2 x\r\n")));
        assert!(text.ends_with("\r\n\r\nVER 1 MSNP8\r\n"), "{text}");
        assert_eq!(gw.next_wakeup(), Some(t0 + Duration::from_millis(5)));
        gw.advance(t0 + Duration::from_millis(5));
        assert_eq!(gw.outbox, b"CVR 2 x\r\n");
    }

    #[test]
    fn a_holding_gateway_answers_a_held_poll_when_data_arrives() {
        let t0 = Instant::now();
        let quirks = Quirks { hold_polls: true, ..Quirks::default() };
        let mut gw = FakeGateway::new(Script::default().quirks(quirks));
        gw.handle(t0, 0, 0, &request(OPEN, b""));
        let poll = "/gateway/gateway.dll?Action=poll&SessionID=954547325.1&Lifespan=10";
        let until = t0 + Duration::from_secs(10);
        assert_eq!(gw.handle(t0, 0, 0, &request(poll, b"")), Plan::Hold { until });
        assert_eq!(gw.release(t0 + Duration::from_secs(1)), None);
        gw.push_at(t0 + Duration::from_secs(2), b"NLN x\r\n");
        assert_eq!(gw.next_wakeup(), Some(t0 + Duration::from_secs(2)));
        let text = body(&gw.release(t0 + Duration::from_secs(2)).expect("released"));
        assert!(text.ends_with("NLN x\r\n"), "{text}");
    }

    #[test]
    fn a_zero_padded_payload_length_wedges_a_strict_server() {
        let t0 = Instant::now();
        let mut gw = FakeGateway::new(Script::default().quirks(Quirks::revival()));
        gw.handle(t0, 0, 0, &request(OPEN, b"VER 1 MSNP8\r\n"));
        let send = format!("/gateway/gateway.dll?SessionID={UUID}");
        let bad = gw.handle(t0, 0, 0, &request(&send, b"MSG 2 N 05\r\nhello"));
        assert!(body(&bad).starts_with("HTTP/1.1 500"));
        let next = gw.handle(t0, 0, 0, &request(&send, b"CHG 3 NLN\r\n"));
        assert!(body(&next).starts_with("HTTP/1.1 500"), "wedged");
    }
}
