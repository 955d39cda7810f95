//! What a client session reports: received commands, session milestones and errors.

use crate::Endpoint;
use crate::error::SessionError;
use crate::msnp::Command;

/// The three kinds of gateway request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// `Action=open`: the first request, carrying the first command.
    Open,
    /// `SessionID=...`: a request carrying commands.
    Send,
    /// `Action=poll`: an empty request asking for queued commands.
    Poll,
}

/// What the session does about a failed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// The request will be made again (after the retry delay).
    Resending,
    /// The request carried commands the gateway may or may not have received; nothing more is
    /// sent until the caller calls
    /// [`Session::resend_unconfirmed`](crate::client::Session::resend_unconfirmed) or
    /// [`Session::discard_unconfirmed`](crate::client::Session::discard_unconfirmed).
    AwaitingDecision,
    /// The request's commands were dropped (per
    /// [`UnconfirmedPolicy::Discard`](crate::client::UnconfirmedPolicy::Discard)).
    Discarded {
        /// How many bytes were dropped.
        bytes: usize,
    },
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The gateway sent `Session=close` (after `OUT`, or the server hung up).
    ServerClosed,
    /// The gateway answered `400`: the session ID is unknown or expired (or a second request
    /// was in flight, which this crate never does).
    SessionRejected,
    /// The caller's [`close`](crate::client::Session::close) completed: `OUT` was delivered,
    /// or the gateway had not opened the session yet (nothing to tell it).
    LocalClose,
    /// The caller called [`abort`](crate::client::Session::abort).
    Aborted,
    /// A fatal error.
    Failed(SessionError),
}

/// The end of a session, with what was left over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed {
    /// Why it ended.
    pub reason: CloseReason,
    /// Queued bytes never confirmed by the gateway; read them with
    /// [`Session::unsent`](crate::client::Session::unsent).
    pub unsent_bytes: usize,
    /// Received bytes that did not form a whole command (a payload cut off by the end).
    pub incomplete_inbound_bytes: usize,
}

/// Something the session reports. Drain with
/// [`Session::poll_event`](crate::client::Session::poll_event) after every input.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The first response arrived: the gateway gave us a session.
    Established {
        /// The first session ID.
        session_id: &'a str,
    },
    /// A whole MSNP command arrived ([`OutputMode::Commands`](crate::client::OutputMode)).
    Command(Command<'a>),
    /// MSNP bytes arrived ([`OutputMode::Bytes`](crate::client::OutputMode)).
    Data(&'a [u8]),
    /// The gateway asked (`GW-IP` or `X-MSN-Host`) for later requests to go elsewhere.
    GatewayMoved {
        /// The previous gateway.
        from: Endpoint,
        /// The new gateway.
        to: Endpoint,
    },
    /// The gateway named by `GW-IP` could not be reached; requests go to the configured
    /// gateway again.
    GatewayFallback {
        /// The unreachable gateway.
        unreachable: Endpoint,
        /// Where requests go now.
        to: Endpoint,
    },
    /// A request failed; the session goes on as `recovery` says.
    RequestFailed {
        /// The kind of request.
        kind: RequestKind,
        /// What went wrong.
        error: SessionError,
        /// What happens next.
        recovery: Recovery,
    },
    /// The peer misbehaved in a way the session survives.
    Warning(SessionError),
    /// The session ended. This is the last event.
    Closed(Closed),
}

/// An event waiting in the queue, before it borrows anything from the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Pending {
    Established,
    GatewayMoved { from: Endpoint, to: Endpoint },
    GatewayFallback { unreachable: Endpoint, to: Endpoint },
    RequestFailed { kind: RequestKind, error: SessionError, recovery: Recovery },
    Warning(SessionError),
    Closed(CloseReason),
}
