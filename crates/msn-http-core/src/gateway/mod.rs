//! The server side: a [`Gateway`] puts TCP MSNP servers (notification servers and
//! switchboards) behind `/gateway/gateway.dll`, as the official HTTP gateway did, driven by
//! bytes and time from the caller.
//!
//! Inside: [`Gateway`] and its drive contract (`machine`), the vocabulary it shares with the
//! driver (`drive`), where a request goes (`routing`), one client connection's HTTP state
//! (`connection`), one session's state and answers (`session`), the sessions' slab (`slab`),
//! the timer heap (`timers`), the two byte streams of a session (`streams`), the reasons for
//! error answers (`refusal`), session IDs (`ids`) and the settings (`config`).

mod config;
mod connection;
mod drive;
mod ids;
mod machine;
mod refusal;
mod routing;
mod session;
mod slab;
mod streams;
mod timers;

pub use crate::ping::PingPolicy;
pub use config::{
    AllowedOrigins, BackendAllowlist, BackendRule, CorsPolicy, DEFAULT_NS_PORT, DEFAULT_SB_PORT,
    GatewayConfig, GatewayConfigError, MAX_SETTING_DURATION, MsnpPorts,
};
pub use drive::{AcceptError, Action, ConnectFailure, ConnectionId, GatewayStats, Transmit};
pub use machine::Gateway;
pub use slab::BackendId;
