//! Gateway settings: where backends may be, how sessions behave, and every limit.

use std::fmt;
use std::time::Duration;

use crate::msnp::{FramerLimits, PayloadCommands};
use crate::ping::PingPolicy;
use crate::wire::{DEFAULT_GATEWAY_PATH, HttpLimits, ServerKind};
use crate::{AddressError, Endpoint};

/// The notification server's MSNP port.
pub const DEFAULT_NS_PORT: u16 = 1863;
/// The switchboards' MSNP port.
pub const DEFAULT_SB_PORT: u16 = 1864;
/// The longest any configured duration may be (keeps instant arithmetic far from overflow).
pub const MAX_SETTING_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// The MSNP port of each server kind. Clients strip the port from `IP=` (the official client
/// and Pidgin do), so an open without one takes the port of the kind its `Server=` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsnpPorts {
    /// Notification servers (`Server=NS`). Default 1863.
    pub notification: u16,
    /// Switchboards (`Server=SB`). Default 1864.
    pub switchboard: u16,
}

impl MsnpPorts {
    /// The port of `server`.
    pub const fn of(self, server: ServerKind) -> u16 {
        match server {
            ServerKind::Notification => self.notification,
            ServerKind::Switchboard => self.switchboard,
        }
    }
}

impl Default for MsnpPorts {
    fn default() -> Self {
        Self { notification: DEFAULT_NS_PORT, switchboard: DEFAULT_SB_PORT }
    }
}

/// One backend the gateway may connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendRule {
    /// The host as clients name it in `IP=` (matched without regard to ASCII case).
    pub host: String,
    /// The only port allowed, or `None` for the MSNP ports ([`GatewayConfig::msnp_ports`]) of
    /// the kinds the rule allows. No rule opens every port: that would make the gateway a
    /// tunnel to any service of the host.
    pub port: Option<u16>,
    /// The only kind of server (`Server=`) the rule lets open, or `None` for both.
    pub server: Option<ServerKind>,
    /// Where to connect instead of the named address (a gateway in front of a private
    /// server), or `None` to connect where `IP=` says.
    pub connect_to: Option<Endpoint>,
}

impl BackendRule {
    /// Allows `host` on `port` (`None`: the MSNP ports), for both kinds, connecting where the
    /// client says.
    pub fn allow(host: impl Into<String>, port: Option<u16>) -> Self {
        Self { host: host.into(), port, server: None, connect_to: None }
    }

    /// Allows `host` on `port` (`None`: the MSNP ports), for both kinds, connecting to
    /// `connect_to` instead.
    pub fn route(host: impl Into<String>, port: Option<u16>, connect_to: Endpoint) -> Self {
        Self { host: host.into(), port, server: None, connect_to: Some(connect_to) }
    }

    /// The same rule for opens of `server` only.
    pub fn only(mut self, server: ServerKind) -> Self {
        self.server = Some(server);
        self
    }

    fn matches(&self, requested: &Endpoint, server: ServerKind, ports: MsnpPorts) -> bool {
        let port = requested.port();
        let port_ok = match (self.port, self.server) {
            (Some(only), _) => port == only,
            (None, Some(kind)) => port == ports.of(kind),
            (None, None) => port == ports.notification || port == ports.switchboard,
        };
        self.host.eq_ignore_ascii_case(requested.host())
            && self.server.is_none_or(|kind| kind == server)
            && port_ok
    }
}

/// The backends a session may open. A gateway that connects wherever `IP=` says is an open
/// proxy; this list is what stops that. It starts empty: nothing is allowed.
///
/// ```
/// use msn_http_core::Endpoint;
/// use msn_http_core::gateway::{BackendAllowlist, BackendRule, MsnpPorts};
/// use msn_http_core::wire::ServerKind::{Notification, Switchboard};
///
/// let ns = Endpoint::parse("10.0.0.5:1863", 1863).unwrap();
/// let allow = BackendAllowlist::new()
///     .allow("messenger.example.net", Some(1863))
///     .rule(BackendRule::route("messenger.hotmail.com", None, ns).only(Notification));
/// let ports = MsnpPorts::default();
/// let asked = Endpoint::parse("MESSENGER.example.net", 1863).unwrap();
/// assert_eq!(allow.resolve(&asked, Notification, ports), Some(asked.clone()));
/// let wrong_port = Endpoint::parse("messenger.example.net:25", 1863).unwrap();
/// assert_eq!(allow.resolve(&wrong_port, Notification, ports), None);
/// // Without a port a rule allows only the MSNP ports, here of the NS.
/// let ssh = Endpoint::parse("messenger.hotmail.com:22", 1863).unwrap();
/// assert_eq!(allow.resolve(&ssh, Notification, ports), None);
/// let routed = Endpoint::parse("messenger.hotmail.com", 1863).unwrap();
/// assert_eq!(allow.resolve(&routed, Notification, ports).unwrap().to_string(), "10.0.0.5:1863");
/// assert_eq!(allow.resolve(&routed, Switchboard, ports), None, "the route is for the NS only");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackendAllowlist {
    rules: Vec<BackendRule>,
}

impl BackendAllowlist {
    /// An empty list: every open is refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows `host` on `port` (`None`: the MSNP ports), connecting where the client says.
    pub fn allow(self, host: impl Into<String>, port: Option<u16>) -> Self {
        self.rule(BackendRule::allow(host, port))
    }

    /// Allows `host` on `port` (`None`: the MSNP ports), connecting to `connect_to` instead.
    pub fn route(self, host: impl Into<String>, port: Option<u16>, connect_to: Endpoint) -> Self {
        self.rule(BackendRule::route(host, port, connect_to))
    }

    /// Adds `rule` after the others.
    pub fn rule(mut self, rule: BackendRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// The rules, in order; the first that matches decides.
    pub fn rules(&self) -> &[BackendRule] {
        &self.rules
    }

    /// Where to connect for a client that opened `server` at `requested` (its port already
    /// filled in from `ports` if `IP=` named none), or `None` when not allowed.
    pub fn resolve(
        &self,
        requested: &Endpoint,
        server: ServerKind,
        ports: MsnpPorts,
    ) -> Option<Endpoint> {
        let rule = self.rules.iter().find(|rule| rule.matches(requested, server, ports))?;
        Some(rule.connect_to.clone().unwrap_or_else(|| requested.clone()))
    }
}

/// Which browser origins may read gateway responses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Any origin (`Access-Control-Allow-Origin: *`).
    Any,
    /// These origins exactly (for example `https://app.example`); the matching one is echoed.
    List(Vec<String>),
}

/// CORS settings, for browser clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Which origins get the CORS headers.
    pub allowed_origins: AllowedOrigins,
    /// How long a browser may cache a preflight answer (`Access-Control-Max-Age`). Default 10
    /// minutes.
    pub max_age: Duration,
}

impl CorsPolicy {
    /// Any origin, preflights cached 10 minutes.
    pub fn any() -> Self {
        Self { allowed_origins: AllowedOrigins::Any, max_age: Duration::from_secs(600) }
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it gets one.
    /// Requests without `Origin` (not from a browser) get none.
    pub fn allow_origin<'a>(&'a self, origin: Option<&'a str>) -> Option<&'a str> {
        let origin = origin?;
        match &self.allowed_origins {
            AllowedOrigins::Any => Some("*"),
            AllowedOrigins::List(list) => list.iter().any(|o| o == origin).then_some(origin),
        }
    }
}

/// Settings of a [`Gateway`](crate::gateway::Gateway). Start from [`GatewayConfig::new`] and
/// change fields; [`Gateway::new`](crate::gateway::Gateway::new) checks them.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// This gateway's public address, sent as `GW-IP` in every response: where clients send
    /// their next request. Empty tells clients to keep the host they used. An unspecified
    /// address (`0.0.0.0`, `::`) is refused: it is no place a client can go.
    pub gw_ip: String,
    /// The 32 bytes that seed session ID generation. Take them from the operating system's
    /// random source; anyone who knows them can predict session IDs.
    pub seed: [u8; 32],
    /// The gateway script. Default `/gateway/gateway.dll` (matched without regard to case).
    pub gateway_path: String,
    /// The backends sessions may open. Default: none.
    pub backends: BackendAllowlist,
    /// The MSNP port of each server kind: an `IP=` without a port takes the one of the kind
    /// its `Server=` names (`NS` when missing). Default NS 1863, SB 1864.
    pub msnp_ports: MsnpPorts,
    /// Limits on request heads and bodies, per request. Default 8 KiB of head, 64 KiB of body.
    pub http_limits: HttpLimits,
    /// Sessions open at once; an open beyond it gets `503`. Default 10 000.
    pub max_sessions: usize,
    /// Client connections open at once; [`Gateway::handle_accept`] refuses more. A connection
    /// counts until the driver reports its socket closed. Default 20 000. Each buffers at most
    /// `http_limits.max_head_bytes` of a head and as much of pipelined input, and has at most
    /// one answer unwritten.
    ///
    /// [`Gateway::handle_accept`]: crate::gateway::Gateway::handle_accept
    pub max_connections: usize,
    /// Head and pipelined bytes buffered over all client connections together (heads that
    /// arrive in one piece are parsed in place and never count). A connection whose input
    /// would pass it gets `503` and is closed. Default 16 MiB.
    pub max_buffered_head_bytes: usize,
    /// Backend bytes a session queues for its client; when full the backend is paused until
    /// the client polls. Default 64 KiB.
    pub max_queued_bytes: usize,
    /// The largest response body. Whole commands that fit go together; a single command larger
    /// than this goes in pieces of this size (clients reassemble). Default 16 KiB.
    pub max_response_body_bytes: usize,
    /// A session with no request for this long ends, and its backend is closed. Default 60 s.
    pub idle_timeout: Duration,
    /// The longest a poll is held for `Lifespan=`; longer lifespans are cut to it. Default 30 s.
    pub max_lifespan: Duration,
    /// How long a request that carried commands is held for the backend's answer, so that the
    /// answer comes back in the same response (as it did with the official gateway): the
    /// response carries what the backend sent after the commands (and what it had queued
    /// before). Zero answers at once. Default 500 ms.
    pub reply_wait: Duration,
    /// Once the backend answers a held request that carried commands, how long it must stay
    /// quiet before the answer goes: servers write a reply line by line and push unsolicited
    /// commands with it, and all of that should leave in one response. The answer goes at
    /// most this long after `reply_wait`, or at once when a whole response is queued. Zero
    /// answers as soon as one whole command is queued. Default 20 ms.
    pub reply_quiet_gap: Duration,
    /// How long connecting to a backend may take; an open request waiting longer gets `504`.
    /// Default 10 s.
    pub connect_timeout: Duration,
    /// How long a request may take to arrive, from its first byte to the end of its body;
    /// slower ones get `408` and the connection is closed. Default 30 s.
    pub request_timeout: Duration,
    /// How long a client connection may sit idle between requests before the gateway closes
    /// it. Default 120 s.
    pub keep_alive_timeout: Duration,
    /// How long an answer may wait for the client to take any of its bytes: a connection that
    /// makes no write progress for this long is closed. Default 30 s.
    pub send_timeout: Duration,
    /// What to do when a client sends `PNG`. Default: refuse, as the official gateway did.
    pub ping: PingPolicy,
    /// CORS for browser clients. Default: off.
    pub cors: Option<CorsPolicy>,
    /// Which commands carry payloads, for finding command boundaries.
    pub payload_commands: PayloadCommands,
    /// Limits on one MSNP command when finding boundaries. A stream that breaks them (or is not
    /// MSNP) is passed through without regard to boundaries rather than refused.
    pub framer_limits: FramerLimits,
}

impl GatewayConfig {
    /// Default settings for a gateway reachable at `gw_ip`, with session IDs seeded by `seed`.
    /// No backend is allowed until [`backends`](Self::backends) says so.
    pub fn new(gw_ip: impl Into<String>, seed: [u8; 32]) -> Self {
        Self {
            gw_ip: gw_ip.into(),
            seed,
            gateway_path: DEFAULT_GATEWAY_PATH.to_owned(),
            backends: BackendAllowlist::new(),
            msnp_ports: MsnpPorts::default(),
            http_limits: HttpLimits { max_head_bytes: 8 * 1024, max_body_bytes: 64 * 1024 },
            max_sessions: 10_000,
            max_connections: 20_000,
            max_buffered_head_bytes: 16 * 1024 * 1024,
            max_queued_bytes: 64 * 1024,
            max_response_body_bytes: 16 * 1024,
            idle_timeout: Duration::from_secs(60),
            max_lifespan: Duration::from_secs(30),
            reply_wait: Duration::from_millis(500),
            reply_quiet_gap: Duration::from_millis(20),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(120),
            send_timeout: Duration::from_secs(30),
            ping: PingPolicy::Refuse,
            cors: None,
            payload_commands: PayloadCommands::default(),
            framer_limits: FramerLimits {
                max_line_bytes: 8 * 1024,
                max_payload_bytes: 1024 * 1024,
            },
        }
    }

    /// Sets the backend allowlist.
    pub fn with_backends(mut self, backends: BackendAllowlist) -> Self {
        self.backends = backends;
        self
    }

    pub(crate) fn check(&self) -> Result<(), GatewayConfigError> {
        if !self.gw_ip.is_empty() {
            let gw = Endpoint::parse(&self.gw_ip, 80).map_err(GatewayConfigError::InvalidGwIp)?;
            // `0.0.0.0` is where a server listens, never where a client can go (Linux connects
            // it to the local host).
            if gw.host().parse::<core::net::IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
                return Err(GatewayConfigError::UnspecifiedGwIp);
            }
        }
        for rule in self.backends.rules() {
            if let Err(error) = Endpoint::new(rule.host.as_str(), 1) {
                return Err(GatewayConfigError::InvalidBackend { host: rule.host.clone(), error });
            }
            if rule.port == Some(0) {
                return Err(GatewayConfigError::InvalidBackend {
                    host: rule.host.clone(),
                    error: AddressError::InvalidPort,
                });
            }
        }
        if !crate::url::valid_path(&self.gateway_path) {
            return Err(GatewayConfigError::InvalidPath);
        }
        if let Some(CorsPolicy { allowed_origins: AllowedOrigins::List(list), .. }) = &self.cors {
            if let Some(bad) =
                list.iter().find(|o| o.is_empty() || !o.bytes().all(|b| b.is_ascii_graphic()))
            {
                return Err(GatewayConfigError::InvalidOrigin(bad.clone()));
            }
        }
        let durations = [
            (self.idle_timeout, "idle_timeout", false),
            (self.max_lifespan, "max_lifespan", true),
            (self.reply_wait, "reply_wait", true),
            (self.reply_quiet_gap, "reply_quiet_gap", true),
            (self.connect_timeout, "connect_timeout", false),
            (self.request_timeout, "request_timeout", false),
            (self.keep_alive_timeout, "keep_alive_timeout", false),
            (self.send_timeout, "send_timeout", false),
        ];
        for (value, name, zero_ok) in durations {
            if value > MAX_SETTING_DURATION || (!zero_ok && value.is_zero()) {
                return Err(GatewayConfigError::InvalidLimit(name));
            }
        }
        let checks = [
            (self.msnp_ports.notification == 0, "msnp_ports.notification"),
            (self.msnp_ports.switchboard == 0, "msnp_ports.switchboard"),
            (self.max_sessions == 0, "max_sessions"),
            (self.max_sessions > u32::MAX as usize, "max_sessions"),
            (self.max_connections == 0, "max_connections"),
            (
                self.max_buffered_head_bytes < self.http_limits.max_head_bytes,
                "max_buffered_head_bytes",
            ),
            (self.max_queued_bytes == 0, "max_queued_bytes"),
            // Room for the gateway's own `QNG` and at least as much again.
            (self.max_response_body_bytes < 64, "max_response_body_bytes"),
            (self.http_limits.max_head_bytes < 64, "http_limits.max_head_bytes"),
            (self.framer_limits.max_line_bytes < 8, "framer_limits.max_line_bytes"),
        ];
        match checks.iter().find(|(bad, _)| *bad) {
            Some((_, name)) => Err(GatewayConfigError::InvalidLimit(name)),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("gw_ip", &self.gw_ip)
            .field("seed", &"<secret>")
            .field("gateway_path", &self.gateway_path)
            .field("backends", &self.backends)
            .field("msnp_ports", &self.msnp_ports)
            .field("http_limits", &self.http_limits)
            .field("max_sessions", &self.max_sessions)
            .field("max_connections", &self.max_connections)
            .field("max_buffered_head_bytes", &self.max_buffered_head_bytes)
            .field("max_queued_bytes", &self.max_queued_bytes)
            .field("max_response_body_bytes", &self.max_response_body_bytes)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifespan", &self.max_lifespan)
            .field("reply_wait", &self.reply_wait)
            .field("reply_quiet_gap", &self.reply_quiet_gap)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("keep_alive_timeout", &self.keep_alive_timeout)
            .field("send_timeout", &self.send_timeout)
            .field("ping", &self.ping)
            .field("cors", &self.cors)
            .field("payload_commands", &self.payload_commands)
            .field("framer_limits", &self.framer_limits)
            .finish()
    }
}

/// A gateway configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatewayConfigError {
    /// `gw_ip` is not a `host[:port]`.
    InvalidGwIp(AddressError),
    /// `gw_ip` is an unspecified address (`0.0.0.0`, `::`), which no client can reach.
    UnspecifiedGwIp,
    /// A backend rule names an invalid host or port.
    InvalidBackend {
        /// The rule's host.
        host: String,
        /// What is wrong with it.
        error: AddressError,
    },
    /// The gateway path must start with `/` and hold only URL-safe bytes.
    InvalidPath,
    /// A CORS origin is empty or holds a byte that cannot go in a header.
    InvalidOrigin(String),
    /// A limit or duration that makes no sense (zero, or beyond
    /// [`MAX_SETTING_DURATION`]).
    InvalidLimit(&'static str),
}

impl fmt::Display for GatewayConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidGwIp(e) => write!(f, "invalid gw_ip: {e}"),
            Self::UnspecifiedGwIp => f.write_str(
                "gw_ip is an unspecified address (0.0.0.0 or ::), which clients cannot reach: \
                 announce a name or address they can",
            ),
            Self::InvalidBackend { host, error } => write!(f, "invalid backend {host:?}: {error}"),
            Self::InvalidPath => f.write_str("invalid gateway path"),
            Self::InvalidOrigin(origin) => write!(f, "invalid CORS origin {origin:?}"),
            Self::InvalidLimit(name) => write!(f, "invalid setting: {name}"),
        }
    }
}

impl std::error::Error for GatewayConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_bad_settings_are_named() {
        let good = GatewayConfig::new("gw.example.net", [1; 32]);
        assert_eq!(good.check(), Ok(()));
        assert!(!format!("{good:?}").contains("[1, 1"), "the seed is not printed");

        let mut c = good.clone();
        c.gw_ip = "gw;x".into();
        assert_eq!(c.check(), Err(GatewayConfigError::InvalidGwIp(AddressError::InvalidHost)));
        for unspecified in ["0.0.0.0", "0.0.0.0:8080", "[::]:80", "::"] {
            let mut c = good.clone();
            c.gw_ip = unspecified.into();
            assert_eq!(c.check(), Err(GatewayConfigError::UnspecifiedGwIp), "{unspecified}");
        }
        let c = good.clone().with_backends(BackendAllowlist::new().allow("bad host", None));
        assert!(matches!(c.check(), Err(GatewayConfigError::InvalidBackend { .. })));
        let mut c = good.clone();
        c.idle_timeout = Duration::ZERO;
        assert_eq!(c.check(), Err(GatewayConfigError::InvalidLimit("idle_timeout")));
        let mut c = good.clone();
        c.max_lifespan = MAX_SETTING_DURATION + Duration::from_secs(1);
        assert_eq!(c.check(), Err(GatewayConfigError::InvalidLimit("max_lifespan")));
        let mut c = good.clone();
        c.max_response_body_bytes = 10;
        assert_eq!(c.check(), Err(GatewayConfigError::InvalidLimit("max_response_body_bytes")));
        let mut c = good.clone();
        c.gateway_path = "gateway.dll".into();
        assert_eq!(c.check(), Err(GatewayConfigError::InvalidPath));
        let mut c = good;
        c.cors = Some(CorsPolicy {
            allowed_origins: AllowedOrigins::List(vec!["https://a\r\nX: y".into()]),
            max_age: Duration::ZERO,
        });
        assert!(matches!(c.check(), Err(GatewayConfigError::InvalidOrigin(_))));
    }

    #[test]
    fn cors_origins() {
        let any = CorsPolicy::any();
        assert_eq!(any.allow_origin(Some("https://x")), Some("*"));
        assert_eq!(any.allow_origin(None), None);
        let list = CorsPolicy {
            allowed_origins: AllowedOrigins::List(vec!["https://a.example".into()]),
            max_age: Duration::ZERO,
        };
        assert_eq!(list.allow_origin(Some("https://a.example")), Some("https://a.example"));
        assert_eq!(list.allow_origin(Some("https://b.example")), None);
    }
}
