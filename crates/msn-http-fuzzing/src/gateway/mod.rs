//! Harness for the [`Gateway`](msn_http_core::gateway::Gateway): client connections sending
//! well-formed and hostile requests, backends sending MSNP and garbage, EOFs and time, with the
//! drive contract's promises checked after every operation and once all timers have run out.
//!
//! What it checks: `max_sessions`, `max_connections` and the buffers' bounds held; a refused
//! accept only at the limit, a duplicate ID refused; one `CloseBackend` per `Connect`, no
//! bytes, pause or resume for a closed backend, events for closed or unknown backends and
//! connections ignored; every answer one whole `HTTP/1.1` response the client can read, matched
//! to its request; a `200` only for the one request holding a session's latest ID, with a new
//! ID and `GW-IP`; backend bytes delivered in order and once; a backend refused input only when
//! paused; no idle close with a request unanswered; and in the end every session, backend and
//! connection gone.

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use msn_http_core::gateway::{
    AllowedOrigins, BackendAllowlist, CorsPolicy, GatewayConfig, PingPolicy,
};
use msn_http_core::msnp::FramerLimits;

mod answers;
mod world;

use world::World;

/// Operations one fuzz input may run.
const MAX_OPS: usize = 256;

/// The configuration the harness's model is written for: its host name, backend allowlist and
/// framer limits, and the defaults for the rest. A setup changes the other fields.
pub fn base_config() -> GatewayConfig {
    let backends =
        BackendAllowlist::new().allow("messenger.test", None).allow("sb.test", Some(1864));
    let mut c = GatewayConfig::new("gw.test", [7; 32]).with_backends(backends);
    c.framer_limits = FramerLimits { max_line_bytes: 96, max_payload_bytes: 256 };
    c
}

/// A setup read from the fuzzer's bytes: a byte per setting (two for `reply_wait` and the
/// buffered heads), in the order the checked-in corpus was written in.
fn arbitrary_config(u: &mut Unstructured<'_>) -> arbitrary::Result<GatewayConfig> {
    let mut byte = || u8::arbitrary(u);
    let mut c = base_config();
    c.max_sessions = 1 + usize::from(byte()? % 6);
    c.max_connections = 1 + usize::from(byte()? % 8);
    c.http_limits.max_head_bytes = 64 + 8 * usize::from(byte()?);
    c.http_limits.max_body_bytes = 4 * u64::from(byte()?);
    c.max_queued_bytes = 1 + 2 * usize::from(byte()?);
    c.max_response_body_bytes = 64 + usize::from(byte()?);
    c.ping = match byte()? % 3 {
        0 => PingPolicy::Refuse,
        1 => PingPolicy::answer(),
        _ => PingPolicy::Forward,
    };
    c.cors = match byte()? % 4 {
        1 => Some(CorsPolicy {
            allowed_origins: AllowedOrigins::List(vec!["https://a.example".into()]),
            max_age: Duration::from_secs(5),
        }),
        3 => Some(CorsPolicy::any()),
        _ => None,
    };
    c.reply_wait = Duration::from_millis(u64::from(u16::arbitrary(u)? % 2000));
    let mut secs = |base: u64, range: u8| -> arbitrary::Result<Duration> {
        Ok(Duration::from_secs(base + u64::from(u8::arbitrary(u)? % range)))
    };
    c.max_lifespan = secs(0, 40)?;
    c.idle_timeout = secs(1, 90)?;
    c.connect_timeout = secs(1, 20)?;
    c.request_timeout = secs(1, 40)?;
    c.keep_alive_timeout = secs(1, 150)?;
    c.max_buffered_head_bytes = c.http_limits.max_head_bytes + usize::from(u16::arbitrary(u)?);
    Ok(c)
}

/// What a request asks for.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum ReqKind {
    /// Opens an NS session on an allowed backend.
    OpenNs,
    /// Opens an SB session on an allowed backend.
    OpenSb,
    /// Opens a session on a backend the allowlist refuses.
    OpenDenied,
    /// Opens a session on a malformed `IP=`.
    OpenBadIp,
    /// Polls a session.
    Poll,
    /// Sends to a session.
    Send,
    /// A CORS preflight.
    Options,
    /// A `GET` (not allowed).
    Get,
    /// A path other than the gateway's.
    WrongPath,
    /// A `POST` without a length.
    NoLength,
}

/// Which `SessionID` a request names.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum IdChoice {
    /// The session's latest.
    Latest,
    /// One it had before.
    Stale,
    /// One it never had.
    Unknown,
    /// None.
    Missing,
}

/// What a request carries.
#[derive(Arbitrary, Clone, Debug)]
pub enum BodyChoice {
    /// Nothing.
    Empty,
    /// Up to three commands (`% 4`).
    Commands(u8),
    /// A command and a `PNG`.
    Ping,
    /// `OUT`.
    Out,
    /// These bytes.
    Raw(Vec<u8>),
}

/// A request the harness writes.
#[derive(Arbitrary, Clone, Debug)]
pub struct ReqSpec {
    /// What it asks for.
    pub kind: ReqKind,
    /// Which of the sessions known so far it names (modulo their number).
    pub session: u8,
    /// Which of that session's IDs.
    pub id: IdChoice,
    /// Its body.
    pub body: BodyChoice,
    /// Chunked (HTTP/1.1 only).
    pub chunked: bool,
    /// `Connection: close`.
    pub close: bool,
    /// HTTP/1.0.
    pub http10: bool,
    /// `Expect: 100-continue` (HTTP/1.1 only).
    pub expect: bool,
    /// `Lifespan=` (`% 50`).
    pub lifespan: Option<u8>,
    /// In absolute form.
    pub absolute: bool,
    /// With an `Origin`.
    pub origin: bool,
}

/// One thing a client, a backend or the clock does. Connections and backends are picked by
/// index, modulo how many there are.
#[derive(Arbitrary, Clone, Debug)]
pub enum Op {
    /// A client connects (at the limit, the gateway must refuse it); the ID of one already
    /// connected is refused too.
    Accept,
    /// A well-formed (or deliberately wrong) request, queued on a connection.
    Request {
        /// Which connection.
        conn: u8,
        /// The request.
        spec: ReqSpec,
    },
    /// Up to this many queued bytes of a connection reach the gateway (0: all).
    Deliver {
        /// Which connection.
        conn: u8,
        /// How many bytes.
        n: u16,
    },
    /// Hostile bytes on a connection.
    Raw {
        /// Which connection.
        conn: u8,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A client connection ends; then input and an EOF for it again, which must do nothing.
    ClientEof {
        /// Which connection.
        conn: u8,
    },
    /// A backend connection is made (or, with none being made, reported again).
    Connected {
        /// Which backend.
        backend: u8,
    },
    /// A backend connection fails (or, with none being made, fails late).
    ConnectFailed {
        /// Which backend.
        backend: u8,
    },
    /// A backend sends commands, or raw bytes (with no backend left, to a closed one).
    BackendSend {
        /// Which backend.
        backend: u8,
        /// How many commands (`% 5`).
        commands: u8,
        /// Raw bytes instead.
        raw: Option<Vec<u8>>,
    },
    /// A backend closes (with no backend left, a closed one again).
    BackendEof {
        /// Which backend.
        backend: u8,
    },
    /// The clock moves on this many milliseconds.
    Advance(u16),
    /// The clock jumps to `poll_timeout()`.
    Timeout,
}

/// Runs `ops` against a gateway configured as `config` (made from [`base_config`]), on a fake
/// clock starting at `epoch`, then lets every timer run out; panics when an invariant breaks.
pub fn run(config: &GatewayConfig, ops: impl IntoIterator<Item = Op>, epoch: Instant) {
    crate::drive(World::new(config, epoch), ops, MAX_OPS, World::step, World::finish);
}

/// A gateway driven by an arbitrary sequence of client, backend and clock operations on a fake
/// clock starting at `epoch`: limits held, one `CloseBackend` per `Connect`, no bytes for a
/// closed backend, a `200` only for the one request holding a session's latest ID, backend
/// bytes delivered in order and once, and every timer running out in the end.
pub fn gateway(data: &[u8], epoch: Instant) {
    crate::setup_and_ops(data, arbitrary_config, |config, ops| run(config, ops, epoch));
}
