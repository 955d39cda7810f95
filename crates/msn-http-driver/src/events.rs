//! What a session reports to the caller, as owned values, and the `tracing` events emitted
//! when each is taken out of the core.

use msn_http_core::Endpoint;
use msn_http_core::client::{CloseReason, Event, Recovery, RequestKind, Session};
use msn_http_core::error::SessionError;
use msn_http_core::msnp::OwnedCommand;
use tracing::{debug, info, trace, warn};

/// Something a session reports besides received commands: milestones, gateway moves and
/// errors the session survives. Each is also emitted as a `tracing` event.
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
    /// The gateway named by `GW-IP` could not be reached: requests go to the configured
    /// gateway again.
    GatewayFallback {
        /// The unreachable gateway.
        unreachable: Endpoint,
        /// Where requests go now.
        to: Endpoint,
    },
    /// A request failed; the session goes on as `recovery` says. With
    /// [`Recovery::AwaitingDecision`] nothing more is sent until the caller calls
    /// [`ClientSender::resend_unconfirmed`](crate::ClientSender::resend_unconfirmed) or
    /// [`ClientSender::discard_unconfirmed`](crate::ClientSender::discard_unconfirmed).
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

/// How a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionEnd {
    /// Why it ended.
    pub reason: CloseReason,
    /// Queued MSNP bytes the gateway never confirmed: they may be sent on another session.
    pub unsent: Vec<u8>,
    /// Received bytes that did not form a whole command (a payload cut off by the end).
    pub incomplete_inbound_bytes: usize,
    /// Commands that arrived while [`Client::close`](crate::Client::close) (or
    /// [`ClientReceiver::close`](crate::ClientReceiver::close)) was draining the session
    /// (up to [`MAX_UNREAD_BYTES`](crate::client::MAX_UNREAD_BYTES)); empty otherwise.
    pub unread: Vec<OwnedCommand>,
    /// Commands that arrived while closing beyond that limit, dropped (and traced).
    pub dropped_commands: usize,
}

impl SessionEnd {
    /// Whether the session ended as sessions should: the gateway or the caller closed it.
    pub fn is_clean(&self) -> bool {
        matches!(self.reason, CloseReason::ServerClosed | CloseReason::LocalClose)
    }
}

/// One item received from a session, in stream order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A whole MSNP command.
    Command(OwnedCommand),
    /// A milestone or a survived error.
    Notice(Notice),
    /// The session ended; nothing follows.
    Closed(SessionEnd),
}

/// An event taken out of the core.
pub(crate) enum Taken {
    Command(OwnedCommand),
    /// Raw bytes, already handed to the data sink.
    Data,
    Notice(Notice),
    Closed(SessionEnd),
    /// An event kind this adapter does not know (the core's `Event` is non-exhaustive).
    Skipped,
}

/// Takes the next event out of `session`, emitting its `tracing` event. Raw bytes
/// ([`Event::Data`]) go to `on_data` without a copy of their own.
pub(crate) fn next_event(session: &mut Session, on_data: &mut dyn FnMut(&[u8])) -> Option<Taken> {
    let closed = match session.poll_event()? {
        Event::Command(cmd) => {
            trace!(name = cmd.name(), bytes = cmd.as_bytes().len(), "command received");
            return Some(Taken::Command(cmd.to_owned_command()));
        }
        Event::Data(bytes) => {
            trace!(bytes = bytes.len(), "data received");
            on_data(bytes);
            return Some(Taken::Data);
        }
        Event::Established { session_id } => {
            debug!(session_id, "session established");
            return Some(Taken::Notice(Notice::Established { session_id: session_id.to_owned() }));
        }
        Event::GatewayMoved { from, to } => {
            info!(%from, %to, "gateway moved");
            return Some(Taken::Notice(Notice::GatewayMoved { from, to }));
        }
        Event::GatewayFallback { unreachable, to } => {
            warn!(%unreachable, %to, "gateway unreachable; falling back to the configured gateway");
            return Some(Taken::Notice(Notice::GatewayFallback { unreachable, to }));
        }
        Event::RequestFailed { kind, error, recovery } => {
            warn!(?kind, %error, ?recovery, "request failed");
            return Some(Taken::Notice(Notice::RequestFailed { kind, error, recovery }));
        }
        Event::Warning(error) => {
            warn!(%error, "gateway misbehaved");
            return Some(Taken::Notice(Notice::Warning(error)));
        }
        Event::Closed(closed) => closed,
        other => {
            debug!(event = ?other, "unknown session event skipped");
            return Some(Taken::Skipped);
        }
    };
    match closed.reason {
        CloseReason::ServerClosed | CloseReason::LocalClose => {
            info!(reason = ?closed.reason, "session closed");
        }
        reason => warn!(?reason, "session ended"),
    }
    Some(Taken::Closed(SessionEnd {
        reason: closed.reason,
        unsent: session.unsent().to_vec(),
        incomplete_inbound_bytes: closed.incomplete_inbound_bytes,
        unread: Vec::new(),
        dropped_commands: 0,
    }))
}
