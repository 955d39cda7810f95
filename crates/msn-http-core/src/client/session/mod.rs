//! The client session: one MSNP connection tunnelled through gateway requests.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use crate::error::{
    ConfigError, FrameError, NetworkError, RemoteError, SendError, SessionError, TlsError,
    TunnelError,
};
use crate::msnp::{CommandFramer, FramerLimits, Framing, PayloadCommands, Visit};
use crate::wire::{
    EofOutcome, RequestEncoder, RequestLine, ResponseDecoder, ResponseStep, TargetForm,
    encode_connect, parse_messenger_header,
};
use crate::{Endpoint, Scheme};

mod failure;
mod request;
mod response;

use request::{InFlight, Request};
use response::OutWatch;

use super::event::{Notice, Pending};
use super::moves::{GatewayRoute, Named};
use super::outgoing::OutgoingQueue;
use super::poll::PollSchedule;
use super::{
    ClientConfig, CloseReason, Closed, Event, OutReason, OutputMode, PingPolicy, PollPolicy,
    Recovery, RequestKind, Target, UnconfirmedPolicy,
};

/// Events waiting undelivered beyond which no request is made (backpressure on the caller).
pub const MAX_PENDING_EVENTS: usize = 64;
/// The retry delay doubles up to this many times.
const MAX_BACKOFF_DOUBLINGS: u32 = 6;

/// Whether a request goes over the current connection or a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// Reuse the open connection to the destination, if there is one.
    Reuse,
    /// Close any open connection and connect anew: the previous response said
    /// `Connection: close`, the connection failed or timed out, or the gateway moved.
    Fresh,
}

/// A request to write, produced by [`Session::poll_transmit`].
///
/// A fresh connection is made to `destination`; through `tunnel` when one is given (write
/// [`encode_connect`](crate::wire::encode_connect)'s request, read its answer with a
/// [`TunnelDecoder`](crate::wire::TunnelDecoder)); then a TLS handshake checking
/// `tls_server_name` when one is given. Only then is the request written. A connection is
/// reused only for the same destination, tunnel and server name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// Where to connect: the gateway, or the proxy when one is configured.
    pub destination: &'a Endpoint,
    /// For an `https://` gateway behind a proxy: the tunnel to open through the proxy first.
    pub tunnel: Option<Tunnel<'a>>,
    /// For an `https://` gateway: the name its certificate must hold (the host the request
    /// goes to, so also the host a `GW-IP` moved the session to; an IP literal is checked as
    /// an IP address).
    pub tls_server_name: Option<&'a str>,
    /// Whether to reuse the current connection.
    pub connection: Connection,
    /// What the request is.
    pub kind: RequestKind,
    /// How many bytes were appended to the output buffer.
    pub len: usize,
}

/// The `CONNECT` tunnel through a proxy to an `https://` gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunnel<'a> {
    /// The gateway the tunnel leads to.
    pub to: &'a Endpoint,
    /// The proxy's credentials (user, password), for `Proxy-Authorization: Basic`.
    pub credentials: Option<(&'a str, &'a str)>,
}

/// Counters over a session's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests made (retries included).
    pub requests: u64,
    /// Of which polls.
    pub polls: u64,
    /// Polls whose response carried no data.
    pub empty_polls: u64,
    /// Request bytes written, heads included.
    pub wire_bytes_sent: u64,
    /// MSNP bytes sent in request bodies (retries included).
    pub msnp_bytes_sent: u64,
    /// MSNP bytes received in response bodies.
    pub msnp_bytes_received: u64,
    /// Requests that failed (timeouts, dropped connections, 5xx, connect failures).
    pub failed_requests: u64,
    /// Times the session went back to the configured gateway because a host it had moved to
    /// was unreachable or did not answer like a gateway.
    pub fallbacks: u64,
    /// `GW-IP`/`X-MSN-Host` values not followed (each distinct value once).
    pub refused_moves: u64,
    /// Long polls the gateway answered empty well before their lifespan (it does not hold
    /// polls; the session then polls on the adaptive schedule).
    pub unheld_polls: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No response yet: the first request is `Action=open`.
    Opening,
    Open,
    Closed,
}

/// What the head of the response being decoded decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Disposition {
    Success { session_close: bool },
    Rejected,
    ServerError(u16),
}

/// The checked settings a session keeps.
#[derive(Clone, Debug)]
struct Settings {
    proxy: Option<Endpoint>,
    /// Credentials for the proxy's `CONNECT` (an `https://` gateway's requests do not carry
    /// them: the proxy cannot read them, the gateway must not).
    tunnel_credentials: Option<(String, String)>,
    tls: bool,
    request_timeout: Duration,
    max_request_body_bytes: usize,
    max_inbound_bytes: usize,
    max_consecutive_failures: u32,
    retry_delay: Duration,
    unconfirmed: UnconfirmedPolicy,
    output: OutputMode,
    ping: PingPolicy,
    payload_commands: PayloadCommands,
    framer_limits: FramerLimits,
}

impl Settings {
    /// How the commands sent are framed.
    fn framing(&self) -> Framing<'_> {
        Framing { rules: &self.payload_commands, limits: self.framer_limits }
    }
}

/// One MSNP connection (an NS or an SB) tunnelled through the HTTP gateway, as a pure state
/// machine: no sockets, no clock, no runtime.
///
/// # Drive contract
///
/// The driver (an adapter such as `msn-http-tokio`, or your own loop) owns the sockets and the
/// clock and calls, in any order it likes:
///
/// - [`send`](Self::send) to queue MSNP bytes (whole commands, or pieces of them);
/// - [`handle_input`](Self::handle_input) with bytes read from the connection,
///   [`handle_eof`](Self::handle_eof) when the connection ends,
///   [`handle_connect_failed`](Self::handle_connect_failed) when connecting fails, and
///   [`handle_timeout`](Self::handle_timeout) when [`poll_timeout`](Self::poll_timeout) passes
///   (spurious calls are harmless).
///
/// After each of those calls it drains, in this order:
///
/// 1. [`poll_transmit`](Self::poll_transmit) until `None`: each [`Transmit`] says where to
///    write the request appended to the buffer, and whether to use a fresh connection. At most
///    one request is ever in flight, so this yields at most one.
/// 2. [`poll_event`](Self::poll_event) until `None`: received commands, milestones, errors,
///    and finally [`Event::Closed`].
/// 3. [`poll_timeout`](Self::poll_timeout): sleep until that instant (or until input or a new
///    command arrives), then call [`handle_timeout`](Self::handle_timeout). An open session
///    always has one once its events are drained; `None` means it is closed, or has not opened
///    and waits for a first command.
///
/// Every method that takes `now` expects a monotonic clock; the session never reads one.
///
/// # Example: a blocking driver over `std::net`
///
/// It runs until the session has ended: an open session always has a next deadline, so the
/// loop never waits on nothing. It reacts to events after taking what it needs from them (an
/// event borrows the session, so the session is called once the event is no longer used).
///
/// ```no_run
/// use std::io::{ErrorKind, Read, Write};
/// use std::net::TcpStream;
/// use std::time::{Duration, Instant};
///
/// use msn_http_core::client::{
///     ClientConfig, Connection, Event, Notice, Recovery, Session, Target,
/// };
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let target = Target::notification("messenger.hotmail.com");
/// let mut session = Session::new(ClientConfig::default(), target, Instant::now())?;
/// session.send(b"VER 1 MSNP7 MSNP6 MSNP5 CVR0\r\n")?;
///
/// let (mut out, mut buf) = (Vec::new(), vec![0u8; 16 * 1024]);
/// let mut conn: Option<TcpStream> = None;
/// loop {
///     out.clear();
///     if let Some(t) = session.poll_transmit(Instant::now(), &mut out) {
///         if t.connection == Connection::Fresh {
///             conn = None;
///         }
///         if conn.is_none() {
///             match TcpStream::connect((t.destination.host(), t.destination.port())) {
///                 Ok(stream) => conn = Some(stream),
///                 Err(e) => session.handle_connect_failed(Instant::now(), e.kind()),
///             }
///         }
///         if let Some(stream) = conn.as_mut() {
///             if stream.write_all(&out).is_err() {
///                 conn = None;
///                 session.handle_eof(Instant::now());
///             }
///         }
///     }
///     let mut resend = false;
///     while let Some(event) = session.poll_event() {
///         match event {
///             Event::Command(cmd) => println!("<< {}", String::from_utf8_lossy(cmd.line())),
///             // The gateway may or may not have the commands; this program would rather
///             // see one twice than lose it.
///             Event::Notice(Notice::RequestFailed {
///                 recovery: Recovery::AwaitingDecision, error, ..
///             }) => {
///                 println!("request failed ({error}); sending it again");
///                 resend = true;
///             }
///             Event::Closed(closed) => {
///                 println!("{closed}");
///                 return Ok(());
///             }
///             Event::Notice(notice) => println!("** {notice}"),
///             other => println!("{other:?}"),
///         }
///     }
///     if resend {
///         session.resend_unconfirmed();
///         continue;
///     }
///     let Some(deadline) = session.poll_timeout() else {
///         // Only a session that never opened and has nothing to send has no deadline.
///         return Err("nothing to send".into());
///     };
///     let wait = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
///     match conn.as_mut().filter(|_| session.in_flight().is_some()) {
///         Some(stream) => {
///             stream.set_read_timeout(Some(wait))?;
///             match stream.read(&mut buf) {
///                 Ok(0) => {
///                     conn = None;
///                     session.handle_eof(Instant::now());
///                 }
///                 Ok(n) => session.handle_input(Instant::now(), &buf[..n]),
///                 Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
///                     session.handle_timeout(Instant::now())
///                 }
///                 Err(_) => {
///                     conn = None;
///                     session.handle_eof(Instant::now());
///                 }
///             }
///         }
///         None => {
///             std::thread::sleep(wait);
///             session.handle_timeout(Instant::now());
///         }
///     }
/// }
/// # }
/// ```
///
/// # Guarantees
///
/// - Never more than one request in flight; the latest SessionID is always the one sent; the
///   destination changes (after `GW-IP`/`X-MSN-Host`) only between requests.
/// - Commands queued while a request is in flight are coalesced into the next request, cut
///   only between commands. A command request whose fate is unknown is never resent silently
///   (see [`UnconfirmedPolicy`]); polls are resent only when no byte of their response arrived.
/// - Memory is bounded by the configured limits; no input can make the session panic.
/// - After a fatal error the session stays closed: it makes no more requests and ignores input.
pub struct Session {
    settings: Settings,
    encoder: RequestEncoder,
    target: Target,
    phase: Phase,
    session_id: String,
    /// The gateway gave the session an ID (and `Established` was reported).
    established: bool,
    /// The last `X-MSN-Messenger` value taken in full (empty when it must be read again).
    last_messenger: Vec<u8>,
    route: GatewayRoute,
    fresh_connection: bool,
    /// A head failed the request: the rest of its connection's bytes are that answer's, not
    /// unsolicited data, until the next request.
    condemned_input: bool,
    request: Request,
    decoder: ResponseDecoder,
    disposition: Option<Disposition>,
    outgoing: OutgoingQueue,
    inbound: CommandFramer,
    events: VecDeque<(u64, Pending)>,
    poll: PollSchedule,
    failures: u32,
    awaiting_decision: Option<usize>,
    /// `PNG`s stripped from the outgoing bytes and not yet answered with a local `QNG`.
    unanswered_pings: usize,
    /// Watches the received stream for the server's `OUT`.
    out_watch: OutWatch,
    close_after: Option<u64>,
    finished: bool,
    now: Instant,
    stats: Stats,
}

impl Session {
    /// A session that will open `target` through the gateway in `config`. Nothing is sent until
    /// the first command is queued with [`send`](Self::send).
    pub fn new(config: ClientConfig, target: Target, now: Instant) -> Result<Self, ConfigError> {
        config.check()?;
        Endpoint::parse(&target.ip, 1863).map_err(ConfigError::InvalidTarget)?;
        let route = GatewayRoute::new(config.gateway.clone(), &target.ip, config.moves);
        let tls = config.scheme == Scheme::Https;
        let credentials = config.proxy.as_ref().and_then(|p| p.credentials.clone());
        let in_requests = credentials.as_ref().filter(|_| !tls);
        let encoder = RequestEncoder::new(
            &config.gateway_path,
            &config.headers,
            in_requests.map(|(user, password)| (user.as_str(), password.as_str())),
        )?
        .for_scheme(config.scheme);
        let tunnel_credentials = credentials.filter(|_| tls);
        if let Some((user, password)) = &tunnel_credentials {
            // Refused now rather than at the first connection.
            encode_connect(&mut Vec::new(), &config.gateway, Some((user, password)))?;
        }
        let settings = Settings {
            proxy: config.proxy.map(|p| p.endpoint),
            tunnel_credentials,
            tls,
            request_timeout: config.request_timeout,
            max_request_body_bytes: config.max_request_body_bytes,
            max_inbound_bytes: config.max_inbound_bytes,
            max_consecutive_failures: config.max_consecutive_failures,
            retry_delay: config.retry_delay,
            unconfirmed: config.unconfirmed,
            output: config.output,
            ping: config.ping,
            payload_commands: config.payload_commands.clone(),
            framer_limits: config.framer_limits,
        };
        Ok(Self {
            encoder,
            target,
            phase: Phase::Opening,
            session_id: String::new(),
            established: false,
            last_messenger: Vec::new(),
            route,
            fresh_connection: true,
            condemned_input: false,
            request: Request::Idle,
            decoder: ResponseDecoder::new(config.http_limits),
            disposition: None,
            outgoing: OutgoingQueue::new(config.max_queued_bytes),
            inbound: CommandFramer::new(config.payload_commands, config.framer_limits),
            events: VecDeque::new(),
            poll: PollSchedule::new(config.poll_policy),
            failures: 0,
            awaiting_decision: None,
            unanswered_pings: 0,
            out_watch: OutWatch::default(),
            close_after: None,
            finished: false,
            now,
            stats: Stats::default(),
            settings,
        })
    }

    /// Queues MSNP bytes to send: whole commands, or pieces of them (a partial command waits
    /// for its rest). All or nothing: a refused call queues no byte.
    ///
    /// Refuses `PNG` ([`SendError::PingNotAllowed`]): over the gateway, polling keeps the
    /// session alive and the official server disconnects clients that ping.
    pub fn send(&mut self, msnp: &[u8]) -> Result<(), SendError> {
        if self.phase == Phase::Closed || self.close_after.is_some() {
            return Err(SendError::Closed);
        }
        let pings = self.outgoing.push(msnp, self.settings.framing(), true, self.settings.ping)?;
        self.unanswered_pings += pings;
        self.answer_pings();
        self.poll.caller_sent();
        Ok(())
    }

    /// Whether a [`send`](Self::send) of `len` bytes can succeed once the queue is empty: a
    /// caller refused with [`SendError::QueueFull`] may wait for room only then.
    pub fn fits_when_empty(&self, len: usize) -> bool {
        self.outgoing.fits_when_empty(len, self.settings.framer_limits)
    }

    /// Delivers local `QNG` answers to stripped pings, at a command boundary of the received
    /// stream so no command is cut.
    fn answer_pings(&mut self) {
        let Some(qng) = self.settings.ping.qng() else { return };
        while self.unanswered_pings > 0 && self.inbound.ends_on_boundary() {
            self.inbound.push(qng.as_bytes());
            self.unanswered_pings -= 1;
        }
    }

    /// Ends the session cleanly: queues `OUT` (unless the last command queued is the caller's
    /// own `OUT`), and the session closes with
    /// [`CloseReason::LocalClose`] once the gateway has answered the request carrying it
    /// (commands queued before go first, as they would over TCP). A session with nothing to
    /// tell the gateway (no request made, no command queued) closes at once. A partial command
    /// at the end of the queue is dropped (it could never be completed).
    ///
    /// While a decision is pending ([`Recovery::AwaitingDecision`]) the gateway cannot be told
    /// without first deciding whether the uncertain commands go again, so the session ends at
    /// once with [`CloseReason::Aborted`], every queued byte left in [`unsent`](Self::unsent);
    /// the gateway ends its side when the session idles out.
    pub fn close(&mut self) {
        if self.phase == Phase::Closed || self.close_after.is_some() {
            return;
        }
        self.outgoing.drop_partial_command();
        let nothing_sent = self.request.in_flight().is_none() && self.outgoing.len() == 0;
        if self.phase == Phase::Opening && nothing_sent {
            return self.close_session(CloseReason::LocalClose);
        }
        if self.awaiting_decision.is_some() {
            return self.close_session(CloseReason::Aborted);
        }
        // The caller's own `OUT` (written as over TCP) is the logout; a second would follow it.
        if !self.outgoing.ends_with_out() {
            // `OUT\r\n` is a valid command, and the queue now ends on a command boundary.
            let framing = self.settings.framing();
            let _ = self.outgoing.push(b"OUT\r\n", framing, false, PingPolicy::Refuse);
        }
        self.close_after = Some(self.outgoing.end());
    }

    /// Ends the session at once with [`CloseReason::Aborted`], without telling the gateway.
    pub fn abort(&mut self) {
        self.close_session(CloseReason::Aborted);
    }

    /// After [`Recovery::AwaitingDecision`]: send the unconfirmed commands again.
    pub fn resend_unconfirmed(&mut self) {
        self.awaiting_decision = None;
    }

    /// How many bytes of commands wait for a decision after [`Recovery::AwaitingDecision`]
    /// (`None` when no decision is pending). Polling goes on meanwhile; no command is sent.
    pub fn awaiting_decision(&self) -> Option<usize> {
        self.awaiting_decision
    }

    /// After [`Recovery::AwaitingDecision`]: drop the unconfirmed commands and go on. Returns
    /// how many bytes were dropped.
    pub fn discard_unconfirmed(&mut self) -> usize {
        let Some(len) = self.awaiting_decision.take() else {
            return 0;
        };
        self.outgoing.confirm(len);
        if self.close_after.is_some_and(|end| self.outgoing.confirmed() >= end) {
            self.close_session(CloseReason::Aborted);
        }
        len
    }

    /// Appends the next request to `out`, if one is due at `now`, and returns where it goes.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<Transmit<'_>> {
        self.now = now;
        if self.phase == Phase::Closed
            || self.request.in_flight().is_some()
            || self.server_out().is_some()
        {
            return None;
        }
        if self.request.retry_at().is_some_and(|at| now < at) || self.backpressured() {
            return None;
        }
        // While a decision is pending the unconfirmed commands hold the head of the queue:
        // only polls go out, so received commands keep arriving.
        let body_len = match self.awaiting_decision {
            Some(_) => 0,
            None => self.outgoing.next_request_len(self.settings.max_request_body_bytes),
        };
        // A due retry with nothing to send is a poll: the failed request was one, or its
        // commands were discarded or wait for a decision, and either way the poll timer was
        // stopped when it went out.
        let retry_due = self.request.retry_at().is_some();
        let kind = match self.phase {
            Phase::Opening if body_len > 0 => RequestKind::Open,
            Phase::Open if body_len > 0 => RequestKind::Send,
            Phase::Open if retry_due || self.poll.next_poll().is_some_and(|at| at <= now) => {
                RequestKind::Poll
            }
            _ => return None,
        };
        let line = match kind {
            RequestKind::Open => {
                RequestLine::Open { server: self.target.server, ip: &self.target.ip }
            }
            RequestKind::Send => RequestLine::Send { session_id: &self.session_id },
            RequestKind::Poll => {
                RequestLine::Poll { session_id: &self.session_id, lifespan: self.poll.lifespan() }
            }
        };
        // Through a tunnel the request reaches the gateway as if directly.
        let form = match self.settings.proxy {
            Some(_) if !self.settings.tls => TargetForm::Absolute,
            _ => TargetForm::Origin,
        };
        let start = out.len();
        let body = &self.outgoing.unconfirmed()[..body_len];
        self.encoder.encode(out, self.route.current(), form, line, body);

        let mut deadline = now + self.settings.request_timeout;
        if let (RequestKind::Poll, Some(secs)) = (kind, self.poll.lifespan()) {
            deadline += Duration::from_secs(u64::from(secs));
        }
        self.request = Request::InFlight(InFlight { kind, len: body_len, sent_at: now, deadline });
        self.poll.request_sent();
        self.decoder.reset();
        self.disposition = None;
        self.stats.requests += 1;
        self.stats.polls += u64::from(kind == RequestKind::Poll);
        self.stats.msnp_bytes_sent += body_len as u64;
        self.stats.wire_bytes_sent += (out.len() - start) as u64;
        self.condemned_input = false;
        let connection = match std::mem::take(&mut self.fresh_connection) {
            true => Connection::Fresh,
            false => Connection::Reuse,
        };
        let gateway = self.route.current();
        let tunnel = match (&self.settings.proxy, self.settings.tls) {
            (Some(_), true) => {
                let credentials = self.settings.tunnel_credentials.as_ref();
                let credentials =
                    credentials.map(|(user, password)| (user.as_str(), password.as_str()));
                Some(Tunnel { to: gateway, credentials })
            }
            _ => None,
        };
        Some(Transmit {
            destination: self.destination(),
            tunnel,
            tls_server_name: self.settings.tls.then(|| gateway.host()),
            connection,
            kind,
            len: out.len() - start,
        })
    }

    /// Where requests are written: the proxy, or the gateway.
    fn destination(&self) -> &Endpoint {
        self.settings.proxy.as_ref().unwrap_or(self.route.current())
    }

    /// The next instant the session wants [`handle_timeout`](Self::handle_timeout) (or
    /// [`poll_transmit`](Self::poll_transmit)) called: the request deadline while a request is
    /// in flight, else the retry or poll time.
    ///
    /// An open session whose events have been drained always has one: it never waits on its
    /// caller alone (a pending decision holds back commands, not polls). `None` means the
    /// session is closed, holds back for events the caller has not taken, or has not opened
    /// and has nothing to send.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Closed {
            return None;
        }
        if let Request::InFlight(flight) = self.request {
            return Some(flight.deadline);
        }
        if self.backpressured() {
            return None;
        }
        let sendable =
            self.awaiting_decision.is_none() && self.outgoing.next_request_len(usize::MAX) > 0;
        // Before the session opened there is nothing to retry without a queued command.
        if self.request.retry_at().is_some() && (self.phase == Phase::Open || sendable) {
            return self.request.retry_at();
        }
        if sendable {
            return Some(self.now);
        }
        match self.phase {
            Phase::Open => self.poll.next_poll(),
            _ => None,
        }
    }

    /// The next event, in stream order: a command is reported before any event that happened
    /// after its last byte arrived.
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        if self.finished {
            return None;
        }
        let limit = self.events.front().map_or(u64::MAX, |(pos, _)| *pos);
        match self.settings.output {
            OutputMode::Commands => match self.inbound.next_command_end() {
                Ok(Some(end)) if end <= limit => {
                    return self
                        .inbound
                        .next_command_within(limit)
                        .ok()
                        .flatten()
                        .map(Event::Command);
                }
                Ok(_) => {}
                Err(e) => self.on_frame_error(e),
            },
            // Whole commands only, so the stream can be watched for `OUT`; a stream that is not
            // MSNP (or breaks the framer's limits) passes through as it is, and so does a cut
            // command at the end of the session, as a TCP connection would hand it over.
            OutputMode::Bytes => {
                let closing = matches!(self.events.front(), Some((_, Pending::Closed(_))));
                let raw = limit.min(self.inbound.end());
                let end = match closing {
                    true => raw,
                    false => self
                        .inbound
                        .scan_whole(0, |end, _| match end <= limit {
                            true => Visit::Continue,
                            false => Visit::StopBefore,
                        })
                        .unwrap_or(raw),
                };
                if self.inbound.position() < end {
                    return Some(Event::Data(self.inbound.take_bytes_within(end)));
                }
            }
        }
        let (_, pending) = self.events.pop_front()?;
        Some(match pending {
            Pending::Notice(notice) => Event::Notice(notice),
            Pending::Closed(reason) => {
                self.finished = true;
                self.events.clear();
                let closed = Closed {
                    reason,
                    unsent_bytes: self.outgoing.len(),
                    incomplete_inbound_bytes: self.inbound.buffered(),
                };
                self.inbound.clear();
                Event::Closed(closed)
            }
        })
    }

    /// The latest session ID, once the gateway gave one.
    pub fn session_id(&self) -> Option<&str> {
        (!self.session_id.is_empty()).then_some(self.session_id.as_str())
    }

    /// The gateway the next request goes to.
    pub fn gateway(&self) -> &Endpoint {
        self.route.current()
    }

    /// The MSNP server this session opened.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The kind of the request in flight.
    pub fn in_flight(&self) -> Option<RequestKind> {
        self.request.in_flight().map(|f| f.kind)
    }

    /// Whether the session has ended (the `Closed` event may still be waiting).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Bytes queued and not yet confirmed by the gateway (the request in flight included).
    pub fn queued_bytes(&self) -> usize {
        self.outgoing.len()
    }

    /// The queued bytes not yet confirmed by the gateway: after the session closed, what never
    /// made it, to send on another session if the caller wants.
    pub fn unsent(&self) -> &[u8] {
        self.outgoing.unconfirmed()
    }

    /// Received bytes not yet delivered as events.
    pub fn inbound_bytes(&self) -> usize {
        self.inbound.buffered()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The poll policy in use.
    pub fn poll_policy(&self) -> PollPolicy {
        self.poll.policy()
    }

    /// The shortest time the session waits after a response before it polls (`None` when it
    /// may poll at once). A driver whose timers cost more to move earlier than later (tokio
    /// wakes its parked reactor for an earlier timer) can wake no later than this while a
    /// response is awaited, so that the poll timer set after the response is never earlier
    /// than the one armed; waking early is harmless.
    pub fn poll_wait_hint(&self) -> Option<Duration> {
        self.poll.shortest_wait()
    }

    /// Whether undelivered input should hold back further requests.
    fn backpressured(&self) -> bool {
        if self.events.len() >= MAX_PENDING_EVENTS {
            return true;
        }
        if self.inbound.buffered() < self.settings.max_inbound_bytes {
            return false;
        }
        // A partial command must be allowed to complete, or the session would stall (both
        // modes deliver whole commands only).
        self.inbound.has_whole_command()
    }
}
