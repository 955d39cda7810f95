//! The runtime-independent half of the adapters' loopback test partners: what a scriptable,
//! misbehaving fake gateway (with an echoing MSNP backend) answers to each request, as bytes,
//! plus the request parser and the helpers tests use to compare what a client saw. Each
//! adapter's test support adds the sockets (tokio or async-io) around it, and includes this
//! file with `#[path]`.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use msn_http_core::Endpoint;
use msn_http_core::client::{CloseReason, RequestKind};
use msn_http_driver::{ClientEvent, ClientReceiver, Notice, SessionEnd};

/// Bounds on the fake servers' loops.
pub const MAX_CONNECTIONS: usize = 1_000;
pub const MAX_REQUESTS_PER_CONNECTION: usize = 10_000;
pub const MAX_READS_PER_MESSAGE: usize = 10_000;

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
    /// Answers normally after this long (fake time).
    Delay(Duration),
}

/// What `GW-IP` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GwIp {
    /// The `IP=` value of the open request, as revival servers do.
    EchoIp,
    /// A fixed value.
    Fixed(String),
}

/// How the gateway behaves.
#[derive(Clone, Debug)]
pub struct Script {
    pub faults: HashMap<usize, Fault>,
    /// `Connection: close` and a close after every response.
    pub close_each: bool,
    /// `HTTP/1.0` responses without `Content-Length`: the body ends when the connection does.
    pub close_delimited: bool,
    /// `Transfer-Encoding: chunked`, in chunks of this many bytes, each written separately.
    pub chunked: Option<usize>,
    /// `100 Continue` before every response.
    pub continue_first: bool,
    pub gw_ip: GwIp,
    /// At most this many MSNP bytes per response body (cut anywhere).
    pub max_body: usize,
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
        }
    }
}

impl Script {
    pub fn fault(mut self, request: usize, fault: Fault) -> Self {
        self.faults.insert(request, fault);
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
    pub kind: RequestKind,
    pub target: String,
    pub host: Option<String>,
    pub session_id: Option<String>,
    pub body: Vec<u8>,
}

/// The gateway's state, shared by its listeners.
#[derive(Debug, Default)]
pub struct GatewayState {
    pub script: Script,
    pub requests: Vec<Seen>,
    /// Connections accepted, per listener.
    pub connections: Vec<usize>,
    /// MSNP bytes the backend processed, in order.
    pub received: Vec<u8>,
    /// MSNP bytes queued for the client.
    pub outbox: Vec<u8>,
    ip: String,
    session_base: Option<String>,
    session_seq: u32,
    session_closed: bool,
}

/// A request read off the wire.
#[derive(Clone, Debug)]
pub struct RawRequest {
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Head and body as received.
    pub wire: Vec<u8>,
}

impl RawRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The query parameters, from an origin-form or absolute-form target.
    pub fn param(&self, key: &str) -> Option<String> {
        let (_, query) = self.target.split_once('?')?;
        query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then(|| v.to_owned())
        })
    }
}

/// What [`parse_request`] found at the front of a buffer.
pub enum Parsed {
    /// A whole request, taken out of the buffer.
    Request(RawRequest),
    /// More bytes are needed.
    Partial,
    /// Not HTTP.
    Invalid,
}

/// Takes one request (head, then a `Content-Length` body) off the front of `buf`.
pub fn parse_request(buf: &mut Vec<u8>) -> Parsed {
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut fields);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => head_len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid,
    };
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if buf.len() < head_len + len {
        return Parsed::Partial;
    }
    let Some(target) = req.path.map(str::to_owned) else {
        return Parsed::Invalid;
    };
    let wire: Vec<u8> = buf.drain(..head_len + len).collect();
    let body = wire[head_len..].to_vec();
    Parsed::Request(RawRequest { target, headers, body, wire })
}

/// The length of the `Content-Length` response (after any `100 Continue`) at the front of
/// `buf`, once it is all there; `Err` when it is not HTTP.
pub fn complete_response_len(buf: &[u8]) -> Result<Option<usize>, httparse::Error> {
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut fields);
    if let httparse::Status::Complete(head_len) = resp.parse(buf)? {
        let len: usize = resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
            .unwrap_or(0);
        if buf.len() >= head_len + len {
            return Ok(Some(head_len + len));
        }
    }
    Ok(None)
}

/// What to do with a request.
pub enum Plan {
    /// Hold the connection, never answering.
    Stall,
    /// Write `parts` (after `delay`, fake time), each on its own; then close if `close`.
    Respond { delay: Option<Duration>, parts: Vec<Vec<u8>>, close: bool },
}

impl GatewayState {
    /// A gateway state following `script`.
    pub fn new(script: Script) -> Self {
        Self { script, ..Self::default() }
    }

    /// Records a request and decides the answer.
    pub fn handle(&mut self, listener: usize, connection: usize, request: &RawRequest) -> Plan {
        let index = self.requests.len();
        let kind = match request.param("Action").as_deref() {
            Some("open") => RequestKind::Open,
            Some("poll") => RequestKind::Poll,
            _ => RequestKind::Send,
        };
        self.requests.push(Seen {
            listener,
            connection,
            kind,
            target: request.target.clone(),
            host: request.header("Host").map(str::to_owned),
            session_id: request.param("SessionID"),
            body: request.body.clone(),
        });
        let fault = self.script.faults.get(&index).cloned();
        match fault {
            Some(Fault::Stall) => return Plan::Stall,
            Some(Fault::Status(code)) => return self.status(code),
            _ => {}
        }
        match kind {
            RequestKind::Open => {
                self.ip = request.param("IP").unwrap_or_default();
                self.session_base = Some("954547325".to_owned());
                self.session_seq = 0;
                self.session_closed = false;
            }
            RequestKind::Send | RequestKind::Poll => {
                if self.session_closed || request.param("SessionID") != self.current_session_id() {
                    return self.status(400);
                }
            }
        }
        self.received.extend_from_slice(&request.body);
        self.outbox.extend_from_slice(&request.body);
        let out = request.body.split(|&b| b == b'\n').any(|line| line.starts_with(b"OUT"));
        let close_session = out || fault == Some(Fault::SessionClose);
        let take = self.outbox.len().min(self.script.max_body);
        let body: Vec<u8> = self.outbox.drain(..take).collect();
        self.session_seq += 1;
        let gw_ip = match &self.script.gw_ip {
            GwIp::EchoIp => self.ip.clone(),
            GwIp::Fixed(value) => value.clone(),
        };
        let mut messenger =
            format!("SessionID={}; GW-IP={gw_ip}", self.current_session_id().unwrap_or_default());
        if close_session {
            messenger.push_str("; Session=close");
            self.session_closed = true;
        }
        let delay = match fault {
            Some(Fault::Delay(d)) => Some(d),
            _ => None,
        };
        if let Some(Fault::DropMidBody(keep)) = fault {
            let mut part = head_200(&messenger, Framing::Length(body.len()), false);
            part.extend_from_slice(&body[..keep.min(body.len())]);
            return Plan::Respond { delay, parts: vec![part], close: true };
        }
        self.encode(&messenger, &body, delay)
    }

    fn current_session_id(&self) -> Option<String> {
        let base = self.session_base.as_ref()?;
        Some(format!("{base}.{}", self.session_seq))
    }

    fn status(&self, code: u16) -> Plan {
        let reason = match code {
            400 => "Bad Request",
            500 => "Internal Server Error",
            _ => "Whatever",
        };
        Plan::Respond {
            delay: None,
            parts: vec![
                format!("HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\n\r\n").into_bytes(),
            ],
            close: false,
        }
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

// ---------------------------------------------------------------------------------------------
// Client-side helpers
// ---------------------------------------------------------------------------------------------

pub fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint::new(addr.ip().to_string(), addr.port()).unwrap()
}

/// An event as a test compares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Cmd(String),
    Notice(Notice),
    Closed { reason: CloseReason, unsent: String, incomplete: usize },
}

pub fn cmd(text: &str) -> Ev {
    Ev::Cmd(text.to_owned())
}

pub fn ev(event: ClientEvent) -> Ev {
    match event {
        ClientEvent::Command(c) => Ev::Cmd(String::from_utf8_lossy(c.as_bytes()).into_owned()),
        ClientEvent::Notice(n) => Ev::Notice(n),
        ClientEvent::Closed(end) => closed(&end),
        other => panic!("unexpected event {other:?}"),
    }
}

pub fn closed(end: &SessionEnd) -> Ev {
    Ev::Closed {
        reason: end.reason.clone(),
        unsent: String::from_utf8_lossy(&end.unsent).into_owned(),
        incomplete: end.incomplete_inbound_bytes,
    }
}

/// The next `n` events (or fewer, if the session ends first).
pub async fn take(receiver: &mut ClientReceiver, n: usize) -> Vec<Ev> {
    let mut events = Vec::new();
    while events.len() < n {
        match receiver.recv_event().await {
            Some(event) => events.push(ev(event)),
            None => break,
        }
    }
    events
}

pub fn established(id: &str) -> Ev {
    Ev::Notice(Notice::Established { session_id: id.to_owned() })
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
