//! The gateway core end to end, all in memory on a fake clock: client `Session`s talk to a
//! `Gateway` that talks to scripted MSNP backends, and raw requests probe the HTTP edges.
// Tests live in a process of their own: they may read a clock for an origin and read files.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use msn_http_core::Endpoint;
use msn_http_core::client::{
    ClientConfig, CloseReason, Closed, Connection, Event, LONG_POLL_SETTLE, Notice, OutReason,
    PollPolicy, Session, Target,
};
use msn_http_core::error::{RemoteError, SessionError};
use msn_http_core::gateway::{
    Action, AllowedOrigins, BackendAllowlist, BackendId, BackendRule, ConnectFailure, ConnectionId,
    CorsPolicy, Gateway, GatewayConfig, MsnpPorts, PingPolicy, Transmit,
};
use msn_http_core::msnp::{CommandFramer, FramerLimits, PayloadCommands};
use msn_http_core::wire::{
    HeaderSet, HttpLimits, QueryAction, RequestDecoder, RequestEncoder, RequestLine, RequestStep,
    ResponseDecoder, ResponseStep, ServerKind, TargetForm, parse_messenger_header,
};

// ---------------------------------------------------------------------------------------------
// Harness

/// A client event, copied out.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Established(String),
    Command(Vec<u8>),
    Closed(CloseReason),
    Other(String),
}

fn cmd(text: &str) -> Ev {
    Ev::Command(text.as_bytes().to_vec())
}

/// Replies of a scripted MSNP server to one whole command.
type Script = fn(&[u8]) -> Vec<u8>;

fn trid(command: &[u8]) -> String {
    String::from_utf8_lossy(command).split_whitespace().nth(1).unwrap_or("0").to_owned()
}

/// A notification server and switchboard in one: answers the login and acknowledges messages.
fn msnp_server(command: &[u8]) -> Vec<u8> {
    let t = trid(command);
    let reply = match &command[..3] {
        b"VER" => format!("VER {t} MSNP8 CVR0\r\n"),
        b"CVR" => format!("CVR {t} 6.0.0602 6.0.0602 1.0.0000 http://download x\r\n"),
        b"USR" => format!("USR {t} OK alice@example.com Alice\r\n"),
        b"ANS" => format!("ANS {t} OK\r\n"),
        b"CAL" => format!("CAL {t} RINGING 1\r\n"),
        b"MSG" => format!("ACK {t}\r\n"),
        b"CHG" => format!("CHG {t} NLN 0\r\n"),
        b"SYN" => format!("SYN {t} 1 2 2\r\nGTC A\r\nBLP AL\r\nLSG 0 Friends 0\r\n"),
        b"PNG" => "QNG 45\r\n".to_owned(),
        _ => String::new(),
    };
    reply.into_bytes()
}

/// A notification server that knows nothing of switchboards: a switchboard `USR` (user and
/// ticket, no `TWN`/`MD5`) gets `911`, as a real NS answers it.
fn ns_only_server(command: &[u8]) -> Vec<u8> {
    let words: Vec<&[u8]> = command.split(|&b| b == b' ').collect();
    let sb_usr = &command[..3] == b"USR" && words.len() == 4;
    match sb_usr {
        true => format!("911 {}\r\n", trid(command)).into_bytes(),
        false => msnp_server(command),
    }
}

/// A switchboard: `USR` with a ticket is welcome.
fn sb_only_server(command: &[u8]) -> Vec<u8> {
    match &command[..3] {
        b"USR" => format!("USR {} OK alice@example.com Alice\r\n", trid(command)).into_bytes(),
        b"VER" => format!("911 {}\r\n", trid(command)).into_bytes(),
        _ => msnp_server(command),
    }
}

/// Ways real MSNP servers behave that a gateway must cope with, one switch each.
#[derive(Clone, Copy, Debug)]
struct Quirks {
    /// Each command of a reply is written on its own, this long after the one before (the
    /// first this long after the request). Zero: the reply goes at once, in one write.
    line_gap: Duration,
    /// After `USR ... OK` the server pushes a profile `MSG`, unasked, as the NS does.
    profile_after_login: bool,
    /// Hang up after the client's `OUT`, as servers do; otherwise stay connected.
    close_after_out: bool,
}

impl Default for Quirks {
    fn default() -> Self {
        Self { line_gap: Duration::ZERO, profile_after_login: false, close_after_out: true }
    }
}

/// The profile an NS pushes after a login.
const PROFILE: &str = "MSG Hotmail Hotmail 79\r\nMIME-Version: 1.0\r\nContent-Type: text/x-msmsgsprofile; charset=UTF-8\r\nkv: 1\r\n\r\n";

struct Backend {
    script: Script,
    quirks: Quirks,
    framer: CommandFramer,
    received: Vec<u8>,
    /// Bytes it has written (the gateway reads them as it pleases).
    pending: Vec<u8>,
    /// Commands it will write at their time.
    scheduled: Vec<(Instant, Vec<u8>)>,
    paused: bool,
    closed: bool,
    /// Hang up once `pending` is delivered.
    eof_due: bool,
    eof_sent: bool,
}

impl Backend {
    fn new(script: Script, quirks: Quirks) -> Self {
        Backend {
            script,
            quirks,
            framer: CommandFramer::new(PayloadCommands::default(), FramerLimits::default()),
            received: Vec::new(),
            pending: Vec::new(),
            scheduled: Vec::new(),
            paused: false,
            closed: false,
            eof_due: false,
            eof_sent: false,
        }
    }

    fn receive(&mut self, now: Instant, bytes: &[u8]) {
        self.received.extend_from_slice(bytes);
        self.framer.push(bytes);
        while let Some(command) = self.framer.next_command().expect("client sent valid MSNP") {
            let mut reply = (self.script)(command.as_bytes());
            if self.quirks.profile_after_login && reply.windows(8).any(|w| w == b" OK alic") {
                reply.extend_from_slice(PROFILE.as_bytes());
            }
            let out = command.name() == "OUT";
            self.write(now, &reply);
            if out && self.quirks.close_after_out {
                self.eof_due = true;
            }
        }
    }

    /// Writes `reply` at once, or command by command under `line_gap`.
    fn write(&mut self, now: Instant, reply: &[u8]) {
        if self.quirks.line_gap.is_zero() {
            return self.pending.extend_from_slice(reply);
        }
        let mut framer = CommandFramer::new(PayloadCommands::default(), FramerLimits::default());
        framer.push(reply);
        let mut at = self.scheduled.last().map_or(now, |(at, _)| (*at).max(now));
        while let Some(command) = framer.next_command().expect("scripts write MSNP") {
            at += self.quirks.line_gap;
            self.scheduled.push((at, command.as_bytes().to_vec()));
        }
    }

    /// Writes what is due by `now`.
    fn release(&mut self, now: Instant) {
        let due = self.scheduled.iter().take_while(|(at, _)| *at <= now).count();
        for (_, command) in self.scheduled.drain(..due) {
            self.pending.extend_from_slice(&command);
        }
    }

    fn next_write(&self) -> Option<Instant> {
        self.scheduled.first().map(|(at, _)| *at)
    }

    fn busy(&self) -> bool {
        !self.pending.is_empty() || !self.scheduled.is_empty()
    }
}

struct Client {
    session: Session,
    conn: Option<ConnectionId>,
    events: Vec<Ev>,
    /// Request lines it sent.
    requests: Vec<String>,
    /// When answer bytes came in.
    answered_at: Vec<Instant>,
    /// Not driven while frozen (a client that went away).
    frozen: bool,
    closed: Option<Closed>,
}

impl Client {
    fn drain(&mut self) {
        while let Some(event) = self.session.poll_event() {
            self.events.push(match event {
                Event::Notice(Notice::Established { session_id }) => Ev::Established(session_id),
                Event::Command(c) => Ev::Command(c.as_bytes().to_vec()),
                Event::Closed(closed) => {
                    self.closed = Some(closed.clone());
                    Ev::Closed(closed.reason)
                }
                other => Ev::Other(format!("{other:?}")),
            });
        }
    }

    fn take(&mut self) -> Vec<Ev> {
        std::mem::take(&mut self.events)
    }

    /// The bytes of the commands received, which must be all the events there are.
    fn take_commands(&mut self) -> Vec<u8> {
        let events = self.take();
        events
            .into_iter()
            .flat_map(|e| match e {
                Ev::Command(bytes) => bytes,
                other => panic!("{other:?} where only commands were due"),
            })
            .collect()
    }

    /// The `SessionID` of every request that carried one.
    fn session_ids(&self) -> Vec<String> {
        self.requests
            .iter()
            .filter_map(|line| line.split("SessionID=").nth(1))
            .map(|rest| rest.split([' ', '&']).next().unwrap_or("").to_owned())
            .collect()
    }
}

/// Something the gateway produced, copied out.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Out {
    Client(ConnectionId, Vec<u8>, bool),
    Backend(BackendId, Vec<u8>),
    Action(Action),
}

struct Sim {
    gw: Gateway,
    start: Instant,
    now: Instant,
    clients: Vec<Client>,
    backends: BTreeMap<BackendId, Backend>,
    script: Script,
    quirks: Quirks,
    /// Backends whose port is listed run that script instead of `script`.
    port_scripts: Vec<(u16, Script)>,
    /// How long past its last event a pump lets time run, so that answers held for a quiet
    /// backend leave: the gateway's `reply_quiet_gap`.
    settle: Duration,
    auto_connect: bool,
    next_conn: u64,
    connects: Vec<(BackendId, String, ServerKind)>,
    actions: Vec<Action>,
    /// Bytes the gateway wrote to connections of no client (raw requests), and whether closed.
    raw: BTreeMap<ConnectionId, (Vec<u8>, bool)>,
    /// Backend reads accepted only in part (backpressure).
    partial_accepts: usize,
}

fn base_config() -> GatewayConfig {
    let backends =
        BackendAllowlist::new().allow("messenger.test", Some(1863)).allow("127.0.0.1", None);
    GatewayConfig::new("gw.test", [42; 32]).with_backends(backends)
}

/// A simulation of a gateway with [`base_config`] as `change` leaves it.
fn sim_with(change: impl FnOnce(&mut GatewayConfig)) -> Sim {
    let mut config = base_config();
    change(&mut config);
    Sim::new(config)
}

fn client_config(policy: PollPolicy) -> ClientConfig {
    let mut config = ClientConfig::new(Endpoint::parse("gw.test", 80).unwrap());
    config.poll_policy = policy;
    config
}

impl Sim {
    fn new(config: GatewayConfig) -> Sim {
        let start = Instant::now();
        let settle = config.reply_quiet_gap;
        Sim {
            gw: Gateway::new(config, start).expect("valid config"),
            start,
            now: start,
            clients: Vec::new(),
            backends: BTreeMap::new(),
            script: msnp_server,
            quirks: Quirks::default(),
            port_scripts: Vec::new(),
            settle,
            auto_connect: true,
            next_conn: 0,
            connects: Vec::new(),
            actions: Vec::new(),
            raw: BTreeMap::new(),
            partial_accepts: 0,
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn add_client(&mut self, policy: PollPolicy, target: Target) -> usize {
        let session =
            Session::new(client_config(policy), target, self.now).expect("valid client config");
        self.clients.push(Client {
            session,
            conn: None,
            events: Vec::new(),
            requests: Vec::new(),
            answered_at: Vec::new(),
            frozen: false,
            closed: None,
        });
        self.clients.len() - 1
    }

    /// An NS client that sent `VER` and got the gateway's first answer.
    /// A new client for `target`, polling officially, sends its first command; everything
    /// runs until quiet.
    fn join(&mut self, target: Target, first: &[u8]) -> usize {
        let c = self.add_client(PollPolicy::official(), target);
        self.send(c, first);
        c
    }

    /// Client `c` sends `command`, and everything runs until quiet.
    fn send(&mut self, c: usize, command: &[u8]) {
        self.clients[c].session.send(command).expect("queued");
        self.pump();
    }

    fn open_ns(&mut self, policy: PollPolicy) -> usize {
        let c = self.add_client(policy, Target::notification("messenger.test"));
        self.send(
            c,
            b"VER 1 MSNP8 CVR0
",
        );
        assert_eq!(self.clients[c].events[1], cmd("VER 1 MSNP8 CVR0\r\n"));
        self.clients[c].take();
        c
    }

    fn backend(&mut self, n: usize) -> &mut Backend {
        self.backends.values_mut().nth(n).expect("backend exists")
    }

    fn only_backend(&self) -> BackendId {
        assert_eq!(self.backends.len(), 1);
        *self.backends.keys().next().unwrap()
    }

    /// Moves bytes until nothing moves; while bytes moved, lets time run to what is due within
    /// the settle time (a backend writing line by line, an answer held for a backend to fall
    /// quiet), so that what follows an exchange at once has happened.
    fn pump(&mut self) {
        let mut moved_at = self.move_bytes().then_some(self.now);
        for _ in 0..10_000 {
            match (self.next_deadline(), moved_at) {
                (Some(at), Some(moved)) if at <= moved + self.settle => {
                    self.now = self.now.max(at);
                    self.fire_timers();
                    if self.move_bytes() {
                        moved_at = Some(self.now);
                    }
                }
                _ => break,
            }
        }
        for c in &mut self.clients {
            c.drain();
        }
    }

    /// Moves bytes until nothing moves; whether any did.
    fn move_bytes(&mut self) -> bool {
        let mut moved = false;
        for _ in 0..100_000 {
            let mut progress = false;
            for i in 0..self.clients.len() {
                progress |= self.client_transmit(i);
            }
            progress |= self.drain_gateway();
            progress |= self.feed_backends();
            if !progress {
                break;
            }
            moved = true;
        }
        moved
    }

    fn client_transmit(&mut self, i: usize) -> bool {
        let now = self.now;
        let c = &mut self.clients[i];
        if c.frozen {
            return false;
        }
        let mut out = Vec::new();
        let Some(t) = c.session.poll_transmit(now, &mut out) else {
            return false;
        };
        if t.connection == Connection::Fresh || c.conn.is_none() {
            if let Some(old) = c.conn.take() {
                self.gw.handle_client_eof(now, old);
            }
            self.next_conn += 1;
            let id = ConnectionId(self.next_conn);
            self.gw.handle_accept(now, id).expect("accepted");
            c.conn = Some(id);
        }
        let line = out.split(|&b| b == b'\r').next().unwrap_or_default();
        c.requests.push(String::from_utf8_lossy(line).into_owned());
        let conn = c.conn.expect("connected");
        let taken = self.gw.handle_client_input(now, conn, &out);
        assert_eq!(taken, out.len(), "one request in flight fits the read budget");
        true
    }

    fn drain_gateway(&mut self) -> bool {
        let mut any = false;
        for out in drain(&mut self.gw, self.now) {
            any = true;
            match out {
                Out::Client(conn, bytes, close) => {
                    if let Some(c) = self.clients.iter_mut().find(|c| c.conn == Some(conn)) {
                        c.answered_at.push(self.now);
                        c.session.handle_input(self.now, &bytes);
                        if close {
                            c.conn = None;
                            c.session.handle_eof(self.now);
                        }
                    } else {
                        let entry = self.raw.entry(conn).or_default();
                        entry.0.extend_from_slice(&bytes);
                        entry.1 |= close;
                    }
                }
                Out::Backend(id, bytes) => {
                    let b = self.backends.get_mut(&id).expect("known backend");
                    assert!(!b.closed, "bytes for a closed backend");
                    b.receive(self.now, &bytes);
                }
                Out::Action(action) => {
                    match &action {
                        Action::Connect { backend, endpoint, server } => {
                            self.connects.push((*backend, endpoint.to_string(), *server));
                            let script = self
                                .port_scripts
                                .iter()
                                .find(|(port, _)| *port == endpoint.port())
                                .map_or(self.script, |(_, script)| *script);
                            self.backends.insert(*backend, Backend::new(script, self.quirks));
                            if self.auto_connect {
                                self.gw.handle_backend_connected(self.now, *backend);
                            }
                        }
                        Action::PauseBackend(id) => {
                            self.backends.get_mut(id).unwrap().paused = true
                        }
                        Action::ResumeBackend(id) => {
                            self.backends.get_mut(id).unwrap().paused = false
                        }
                        Action::CloseBackend(id) => {
                            self.backends.get_mut(id).unwrap().closed = true
                        }
                        Action::CloseClient(conn) => {
                            if let Some(c) = self.clients.iter_mut().find(|c| c.conn == Some(*conn))
                            {
                                c.conn = None;
                                c.session.handle_eof(self.now);
                            }
                        }
                        other => panic!("unexpected action {other:?}"),
                    }
                    self.actions.push(action);
                }
            }
        }
        any
    }

    fn feed_backends(&mut self) -> bool {
        let mut any = false;
        for (id, b) in self.backends.iter_mut() {
            b.release(self.now);
            if b.paused || b.closed {
                continue;
            }
            if !b.pending.is_empty() {
                // Reads of at most 4 KiB, like a socket buffer.
                let chunk = b.pending.len().min(4096);
                let taken = self.gw.handle_backend_input(self.now, *id, &b.pending[..chunk]);
                if taken < chunk {
                    self.partial_accepts += 1;
                }
                b.pending.drain(..taken);
                any |= taken > 0;
            }
            if b.eof_due && !b.busy() && !b.eof_sent {
                b.eof_sent = true;
                self.gw.handle_backend_eof(self.now, *id);
                any = true;
            }
        }
        any
    }

    fn next_deadline(&self) -> Option<Instant> {
        let clients =
            self.clients.iter().filter(|c| !c.frozen).filter_map(|c| c.session.poll_timeout());
        let backends = self.backends.values().filter_map(Backend::next_write);
        clients.chain(backends).chain(self.gw.poll_timeout()).min()
    }

    fn fire(&mut self) {
        self.fire_timers();
        self.pump();
    }

    fn fire_timers(&mut self) {
        self.gw.handle_timeout(self.now);
        for c in self.clients.iter_mut().filter(|c| !c.frozen) {
            c.session.handle_timeout(self.now);
        }
    }

    /// Runs every timer up to `now + d`, then sets the clock there.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..100_000 {
            match self.next_deadline() {
                Some(at) if at <= end => {
                    self.now = self.now.max(at);
                    self.fire();
                }
                _ => break,
            }
        }
        self.now = end;
        self.fire();
    }

    /// Runs until `done` holds (checked after each timer), at most `limit` of fake time.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Sim) -> bool) {
        let end = self.now + limit;
        for _ in 0..100_000 {
            if done(self) {
                return;
            }
            match self.next_deadline() {
                Some(at) if at <= end => {
                    self.now = self.now.max(at);
                    self.fire();
                }
                _ => panic!("not done within {limit:?}"),
            }
        }
        panic!("not done after many steps");
    }

    /// Sends raw bytes on a new connection and returns everything written back, and whether
    /// the gateway closed the connection.
    /// A client connection `id` is accepted and writes `bytes`; nothing runs yet.
    fn accept_and_write(&mut self, id: ConnectionId, bytes: &[u8]) {
        self.gw.handle_accept(self.now, id).expect("accepted");
        self.gw.handle_client_input(self.now, id, bytes);
    }

    fn raw_request(&mut self, bytes: &[u8]) -> (Vec<u8>, bool) {
        self.next_conn += 1;
        let id = ConnectionId(self.next_conn);
        self.accept_and_write(id, bytes);
        self.pump();
        self.raw.remove(&id).unwrap_or_default()
    }
}

/// Everything the gateway has to say now: transmits, then actions. Done as a driver whose
/// writes always go through at once: each answer is reported written, each close done.
fn drain(gw: &mut Gateway, now: Instant) -> Vec<Out> {
    let mut outs = Vec::new();
    loop {
        let mut buf = Vec::new();
        match gw.poll_transmit(now, &mut buf) {
            None => {
                let before = outs.len();
                while let Some(action) = gw.poll_action() {
                    if let Action::CloseClient(conn) = action {
                        gw.handle_client_eof(now, conn);
                    }
                    outs.push(Out::Action(action));
                }
                if outs.len() == before {
                    break;
                }
            }
            Some(Transmit::Client { connection, len, close, interim }) => {
                assert_eq!(len, buf.len());
                assert_eq!(interim, buf == b"HTTP/1.1 100 Continue\r\n\r\n");
                gw.handle_client_written(now, connection, 0);
                if close {
                    gw.handle_client_eof(now, connection);
                }
                outs.push(Out::Client(connection, buf, close));
            }
            Some(Transmit::Backend { backend, len }) => {
                assert_eq!(len, buf.len());
                outs.push(Out::Backend(backend, buf));
            }
        }
    }
    outs
}

/// A decoded response.
#[derive(Debug)]
struct Resp {
    status: u16,
    messenger: Option<String>,
    body: Vec<u8>,
    text: String,
}

impl Resp {
    fn session_id(&self) -> String {
        let raw = self.messenger.as_ref().expect("X-MSN-Messenger");
        let header = parse_messenger_header(raw.as_bytes()).unwrap();
        header.session_id.unwrap().to_owned()
    }

    fn closes_session(&self) -> bool {
        let raw = self.messenger.as_ref().expect("X-MSN-Messenger");
        parse_messenger_header(raw.as_bytes()).unwrap().session_close
    }
}

/// Decodes the responses in `wire` with the client's decoder.
fn responses(wire: &[u8]) -> Vec<Resp> {
    let mut out = Vec::new();
    let mut input = wire;
    while !input.is_empty() {
        let before = input;
        let mut d = ResponseDecoder::new(HttpLimits::default());
        let mut body = Vec::new();
        loop {
            match d.decode(&mut input).expect("valid response") {
                ResponseStep::Head => {}
                ResponseStep::NeedMore => panic!("truncated response"),
                ResponseStep::Body(b) => body.extend_from_slice(b),
                ResponseStep::Complete => break,
            }
        }
        let used = before.len() - input.len();
        out.push(Resp {
            status: d.head().status(),
            messenger: d.head().messenger().map(|m| String::from_utf8(m.to_vec()).unwrap()),
            body,
            text: String::from_utf8_lossy(&before[..used]).into_owned(),
        });
    }
    out
}

fn one_response(wire: &[u8]) -> Resp {
    let mut all = responses(wire);
    assert_eq!(all.len(), 1, "{}", String::from_utf8_lossy(wire));
    all.remove(0)
}

/// A request as the official client would write it, to the gateway directly.
fn request(line: RequestLine<'_>, body: &[u8]) -> Vec<u8> {
    let enc = RequestEncoder::new("/gateway/gateway.dll", &HeaderSet::official(), None).unwrap();
    let gw = Endpoint::parse("gw.test", 80).unwrap();
    let mut out = Vec::new();
    enc.encode(&mut out, &gw, TargetForm::Origin, line, body);
    out
}

fn open_request(ip: &str, body: &[u8]) -> Vec<u8> {
    request(RequestLine::Open { server: ServerKind::Notification, ip }, body)
}

fn send_request(session_id: &str, body: &[u8]) -> Vec<u8> {
    request(RequestLine::Send { session_id }, body)
}

fn poll_request(session_id: &str) -> Vec<u8> {
    request(RequestLine::Poll { session_id, lifespan: None }, b"")
}

/// A switchboard session's first command.
const SB_LOGIN: &[u8] = b"USR 1 alice@example.com 17262740.1050826919.32308\r\n";

const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";

// ---------------------------------------------------------------------------------------------
// Sessions through the client core

#[test]
fn ns_login_through_the_gateway() {
    let mut sim = Sim::new(base_config());
    let c = sim.join(Target::notification("messenger.test"), b"VER 1 MSNP8 CVR0\r\n");
    sim.send(c, b"CVR 2 0x0409 win 4.10 i386 MSNMSGR 5.0.0544 MSMSGS alice@example.com\r\n");
    sim.send(c, b"USR 3 TWN I alice@example.com\r\n");

    let events = sim.clients[c].take();
    let Ev::Established(first_id) = &events[0] else { panic!("{events:?}") };
    assert_eq!(
        events[1..],
        [
            cmd("VER 1 MSNP8 CVR0\r\n"),
            cmd("CVR 2 6.0.0602 6.0.0602 1.0.0000 http://download x\r\n"),
            cmd("USR 3 OK alice@example.com Alice\r\n"),
        ]
    );
    // Every answer came back in the response to the request that asked: no waiting for polls,
    // only for the backend to fall quiet after each reply.
    assert_eq!(sim.elapsed(), 3 * GatewayConfig::new("gw", [0; 32]).reply_quiet_gap);
    assert_eq!(
        sim.connects,
        [(sim.only_backend(), "messenger.test:1863".to_owned(), ServerKind::Notification)]
    );
    assert_eq!(
        sim.backend(0).received,
        b"VER 1 MSNP8 CVR0\r\nCVR 2 0x0409 win 4.10 i386 MSNMSGR 5.0.0544 MSMSGS alice@example.com\r\nUSR 3 TWN I alice@example.com\r\n"
    );
    assert_eq!(sim.gw.stats().responses, 3);

    // IDs: `number.number`, the first part fixed, the second new with every response.
    let mut ids = sim.clients[c].session_ids();
    assert_eq!(&ids[0], first_id);
    ids.push(sim.clients[c].session.session_id().unwrap().to_owned());
    assert_eq!(ids.len(), 3);
    let parts: Vec<(&str, &str)> = ids.iter().map(|id| id.split_once('.').unwrap()).collect();
    for (stable, suffix) in &parts {
        assert!(stable.parse::<u64>().is_ok() && suffix.parse::<u32>().is_ok(), "{ids:?}");
        assert_eq!(*stable, parts[0].0);
    }
    for pair in parts.windows(2) {
        assert_ne!(pair[0].1, pair[1].1, "{ids:?}");
    }

    // Polling keeps the session alive well past the idle timeout.
    sim.run_for(Duration::from_secs(90));
    assert_eq!(sim.gw.session_count(), 1);
    assert!(!sim.clients[c].session.is_closed());
    assert!(sim.gw.stats().responses > 40);
}

#[test]
fn sb_session_sends_and_leaves_with_out() {
    let mut sim = Sim::new(base_config());
    let c = sim.join(Target::switchboard("127.0.0.1:1864"), SB_LOGIN);
    assert_eq!(sim.connects[0].1, "127.0.0.1:1864");
    assert_eq!(sim.connects[0].2, ServerKind::Switchboard);
    sim.send(c, b"CAL 2 bob@example.com\r\n");
    // Bob joins and writes, unprompted: it arrives with the next poll.
    sim.backend(0)
        .pending
        .extend_from_slice(b"JOI bob@example.com Bob\r\nMSG bob@example.com Bob 5\r\nhello");
    sim.pump();
    sim.run_for(Duration::from_secs(2));
    sim.send(c, b"MSG 3 N 3\r\nhey");
    let events = sim.clients[c].take();
    assert_eq!(
        events[1..],
        [
            cmd("USR 1 OK alice@example.com Alice\r\n"),
            cmd("CAL 2 RINGING 1\r\n"),
            cmd("JOI bob@example.com Bob\r\n"),
            cmd("MSG bob@example.com Bob 5\r\nhello"),
            cmd("ACK 3\r\n"),
        ]
    );

    // OUT: forwarded, answered with Session=close, then the backend is closed.
    let before = sim.actions.len();
    sim.clients[c].session.close();
    sim.pump();
    assert_eq!(sim.clients[c].take(), [Ev::Closed(CloseReason::ServerClosed)]);
    assert!(sim.backend(0).received.ends_with(b"MSG 3 N 3\r\nheyOUT\r\n"));
    assert!(sim.backend(0).closed);
    assert_eq!(sim.actions[before..], [Action::CloseBackend(sim.only_backend())]);
    assert_eq!(sim.gw.session_count(), 0);
}

#[test]
fn out_reaches_the_backend_before_it_is_closed() {
    let mut sim = Sim::new(base_config());
    let open = sim.raw_request(&open_request("messenger.test", b"VER 1 MSNP8\r\n"));
    let id = one_response(&open.0).session_id();
    let backend = sim.only_backend();
    sim.gw.handle_client_input(sim.now, ConnectionId(99), b"ignored: unknown connection");
    sim.accept_and_write(ConnectionId(50), &send_request(&id, b"OUT\r\nVER 2\r\n"));
    let outs = drain(&mut sim.gw, sim.now);
    assert_eq!(outs.len(), 3, "{outs:?}");
    assert_eq!(outs[0], Out::Backend(backend, b"OUT\r\n".to_vec()));
    let Out::Client(ConnectionId(50), bytes, false) = &outs[1] else { panic!("{outs:?}") };
    let resp = one_response(bytes);
    assert!(resp.closes_session());
    assert_eq!(outs[2], Out::Action(Action::CloseBackend(backend)));
}

#[test]
fn a_payload_larger_than_a_response_is_reassembled() {
    let mut sim = sim_with(|c| c.max_response_body_bytes = 16 * 1024);
    let c = sim.open_ns(PollPolicy::official());
    let mut payload = b"MSG Hotmail Hotmail 40000\r\n".to_vec();
    payload.extend((0..40_000).map(|i| b"abcdefghij"[i % 10]));
    payload.extend_from_slice(b"CHL 0 1234\r\n");
    sim.backend(0).pending.extend_from_slice(&payload);
    // The server hangs up after it: the last bytes come with Session=close.
    sim.backend(0).eof_due = true;
    let responses_before = sim.gw.stats().responses;
    sim.run_until(Duration::from_secs(20), |sim| sim.clients[0].session.is_closed());
    let events = sim.clients[c].take();
    assert_eq!(
        events,
        [
            Ev::Command(payload[..payload.len() - 12].to_vec()),
            cmd("CHL 0 1234\r\n"),
            Ev::Closed(CloseReason::ServerClosed),
        ]
    );
    // 40 KB in 16 KiB pieces: three responses.
    assert_eq!(sim.gw.stats().responses - responses_before, 3);
    assert_eq!(sim.gw.session_count(), 0);
    assert!(sim.backend(0).closed);
}

#[test]
fn backend_close_ends_a_held_poll_at_once_with_the_last_bytes() {
    let mut sim = Sim::new(base_config());
    let c = sim.open_ns(PollPolicy::LongPoll { lifespan_secs: 20 });
    sim.run_for(Duration::from_secs(3));
    assert!(sim.clients[c].events.is_empty());
    let start = sim.now;
    sim.backend(0).pending.extend_from_slice(b"OUT OTH\r\n");
    sim.backend(0).eof_due = true;
    sim.pump();
    let out = CloseReason::ServerOut(OutReason::SignedInElsewhere);
    assert_eq!(sim.clients[c].take(), [cmd("OUT OTH\r\n"), Ev::Closed(out)]);
    assert_eq!(sim.now, start, "answered at once");
    assert_eq!(sim.gw.session_count(), 0);
}

#[test]
fn a_concurrent_request_gets_400_and_ends_the_session() {
    let mut sim = Sim::new(base_config());
    let c = sim.open_ns(PollPolicy::LongPoll { lifespan_secs: 10 });
    sim.run_for(Duration::from_secs(1));
    let start = sim.now;
    // The client's long poll is held; a second request with the same ID comes in.
    let id = sim.clients[c].session.session_id().unwrap().to_owned();
    let backend = sim.only_backend();
    sim.backend(0).pending.extend_from_slice(b"MSG Hotmail Hotmail 10\r\n0123");
    sim.pump();
    let (second, closed) = sim.raw_request(&poll_request(&id));
    assert_eq!(second, BAD_REQUEST);
    assert!(!closed);
    // The first request got its answer at once: what was queued (a command still arriving),
    // and Session=close.
    assert_eq!(sim.clients[c].take(), [Ev::Closed(CloseReason::ServerClosed)]);
    assert_eq!(sim.clients[c].closed.as_ref().unwrap().incomplete_inbound_bytes, 28);
    assert_eq!(sim.gw.stats().concurrent_requests, 1);
    assert_eq!(sim.gw.session_count(), 0);
    assert!(sim.actions.contains(&Action::CloseBackend(backend)));
    assert_eq!(sim.now, start, "answered at once");
    // And the ID is dead.
    assert_eq!(sim.raw_request(&poll_request(&id)).0, BAD_REQUEST);
}

#[test]
fn idle_sessions_expire_and_their_ids_die() {
    let mut sim = Sim::new(base_config());
    let c = sim.open_ns(PollPolicy::official());
    let id = sim.clients[c].session.session_id().unwrap().to_owned();
    sim.clients[c].frozen = true;
    sim.run_for(Duration::from_secs(59));
    assert_eq!(sim.gw.session_count(), 1);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.gw.session_count(), 0);
    assert_eq!(sim.gw.stats().sessions_expired, 1);
    assert!(sim.backend(0).closed);
    assert_eq!(sim.raw_request(&poll_request(&id)).0, BAD_REQUEST);
    // The client comes back and polls: 400, the session is over.
    sim.clients[c].frozen = false;
    sim.fire();
    assert_eq!(sim.clients[c].take(), [Ev::Closed(CloseReason::SessionRejected)]);
}

#[test]
fn stale_ids_get_400_without_harming_the_session() {
    let mut sim = Sim::new(base_config());
    let open = sim.raw_request(&open_request("messenger.test", b"VER 1 MSNP8\r\n"));
    let first = one_response(&open.0).session_id();
    let second = one_response(&sim.raw_request(&poll_request(&first)).0).session_id();
    assert_ne!(first, second);
    assert_eq!(sim.raw_request(&poll_request(&first)).0, BAD_REQUEST);
    let (stable, suffix) = second.split_once('.').unwrap();
    assert_eq!(sim.raw_request(&poll_request(&format!("{stable}.1"))).0, BAD_REQUEST);
    assert_eq!(sim.raw_request(&poll_request("garbage")).0, BAD_REQUEST);
    // The same numbers spelt otherwise are not the ID issued.
    for spelling in [format!("000{stable}.00{suffix}"), format!("{stable}.+{suffix}")] {
        assert_eq!(sim.raw_request(&poll_request(&spelling)).0, BAD_REQUEST, "{spelling}");
    }
    assert_eq!(sim.gw.stats().unknown_session_ids, 5);
    let third = one_response(&sim.raw_request(&poll_request(&second)).0);
    assert_eq!(third.status, 200);
    assert_eq!(sim.gw.session_count(), 1);
}

/// Real clients strip the port from `IP=` (the official client, Pidgin), so the NS and every
/// SB of one server may all be opened as `IP=127.0.0.1`. Each must reach the MSNP port of its
/// own kind: the SB open used to land on the NS, which answers the SB `USR` with `911`.
#[test]
fn port_less_opens_reach_the_msnp_port_of_their_kind() {
    let config = GatewayConfig::new("gw.test", [42; 32])
        .with_backends(BackendAllowlist::new().allow("127.0.0.1", None));
    let mut sim = Sim::new(config);
    sim.port_scripts = vec![(1863, ns_only_server), (1864, sb_only_server)];
    let ns = sim.join(Target::notification("127.0.0.1"), b"VER 1 MSNP8 CVR0\r\n");
    let sb = sim.join(Target::switchboard("127.0.0.1"), SB_LOGIN);
    assert_eq!(sim.clients[ns].take()[1..], [cmd("VER 1 MSNP8 CVR0\r\n")]);
    assert_eq!(sim.clients[sb].take()[1..], [cmd("USR 1 OK alice@example.com Alice\r\n")]);
    let connects: Vec<(&str, ServerKind)> =
        sim.connects.iter().map(|(_, to, kind)| (to.as_str(), *kind)).collect();
    assert_eq!(
        connects,
        [("127.0.0.1:1863", ServerKind::Notification), ("127.0.0.1:1864", ServerKind::Switchboard)]
    );
}

/// A rule may name the kind of server it lets open: a switchboard open of an NS-only rule's host
/// is refused (`403`, nothing connected), and routes of one name split by kind.
#[test]
fn rules_may_name_their_server_kind() {
    let ns = Endpoint::parse("10.0.0.5:1863", 1863).unwrap();
    let sb = Endpoint::parse("10.0.0.6:1864", 1863).unwrap();
    let backends = BackendAllowlist::new()
        .rule(BackendRule::allow("ns.test", None).only(ServerKind::Notification))
        .rule(BackendRule::route("one.test", None, ns).only(ServerKind::Notification))
        .rule(BackendRule::route("one.test", None, sb).only(ServerKind::Switchboard));
    let mut config = GatewayConfig::new("gw.test", [42; 32]).with_backends(backends);
    config.msnp_ports = MsnpPorts { notification: 2863, switchboard: 2864 };
    let mut sim = Sim::new(config);
    let open = |server, ip| request(RequestLine::Open { server, ip }, b"USR 1 a@b.c 1.2\r\n");
    let (wire, _) = sim.raw_request(&open(ServerKind::Switchboard, "ns.test"));
    assert_eq!(wire, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    assert!(sim.connects.is_empty());
    for (server, ip) in [
        (ServerKind::Notification, "ns.test"),
        (ServerKind::Notification, "one.test"),
        (ServerKind::Switchboard, "one.test"),
    ] {
        assert_eq!(one_response(&sim.raw_request(&open(server, ip)).0).status, 200, "{ip}");
    }
    let connects: Vec<(&str, ServerKind)> =
        sim.connects.iter().map(|(_, to, kind)| (to.as_str(), *kind)).collect();
    assert_eq!(
        connects,
        [
            ("ns.test:2863", ServerKind::Notification),
            ("10.0.0.5:1863", ServerKind::Notification),
            ("10.0.0.6:1864", ServerKind::Switchboard),
        ]
    );
}

/// A rule without a port allows the MSNP ports of its kind, not every port of its host: an
/// open of another port is refused at once with `403` and nothing is connected (it used to
/// tunnel to any port, SSH included, and a closed port answered `502`: a port scanner).
#[test]
fn a_rule_without_a_port_opens_only_the_msnp_ports() {
    let config = GatewayConfig::new("gw.test", [42; 32])
        .with_backends(BackendAllowlist::new().allow("127.0.0.1", None));
    let mut sim = Sim::new(config);
    for port in [22, 25, 80, 443, 1865, 6379] {
        let ip = format!("127.0.0.1:{port}");
        for server in [ServerKind::Notification, ServerKind::Switchboard] {
            let open = request(RequestLine::Open { server, ip: &ip }, b"SSH-2.0-x\r\n");
            let (wire, closed) = sim.raw_request(&open);
            assert_eq!(wire, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", "{ip}");
            assert!(!closed);
        }
    }
    assert!(sim.connects.is_empty(), "{:?}", sim.connects);
    for (server, ip) in [
        (ServerKind::Notification, "127.0.0.1:1863"),
        (ServerKind::Switchboard, "127.0.0.1:1864"),
        (ServerKind::Switchboard, "127.0.0.1:1863"),
    ] {
        let open = request(RequestLine::Open { server, ip }, b"VER 1 MSNP8\r\n");
        assert_eq!(one_response(&sim.raw_request(&open).0).status, 200, "{ip}");
    }
    // Of one kind only: the MSNP port of that kind.
    let rule = BackendRule::allow("127.0.0.1", None).only(ServerKind::Switchboard);
    let config =
        GatewayConfig::new("gw.test", [42; 32]).with_backends(BackendAllowlist::new().rule(rule));
    let mut sim = Sim::new(config);
    let open = |ip| request(RequestLine::Open { server: ServerKind::Switchboard, ip }, b"");
    assert_eq!(
        sim.raw_request(&open("127.0.0.1:1863")).0,
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
    );
    assert_eq!(one_response(&sim.raw_request(&open("127.0.0.1:1864")).0).status, 200);
}

#[test]
fn the_allowlist_refuses_other_backends() {
    let mut sim = Sim::new(base_config());
    for ip in ["evil.test", "messenger.test:25", "10.0.0.1"] {
        let (wire, closed) = sim.raw_request(&open_request(ip, b"VER 1 MSNP8\r\n"));
        assert_eq!(wire, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", "{ip}");
        assert!(!closed);
    }
    assert!(sim.connects.is_empty());
    assert_eq!(sim.gw.stats().refused_backends, 3);
    // The client core sees the refusal as a failed session.
    let c = sim.join(Target::notification("evil.test"), b"VER 1 MSNP8\r\n");
    assert_eq!(
        sim.clients[c].take(),
        [Ev::Closed(CloseReason::Failed(SessionError::Remote(RemoteError::UnexpectedStatus(403))))]
    );
    assert_eq!(sim.gw.session_count(), 0);
}

#[test]
fn a_flooding_backend_is_paused_and_nothing_is_lost() {
    let mut sim = sim_with(|c| {
        c.max_queued_bytes = 2048;
        c.max_response_body_bytes = 1024;
    });
    let c = sim.open_ns(PollPolicy::adaptive());
    let mut flood = Vec::new();
    for i in 0..200 {
        flood.extend_from_slice(format!("MSG Hotmail Hotmail 200\r\n{:0>200}", i).as_bytes());
    }
    sim.backend(0).pending.extend_from_slice(&flood);
    sim.pump();
    let backend = sim.only_backend();
    assert!(sim.backend(0).paused);
    assert_eq!(sim.actions.last(), Some(&Action::PauseBackend(backend)));
    assert!(sim.partial_accepts > 0);
    sim.run_until(Duration::from_secs(600), |sim| {
        sim.backends.values().all(|b| b.pending.is_empty())
            && sim.clients[0].events.iter().filter(|e| matches!(e, Ev::Command(_))).count() == 200
    });
    let got = sim.clients[c].take_commands();
    assert_eq!(got, flood);
    let pauses = sim.actions.iter().filter(|a| **a == Action::PauseBackend(backend)).count();
    let resumes = sim.actions.iter().filter(|a| **a == Action::ResumeBackend(backend)).count();
    assert!(pauses > 1, "{pauses}");
    assert!(resumes == pauses || resumes + 1 == pauses, "{pauses} {resumes}");
    assert_eq!(sim.gw.stats().backend_pauses, pauses as u64);
}

#[test]
fn long_polls_are_held_until_data_or_their_lifespan() {
    let mut sim = Sim::new(base_config());
    let c = sim.open_ns(PollPolicy::LongPoll { lifespan_secs: 10 });
    let (opened, responses) = (sim.now, sim.gw.stats().responses);
    sim.run_for(Duration::from_secs(3));
    assert_eq!(sim.gw.stats().responses, responses, "the poll is held");
    sim.backend(0).pending.extend_from_slice(b"CHL 0 1234\r\n");
    sim.pump();
    assert_eq!(sim.clients[c].take(), [cmd("CHL 0 1234\r\n")]);
    assert_eq!(sim.gw.stats().responses, responses + 1);
    // The next poll (after the client's short settle) waits its whole lifespan, then gets an
    // empty answer.
    sim.run_for(LONG_POLL_SETTLE + Duration::from_millis(9_999));
    assert_eq!(sim.gw.stats().responses, responses + 1);
    sim.run_for(Duration::from_millis(1));
    assert_eq!(sim.gw.stats().responses, responses + 2);
    assert_eq!(sim.now - opened, Duration::from_secs(13) + LONG_POLL_SETTLE);
}

#[test]
fn lifespans_are_capped() {
    let mut sim = sim_with(|c| c.max_lifespan = Duration::from_secs(30));
    sim.open_ns(PollPolicy::LongPoll { lifespan_secs: 50 });
    let responses = sim.gw.stats().responses;
    sim.run_for(LONG_POLL_SETTLE + Duration::from_millis(29_999));
    assert_eq!(sim.gw.stats().responses, responses);
    sim.run_for(Duration::from_millis(1));
    assert_eq!(sim.gw.stats().responses, responses + 1);
}

#[test]
fn a_dropped_connection_loses_nothing_and_the_request_may_be_repeated() {
    let mut sim = Sim::new(base_config());
    let open = sim.raw_request(&open_request("messenger.test", b"VER 1 MSNP8\r\n"));
    let id = one_response(&open.0).session_id();
    sim.backend(0).pending.extend_from_slice(b"CHL 0 99\r\n");
    sim.pump();
    // A poll whose connection drops before the answer is written...
    sim.accept_and_write(ConnectionId(70), &poll_request(&id));
    sim.gw.handle_client_eof(sim.now, ConnectionId(70));
    // ...and a send whose body never arrives whole.
    let send = send_request(&id, b"CVR 2 x\r\n");
    sim.accept_and_write(ConnectionId(71), &send[..send.len() - 3]);
    sim.gw.handle_client_eof(sim.now, ConnectionId(71));
    sim.pump();
    assert_eq!(sim.backend(0).received, b"VER 1 MSNP8\r\n");
    // The same ID still works, and the queued bytes are there.
    let (wire, _) = sim.raw_request(&send);
    // Answered with what was queued before it and the reply to CVR, in one response.
    let reply = b"CVR 2 6.0.0602 6.0.0602 1.0.0000 http://download x\r\n";
    assert_eq!(one_response(&wire).body, [&b"CHL 0 99\r\n"[..], reply].concat());
    assert_eq!(sim.backend(0).received, b"VER 1 MSNP8\r\nCVR 2 x\r\n");
}

#[test]
fn backend_connect_failure_and_timeout() {
    let mut sim = Sim::new(base_config());
    sim.auto_connect = false;
    sim.accept_and_write(ConnectionId(1), &open_request("messenger.test", b"VER 1\r\n"));
    sim.pump();
    let backend = sim.only_backend();
    sim.gw.handle_backend_connect_failed(sim.now, backend, ConnectFailure::Unreachable);
    sim.pump();
    let (wire, closed) = sim.raw.remove(&ConnectionId(1)).unwrap();
    assert_eq!(wire, b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
    assert!(!closed);
    assert_eq!(sim.actions.last(), Some(&Action::CloseBackend(backend)));

    // Out of descriptors here is not the backend's fault: the gateway is full.
    sim.accept_and_write(ConnectionId(3), &open_request("messenger.test", b""));
    sim.pump();
    let backend = *sim.backends.keys().last().unwrap();
    sim.gw.handle_backend_connect_failed(sim.now, backend, ConnectFailure::OutOfResources);
    sim.pump();
    let (wire, _) = sim.raw.remove(&ConnectionId(3)).unwrap();
    assert_eq!(wire, b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");

    sim.accept_and_write(ConnectionId(2), &open_request("messenger.test", b"VER 1\r\n"));
    sim.pump();
    sim.run_for(Duration::from_secs(10));
    let (wire, _) = sim.raw.remove(&ConnectionId(2)).unwrap();
    assert_eq!(wire, b"HTTP/1.1 504 Gateway Timeout\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(sim.gw.session_count(), 0);
    assert_eq!(sim.gw.stats().backend_connect_failures, 3);
}

#[test]
fn limits_on_sessions_and_connections() {
    let mut sim = sim_with(|c| {
        c.max_sessions = 2;
        c.max_connections = 3;
    });
    for _ in 0..2 {
        let resp = one_response(&sim.raw_request(&open_request("messenger.test", b"VER 1\r\n")).0);
        assert_eq!(resp.status, 200);
    }
    let (wire, _) = sim.raw_request(&open_request("messenger.test", b"VER 1\r\n"));
    assert_eq!(wire, b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(sim.gw.connection_count(), 3);
    assert_eq!(
        sim.gw.handle_accept(sim.now, ConnectionId(1000)),
        Err(msn_http_core::gateway::AcceptError::TooManyConnections { limit: 3 })
    );
    assert_eq!(
        sim.gw.handle_accept(sim.now, ConnectionId(1)),
        Err(msn_http_core::gateway::AcceptError::DuplicateConnection)
    );
    // Idle connections are closed after the keep-alive timeout.
    sim.run_for(Duration::from_secs(120));
    assert_eq!(sim.gw.connection_count(), 0);
    assert_eq!(sim.actions.iter().filter(|a| matches!(a, Action::CloseClient(_))).count(), 3);
}

#[test]
fn slow_heads_are_capped_in_total() {
    let mut sim = sim_with(|c| {
        c.http_limits.max_head_bytes = 1024;
        c.max_buffered_head_bytes = 2048;
    });
    let partial = format!("POST /gateway/gateway.dll HTTP/1.1\r\nX-Slow: {}", "a".repeat(800));
    for id in 1..=3 {
        sim.accept_and_write(ConnectionId(id), partial.as_bytes());
    }
    sim.pump();
    assert_eq!(sim.raw.len(), 1, "only the connection that tipped the total is refused");
    assert_eq!(
        sim.raw.remove(&ConnectionId(3)).unwrap(),
        (
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec(),
            true
        )
    );
    // A slow one finishes and is served (refused for lack of IP, not for lack of room)...
    sim.gw.handle_client_input(
        sim.now,
        ConnectionId(1),
        b"\r\nHost: gw\r\nContent-Length: 0\r\n\r\n",
    );
    sim.pump();
    assert_eq!(sim.raw.remove(&ConnectionId(1)).unwrap().0, BAD_REQUEST);
    // ...which releases its bytes, and another slow head fits again.
    sim.accept_and_write(ConnectionId(4), partial.as_bytes());
    sim.pump();
    assert!(sim.raw.is_empty());
}

#[test]
fn sessions_at_rest_are_small() {
    let mut sim = Sim::new(base_config());
    let empty = sim.gw.memory_usage();
    let mut ids = Vec::new();
    for _ in 0..1000 {
        let (wire, _) = sim.raw_request(&open_request("messenger.test", b"VER 1 MSNP8 CVR0\r\n"));
        ids.push(one_response(&wire).session_id());
    }
    assert_eq!(sim.gw.session_count(), 1000);
    assert_eq!(sim.gw.connection_count(), 1000);
    // Only the small buffers of the login are kept: 18 bytes each way.
    assert_eq!(sim.gw.buffered_capacity(), 1000 * 36);
    let per_session = (sim.gw.memory_usage() - empty) / 1000;
    // About 1.2 KiB with its connection (the budget is 24 KiB with the backend socket).
    assert!(per_session <= 2048, "{per_session}");

    // A burst through one session: its buffers are released once drained.
    let big = [b"MSG a b 60000\r\n".as_slice(), &[b'x'; 60000]].concat();
    sim.backend(0).pending.extend_from_slice(&big);
    sim.pump();
    let mut id = ids[0].clone();
    let mut bodies = Vec::new();
    loop {
        let resp = one_response(&sim.raw_request(&poll_request(&id)).0);
        id = resp.session_id();
        if resp.body.is_empty() {
            break;
        }
        bodies.push(resp.body);
    }
    assert_eq!(bodies.len(), 4, "60 KB in 16 KiB responses");
    assert_eq!(bodies.concat(), big);
    assert_eq!(sim.gw.buffered_capacity(), 999 * 36 + 18);
}

#[test]
fn the_timer_heap_follows_the_live_count() {
    let mut sim = Sim::new(base_config());
    sim.raw_request(&open_request("messenger.test", b"VER 1 MSNP8\r\n"));
    let poll = poll_request("1.2");
    let mut peak = 0;
    for i in 0..20_000 {
        let id = ConnectionId(1_000 + i);
        sim.gw.handle_accept(sim.now, id).unwrap();
        sim.gw.handle_client_input(sim.now, id, &poll[..20]);
        sim.gw.handle_client_input(sim.now, id, &poll[20..]);
        drain(&mut sim.gw, sim.now);
        sim.gw.handle_client_eof(sim.now, id);
        peak = peak.max(sim.gw.memory_usage());
    }
    assert_eq!(sim.gw.stats().unknown_session_ids, 20_000);
    // Without compaction 20 000 stale timer entries alone would take 800 KB.
    assert!(peak < 32 * 1024, "{peak}");
    // The session still expires on time.
    sim.run_for(Duration::from_secs(60));
    assert_eq!(sim.gw.session_count(), 0);
}

#[test]
fn backend_ids_are_not_reused() {
    let mut sim = Sim::new(base_config());
    sim.raw_request(&open_request("messenger.test", b"VER 1 MSNP8\r\n"));
    let first = sim.only_backend();
    sim.run_for(Duration::from_secs(60));
    assert!(sim.actions.contains(&Action::CloseBackend(first)));
    let open = sim.raw_request(&open_request("messenger.test", b"VER 1 MSNP8\r\n"));
    let id = one_response(&open.0).session_id();
    let second = *sim.backends.keys().last().unwrap();
    assert_ne!(first, second);
    assert_ne!(first.as_u64(), second.as_u64());
    // Late input for the old backend is taken and dropped.
    assert_eq!(sim.gw.handle_backend_input(sim.now, first, b"CHL 0 1\r\n"), 9);
    assert_eq!(one_response(&sim.raw_request(&poll_request(&id)).0).body, b"");
}

#[test]
fn stable_parts_are_distinct_and_nonzero() {
    let mut sim = Sim::new(base_config());
    let mut stables = std::collections::BTreeSet::new();
    for _ in 0..500 {
        let (wire, _) = sim.raw_request(&open_request("messenger.test", b"VER 1 MSNP8\r\n"));
        let id = one_response(&wire).session_id();
        let (stable, suffix) = id.split_once('.').unwrap();
        assert!(suffix.parse::<u32>().is_ok());
        assert!(stables.insert(stable.parse::<u64>().unwrap()));
    }
    assert!(!stables.contains(&0));
    // 500 draws of 64 bits: a stable part below 2^32 would be a 1 in 10^7 event.
    assert!(stables.iter().all(|&s| s >= 1 << 32));
    assert!(format!("{:?}", sim.gw).contains("sessions: 500"));
}

// ---------------------------------------------------------------------------------------------
// Replies as real servers write them

/// The gap between the lines a quirky backend writes.
const LINE_GAP: Duration = Duration::from_millis(5);

fn line_by_line() -> Quirks {
    Quirks { line_gap: LINE_GAP, profile_after_login: true, ..Quirks::default() }
}

/// Real servers write a reply line by line and push a profile `MSG` right after `USR ... OK`.
/// Each request that carried commands is answered with all of it, once the backend has been
/// quiet for `reply_quiet_gap`: the login needs no poll. (Answering at the first whole command
/// left the rest for the next poll, 2 s later.)
#[test]
fn a_reply_written_line_by_line_leaves_in_one_answer() {
    let config = base_config();
    let gap = config.reply_quiet_gap;
    let mut sim = Sim::new(config);
    sim.quirks = line_by_line();
    let c = sim.open_ns(PollPolicy::official());
    assert_eq!(sim.elapsed(), LINE_GAP + gap);
    let steps: [(&[u8], String); 3] = [
        (b"CVR 2 0x0409 win 4.10 i386 MSNMSGR 5.0.0544 MSMSGS a@b.c\r\n", msnp_cvr(2)),
        (b"USR 3 TWN S t=ticket\r\n", format!("USR 3 OK alice@example.com Alice\r\n{PROFILE}")),
        (b"SYN 4 0\r\n", "SYN 4 1 2 2\r\nGTC A\r\nBLP AL\r\nLSG 0 Friends 0\r\n".into()),
    ];
    for (command, reply) in steps {
        let (start, requests) = (sim.now, sim.clients[c].requests.len());
        sim.send(c, command);
        let got = sim.clients[c].take_commands();
        assert_eq!(String::from_utf8_lossy(&got), reply);
        assert_eq!(sim.clients[c].requests.len(), requests + 1, "one request, no poll");
        let lines = reply.matches("\r\n").count() - usize::from(reply.contains("Hotmail")) * 4;
        assert_eq!(sim.now - start, LINE_GAP * lines as u32 + gap, "{reply:?}");
    }
}

fn msnp_cvr(trid: u32) -> String {
    format!("CVR {trid} 6.0.0602 6.0.0602 1.0.0000 http://download x\r\n")
}

/// Bytes the backend queued before a request with commands go in the same answer as the reply
/// to those commands (they used to be the whole answer, the reply waiting for the next poll).
#[test]
fn bytes_queued_before_a_request_go_with_its_reply() {
    let mut sim = Sim::new(base_config());
    sim.quirks = line_by_line();
    let c = sim.open_ns(PollPolicy::official());
    sim.backend(0).pending.extend_from_slice(b"ILN 0 NLN bob@example.com Bob 0\r\n");
    sim.pump();
    sim.send(c, b"CHG 2 NLN 0\r\n");
    assert_eq!(
        sim.clients[c].take(),
        [cmd("ILN 0 NLN bob@example.com Bob 0\r\n"), cmd("CHG 2 NLN 0\r\n")]
    );
    assert_eq!(sim.clients[c].requests.len(), 2, "the open and the CHG: no poll");
}

/// Polls are unchanged: a held long poll is answered as soon as a whole command arrives,
/// without waiting for the backend to fall quiet.
#[test]
fn a_held_poll_is_answered_at_the_first_whole_command() {
    let mut sim = Sim::new(base_config());
    sim.quirks = line_by_line();
    let c = sim.open_ns(PollPolicy::LongPoll { lifespan_secs: 20 });
    sim.run_for(Duration::from_secs(2));
    let start = sim.now;
    let responses = sim.gw.stats().responses;
    sim.backend(0)
        .write(start, b"NLN NLN bob@example.com Bob 0\r\nNLN BSY carol@example.com Carol 0\r\n");
    sim.run_for(LINE_GAP);
    assert_eq!(sim.clients[c].take(), [cmd("NLN NLN bob@example.com Bob 0\r\n")]);
    assert_eq!(sim.gw.stats().responses, responses + 1, "answered at the first line");
}

/// A backend that never falls quiet does not hold the answer past `reply_wait` plus the gap; a
/// whole response's worth of reply goes at once.
#[test]
fn a_backend_that_never_pauses_holds_an_answer_no_longer_than_the_reply_wait() {
    let config = base_config();
    let (wait, gap) = (config.reply_wait, config.reply_quiet_gap);
    let max_body = config.max_response_body_bytes;
    let mut sim = Sim::new(config);
    let c = sim.open_ns(PollPolicy::official());
    let start = sim.now;
    let responses = sim.gw.stats().responses;
    // A line every 10 ms for 2 s: each gap too short to end the hold.
    let chatter: Vec<u8> =
        (0..200).flat_map(|i| format!("ILN {i} NLN u{i}@t U 0\r\n").into_bytes()).collect();
    sim.quirks.line_gap = Duration::from_millis(10);
    sim.backend(0).quirks.line_gap = Duration::from_millis(10);
    sim.backend(0).write(start, &chatter);
    sim.clients[c].session.send(b"CHG 2 NLN 0\r\n").unwrap();
    let answers = sim.clients[c].answered_at.len();
    sim.run_until(Duration::from_secs(2), |sim| sim.gw.stats().responses > responses);
    assert_eq!(sim.clients[c].answered_at[answers] - start, wait + gap);

    // A full response is not held for the gap.
    sim.run_for(Duration::from_secs(3));
    let start = sim.now;
    let responses = sim.gw.stats().responses;
    let big = format!("MSG Hotmail Hotmail {max_body}\r\n{}", "x".repeat(max_body));
    sim.backend(0).quirks.line_gap = Duration::ZERO;
    sim.backend(0).write(start, big.as_bytes());
    let answers = sim.clients[c].answered_at.len();
    sim.send(c, b"CHG 3 NLN 0\r\n");
    assert_eq!(sim.gw.stats().responses, responses + 1);
    assert_eq!(sim.clients[c].answered_at[answers], start, "answered at once");
}

// ---------------------------------------------------------------------------------------------
// PNG, CORS, and the HTTP edges

fn png_scenario(policy: PingPolicy) -> (Sim, Vec<u8>) {
    let mut sim = sim_with(|c| c.ping = policy);
    let open = sim.raw_request(&open_request("messenger.test", b"VER 1 MSNP8\r\n"));
    let id = one_response(&open.0).session_id();
    let (wire, _) = sim.raw_request(&send_request(&id, b"CHG 2 NLN 0\r\nPNG\r\n"));
    (sim, wire)
}

#[test]
fn png_is_refused_the_official_way() {
    let (sim, wire) = png_scenario(PingPolicy::Refuse);
    assert_eq!(wire, BAD_REQUEST);
    assert_eq!(sim.gw.session_count(), 0);
    assert_eq!(sim.gw.stats().refused_pings, 1);
    assert!(sim.backends.values().next().unwrap().closed);
    assert_eq!(
        sim.backends.values().next().unwrap().received,
        b"VER 1 MSNP8\r\n",
        "nothing of the refused request reached the backend"
    );
}

#[test]
fn png_is_answered_when_configured() {
    let (sim, wire) = png_scenario(PingPolicy::answer());
    let resp = one_response(&wire);
    assert_eq!(resp.status, 200);
    // The gateway's QNG first, then the backend's reply to the CHG.
    assert_eq!(resp.body, b"QNG 50\r\nCHG 2 NLN 0\r\n");
    assert_eq!(sim.backends.values().next().unwrap().received, b"VER 1 MSNP8\r\nCHG 2 NLN 0\r\n");
    assert_eq!(sim.gw.stats().answered_pings, 1);

    let (sim, wire) = png_scenario(PingPolicy::Forward);
    let body = one_response(&wire).body;
    assert_eq!(body, b"CHG 2 NLN 0\r\nQNG 45\r\n", "the backend's own answer");
    assert_eq!(
        sim.backends.values().next().unwrap().received,
        b"VER 1 MSNP8\r\nCHG 2 NLN 0\r\nPNG\r\n"
    );
}

#[test]
fn the_client_core_never_sends_png() {
    let mut sim = Sim::new(base_config());
    let c = sim.open_ns(PollPolicy::official());
    assert!(sim.clients[c].session.send(b"PNG\r\n").is_err());
}

#[test]
fn cors_preflight_and_headers() {
    let mut sim = sim_with(|c| c.cors = Some(CorsPolicy::any()));
    let (wire, closed) = sim.raw_request(
        b"OPTIONS /gateway/gateway.dll?Action=open HTTP/1.1\r\nHost: gw.test\r\nOrigin: https://app.example\r\n\
          Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n",
    );
    assert_eq!(
        String::from_utf8(wire).unwrap(),
        "HTTP/1.1 204 No Content\r\nAllow: POST, OPTIONS\r\nAccess-Control-Allow-Origin: *\r\n\
         Access-Control-Expose-Headers: X-MSN-Messenger\r\nAccess-Control-Allow-Methods: POST, OPTIONS\r\n\
         Access-Control-Allow-Headers: Content-Type\r\nAccess-Control-Max-Age: 600\r\n\r\n"
    );
    assert!(!closed);
    let mut open = open_request("messenger.test", b"VER 1 MSNP8\r\n");
    let at = open.windows(6).position(|w| w == b"Host: ").unwrap();
    open.splice(at..at, b"Origin: https://app.example\r\n".iter().copied());
    let resp = one_response(&sim.raw_request(&open).0);
    assert!(resp.text.contains(
        "\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Expose-Headers: X-MSN-Messenger\r\n"
    ));
    assert_eq!(resp.body, b"VER 1 MSNP8 CVR0\r\n");

    // An origin not on the list gets no grant; without CORS, OPTIONS is a plain 204.
    let mut sim = sim_with(|c| {
        c.cors = Some(CorsPolicy {
            allowed_origins: AllowedOrigins::List(vec!["https://good.example".into()]),
            max_age: Duration::from_secs(60),
        });
    });
    let preflight = |origin: &str| {
        format!("OPTIONS /gateway/gateway.dll HTTP/1.1\r\nHost: gw\r\nOrigin: {origin}\r\n\r\n")
            .into_bytes()
    };
    let good = String::from_utf8(sim.raw_request(&preflight("https://good.example")).0).unwrap();
    assert!(good.contains("Access-Control-Allow-Origin: https://good.example\r\n"));
    assert!(good.contains("Vary: Origin\r\n"));
    assert!(good.contains("Access-Control-Max-Age: 60\r\n"));
    let bad = sim.raw_request(&preflight("https://evil.example")).0;
    assert_eq!(bad, b"HTTP/1.1 204 No Content\r\nAllow: POST, OPTIONS\r\n\r\n");
    let mut sim = Sim::new(base_config());
    assert_eq!(sim.raw_request(&preflight("https://good.example")).0, bad);
}

#[test]
fn malformed_requests_get_exact_answers() {
    let long_head = format!(
        "POST /gateway/gateway.dll HTTP/1.1\r\nHost: gw\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(9000)
    );
    let long_target = format!("POST /gateway/gateway.dll?{} HTTP/1.1\r\n", "a".repeat(9000));
    let keep = |status: &str| format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
    let close = |status: &str| {
        format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    };
    let cases: Vec<(Vec<u8>, String, bool)> = vec![
        (
            b"GET /gateway/gateway.dll HTTP/1.1\r\nHost: gw\r\n\r\n".to_vec(),
            "HTTP/1.1 405 Method Not Allowed\r\nAllow: POST, OPTIONS\r\nContent-Length: 0\r\n\r\n".into(),
            false,
        ),
        (
            b"CONNECT evil.test:25 HTTP/1.1\r\nHost: evil.test:25\r\n\r\n".to_vec(),
            "HTTP/1.1 405 Method Not Allowed\r\nAllow: POST, OPTIONS\r\nContent-Length: 0\r\n\r\n".into(),
            false,
        ),
        (
            b"POST /index.html HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            keep("404 Not Found"),
            false,
        ),
        (
            b"POST /gateway/gateway.dll?Action=open&IP=messenger.test HTTP/1.1\r\nHost: gw\r\n\r\n".to_vec(),
            close("411 Length Required"),
            true,
        ),
        (
            b"POST /gateway/gateway.dll?Action=open&IP=messenger.test HTTP/1.1\r\nHost: gw\r\nContent-Length: 70000\r\n\r\n".to_vec(),
            close("413 Content Too Large"),
            true,
        ),
        (
            b"POST /gateway/gateway.dll?Action=open&Server=NS HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n".to_vec(),
            keep("400 Bad Request"),
            false,
        ),
        (
            b"POST /gateway/gateway.dll?Action=dance&IP=messenger.test HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n".to_vec(),
            keep("400 Bad Request"),
            false,
        ),
        (
            b"POST /gateway/gateway.dll?Action=open&IP=bad%00host HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n".to_vec(),
            keep("400 Bad Request"),
            false,
        ),
        (
            b"POST /gateway/gateway.dll?Action=open&IP=messenger.test:99999 HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n".to_vec(),
            keep("400 Bad Request"),
            false,
        ),
        (
            b"POST /gateway/gateway.dll?SessionID=1.2 HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\nVER 1".to_vec(),
            keep("400 Bad Request"),
            false,
        ),
        (
            b"POST /gateway/gateway.dll HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_vec(),
            close("400 Bad Request"),
            true,
        ),
        (
            b"POST /gateway/gateway.dll HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            close("400 Bad Request"),
            true,
        ),
        (
            b"POST /gateway/gateway.dll HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
            close("400 Bad Request"),
            true,
        ),
        (
            b"POST /gateway/gateway.dll HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec(),
            close("501 Not Implemented"),
            true,
        ),
        (
            b"POST /gateway/gateway.dll HTTP/1.1\r\nHost: gw\r\nContent-Encoding: gzip\r\nContent-Length: 0\r\n\r\n".to_vec(),
            close("415 Unsupported Media Type"),
            true,
        ),
        (
            b"POST /gateway/gateway.dll HTTP/1.1\r\nHost: gw\r\nExpect: coffee\r\nContent-Length: 0\r\n\r\n".to_vec(),
            close("417 Expectation Failed"),
            true,
        ),
        (
            b"POST /gateway/gateway.dll HTTP/2.0\r\nHost: gw\r\n\r\n".to_vec(),
            close("505 HTTP Version Not Supported"),
            true,
        ),
        (
            // A space inside the target: a malformed request line, whatever it ends with.
            b"POST /gateway/gate way.dll HTTP/1.1\r\nHost: gw\r\n\r\n".to_vec(),
            close("400 Bad Request"),
            true,
        ),
        (
            // A poll names a session; without one it is no open.
            b"POST /gateway/gateway.dll?Action=poll&Server=NS&IP=messenger.test HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n".to_vec(),
            keep("400 Bad Request"),
            false,
        ),
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
            close("400 Bad Request"),
            true,
        ),
        (
            // Refused before its body: a client waiting for 100 Continue is answered at once.
            b"POST /other HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n".to_vec(),
            close("404 Not Found"),
            true,
        ),
        (long_head.into_bytes(), close("431 Request Header Fields Too Large"), true),
        (long_target.into_bytes(), close("414 URI Too Long"), true),
        (
            b"POST /gateway/gateway.dll HTTP/1.0\r\nContent-Length: 0\r\n\r\n".to_vec(),
            close("400 Bad Request"),
            true,
        ),
    ];
    for (wire, want, want_closed) in cases {
        for step in [wire.len(), 1] {
            let mut sim = Sim::new(base_config());
            sim.gw.handle_accept(sim.now, ConnectionId(1)).unwrap();
            for piece in wire.chunks(step) {
                sim.gw.handle_client_input(sim.now, ConnectionId(1), piece);
            }
            sim.pump();
            let (got, closed) = sim.raw.remove(&ConnectionId(1)).unwrap_or_default();
            let label = String::from_utf8_lossy(&wire[..wire.len().min(80)]).into_owned();
            assert_eq!(String::from_utf8_lossy(&got), want, "{label} step {step}");
            assert_eq!(closed, want_closed, "{label}");
            assert_eq!(sim.gw.session_count(), 0);
            assert!(sim.connects.is_empty());
            if closed {
                assert_eq!(sim.gw.connection_count(), 0);
            }
        }
    }
}

#[test]
fn slow_requests_time_out_with_408() {
    let mut sim = Sim::new(base_config());
    sim.gw.handle_accept(sim.now, ConnectionId(1)).unwrap();
    let open = open_request("messenger.test", b"VER 1 MSNP8\r\n");
    sim.gw.handle_client_input(sim.now, ConnectionId(1), &open[..open.len() - 4]);
    sim.pump();
    assert_eq!(sim.gw.session_count(), 1);
    sim.run_for(Duration::from_secs(30));
    let (wire, closed) = sim.raw.remove(&ConnectionId(1)).unwrap();
    assert_eq!(
        wire,
        b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    assert!(closed);
    // The open never completed: its session is gone, and its backend closed unused.
    assert_eq!(sim.gw.session_count(), 0);
    assert!(sim.backend(0).received.is_empty() && sim.backend(0).closed);
}

#[test]
fn expect_continue_gets_an_interim_answer() {
    let mut sim = Sim::new(base_config());
    sim.gw.handle_accept(sim.now, ConnectionId(1)).unwrap();
    let head = b"POST /gateway/gateway.dll?Action=open&Server=NS&IP=messenger.test HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\nContent-Length: 13\r\n\r\n";
    sim.gw.handle_client_input(sim.now, ConnectionId(1), head);
    sim.pump();
    assert_eq!(
        sim.raw.remove(&ConnectionId(1)).unwrap(),
        (b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(), false)
    );
    sim.gw.handle_client_input(sim.now, ConnectionId(1), b"VER 1 MSNP8\r\n");
    sim.pump();
    let resp = one_response(&sim.raw.remove(&ConnectionId(1)).unwrap().0);
    assert_eq!(resp.body, b"VER 1 MSNP8 CVR0\r\n");
}

#[test]
fn pipelined_requests_are_answered_in_turn() {
    let mut sim = Sim::new(base_config());
    let open = sim.raw_request(&open_request("messenger.test", b"VER 1 MSNP8\r\n"));
    let id = one_response(&open.0).session_id();
    // Two requests with the same ID in one write: the second is stale by the time it is read.
    let mut wire = send_request(&id, b"CVR 2 x\r\n");
    wire.extend_from_slice(&poll_request(&id));
    wire.extend_from_slice(b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n");
    let (got, closed) = sim.raw_request(&wire);
    let all = responses(&got);
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].status, 200);
    assert_eq!(all[0].body, b"CVR 2 6.0.0602 6.0.0602 1.0.0000 http://download x\r\n");
    assert_eq!(all[1].text.as_bytes(), BAD_REQUEST);
    assert_eq!(all[2].status, 405);
    assert!(!closed);
    assert_eq!(sim.gw.session_count(), 1);
}

/// The answers a gateway hands out now, without any being reported written.
fn answers_now(gw: &mut Gateway, now: Instant) -> Vec<(ConnectionId, Vec<u8>, bool)> {
    let mut answers = Vec::new();
    let mut buf = Vec::new();
    while let Some(t) = gw.poll_transmit(now, &mut buf) {
        if let Transmit::Client { connection, close, .. } = t {
            answers.push((connection, std::mem::take(&mut buf), close));
        }
        buf.clear();
    }
    answers
}

const METHOD_NOT_ALLOWED: &[u8] =
    b"HTTP/1.1 405 Method Not Allowed\r\nAllow: POST, OPTIONS\r\nContent-Length: 0\r\n\r\n";

/// Pipelined requests are served one at a time: the next is read only once the driver reports
/// the answer before it written, and while it is not, what follows is kept up to the read
/// budget. (Before, every pipelined request was answered at once, and the answers piled up in
/// the driver for a client that does not read.)
#[test]
fn pipelined_requests_are_read_only_once_the_answer_before_is_written() {
    let config = base_config();
    let cap = config.http_limits.max_head_bytes;
    let now = Instant::now();
    let mut gw = Gateway::new(config, now).unwrap();
    let conn = ConnectionId(1);
    gw.handle_accept(now, conn).unwrap();
    assert_eq!(gw.client_read_budget(conn), cap);
    let three = b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n".repeat(3);
    assert_eq!(gw.handle_client_input(now, conn, &three), three.len());
    for left in [2, 1, 0] {
        let answers = answers_now(&mut gw, now);
        assert_eq!(answers, [(conn, METHOD_NOT_ALLOWED.to_vec(), false)]);
        assert_eq!(gw.client_read_budget(conn), cap - left * three.len() / 3);
        assert_eq!(answers_now(&mut gw, now), [], "nothing more until it is written");
        gw.handle_client_written(now, conn, 7);
        assert_eq!(answers_now(&mut gw, now), [], "nor while part of it is unwritten");
        gw.handle_client_written(now, conn, 0);
    }
    assert_eq!(answers_now(&mut gw, now), []);
    assert_eq!(gw.client_read_budget(conn), cap);
}

/// More pipelined requests than the budget holds, from a driver that reads no more than the
/// budget: every request is answered, in turn, and the connection stays open. (Before, more
/// than 8 KiB in one read got the first request answered, then a close.) Offered all at once,
/// the gateway takes what fits and says so.
#[test]
fn more_pipelined_than_fits_is_all_answered_in_turn() {
    let now = Instant::now();
    let mut gw = Gateway::new(base_config(), now).unwrap();
    let conn = ConnectionId(1);
    gw.handle_accept(now, conn).unwrap();
    let one = b"A / HTTP/1.1\r\nHost:\r\n\r\n";
    let mut wire: &[u8] = &one.repeat(500);
    let whole = wire.len();
    assert!(whole > 10 * 1024);
    let taken = gw.handle_client_input(now, conn, wire);
    assert!(taken < whole && taken >= 8 * 1024 - one.len(), "{taken} of {whole}");
    wire = &wire[taken..];
    let mut answered = 0;
    for _ in 0..10_000 {
        let budget = gw.client_read_budget(conn).min(wire.len());
        if budget > 0 {
            assert_eq!(gw.handle_client_input(now, conn, &wire[..budget]), budget);
            wire = &wire[budget..];
        }
        let answers = answers_now(&mut gw, now);
        if answers.is_empty() {
            break;
        }
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0], (conn, METHOD_NOT_ALLOWED.to_vec(), false));
        answered += 1;
        gw.handle_client_written(now, conn, 0);
    }
    assert_eq!((answered, wire.len()), (500, 0));
    assert_eq!(gw.connection_count(), 1);
}

/// An answer the client takes no byte of for `send_timeout` closes the connection (progress
/// restarts the wait); so does a last answer (`Connection: close`) left unwritten. A closed
/// connection counts against `max_connections` until the driver reports it gone, and so does
/// one closed for keep-alive expiry: the core never forgets a socket the driver still holds.
#[test]
fn stuck_and_idle_connections_are_closed_and_counted_until_the_driver_closes_them() {
    let mut config = base_config();
    config.max_connections = 1;
    let (send_timeout, keep_alive) = (config.send_timeout, config.keep_alive_timeout);
    let start = Instant::now();
    let mut gw = Gateway::new(config, start).unwrap();
    let conn = ConnectionId(1);
    gw.handle_accept(start, conn).unwrap();
    gw.handle_client_input(start, conn, b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n");
    assert_eq!(answers_now(&mut gw, start).len(), 1);
    assert_eq!(gw.poll_timeout(), Some(start + send_timeout));
    let later = start + send_timeout - Duration::from_millis(1);
    gw.handle_client_written(later, conn, 40);
    gw.handle_timeout(start + send_timeout);
    assert_eq!(gw.poll_action(), None, "it made progress");
    gw.handle_client_written(later + Duration::from_secs(1), conn, 40);
    gw.handle_timeout(later + send_timeout);
    assert_eq!(gw.poll_action(), Some(Action::CloseClient(conn)));
    assert_eq!(gw.stats().send_timeouts, 1);
    assert_eq!(gw.connection_count(), 1);
    assert_eq!(gw.client_read_budget(conn), 0);
    assert!(gw.handle_accept(later + send_timeout, ConnectionId(2)).is_err(), "still counted");
    gw.handle_client_eof(later + send_timeout, conn);
    assert_eq!(gw.connection_count(), 0);

    // Keep-alive expiry: closed, and counted until the driver says so.
    let t = start + Duration::from_secs(100);
    let conn = ConnectionId(3);
    gw.handle_accept(t, conn).unwrap();
    gw.handle_timeout(t + keep_alive);
    assert_eq!(gw.poll_action(), Some(Action::CloseClient(conn)));
    assert!(gw.handle_accept(t + keep_alive, ConnectionId(4)).is_err());
    gw.handle_client_eof(t + keep_alive, conn);
    assert_eq!(gw.poll_timeout(), None, "a closed connection has no timer");

    // A last answer nobody reads: the close that was to follow it is made at once.
    let t = t + keep_alive;
    let conn = ConnectionId(5);
    gw.handle_accept(t, conn).unwrap();
    gw.handle_client_input(t, conn, b"GET / HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n");
    let answers = answers_now(&mut gw, t);
    assert_eq!((answers.len(), answers[0].2), (1, true));
    gw.handle_timeout(t + send_timeout);
    assert_eq!(gw.poll_action(), Some(Action::CloseClient(conn)));
    assert_eq!(gw.connection_count(), 1);
    gw.handle_client_eof(t + send_timeout, conn);
    assert_eq!((gw.connection_count(), gw.stats().send_timeouts), (0, 2));
}

/// A shutdown closes each connection once it has no request in flight: idle ones at once,
/// one whose request is arriving or whose answer is unwritten once the answer is written, a
/// pipelined request after the answer still served, a connection accepted later at once.
#[test]
fn shutdown_closes_each_connection_once_it_has_no_request_in_flight() {
    let now = Instant::now();
    let mut gw = Gateway::new(base_config(), now).unwrap();
    let (idle, arriving, unwritten, pipelined) =
        (ConnectionId(1), ConnectionId(2), ConnectionId(3), ConnectionId(4));
    for conn in [idle, arriving, unwritten, pipelined] {
        gw.handle_accept(now, conn).unwrap();
    }
    let get = b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n";
    gw.handle_client_input(now, arriving, &get[..10]);
    gw.handle_client_input(now, unwritten, get);
    gw.handle_client_input(now, pipelined, &get.repeat(2));
    assert_eq!(answers_now(&mut gw, now).len(), 2);
    gw.begin_shutdown(now);
    assert_eq!(gw.poll_action(), Some(Action::CloseClient(idle)));
    assert_eq!(gw.poll_action(), None);

    gw.handle_client_input(now, arriving, &get[10..]);
    assert_eq!(answers_now(&mut gw, now), [(arriving, METHOD_NOT_ALLOWED.to_vec(), false)]);
    assert_eq!(gw.poll_action(), None, "its answer is not written yet");
    gw.handle_client_written(now, arriving, 0);
    assert_eq!(gw.poll_action(), Some(Action::CloseClient(arriving)));

    gw.handle_client_written(now, unwritten, 7);
    assert_eq!(gw.poll_action(), None);
    gw.handle_client_written(now, unwritten, 0);
    assert_eq!(gw.poll_action(), Some(Action::CloseClient(unwritten)));

    gw.handle_client_written(now, pipelined, 0);
    assert_eq!(gw.poll_action(), None, "the pipelined request is read");
    assert_eq!(answers_now(&mut gw, now), [(pipelined, METHOD_NOT_ALLOWED.to_vec(), false)]);
    gw.handle_client_written(now, pipelined, 0);
    assert_eq!(gw.poll_action(), Some(Action::CloseClient(pipelined)));

    gw.handle_accept(now, ConnectionId(5)).unwrap();
    assert_eq!(gw.poll_action(), Some(Action::CloseClient(ConnectionId(5))));
    assert_eq!(gw.client_read_budget(ConnectionId(5)), 0);
    assert_eq!(gw.connection_count(), 5, "counted until the driver reports them closed");
}

// ---------------------------------------------------------------------------------------------
// Split invariance and round trips

/// Runs open, a chunked send in absolute form, and an HTTP/1.0 poll on one connection, with
/// request `split.0` fed cut at the points `split.1`; returns everything the gateway produced
/// and the length of each request.
fn scripted_run(split: Option<(usize, &[usize])>) -> (Vec<Vec<Out>>, Vec<usize>) {
    let mut now = Instant::now();
    let gap = base_config().reply_quiet_gap;
    let mut gw = Gateway::new(base_config(), now).unwrap();
    gw.handle_accept(now, ConnectionId(1)).unwrap();
    let mut transcript = Vec::new();
    let mut lens = Vec::new();
    let mut id = String::new();
    for step in 0..3 {
        let wire: Vec<u8> = match step {
            0 => open_request("messenger.test", b"VER 1 MSNP8 CVR0\r\n"),
            1 => {
                let mut wire = format!(
                    "POST http://gw.test/gateway/gateway.dll?SessionID={id} HTTP/1.1\r\n\
                     Host: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                .into_bytes();
                for (chunk, ext) in
                    [(&b"CVR 2 x\r\n"[..], ""), (b"USR 3 TWN I a@b.c\r\n", ";ext=1")]
                {
                    wire.extend_from_slice(format!("{:x}{ext}\r\n", chunk.len()).as_bytes());
                    wire.extend_from_slice(chunk);
                    wire.extend_from_slice(b"\r\n");
                }
                wire.extend_from_slice(b"0\r\nTrailer: 1\r\n\r\n");
                wire
            }
            _ => format!(
                "POST /gateway/gateway.dll?Action=poll&SessionID={id}&Lifespan=0 HTTP/1.0\r\n\
                 Proxy-Connection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"
            )
            .into_bytes(),
        };
        lens.push(wire.len());
        let cuts: &[usize] = match split {
            Some((i, cuts)) if i == step => cuts,
            _ => &[],
        };
        let mut last = 0;
        for &cut in cuts.iter().chain([wire.len()].iter()) {
            gw.handle_client_input(now, ConnectionId(1), &wire[last..cut]);
            last = cut;
        }
        // A backend that connects and answers at once, so every request is answered once the
        // backend has been quiet for the gap.
        let mut outs = drain(&mut gw, now);
        let mut i = 0;
        loop {
            if i == outs.len() {
                match gw.poll_timeout() {
                    Some(at) if at <= now + gap => {
                        now = at;
                        gw.handle_timeout(now);
                        outs.extend(drain(&mut gw, now));
                        continue;
                    }
                    _ => break,
                }
            }
            match outs[i].clone() {
                Out::Action(Action::Connect { backend, .. }) => {
                    gw.handle_backend_connected(now, backend);
                }
                Out::Backend(backend, bytes) => {
                    let mut framer =
                        CommandFramer::new(PayloadCommands::default(), FramerLimits::default());
                    framer.push(&bytes);
                    let mut reply = Vec::new();
                    while let Some(c) = framer.next_command().unwrap() {
                        reply.extend(msnp_server(c.as_bytes()));
                    }
                    assert_eq!(gw.handle_backend_input(now, backend, &reply), reply.len());
                }
                Out::Client(_, bytes, _) => {
                    for resp in responses(&bytes).into_iter().filter(|r| r.status == 200) {
                        id = resp.session_id();
                    }
                }
                Out::Action(_) => {}
            }
            outs.extend(drain(&mut gw, now));
            i += 1;
        }
        transcript.push(outs);
    }
    (transcript, lens)
}

#[test]
fn request_decoding_is_split_invariant() {
    let (whole, lens) = scripted_run(None);
    // Sanity: three answered requests, the login went through.
    let bodies: Vec<Vec<u8>> = whole
        .iter()
        .flatten()
        .filter_map(|o| match o {
            Out::Client(_, bytes, false) => Some(responses(bytes).remove(0).body),
            _ => None,
        })
        .collect();
    assert_eq!(
        bodies,
        [
            b"VER 1 MSNP8 CVR0\r\n".to_vec(),
            b"CVR 2 6.0.0602 6.0.0602 1.0.0000 http://download x\r\nUSR 3 OK alice@example.com Alice\r\n".to_vec(),
            b"".to_vec(),
        ]
    );
    assert!(lens.iter().all(|&len| len > 100), "{lens:?}");
    for (i, &len) in lens.iter().enumerate() {
        let every_byte: Vec<usize> = (1..len).collect();
        assert_eq!(scripted_run(Some((i, &every_byte))).0, whole, "request {i} byte by byte");
        for cut in 1..len {
            assert_eq!(scripted_run(Some((i, &[cut]))).0, whole, "request {i} cut at {cut}");
        }
    }
}

#[test]
fn client_requests_round_trip_through_the_request_decoder() {
    let headers = HeaderSet::official();
    let enc = RequestEncoder::new("/gateway/gateway.dll", &headers, Some(("u", "p"))).unwrap();
    let gw = Endpoint::parse("gw.example.net:8080", 80).unwrap();
    let lines = [
        RequestLine::Open { server: ServerKind::Switchboard, ip: "207.46.108.13:1864" },
        RequestLine::Send { session_id: "x=y;z&%" },
        RequestLine::Poll { session_id: "954547325.13160", lifespan: Some(30) },
    ];
    for form in [TargetForm::Origin, TargetForm::Absolute] {
        for line in lines {
            let body = b"MSG 4 N 5\r\nhello";
            let mut wire = Vec::new();
            enc.encode(&mut wire, &gw, form, line, body);
            let mut d = RequestDecoder::new(HttpLimits::default());
            let mut input = wire.as_slice();
            assert_eq!(d.decode(&mut input), Ok(RequestStep::Head));
            let head = d.head();
            assert_eq!(head.path(), Some("/gateway/gateway.dll"));
            assert_eq!(head.target_form(), form);
            assert!(head.keep_alive());
            let q = head.query().unwrap();
            match line {
                RequestLine::Open { server, ip } => {
                    assert_eq!(q.action(), Some(QueryAction::Open));
                    assert_eq!((q.server(), q.ip()), (Some(server), Some(ip)));
                    assert_eq!(q.session_id(), None);
                }
                RequestLine::Send { session_id } => {
                    assert_eq!((q.action(), q.session_id()), (None, Some(session_id)));
                }
                RequestLine::Poll { session_id, lifespan } => {
                    assert_eq!(q.action(), Some(QueryAction::Poll));
                    assert_eq!((q.session_id(), q.lifespan()), (Some(session_id), lifespan));
                }
            }
            assert_eq!(d.decode(&mut input), Ok(RequestStep::Body(&body[..])));
            assert_eq!(d.decode(&mut input), Ok(RequestStep::Complete));
            assert!(input.is_empty());
        }
    }
}
