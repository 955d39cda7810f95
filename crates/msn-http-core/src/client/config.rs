//! Client session settings: where the gateway is, how to poll, and every limit.

use std::time::Duration;

use crate::error::ConfigError;
use crate::msnp::{FramerLimits, PayloadCommands};
use crate::ping::PingPolicy;
use crate::{Endpoint, GatewayUrl, Scheme};

use super::MovePolicy;
use crate::wire::{DEFAULT_GATEWAY_PATH, HeaderSet, HttpLimits, ServerKind};

/// The official gateway host.
pub const OFFICIAL_GATEWAY_HOST: &str = "gateway.messenger.hotmail.com";

/// The MSNP server a session opens: the `Server=` and `IP=` of the first request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// NS or SB.
    pub server: ServerKind,
    /// The server's address as the gateway should see it: the dispatch server, the NS from
    /// `XFR NS`, or the SB from `XFR SB`/`RNG`. Sent as given; official clients strip the
    /// `:1863` port, while gateways that front several servers may need it.
    pub ip: String,
}

impl Target {
    /// A notification server session.
    pub fn notification(ip: impl Into<String>) -> Self {
        Self { server: ServerKind::Notification, ip: ip.into() }
    }

    /// A switchboard session.
    pub fn switchboard(ip: impl Into<String>) -> Self {
        Self { server: ServerKind::Switchboard, ip: ip.into() }
    }
}

/// An HTTP proxy between the client and the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// User and password for `Proxy-Authorization: Basic`, sent on every request.
    pub credentials: Option<(String, String)>,
}

/// The certificate authorities an `https://` gateway's certificate may be signed by.
///
/// ```
/// use msn_http_core::client::TlsRoots;
///
/// let roots = TlsRoots::default().with_extra_pem(b"-----BEGIN CERTIFICATE-----\n...".to_vec());
/// assert!(roots.platform);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsRoots {
    /// The platform's trusted roots (its certificate store). Default `true`.
    pub platform: bool,
    /// More CA certificates, PEM: a revival network's own CA, a test CA. The driver parses
    /// them when the session opens. Default none.
    pub extra_pem: Vec<u8>,
}

impl Default for TlsRoots {
    fn default() -> Self {
        Self { platform: true, extra_pem: Vec::new() }
    }
}

impl TlsRoots {
    /// Adds the CA certificates in `pem` to [`extra_pem`](Self::extra_pem).
    pub fn with_extra_pem(mut self, pem: Vec<u8>) -> Self {
        if !self.extra_pem.is_empty() && !self.extra_pem.ends_with(b"\n") {
            self.extra_pem.push(b'\n');
        }
        self.extra_pem.extend_from_slice(&pem);
        self
    }
}

/// When to poll while nothing is queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollPolicy {
    /// Poll `interval` after the last response (the official client: 2 s).
    Official {
        /// Time from a response to the next poll.
        interval: Duration,
    },
    /// Poll again after `min` when a response carried data or the caller sent something;
    /// double the wait after each empty poll, up to `max`.
    Adaptive {
        /// The shortest wait, used while traffic flows.
        min: Duration,
        /// The longest wait, reached after consecutive empty polls.
        max: Duration,
    },
    /// Ask the gateway to hold each poll up to `lifespan_secs` (`Lifespan=`) and poll again as
    /// soon as it answers — after [`LONG_POLL_SETTLE`](crate::client::LONG_POLL_SETTLE) when
    /// the answer carried data or answered a send, so the caller's reaction goes out first. A
    /// command queued while a poll is held waits for that poll's answer (one request in
    /// flight), so keep the lifespan short enough for your send latency.
    LongPoll {
        /// Seconds the gateway may hold a poll.
        lifespan_secs: u32,
    },
}

impl PollPolicy {
    /// The official client's 2-second poll.
    pub const fn official() -> Self {
        Self::Official { interval: Duration::from_secs(2) }
    }

    /// Adaptive polling from 250 ms up to 4 s.
    pub const fn adaptive() -> Self {
        Self::Adaptive { min: Duration::from_millis(250), max: Duration::from_secs(4) }
    }

    /// Long polling with a 10-second lifespan.
    pub const fn long_poll() -> Self {
        Self::LongPoll { lifespan_secs: 10 }
    }
}

impl Default for PollPolicy {
    fn default() -> Self {
        Self::official()
    }
}

/// What to do with a request that carried commands when it failed in a way that leaves open
/// whether the gateway received it (the connection dropped or timed out before any byte of the
/// response, or a 5xx answer).
///
/// Whatever the policy, the caller is told with
/// [`Notice::RequestFailed`](crate::client::Notice::RequestFailed). A request that never reached
/// the gateway (connect failure) is always resent; so is a poll, which carries no commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnconfirmedPolicy {
    /// Stop sending until the caller decides with
    /// [`Session::resend_unconfirmed`](crate::client::Session::resend_unconfirmed) or
    /// [`Session::discard_unconfirmed`](crate::client::Session::discard_unconfirmed).
    #[default]
    Ask,
    /// Resend the same bytes (the gateway may see them twice).
    Resend,
    /// Drop the bytes (the gateway may never have seen them).
    Discard,
}

/// How received MSNP arrives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputMode {
    /// Whole commands, framed by the core ([`Event::Command`](crate::client::Event::Command)).
    #[default]
    Commands,
    /// The raw byte stream ([`Event::Data`](crate::client::Event::Data)), for callers that
    /// frame MSNP themselves.
    Bytes,
}

/// Settings of a client session. Start from [`ClientConfig::default`] or
/// [`ClientConfig::new`] and change fields; [`Session::new`](crate::client::Session::new)
/// checks them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The gateway the session starts at, and falls back to when a `GW-IP` host cannot be
    /// reached. Default `gateway.messenger.hotmail.com:80`.
    pub gateway: Endpoint,
    /// How the gateway (and every host a move leads to) is reached: `Http`, or `Https` (TLS,
    /// each host's certificate checked against its name). Default `Http`.
    pub scheme: Scheme,
    /// Whom an `https://` gateway's certificate may be signed by. Default: the platform's
    /// roots.
    pub tls_roots: TlsRoots,
    /// The gateway script. Default `/gateway/gateway.dll`.
    pub gateway_path: String,
    /// An HTTP proxy to send every request through: absolute-form targets for `http://`
    /// gateways, a `CONNECT` tunnel (with TLS inside) for `https://` ones.
    pub proxy: Option<Proxy>,
    /// Request header fields. Default: the official client's, minus `Accept-Encoding`.
    pub headers: HeaderSet,
    /// When to poll.
    pub poll_policy: PollPolicy,
    /// How long a request may wait for its complete response (connecting included). Long polls
    /// get their lifespan on top. Default 20 s.
    pub request_timeout: Duration,
    /// Limits on response heads and bodies.
    pub http_limits: HttpLimits,
    /// Limits on received MSNP commands.
    pub framer_limits: FramerLimits,
    /// Which commands carry payloads (for received and sent bytes).
    pub payload_commands: PayloadCommands,
    /// Queued commands are coalesced into one request up to this many body bytes (a single
    /// larger command still goes whole). Default 16 KiB.
    pub max_request_body_bytes: usize,
    /// The most bytes queued for sending, the request in flight included; more is
    /// [`SendError::QueueFull`](crate::error::SendError::QueueFull). Default 1 MiB. While the
    /// queue holds no whole command (at most the start of one, which cannot go until it is
    /// complete) it takes whatever would fit an empty queue, at least one command of
    /// [`FramerLimits::max_command_bytes`], so a caller is never refused for good: the queue
    /// stays below `max(max_queued_bytes, max_command_bytes) + max_command_bytes`.
    pub max_queued_bytes: usize,
    /// When this many received bytes wait undelivered, no request is made until the caller
    /// drains events (backpressure: the gateway keeps the rest). Default 1 MiB.
    ///
    /// Requests go on while the waiting bytes are only the start of one command (it could not
    /// complete otherwise), so undelivered input stays below `max(max_inbound_bytes,
    /// max_line_bytes + 2 + max_payload_bytes) + http_limits.max_body_bytes`.
    pub max_inbound_bytes: usize,
    /// Requests that may fail in a row before the session gives up. Default 5.
    pub max_consecutive_failures: u32,
    /// The wait before the second retry, doubling each further retry (the first retry is
    /// immediate). Default 500 ms.
    pub retry_delay: Duration,
    /// What to do with commands whose delivery is uncertain.
    pub unconfirmed: UnconfirmedPolicy,
    /// Commands or raw bytes.
    pub output: OutputMode,
    /// Refuse `PNG`, answer it locally, or pass it to the gateway. Default: refuse.
    pub ping: PingPolicy,
    /// Which `GW-IP`/`X-MSN-Host` moves to follow. Default: the safe ones (see
    /// [`MovePolicy`]).
    pub moves: MovePolicy,
}

impl ClientConfig {
    /// Default settings for a gateway at `gateway`.
    pub fn new(gateway: Endpoint) -> Self {
        Self {
            gateway,
            scheme: Scheme::Http,
            tls_roots: TlsRoots::default(),
            gateway_path: DEFAULT_GATEWAY_PATH.to_owned(),
            proxy: None,
            headers: HeaderSet::official(),
            poll_policy: PollPolicy::official(),
            request_timeout: Duration::from_secs(20),
            http_limits: HttpLimits::default(),
            framer_limits: FramerLimits::default(),
            payload_commands: PayloadCommands::default(),
            max_request_body_bytes: 16 * 1024,
            max_queued_bytes: 1024 * 1024,
            max_inbound_bytes: 1024 * 1024,
            max_consecutive_failures: 5,
            retry_delay: Duration::from_millis(500),
            unconfirmed: UnconfirmedPolicy::Ask,
            output: OutputMode::Commands,
            ping: PingPolicy::Refuse,
            moves: MovePolicy::default(),
        }
    }
}

/// Building a configuration from the URLs people have, and changing it one setting at a time
/// (the struct is `#[non_exhaustive]`, so it cannot be written as a literal outside this
/// crate).
///
/// ```
/// use std::time::Duration;
/// use msn_http_core::client::{ClientConfig, PollPolicy};
///
/// let config = ClientConfig::from_url("http://127.0.0.1:18080/gateway/gateway.dll")?
///     .with_poll_policy(PollPolicy::long_poll())
///     .with_request_timeout(Duration::from_secs(10));
/// assert_eq!(config.gateway.port(), 18080);
/// # Ok::<(), msn_http_core::error::ConfigError>(())
/// ```
impl ClientConfig {
    /// Default settings for the gateway at `url` (`http://host[:port][/path]`; see
    /// [`GatewayUrl`]).
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let url = GatewayUrl::parse(url).map_err(ConfigError::InvalidUrl)?;
        Self::from_gateway_url(url)
    }

    /// Default settings for the gateway at `url`.
    pub fn from_gateway_url(url: GatewayUrl) -> Result<Self, ConfigError> {
        let (scheme, endpoint, path, _) = url.into_parts();
        Ok(Self { scheme, gateway_path: path, ..Self::new(endpoint) })
    }

    /// Sends every request through the HTTP proxy at `url` (`http://[user:password@]host:port`),
    /// with its credentials, if it names any.
    pub fn with_proxy_url(self, url: &str) -> Result<Self, ConfigError> {
        let url = GatewayUrl::parse(url).map_err(ConfigError::InvalidUrl)?;
        let (_, endpoint, _, credentials) = url.into_parts();
        Ok(self.with_proxy(Some(Proxy { endpoint, credentials })))
    }

    /// Sets [`proxy`](Self::proxy).
    pub fn with_proxy(mut self, proxy: Option<Proxy>) -> Self {
        self.proxy = proxy;
        self
    }

    /// Sets [`gateway_path`](Self::gateway_path).
    pub fn with_gateway_path(mut self, path: impl Into<String>) -> Self {
        self.gateway_path = path.into();
        self
    }

    /// Sets [`headers`](Self::headers).
    pub fn with_headers(mut self, headers: HeaderSet) -> Self {
        self.headers = headers;
        self
    }

    /// Sets [`poll_policy`](Self::poll_policy).
    pub fn with_poll_policy(mut self, policy: PollPolicy) -> Self {
        self.poll_policy = policy;
        self
    }

    /// Sets [`request_timeout`](Self::request_timeout).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`http_limits`](Self::http_limits).
    pub fn with_http_limits(mut self, limits: HttpLimits) -> Self {
        self.http_limits = limits;
        self
    }

    /// Sets [`framer_limits`](Self::framer_limits).
    pub fn with_framer_limits(mut self, limits: FramerLimits) -> Self {
        self.framer_limits = limits;
        self
    }

    /// Sets [`payload_commands`](Self::payload_commands).
    pub fn with_payload_commands(mut self, commands: PayloadCommands) -> Self {
        self.payload_commands = commands;
        self
    }

    /// Sets [`max_request_body_bytes`](Self::max_request_body_bytes).
    pub fn with_max_request_body_bytes(mut self, bytes: usize) -> Self {
        self.max_request_body_bytes = bytes;
        self
    }

    /// Sets [`max_queued_bytes`](Self::max_queued_bytes).
    pub fn with_max_queued_bytes(mut self, bytes: usize) -> Self {
        self.max_queued_bytes = bytes;
        self
    }

    /// Sets [`max_inbound_bytes`](Self::max_inbound_bytes).
    pub fn with_max_inbound_bytes(mut self, bytes: usize) -> Self {
        self.max_inbound_bytes = bytes;
        self
    }

    /// Sets [`max_consecutive_failures`](Self::max_consecutive_failures).
    pub fn with_max_consecutive_failures(mut self, failures: u32) -> Self {
        self.max_consecutive_failures = failures;
        self
    }

    /// Sets [`retry_delay`](Self::retry_delay).
    pub fn with_retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Sets [`unconfirmed`](Self::unconfirmed).
    pub fn with_unconfirmed(mut self, policy: UnconfirmedPolicy) -> Self {
        self.unconfirmed = policy;
        self
    }

    /// Sets [`output`](Self::output).
    pub fn with_output(mut self, output: OutputMode) -> Self {
        self.output = output;
        self
    }

    /// Sets [`ping`](Self::ping).
    pub fn with_ping(mut self, ping: PingPolicy) -> Self {
        self.ping = ping;
        self
    }

    /// Sets [`moves`](Self::moves).
    pub fn with_moves(mut self, moves: MovePolicy) -> Self {
        self.moves = moves;
        self
    }
}

impl ClientConfig {
    /// Refuses settings that cannot work: zero limits and durations, an empty poll policy.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let checks = [
            (self.request_timeout.is_zero(), "request_timeout"),
            (self.max_request_body_bytes == 0, "max_request_body_bytes"),
            (self.max_queued_bytes == 0, "max_queued_bytes"),
            (self.max_inbound_bytes == 0, "max_inbound_bytes"),
            (self.max_consecutive_failures == 0, "max_consecutive_failures"),
            (self.http_limits.max_head_bytes < 32, "http_limits.max_head_bytes"),
            (self.framer_limits.max_line_bytes < 8, "framer_limits.max_line_bytes"),
            (
                match self.poll_policy {
                    PollPolicy::Official { interval } => interval.is_zero(),
                    PollPolicy::Adaptive { min, max } => max.is_zero() || min > max,
                    PollPolicy::LongPoll { lifespan_secs } => lifespan_secs == 0,
                },
                "poll_policy",
            ),
        ];
        match checks.iter().find(|(bad, _)| *bad) {
            Some((_, name)) => Err(ConfigError::InvalidLimit(name)),
            None => Ok(()),
        }
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self::new(Endpoint::trusted(OFFICIAL_GATEWAY_HOST, 80))
    }
}
