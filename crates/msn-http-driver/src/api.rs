//! The core's types that the command API and the byte stream take and return, in one place:
//! each adapter re-exports them at its root, so it is the one dependency a user needs.

pub use msn_http_core::client::{
    ClientConfig, CloseReason, MovePolicy, MoveRefusal, OutReason, PingPolicy, PollPolicy, Proxy,
    Recovery, RequestKind, Stats, Target, UnconfirmedPolicy,
};
pub use msn_http_core::error::{
    ConfigError, FrameError, HttpError, NetworkError, RemoteError, SendError, SessionError,
};
pub use msn_http_core::msnp::{
    Command, CommandWriter, FramerLimits, OwnedCommand, PayloadCommands, md5_login_response,
    message_text, text_message, with_payload,
};
pub use msn_http_core::wire::{HeaderSet, HttpLimits, ServerKind};
pub use msn_http_core::{AddressError, Endpoint, GatewayUrl, Scheme, UrlError};
