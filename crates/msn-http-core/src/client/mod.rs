//! The client side: a [`Session`] is one MSNP connection (NS or SB) tunnelled through the
//! gateway, driven by bytes and time from the caller.
//!
//! # Status policy
//!
//! | status | what the session does |
//! | --- | --- |
//! | 1xx | skipped (interim); the final response follows on the same connection |
//! | 2xx | success; `X-MSN-Messenger` is required (else the session fails with [`RemoteError::MissingMessengerHeader`](crate::error::RemoteError::MissingMessengerHeader)) |
//! | 400 | the session is gone: [`CloseReason::SessionRejected`] |
//! | 407 | fatal: [`RemoteError::ProxyAuthenticationRequired`](crate::error::RemoteError::ProxyAuthenticationRequired) |
//! | other 3xx/4xx | fatal: [`RemoteError::UnexpectedStatus`](crate::error::RemoteError::UnexpectedStatus) (redirects are not part of the protocol) |
//! | 5xx | transient: the request failed ([`Notice::RequestFailed`]) and is handled by the resend policy below; the session survives up to `max_consecutive_failures` in a row |
//!
//! Bodies of non-2xx responses are read (to keep the connection in step) and discarded.
//!
//! # Resend policy
//!
//! A request fails when its connection cannot be made, ends before the response is complete,
//! times out, or is answered with a 5xx. What happens next depends on what may have reached the
//! gateway:
//!
//! - **Connect failure**: nothing was sent. On the session's first request nothing was ever
//!   reachable, so the session ends at once with
//!   [`NetworkError::ConnectFailed`](crate::error::NetworkError::ConnectFailed) (its `io` kind
//!   and address); later, the request is made again (and a `GW-IP` host that cannot be reached
//!   is given up for the configured gateway). Adapters report a connect that times out the
//!   same way.
//! - **A host a `GW-IP` moved the session to fails before answering anything** (no response,
//!   bytes that are not HTTP, a 2xx without `X-MSN-Messenger`): it is no gateway; the next
//!   request goes to the configured gateway at once ([`Notice::GatewayFallback`]), and the rules
//!   below decide about the commands.
//! - **Some bytes of a 2xx response arrived, then the connection failed**: the MSNP bytes the
//!   gateway dequeued into that response may be lost, and a rotating session ID may have moved
//!   on; the session cannot continue without silent loss, so it ends with the error.
//! - **A poll, no byte of its response arrived** (or a 5xx answer): polls carry no commands, so
//!   the poll is made again.
//! - **A request carrying commands** (the open request included), no byte of its response
//!   arrived (or a 5xx answer): the gateway may or may not have received the commands. They are
//!   never resent silently: [`UnconfirmedPolicy`] chooses between asking the caller (the
//!   default: [`Recovery::AwaitingDecision`], then [`Session::resend_unconfirmed`] or
//!   [`Session::discard_unconfirmed`]), resending, or discarding, and the caller is told in
//!   every case with [`Notice::RequestFailed`]. While the caller decides, the session keeps
//!   polling (received commands keep arriving) and sends no command: it never waits on its
//!   caller alone. The adapters put the decision in front of a caller that only receives
//!   (their `recv` returns it as an error value); their byte stream, which has no one to ask,
//!   ends as a TCP connection would on a reset.
//!
//! The first retry is immediate, later ones wait `retry_delay`, doubling; past
//! `max_consecutive_failures` failures in a row the session ends with
//! [`NetworkError::TooManyFailures`](crate::error::NetworkError::TooManyFailures), which keeps
//! the last failure's cause. Every retry uses a fresh connection, except after a 5xx that kept
//! the connection alive.
//!
//! # Ending
//!
//! A session ends with `Session=close` from the gateway, a `400`, the caller's
//! [`Session::close`] (after `OUT` was answered) or [`Session::abort`], a fatal error, or the
//! MSNP server's own `OUT` ([`CloseReason::ServerOut`], with its reason, such as `OTH` when the
//! account signed in elsewhere): some gateways keep answering a logged-out session's polls, so
//! the session stops as soon as `OUT` arrives, whatever the gateway says.
//!
//! # Choosing a poll policy
//!
//! Measured on a fake clock with 50 ms round trips (`cargo run -p msn-http-testkit --example
//! field_figures`): requests a minute of a session with no traffic, and how long a message
//! the server pushes waits before it is delivered (one every 7.3 s):
//!
//! | [`PollPolicy`] | gateway | idle requests/min | p95 delivery | worst |
//! | --- | --- | ---: | ---: | ---: |
//! | `official()` (2 s) | any | 29.2 | 1.95 s | 2.05 s |
//! | `adaptive()` (250 ms → 4 s) | any | 14.9 | 3.85 s | 4.05 s |
//! | `long_poll()` (10 s) | holds polls | 6.0 | 0.05 s | 0.05 s |
//! | `long_poll()` (10 s) | answers at once | 14.9 | 3.85 s | 4.05 s |
//!
//! - `official()` is what the official client did, and what every gateway expects: a steady
//!   two seconds of latency and half a request a second. The default.
//! - `adaptive()` costs half as much idle and answers chat quickly (250 ms polls while traffic
//!   flows), at the price of up to 4 s for the first message after a quiet spell.
//! - `long_poll()` is the fastest and cheapest against a gateway that honours `Lifespan=`
//!   (ours does); a command written while a poll is held waits for that poll's answer, so keep
//!   the lifespan short where sends must go at once. Against a gateway that answers polls at
//!   once it notices ([`Notice::PollsHeld`]) and polls on the adaptive schedule instead.
//!
//! # Reacting to events
//!
//! An [`Event`] borrows the session (a command is a view into its buffer). Take what the
//! reaction needs, let the event go, then call the session:
//!
//! ```
//! use std::time::Instant;
//! use msn_http_core::client::{ClientConfig, Event, Session, Target};
//! use msn_http_core::msnp::CommandWriter;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ClientConfig::from_url("http://127.0.0.1:8080")?;
//! let mut session = Session::new(config, Target::notification("messenger.hotmail.com"), Instant::now())?;
//! let mut msnp = CommandWriter::new();
//! while let Some(event) = session.poll_event() {
//!     // `cmd` borrows `session`: compute the answer, owned, before calling `send`.
//!     let answer = match event {
//!         Event::Command(cmd) if cmd.name() == "CHL" => Some(msnp.command("QRY", &["id"])?),
//!         _ => None,
//!     };
//!     if let Some(answer) = answer {
//!         session.send(&answer)?;
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod config;
mod event;
mod moves;
mod outgoing;
mod poll;
mod session;

pub use crate::ping::PingPolicy;
pub use config::{
    ClientConfig, OFFICIAL_GATEWAY_HOST, OutputMode, PollPolicy, Proxy, Target, TlsRoots,
    UnconfirmedPolicy,
};
pub use event::{
    CloseReason, Closed, Event, MoveRefusal, Notice, OutReason, Recovery, RequestKind,
};
pub use moves::MovePolicy;
pub use poll::LONG_POLL_SETTLE;
pub use session::{Connection, MAX_PENDING_EVENTS, Session, Stats, Transmit, Tunnel};
