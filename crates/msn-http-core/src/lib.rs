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
