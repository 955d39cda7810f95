//! The client side: a [`Session`] is one MSNP connection (NS or SB) tunnelled through the
//! gateway, driven by bytes and time from the caller.

mod config;
mod event;
mod outgoing;
mod poll;
mod session;

pub use config::{
    ClientConfig, OFFICIAL_GATEWAY_HOST, OutputMode, PollPolicy, Proxy, Target, UnconfirmedPolicy,
};
pub use event::{CloseReason, Closed, Event, Recovery, RequestKind};
pub use session::{Connection, MAX_PENDING_EVENTS, Session, Stats, Transmit};
