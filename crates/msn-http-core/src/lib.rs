//! Sans-IO state machines for the MSN Messenger HTTP connection method.
//!
//! MSNP (the MSN Messenger protocol) normally runs over raw TCP. Behind firewalls that only pass
//! HTTP, clients tunnel the same bytes through `POST /gateway/gateway.dll` requests: the request
//! body carries commands to the server, the response body carries what the server queued, and
//! an idle client polls. This crate holds all of that protocol knowledge and none of the I/O:
//!
//! - [`client::Session`] is one tunnelled MSNP connection (an NS or an SB) seen from the client.
//!   You hand it bytes read from the socket and the current time; it hands back request bytes to
//!   write, where to write them, the MSNP commands that arrived, and when it next wants to act.
//! - [`wire`] is the HTTP layer: the request encoder, an incremental response decoder (built on
//!   `httparse`) and the `X-MSN-Messenger` header parser.
//! - [`msnp`] frames MSNP commands, including payload commands such as `MSG`, out of a byte
//!   stream that may be cut anywhere.
//!
//! The core never reads a clock, opens a socket or spawns a task: time comes in as an
//! [`Instant`](std::time::Instant) argument, so every hard case is a fast deterministic test.
//! Runtime adapters (`msn-http-tokio`, `msn-http-async-std`) are thin loops around it.
//!
//! # Drive contract
//!
//! Both machines, the client [`Session`](client::Session) and the
//! [`Gateway`](gateway::Gateway), are driven the same way. Feed what happened, with `now`;
//! then drain every output until each returns `None` (an input may make several outputs, and
//! draining one may make another); then sleep until `poll_timeout()` or the next input,
//! whichever comes first, and call `handle_timeout(now)` when the deadline passes.
//!
//! | | client `Session` | gateway `Gateway` |
//! | --- | --- | --- |
//! | inputs | `send`, `close`, `handle_input`, `handle_eof`, `handle_connect_failed`, `handle_timeout`, and the decision calls `resend_unconfirmed` / `discard_unconfirmed` | `handle_accept`, `handle_client_input`, `handle_client_written`, `handle_client_eof`, `handle_backend_connected`, `handle_backend_connect_failed`, `handle_backend_input`, `handle_backend_eof`, `handle_timeout`, `begin_shutdown` |
//! | outputs, drained until `None` | `poll_transmit` (bytes for a connection), `poll_event` (commands, notices, the end) | `poll_transmit` (bytes for a client connection or a backend), `poll_action` (connect, close, pause) |
//! | then | `poll_timeout` (`None` only once closed) | `poll_timeout` |
//! | back-pressure | `queued_bytes`, `SendError::QueueFull` | `client_read_budget`, `handle_client_written` |
//!
//! `poll_transmit` writes the bytes into a buffer the driver owns and passes in, so a driver
//! holds no borrow of the machine across its I/O: copy what the returned `Transmit` names,
//! then call the next input. The drivers in `msn-http-driver` and
//! `msn-http-tokio` are this loop and nothing else; see [`client::Session`] for a blocking one
//! written out in full.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
mod endpoint;
pub mod error;
pub mod gateway;
pub mod msnp;
mod ping;
mod url;
pub mod wire;

pub use endpoint::{AddressError, Endpoint, MAX_HOST_LEN};
pub use url::{GatewayUrl, Scheme, UrlError};
