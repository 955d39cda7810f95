//! What a client session reports: received commands, session milestones and errors.

use std::fmt;

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
    /// The request carried commands the gateway may or may not have received; no command is
    /// sent until the caller calls
    /// [`Session::resend_unconfirmed`](crate::client::Session::resend_unconfirmed) or
    /// [`Session::discard_unconfirmed`](crate::client::Session::discard_unconfirmed).
    /// Polling goes on meanwhile, so received commands keep arriving.
    AwaitingDecision,
    /// The request's commands were dropped (per
    /// [`UnconfirmedPolicy::Discard`](crate::client::UnconfirmedPolicy::Discard)).
    Discarded {
        /// How many bytes were dropped.
        bytes: usize,
    },
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Resending => f.write_str("it will be made again"),
            Self::AwaitingDecision => {
                f.write_str("its commands wait for the caller to resend or discard them")
            }
            Self::Discarded { bytes } => write!(f, "its {bytes} bytes of commands were dropped"),
        }
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Open => "open",
            Self::Send => "send",
            Self::Poll => "poll",
        })
    }
}

/// Why a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The gateway sent `Session=close` (after `OUT`, or the server hung up).
    ServerClosed,
    /// The MSNP server sent `OUT` (the account signed in elsewhere, the server is shutting
    /// down, ...). The session ends once `OUT` has been received, whether or not the gateway
    /// also said `Session=close`: some gateways keep answering polls of a logged-out session.
    ServerOut(OutReason),
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

impl CloseReason {
    /// Whether the session ended as sessions should: the gateway, the MSNP server or the
    /// caller closed it.
    pub fn is_clean(&self) -> bool {
        matches!(self, Self::ServerClosed | Self::ServerOut(_) | Self::LocalClose)
    }

    /// The error, when the session failed.
    pub fn error(&self) -> Option<&SessionError> {
        match self {
            Self::Failed(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServerClosed => f.write_str("the gateway closed the session (Session=close)"),
            Self::ServerOut(reason) => write!(f, "the server logged the session out: {reason}"),
            Self::SessionRejected => {
                f.write_str("the gateway rejected the session (its ID is unknown or expired)")
            }
            Self::LocalClose => f.write_str("the session closed cleanly at the caller's request (its OUT answered, or nothing yet sent)"),
            Self::Aborted => f.write_str("the session was aborted"),
            Self::Failed(e) => write!(f, "the session failed: {e}"),
        }
    }
}

impl std::error::Error for CloseReason {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error().map(|e| e as _)
    }
}

/// Why the MSNP server sent `OUT`: the argument of `OUT <reason>`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutReason {
    /// `OUT` with no argument.
    Unspecified,
    /// `OUT OTH`: the same account signed in elsewhere.
    SignedInElsewhere,
    /// `OUT SSD`: the server is shutting down.
    ServerShutdown,
    /// Any other argument, as sent.
    Other(String),
}

impl OutReason {
    /// The reason from the argument of an `OUT` line (`None` for a bare `OUT`).
    pub fn from_argument(argument: Option<&[u8]>) -> Self {
        match argument {
            None | Some(b"") => Self::Unspecified,
            Some(b"OTH") => Self::SignedInElsewhere,
            Some(b"SSD") => Self::ServerShutdown,
            Some(other) => Self::Other(String::from_utf8_lossy(other).into_owned()),
        }
    }

    /// The argument as sent (`""` for a bare `OUT`).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Unspecified => "",
            Self::SignedInElsewhere => "OTH",
            Self::ServerShutdown => "SSD",
            Self::Other(text) => text,
        }
    }
}

impl fmt::Display for OutReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unspecified => f.write_str("no reason given (OUT)"),
            Self::SignedInElsewhere => f.write_str("the account signed in elsewhere (OUT OTH)"),
            Self::ServerShutdown => f.write_str("the server is shutting down (OUT SSD)"),
            Self::Other(text) => write!(f, "OUT {}", text.escape_debug()),
        }
    }
}

/// Why the session did not follow a `GW-IP` or `X-MSN-Host` to another host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MoveRefusal {
    /// The value names the session's own MSNP server (the `IP=` of the open request, with or
    /// without its port), as revival gateways answer: that is a raw MSNP server, not a
    /// gateway.
    NamesMsnpServer,
    /// An unspecified (`0.0.0.0`, `::`), multicast or broadcast address: no host is there
    /// (and Linux connects `0.0.0.0` to the local host).
    NotAHost,
    /// A narrower network than the configured gateway's: loopback, link-local or private
    /// addresses named by a gateway on the internet, or loopback named by one on a private
    /// network. A gateway must not steer its clients into their own networks.
    NarrowerNetwork,
    /// From a gateway on the internet, a port other than 80, 443 or the configured gateway's:
    /// no gateway listens there, whatever does should not get the session's traffic.
    UnexpectedPort,
    /// Outside the configured gateway's domain, with [`MovePolicy::same_domain_only`](crate::client::MovePolicy::same_domain_only).
    OutsideDomain,
    /// Moves are off ([`MovePolicy::follow`](crate::client::MovePolicy::follow) is false).
    MovesOff,
    /// A host the gateway moved the session to already failed: the session stays with the
    /// configured gateway rather than be steered from host to host.
    AfterFallback,
}

impl fmt::Display for MoveRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NamesMsnpServer => "it names the session's MSNP server, not a gateway",
            Self::NotAHost => "it is an unspecified, multicast or broadcast address",
            Self::NarrowerNetwork => "it is in a narrower network than the configured gateway",
            Self::UnexpectedPort => "its port is not 80, 443 or the configured gateway's",
            Self::OutsideDomain => "it is outside the configured gateway's domain",
            Self::MovesOff => "gateway moves are off",
            Self::AfterFallback => "a host the gateway moved the session to already failed",
        })
    }
}

/// The end of a session, with what was left over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    /// Why it ended.
    pub reason: CloseReason,
    /// Queued bytes never confirmed by the gateway; read them with
    /// [`Session::unsent`](crate::client::Session::unsent).
    pub unsent_bytes: usize,
    /// Received bytes that did not form a whole command (a payload cut off by the end).
    pub incomplete_inbound_bytes: usize,
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.reason.fmt(f)?;
        if self.unsent_bytes > 0 {
            write!(f, "; {} queued bytes were never confirmed", self.unsent_bytes)?;
        }
        if self.incomplete_inbound_bytes > 0 {
            write!(
                f,
                "; {} received bytes formed no whole command",
                self.incomplete_inbound_bytes
            )?;
        }
        Ok(())
    }
}

/// A milestone of a session, or an error it survives: everything it reports besides the MSNP
/// it received and its end. The adapters hand these to their callers as they are.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// The first response arrived: the gateway gave the session an ID.
    Established {
        /// The first session ID.
        session_id: String,
    },
    /// The gateway asked (`GW-IP` or `X-MSN-Host`) for later requests to go elsewhere.
    GatewayMoved {
        /// The previous gateway.
        from: Endpoint,
        /// The new gateway.
        to: Endpoint,
    },
    /// The host a `GW-IP` moved the session to could not be reached or did not answer like a
    /// gateway: requests go to the configured gateway again.
    GatewayFallback {
        /// The host given up.
        unreachable: Endpoint,
        /// Where requests go now.
        to: Endpoint,
    },
    /// The gateway named another host (`GW-IP` or `X-MSN-Host`) that the session did not
    /// follow; it stays where it is. Reported once per value.
    MoveRefused {
        /// The host named.
        to: Endpoint,
        /// Why it was not followed.
        reason: MoveRefusal,
    },
    /// Under [`PollPolicy::LongPoll`](crate::client::PollPolicy::LongPoll): whether the gateway
    /// holds polls. `held: false` when a poll came back empty well before its lifespan (the
    /// gateway ignores `Lifespan=`): the session then polls on the adaptive schedule, and goes
    /// back to holding polls once one is held again.
    PollsHeld {
        /// Whether polls are held now.
        held: bool,
    },
    /// A request failed; the session goes on as `recovery` says. With
    /// [`Recovery::AwaitingDecision`] no command is sent (polling goes on) until the caller
    /// decides.
    RequestFailed {
        /// The kind of request.
        kind: RequestKind,
        /// What went wrong.
        error: SessionError,
        /// What happens next.
        recovery: Recovery,
    },
    /// The gateway misbehaved in a way the session survives.
    Warning(SessionError),
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Established { session_id } => {
                write!(f, "the gateway opened the session (ID {session_id})")
            }
            Self::GatewayMoved { from, to } => write!(f, "the gateway moved from {from} to {to}"),
            Self::GatewayFallback { unreachable, to } => {
                write!(f, "{unreachable} is not a working gateway; back to {to}")
            }
            Self::MoveRefused { to, reason } => write!(f, "not moving to {to}: {reason}"),
            Self::PollsHeld { held: true } => f.write_str("the gateway holds long polls"),
            Self::PollsHeld { held: false } => {
                f.write_str("the gateway does not hold long polls; polling adaptively")
            }
            Self::RequestFailed { kind, error, recovery } => {
                write!(f, "a {kind} request failed ({error}); {recovery}")
            }
            Self::Warning(error) => write!(f, "the gateway misbehaved: {error}"),
        }
    }
}

/// Something the session reports. Drain with
/// [`Session::poll_event`](crate::client::Session::poll_event) after every input.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A whole MSNP command arrived ([`OutputMode::Commands`](crate::client::OutputMode)).
    Command(Command<'a>),
    /// MSNP bytes arrived ([`OutputMode::Bytes`](crate::client::OutputMode)).
    Data(&'a [u8]),
    /// A milestone, or an error the session survives.
    Notice(Notice),
    /// The session ended. This is the last event.
    Closed(Closed),
}

/// An event waiting in the queue, before it borrows anything from the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Pending {
    Notice(Notice),
    Closed(CloseReason),
}
