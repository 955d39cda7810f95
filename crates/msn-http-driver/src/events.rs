//! What a session reports to the caller, as owned values, and the `tracing` events emitted
//! when each is taken out of the core.

use std::fmt;

use crate::TRACING_TARGET;
pub use msn_http_core::client::Notice;
use msn_http_core::client::{CloseReason, Event, RequestKind, Session};
use msn_http_core::error::SessionError;
use msn_http_core::msnp::OwnedCommand;
use tracing::{debug, info, trace, warn};

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
    /// Whether the session ended as sessions should: the gateway, the MSNP server (`OUT`) or
    /// the caller closed it, nothing queued was left unsent, and no received command was cut
    /// off by the end.
    pub fn is_clean(&self) -> bool {
        self.reason.is_clean() && self.unsent.is_empty() && self.incomplete_inbound_bytes == 0
    }
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.reason.fmt(f)?;
        if !self.unsent.is_empty() {
            write!(f, "; {} queued bytes were never confirmed", self.unsent.len())?;
        }
        if self.incomplete_inbound_bytes > 0 {
            let n = self.incomplete_inbound_bytes;
            write!(f, "; the last {n} received bytes were cut off in the middle of a command")?;
        }
        Ok(())
    }
}

impl std::error::Error for SessionEnd {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.reason.error().map(|e| e as _)
    }
}

/// Why [`ClientReceiver::recv`](crate::ClientReceiver::recv) returned no command.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvError {
    /// The session has ended; nothing more arrives.
    Ended(SessionEnd),
    /// A request carrying commands failed in a way that leaves open whether the gateway got
    /// them (under the default
    /// [`UnconfirmedPolicy::Ask`](msn_http_core::client::UnconfirmedPolicy::Ask)). The session
    /// keeps receiving, but sends no command until the caller decides with
    /// [`ClientSender::resend_unconfirmed`](crate::ClientSender::resend_unconfirmed) or
    /// [`ClientSender::discard_unconfirmed`](crate::ClientSender::discard_unconfirmed). Returned
    /// once per failure; call `recv` again to go on receiving.
    DeliveryUncertain {
        /// The kind of request that failed.
        kind: RequestKind,
        /// What went wrong.
        error: SessionError,
        /// How many bytes of commands wait for the decision.
        bytes: usize,
    },
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ended(end) => end.fmt(f),
            Self::DeliveryUncertain { kind, error, bytes } => write!(
                f,
                "a {kind} request failed ({error}) and whether the gateway got its {bytes} bytes \
                 of commands is unknown: resend or discard them"
            ),
        }
    }
}

impl std::error::Error for RecvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Ended(end) => Some(end),
            Self::DeliveryUncertain { error, .. } => Some(error),
        }
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
            trace!(target: TRACING_TARGET, name = cmd.name(), bytes = cmd.as_bytes().len(), "command received");
            return Some(Taken::Command(cmd.to_owned_command()));
        }
        Event::Data(bytes) => {
            trace!(target: TRACING_TARGET, bytes = bytes.len(), "data received");
            on_data(bytes);
            return Some(Taken::Data);
        }
        Event::Notice(notice) => {
            trace_notice(&notice);
            return Some(Taken::Notice(notice));
        }
        Event::Closed(closed) => closed,
        other => {
            debug!(target: TRACING_TARGET, event = ?other, "unknown session event skipped");
            return Some(Taken::Skipped);
        }
    };
    match closed.reason.is_clean() {
        true => info!(target: TRACING_TARGET, reason = %closed.reason, "session closed"),
        false => warn!(target: TRACING_TARGET, reason = %closed.reason, "session ended"),
    }
    if closed.incomplete_inbound_bytes > 0 {
        let bytes = closed.incomplete_inbound_bytes;
        warn!(target: TRACING_TARGET, bytes, "the end cut a received command off");
    }
    Some(Taken::Closed(SessionEnd {
        reason: closed.reason,
        unsent: session.unsent().to_vec(),
        incomplete_inbound_bytes: closed.incomplete_inbound_bytes,
        unread: Vec::new(),
        dropped_commands: 0,
    }))
}

/// Emits the `tracing` event of a notice, at the level its news deserves.
fn trace_notice(notice: &Notice) {
    match notice {
        Notice::Established { session_id } => {
            debug!(target: TRACING_TARGET, session_id, "session established");
        }
        Notice::GatewayMoved { from, to } => {
            info!(target: TRACING_TARGET, %from, %to, "gateway moved");
        }
        Notice::GatewayFallback { unreachable, to } => warn!(
            target: TRACING_TARGET,
            %unreachable,
            %to,
            "not a working gateway; falling back to the configured one"
        ),
        Notice::MoveRefused { to, reason } => {
            info!(target: TRACING_TARGET, %to, %reason, "gateway move not followed");
        }
        Notice::PollsHeld { held: true } => {
            info!(target: TRACING_TARGET, "the gateway holds long polls again");
        }
        Notice::PollsHeld { held: false } => {
            info!(target: TRACING_TARGET, "the gateway does not hold long polls; polling adaptively");
        }
        Notice::RequestFailed { kind, error, recovery } => {
            warn!(target: TRACING_TARGET, %kind, %error, %recovery, "request failed");
        }
        Notice::Warning(error) => warn!(target: TRACING_TARGET, %error, "gateway misbehaved"),
        other => info!(target: TRACING_TARGET, notice = %other, "notice"),
    }
}
