//! Test partners for msn-http that behave like the gateways and MSNP servers of the field, not
//! like our own: a scriptable fake gateway in front of an echoing MSNP backend, sans-IO (bytes
//! and time in, answers out), so the core's fake-clock simulations and the adapters'
//! real-socket tests drive the same model.
//!
//! Every behaviour PROTOCOL.md §7 records of today's gateways and servers is a switch of
//! [`Quirks`]; one-off misbehaviour of single requests is a [`Fault`] in the [`Script`].
//! [`Sim`] runs a client core session against it on a fake clock. For the adapters' and the
//! driver's real-socket tests: a virtual [`clock`], the [`expect`]ed events as tests compare
//! them, and the [`field`] cases' commands and checks.
#![forbid(unsafe_code)]

pub mod clock;
pub mod expect;
pub mod field;
mod gateway;
mod gateway_http;
mod request;
mod sim;
pub mod tls;

pub use gateway::{Backend, FakeGateway, Fault, GwIp, Plan, Quirks, Script, Seen, SessionIds};
pub use gateway_http::{Answers, assert_rotated, gateway_post, ok_answer, session_id};
pub use request::{Parsed, RawRequest, complete_response_len, parse_request};
pub use sim::{IdleFigures, Report, Sim, kinds, measure_idle};

/// Bounds on the fake servers' loops (sockets wrapped around the model use them).
pub const MAX_CONNECTIONS: usize = 1_000;
/// Requests one connection may carry before the fake server stops reading it.
pub const MAX_REQUESTS_PER_CONNECTION: usize = 10_000;
/// Reads one message may take before the fake server gives up on it.
pub const MAX_READS_PER_MESSAGE: usize = 10_000;
