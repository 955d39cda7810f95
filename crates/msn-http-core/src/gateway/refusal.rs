//! Why the gateway answers a request with an error, and the HTTP status each reason gets
//! (the encoder writes the status's reason phrase).

use crate::error::RequestError;

/// Why a request is refused (or its session ended under it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The request could not be decoded (the decoder's own status).
    Undecodable(RequestError),
    /// A method other than `POST` or `OPTIONS`.
    MethodNotAllowed,
    /// The target has no path the gateway can read.
    BadTarget,
    /// A path other than the gateway's.
    NotFound,
    /// A `POST` without a body length.
    LengthRequired,
    /// The query string could not be read.
    BadQuery,
    /// `Action=poll` without a `SessionID`.
    PollWithoutSession,
    /// An open without `IP=`.
    OpenWithoutIp,
    /// An `IP=` that is no host and port.
    BadBackendAddress,
    /// The allowlist does not allow the backend.
    BackendNotAllowed,
    /// An unknown, stale or expired session ID.
    UnknownSession,
    /// A second request while one is in flight: the session ends.
    ConcurrentRequest,
    /// A `PNG` under [`PingPolicy::Refuse`](crate::ping::PingPolicy::Refuse): the session ends.
    PingRefused,
    /// The session ended before its request could be answered.
    SessionEnded,
    /// The request took longer than `request_timeout` to arrive.
    RequestTimeout,
    /// [`GatewayConfig::max_sessions`](super::GatewayConfig::max_sessions) sessions are open.
    TooManySessions,
    /// Heads and pipelined bytes of all connections passed `max_buffered_head_bytes`.
    HeadBudgetExceeded,
    /// The backend could not be reached.
    BackendUnreachable,
    /// This host ran out of descriptors, ports or memory connecting to the backend.
    OutOfResources,
    /// The backend did not answer the connection within `connect_timeout`.
    BackendTimeout,
    /// A state the gateway should never reach (it answers rather than spin).
    Internal,
}

impl Refusal {
    /// The HTTP status of the answer.
    pub(super) fn status(self) -> u16 {
        match self {
            Self::Undecodable(error) => error.status(),
            Self::BadTarget
            | Self::BadQuery
            | Self::PollWithoutSession
            | Self::OpenWithoutIp
            | Self::BadBackendAddress
            | Self::UnknownSession
            | Self::ConcurrentRequest
            | Self::PingRefused
            | Self::SessionEnded => 400,
            Self::BackendNotAllowed => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::LengthRequired => 411,
            Self::Internal => 500,
            Self::BackendUnreachable => 502,
            Self::TooManySessions | Self::HeadBudgetExceeded | Self::OutOfResources => 503,
            Self::BackendTimeout => 504,
        }
    }
}
