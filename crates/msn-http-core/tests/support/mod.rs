//! Shared test harness: a fake clock, a parser for the requests the client writes, gateway
//! response builders, and events copied out of the session so they can be compared.
#![allow(dead_code, unreachable_pub)]
// The harness's clock starts at the real time; the session under test never reads it.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use msn_http_core::Endpoint;
use msn_http_core::client::{
    ClientConfig, Closed, Connection, Event, MoveRefusal, Notice, Recovery, RequestKind, Session,
    Target,
};
use msn_http_core::error::SessionError;

/// A request as the gateway would see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub target: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub wire: Vec<u8>,
}

impl Request {
    /// Parses exactly one complete request; panics on anything else (the client wrote it).
    pub fn parse(wire: &[u8]) -> Request {
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut fields);
        let head_len = match req.parse(wire).expect("client wrote a valid head") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("client wrote a partial head"),
        };
        assert_eq!(req.method, Some("POST"));
        assert_eq!(req.version, Some(1));
        let target = req.path.expect("target").to_owned();
        let query = target
            .split_once('?')
            .map(|(_, q)| {
                q.split('&')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        (k.to_owned(), v.to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), String::from_utf8(h.value.to_vec()).expect("ascii")))
            .collect();
        let body = wire[head_len..].to_vec();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().expect("length"))
            .expect("Content-Length on every request");
        assert_eq!(body.len(), len, "Content-Length matches the body");
        Request { target, query, headers, body, wire: wire.to_vec() }
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn kind(&self) -> RequestKind {
        match self.param("Action") {
            Some("open") => RequestKind::Open,
            Some("poll") => RequestKind::Poll,
            None => RequestKind::Send,
            Some(other) => panic!("unknown action {other}"),
        }
    }
}

/// An event copied out of the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Established(String),
    Command(Vec<u8>),
    Data(Vec<u8>),
    Moved(String, String),
    Fallback(String, String),
    MoveRefused(String, MoveRefusal),
    PollsHeld(bool),
    Failed(RequestKind, SessionError, Recovery),
    Warning(SessionError),
    Closed(Closed),
}

impl Ev {
    pub fn command(text: &str) -> Ev {
        Ev::Command(text.as_bytes().to_vec())
    }
}

pub fn owned(event: Event<'_>) -> Ev {
    match event {
        Event::Notice(Notice::Established { session_id }) => Ev::Established(session_id),
        Event::Command(cmd) => Ev::Command(cmd.as_bytes().to_vec()),
        Event::Data(bytes) => Ev::Data(bytes.to_vec()),
        Event::Notice(Notice::GatewayMoved { from, to }) => {
            Ev::Moved(from.to_string(), to.to_string())
        }
        Event::Notice(Notice::GatewayFallback { unreachable, to }) => {
            Ev::Fallback(unreachable.to_string(), to.to_string())
        }
        Event::Notice(Notice::MoveRefused { to, reason }) => {
            Ev::MoveRefused(to.to_string(), reason)
        }
        Event::Notice(Notice::PollsHeld { held }) => Ev::PollsHeld(held),
        Event::Notice(Notice::RequestFailed { kind, error, recovery }) => {
            Ev::Failed(kind, error, recovery)
        }
        Event::Notice(Notice::Warning(error)) => Ev::Warning(error),
        Event::Closed(closed) => Ev::Closed(closed),
        other => panic!("unexpected event {other:?}"),
    }
}

pub fn drain(session: &mut Session) -> Vec<Ev> {
    let mut events = Vec::new();
    while let Some(event) = session.poll_event() {
        events.push(owned(event));
    }
    events
}

/// `HTTP/1.1 200 OK` with an `X-MSN-Messenger` header and a `Content-Length` body.
pub fn ok(messenger: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nX-MSN-Messenger: {messenger}\r\nContent-Type: application/x-msn-messenger\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A response with any status and no messenger header.
pub fn status(code: u16, reason: &str) -> Vec<u8> {
    format!("HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\n\r\n").into_bytes()
}

/// Concatenates the payload bytes of commands (for asserting streams).
pub fn concat(events: &[Ev]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        if let Ev::Command(b) | Ev::Data(b) = e {
            out.extend_from_slice(b);
        }
    }
    out
}

pub fn gateway() -> Endpoint {
    Endpoint::parse("gw.test", 80).expect("valid")
}

pub fn config() -> ClientConfig {
    ClientConfig::new(gateway())
}

/// A session on a fake clock, with a buffer for requests and a log of events.
pub struct Harness {
    pub session: Session,
    pub start: Instant,
    pub now: Instant,
    pub out: Vec<u8>,
    pub events: Vec<Ev>,
}

impl Harness {
    pub fn new(config: ClientConfig, target: Target) -> Harness {
        let start = Instant::now();
        let session = Session::new(config, target, start).expect("valid config");
        Harness { session, start, now: start, out: Vec::new(), events: Vec::new() }
    }

    pub fn ns(config: ClientConfig) -> Harness {
        Harness::new(config, Target::notification("messenger.test"))
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.session.handle_timeout(self.now);
        self.drain();
    }

    /// The next request, if the session makes one now, with its destination and connection.
    pub fn transmit(&mut self) -> Option<(Request, Endpoint, Connection)> {
        self.out.clear();
        let t = self.session.poll_transmit(self.now, &mut self.out)?;
        let (dest, conn, len) = (t.destination.clone(), t.connection, t.len);
        assert_eq!(len, self.out.len());
        assert!(self.session.poll_transmit(self.now, &mut Vec::new()).is_none(), "two in flight");
        Some((Request::parse(&self.out), dest, conn))
    }

    pub fn request(&mut self) -> Request {
        self.transmit().expect("a request is due").0
    }

    /// Where the request due now goes.
    pub fn destination(&mut self) -> String {
        self.transmit().expect("a request is due").1.to_string()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.session.handle_input(self.now, bytes);
        self.drain();
    }

    pub fn eof(&mut self) {
        self.session.handle_eof(self.now);
        self.drain();
    }

    pub fn drain(&mut self) {
        let events = drain(&mut self.session);
        self.events.extend(events);
    }

    pub fn take_events(&mut self) -> Vec<Ev> {
        std::mem::take(&mut self.events)
    }

    /// Moves the clock to the session's next deadline and fires it; false when none.
    pub fn wait(&mut self) -> bool {
        let Some(at) = self.session.poll_timeout() else {
            return false;
        };
        self.now = self.now.max(at);
        self.session.handle_timeout(self.now);
        self.drain();
        true
    }

    /// Sends VER, answers the open request, and returns the open request.
    pub fn open(&mut self, session_id: &str) -> Request {
        self.session.send(b"VER 1 MSNP8 CVR0\r\n").expect("queued");
        let open = self.request();
        assert_eq!(open.kind(), RequestKind::Open);
        self.feed(&ok(&format!("SessionID={session_id}; GW-IP=gw.test"), b"VER 1 MSNP8\r\n"));
        open
    }

    /// A notification session opened as `s`, with its opening events taken.
    pub fn opened(config: ClientConfig) -> Harness {
        let mut h = Harness::ns(config);
        h.open("s");
        h.take_events();
        h
    }

    /// [`Harness::opened`], with the first poll (two seconds on, as official polling makes it)
    /// in flight.
    pub fn polling(config: ClientConfig) -> Harness {
        let mut h = Harness::opened(config);
        h.advance(Duration::from_secs(2));
        assert_eq!(h.request().kind(), RequestKind::Poll, "the first poll");
        h
    }
}
