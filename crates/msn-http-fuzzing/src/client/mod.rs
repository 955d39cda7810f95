//! Harnesses for the client [`Session`](msn_http_core::client::Session): operation sequences against the one model of the
//! documented resend policy, and one response fed whole or cut.
//!
//! The model predicts, from what the driver did, how each request ends and which event says
//! so. Hostile bytes ([`Op::Garbage`]) make a request's ending unpredictable: the harness then
//! learns it from the events and keeps checking everything else.
//!
//! What the documented resend policy allows, and so what the model checks:
//! - every request body is whole commands starting at the first unconfirmed byte of what
//!   `send` accepted, as many as fit in `max_request_body_bytes` (one larger command alone);
//!   a poll goes only when no whole command waits;
//! - a 2xx answer that arrived whole confirms the body: the next request starts after it;
//! - a connect failure resends the same body; so does any failed poll;
//! - a 400 head ends the session, whether or not its body arrives;
//! - a command request that failed with no byte of its answer (or a 5xx head) starts at
//!   the same byte again under `Resend` or after `resend_unconfirmed`, skips exactly its body
//!   under `Discard` or after `discard_unconfirmed`, and nothing goes while `Ask` waits;
//! - a failure after bytes of a possible 2xx answer ends the session: nothing is resent, and
//!   `unsent()` holds every unconfirmed byte;
//! - more than `max_consecutive_failures` failures in a row end the session.
//!
//! And around it: every request is a `POST` with the latest `SessionID`, `Host` naming the
//! gateway it goes to, `Content-Length`, and `Lifespan=` only on long polls; server bytes reach
//! the caller once, in order, as whole commands (or as bytes) and all of them in the end; the
//! gateway changes only as the events say, to hosts the gateway named; an open session always
//! has a timer ahead; nothing stalls.

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use msn_http_core::Endpoint;
use msn_http_core::client::{
    CloseReason, Event, Notice, OutputMode, PollPolicy, UnconfirmedPolicy,
};
use msn_http_core::msnp::{CommandFramer, FramerLimits, PayloadCommands};

mod driver;
mod model;
mod split;
mod world;

pub use split::session_split;
use world::World;

const MAX_LINE: usize = 64;
const MAX_PAYLOAD: usize = 128;
/// The largest command the session's framer allows: its line, the ending and the payload.
const MAX_COMMAND: usize = MAX_LINE + 2 + MAX_PAYLOAD;
const TARGET_IP: &str = "messenger.test";
/// Operations one fuzz input may run.
const MAX_OPS: usize = 512;

fn gateway_endpoint() -> Endpoint {
    Endpoint::new("gw.test", 80).unwrap_or_else(|_| unreachable!("a valid host"))
}

fn proxy_endpoint() -> Endpoint {
    Endpoint::new("proxy.test", 3128).unwrap_or_else(|_| unreachable!("a valid host"))
}

/// The settings a session runs with (the gateway, the framer limits and the head limit are
/// fixed by the harness).
#[derive(Clone, Debug)]
pub struct Params {
    /// What a failed command request does with its commands.
    pub unconfirmed: UnconfirmedPolicy,
    /// When to poll.
    pub poll: PollPolicy,
    /// Commands or bytes to the caller.
    pub output: OutputMode,
    /// Whether requests go through an HTTP proxy.
    pub proxy: bool,
    /// `max_queued_bytes`.
    pub max_queued_bytes: usize,
    /// `max_request_body_bytes`.
    pub max_request_body_bytes: usize,
    /// `max_inbound_bytes`.
    pub max_inbound_bytes: usize,
    /// The response body limit, and the most server bytes the gateway puts in one answer.
    pub max_body_bytes: u64,
    /// `max_consecutive_failures`.
    pub max_consecutive_failures: u32,
    /// `request_timeout`.
    pub request_timeout: Duration,
}

impl<'a> Arbitrary<'a> for Params {
    /// One byte per setting, in field order.
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let policies =
            [UnconfirmedPolicy::Ask, UnconfirmedPolicy::Resend, UnconfirmedPolicy::Discard];
        let polls = [PollPolicy::official(), PollPolicy::adaptive(), PollPolicy::long_poll()];
        Ok(Params {
            unconfirmed: policies[usize::from(u8::arbitrary(u)? % 3)],
            poll: polls[usize::from(u8::arbitrary(u)? % 3)],
            output: if bool::arbitrary(u)? { OutputMode::Bytes } else { OutputMode::Commands },
            proxy: bool::arbitrary(u)?,
            max_queued_bytes: 32 + usize::from(u8::arbitrary(u)?),
            max_request_body_bytes: 1 + usize::from(u8::arbitrary(u)?),
            max_inbound_bytes: 1 + 4 * usize::from(u8::arbitrary(u)?),
            max_body_bytes: 16 + 2 * u64::from(u8::arbitrary(u)?),
            max_consecutive_failures: 1 + u32::from(u8::arbitrary(u)? % 4),
            request_timeout: Duration::from_secs(1 + u64::from(u8::arbitrary(u)? % 30)),
        })
    }
}

/// What the gateway answers.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerKind {
    /// `200` with a `SessionID`.
    Ok,
    /// `200` with `Session=close`.
    OkClose,
    /// `400`: the gateway refused the session.
    Rejected,
    /// `500`, `502` or `503`.
    ServerError,
    /// `407`.
    ProxyAuth,
    /// `302`.
    Redirect,
    /// `200` without `X-MSN-Messenger`.
    NoHeader,
}

/// The gateway's answer to the request in flight.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct Answer {
    /// Its status.
    pub kind: AnswerKind,
    /// Body framing: `% 4` 0 and 1 `Content-Length`, 2 chunked (chunks of `1 + framing / 4`
    /// bytes), 3 HTTP/1.0 delimited by the end of the connection.
    pub framing: u8,
    /// `100 Continue` first.
    pub interim: bool,
    /// `Connection: close`.
    pub close: bool,
    /// New server commands queued first (`% 4`).
    pub new_commands: u8,
    /// How many queued server bytes to carry, at most (and at most the body limit).
    pub take: u16,
    /// `% 4`: the shape of the `SessionID`; `% 3`: which 5xx.
    pub id: u8,
    /// `% 6`: no `GW-IP`, an empty one, the same gateway, another, another on port 81, a bad
    /// host; bit 7: an `X-MSN-Host` too.
    pub gw: u8,
}

/// One thing the caller, the gateway, the network or the clock does.
#[derive(Arbitrary, Clone, Debug)]
pub enum Op {
    /// The caller sends its next command (a payload command if `payload` says its length), in
    /// two pieces cut at `split`; or, while the last one is refused, its rest again.
    Send {
        /// A payload length (`% 128`), or a plain command.
        payload: Option<u8>,
        /// Where to cut it.
        split: u8,
    },
    /// The caller sends bytes of its own (may be refused).
    SendRaw(Vec<u8>),
    /// The gateway writes its answer to the request in flight.
    Respond(Answer),
    /// Up to this many bytes of the answer reach the session (0: all).
    Deliver(u8),
    /// Hostile bytes reach the session.
    Garbage(Vec<u8>),
    /// The connection ends.
    Eof,
    /// The connection the request in flight needs cannot be made.
    ConnectFail,
    /// The clock jumps to `poll_timeout()`.
    Timeout,
    /// The clock moves on this many milliseconds.
    Advance(u16),
    /// The caller closes the session.
    Close,
    /// The caller aborts the session.
    Abort,
    /// The caller drains the events and decides (resend or discard) if asked to.
    Drain {
        /// Resend rather than discard.
        resend: bool,
    },
}

/// Runs `ops` against a session set up as `params` says, on a fake clock starting at `epoch`,
/// then answers every request well until nothing is left to do; panics when an invariant
/// breaks.
pub fn run(params: &Params, ops: impl IntoIterator<Item = Op>, epoch: Instant) {
    crate::drive(World::new(params.clone(), epoch), ops, MAX_OPS, World::step, World::finish);
}

/// Sessions driven by an arbitrary sequence of caller, gateway, network and clock operations
/// on a fake clock starting at `epoch`: one request in flight, limits held, commands neither
/// lost nor reordered beyond what the resend policy allows, failures reported as the policy
/// says, and nothing stalls.
pub fn client_session(data: &[u8], epoch: Instant) {
    crate::setup_and_ops(data, Params::arbitrary, |params, ops| run(params, ops, epoch));
}

fn server_command(n: usize) -> Vec<u8> {
    let payload = |len: usize| -> Vec<u8> {
        b"<x>\r\nMSG 1 N 2\r\n".iter().copied().cycle().take(len).collect()
    };
    match n % 3 {
        0 => format!("ILN {n} NLN u{n}@test U{n}\r\n").into_bytes(),
        1 => {
            let body = payload(n % 90);
            [format!("MSG Hotmail Hotmail {}\r\n", body.len()).into_bytes(), body].concat()
        }
        _ => {
            let body = payload(n % 40);
            [format!("NOT {}\r\n", body.len()).into_bytes(), body].concat()
        }
    }
}

fn caller_command(n: usize, payload: Option<u8>) -> Vec<u8> {
    match payload {
        None => format!("CHG {n} NLN\r\n").into_bytes(),
        Some(len) => {
            let len = usize::from(len) % MAX_PAYLOAD;
            let body: Vec<u8> =
                b"hi PNG\r\nMSG 1 N 9\r\n".iter().copied().cycle().take(len).collect();
            [format!("MSG {n} N {len}\r\n").into_bytes(), body].concat()
        }
    }
}

/// Lengths of the whole commands at the front of `bytes`, framed as the session frames them.
fn command_lengths(bytes: &[u8]) -> Vec<usize> {
    let limits = FramerLimits { max_line_bytes: MAX_LINE, max_payload_bytes: MAX_PAYLOAD };
    let mut framer = CommandFramer::new(PayloadCommands::default(), limits);
    framer.push(bytes);
    let mut lengths = Vec::new();
    loop {
        match framer.next_command() {
            Ok(Some(cmd)) => lengths.push(cmd.as_bytes().len()),
            Ok(None) => return lengths,
            Err(e) => panic!("the session accepted bytes the framer refuses: {e:?}"),
        }
    }
}

/// An event copied out of the session.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Owned {
    Command(Vec<u8>),
    Data(Vec<u8>),
    Notice(Notice),
    Closed(CloseReason, usize),
}

fn owned(event: Event<'_>) -> Owned {
    match event {
        Event::Command(cmd) => Owned::Command(cmd.as_bytes().to_vec()),
        Event::Data(bytes) => Owned::Data(bytes.to_vec()),
        Event::Notice(notice) => Owned::Notice(notice),
        Event::Closed(closed) => Owned::Closed(closed.reason, closed.unsent_bytes),
        other => panic!("an event the harness does not model: {other:?}"),
    }
}
