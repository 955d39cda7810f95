//! What the driver and the gateway exchange: connection IDs, the bytes to write, the actions
//! to carry out, the driver's reports of failure, and the counters.

use std::fmt;

use crate::Endpoint;
use crate::wire::ServerKind;

use super::slab::BackendId;
#[cfg(doc)]
use super::{Gateway, GatewayConfig};

/// A client connection, named by the driver. IDs must be unique among the connections the
/// gateway knows: from [`Gateway::handle_accept`] until the driver reports
/// [`Gateway::handle_client_eof`] (also after the gateway asked for the close).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// Bytes to write, produced by [`Gateway::poll_transmit`] into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Write `len` bytes to a client connection.
    Client {
        /// The connection.
        connection: ConnectionId,
        /// How many bytes were appended to the buffer.
        len: usize,
        /// Close the connection once they are written, and report
        /// [`Gateway::handle_client_eof`] once the socket is closed (it counts against
        /// [`GatewayConfig::max_connections`] until then). The client may still be sending a
        /// body the gateway refused to read, so shut down the writing side first and drain
        /// briefly; an abrupt close can destroy the answer.
        close: bool,
        /// These bytes are an interim `100 Continue`, not the answer: the request's answer is
        /// still to come (for a driver that tracks which requests are answered).
        interim: bool,
    },
    /// Write `len` bytes to a backend.
    Backend {
        /// The backend.
        backend: BackendId,
        /// How many bytes were appended to the buffer.
        len: usize,
    },
}

/// Something the driver must do besides writing, produced by [`Gateway::poll_action`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Open a TCP connection to `endpoint` and report the outcome with
    /// [`Gateway::handle_backend_connected`] or [`Gateway::handle_backend_connect_failed`].
    /// Every `Connect` is matched later by exactly one [`Action::CloseBackend`].
    Connect {
        /// The new backend.
        backend: BackendId,
        /// Where to connect (after the allowlist's routing).
        endpoint: Endpoint,
        /// Whether the client opened a notification server or a switchboard session.
        server: ServerKind,
    },
    /// Stop reading this backend: its session's queue is full. Bytes already read and not
    /// accepted by [`Gateway::handle_backend_input`] are kept by the driver.
    PauseBackend(BackendId),
    /// Read this backend again (offer the kept bytes first).
    ResumeBackend(BackendId),
    /// Close this backend (after writing the bytes already handed out for it) and forget it.
    /// Later input for it is ignored.
    CloseBackend(BackendId),
    /// Close this client connection now, dropping bytes not yet written: it sat idle past
    /// [`GatewayConfig::keep_alive_timeout`], or took no answer bytes for
    /// [`GatewayConfig::send_timeout`], or the gateway is shutting down
    /// ([`Gateway::begin_shutdown`]) and it has no request in flight. Report
    /// [`Gateway::handle_client_eof`] once the socket is closed; it counts against
    /// [`GatewayConfig::max_connections`] until then.
    CloseClient(ConnectionId),
}

/// Why connecting to a backend failed, as far as the client's answer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// The backend could not be reached (refused, unreachable, timed out): `502`.
    Unreachable,
    /// This host ran out of file descriptors, ports or memory: the gateway is full, `503`.
    OutOfResources,
}

/// Why [`Gateway::handle_accept`] refused a connection. Close it without a word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcceptError {
    /// [`GatewayConfig::max_connections`] connections are open.
    TooManyConnections {
        /// The configured limit.
        limit: usize,
    },
    /// The ID names a connection the gateway still knows.
    DuplicateConnection,
}

impl fmt::Display for AcceptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyConnections { limit } => write!(f, "{limit} client connections open"),
            Self::DuplicateConnection => f.write_str("connection ID already in use"),
        }
    }
}

impl std::error::Error for AcceptError {}

/// Counters over the gateway's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayStats {
    /// Sessions opened.
    pub sessions_opened: u64,
    /// Sessions ended, for any reason.
    pub sessions_ended: u64,
    /// Of which ended by the idle timeout.
    pub sessions_expired: u64,
    /// Requests received whole.
    pub requests: u64,
    /// `200` answers of sessions.
    pub responses: u64,
    /// Error answers (4xx, 5xx).
    pub error_responses: u64,
    /// Opens refused by the allowlist.
    pub refused_backends: u64,
    /// Requests with an unknown, stale or expired session ID.
    pub unknown_session_ids: u64,
    /// Second requests while one was in flight.
    pub concurrent_requests: u64,
    /// `PNG`s refused (and sessions ended for them).
    pub refused_pings: u64,
    /// `PNG`s answered by the gateway.
    pub answered_pings: u64,
    /// Backend connections that failed or timed out.
    pub backend_connect_failures: u64,
    /// Client connections closed for taking no answer bytes for `send_timeout`.
    pub send_timeouts: u64,
    /// Times a backend was paused for a full queue.
    pub backend_pauses: u64,
    /// MSNP bytes handed out for backends.
    pub bytes_to_backends: u64,
    /// MSNP bytes accepted from backends.
    pub bytes_from_backends: u64,
}
