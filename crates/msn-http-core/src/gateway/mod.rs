//! The server side: a [`Gateway`] puts TCP MSNP servers (notification servers and
//! switchboards) behind `/gateway/gateway.dll`, as the official HTTP gateway did, driven by
//! bytes and time from the caller.

mod config;
mod ids;
mod server;
mod streams;

pub use config::{
    AllowedOrigins, BackendAllowlist, BackendRule, CorsPolicy, DEFAULT_NS_PORT, DEFAULT_SB_PORT,
    GatewayConfig, GatewayConfigError, MAX_SETTING_DURATION, MsnpPorts, PingPolicy,
};
pub use server::{
    AcceptError, Action, BackendId, ConnectFailure, ConnectionId, Gateway, GatewayStats, Transmit,
};
