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
//! | 5xx | transient: the request failed ([`Event::RequestFailed`]) and is handled by the resend policy below; the session survives up to `max_consecutive_failures` in a row |
//!
//! Bodies of non-2xx responses are read (to keep the connection in step) and discarded.
//!
//! # Resend policy
//!
//! A request fails when its connection cannot be made, ends before the response is complete,
//! times out, or is answered with a 5xx. What happens next depends on what may have reached the
//! gateway:
//!
//! - **Connect failure**: nothing was sent, so the request is always made again (and a `GW-IP`
//!   host that cannot be reached is given up for the configured gateway). Adapters report a
//!   connect that times out the same way.
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
//!   every case with [`Event::RequestFailed`].
//!
//! The first retry is immediate, later ones wait `retry_delay`, doubling; past
//! `max_consecutive_failures` failures in a row the session ends with
//! [`NetworkError::TooManyFailures`](crate::error::NetworkError::TooManyFailures). Every retry
//! uses a fresh connection, except after a 5xx that kept the connection alive.

mod config;
mod event;
mod moves;
mod outgoing;
mod poll;
mod session;

pub use config::{
    ClientConfig, OFFICIAL_GATEWAY_HOST, OutputMode, PingPolicy, PollPolicy, Proxy, Target,
    UnconfirmedPolicy,
};
pub use event::{CloseReason, Closed, Event, MoveRefusal, OutReason, Recovery, RequestKind};
pub use moves::MovePolicy;
pub use poll::LONG_POLL_SETTLE;
pub use session::{Connection, MAX_PENDING_EVENTS, Session, Stats, Transmit};
