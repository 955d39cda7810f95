//! What the subcommands share: gateway and proxy URLs, poll policy flags, durations, and the
//! client settings built from them.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use msn_http_core::client::{ClientConfig, PollPolicy, Proxy, TlsRoots, UnconfirmedPolicy};
use msn_http_core::{GatewayUrl, Scheme};

/// Why a subcommand failed, and the exit code to show it.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) code: u8,
}

impl Failure {
    /// Ctrl-C stopped a job before it finished (the shell's code for SIGINT).
    pub(crate) fn interrupted() -> Self {
        Self { message: "interrupted".into(), code: 130 }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self { message, code: 1 }
    }
}

/// Poll policies, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Policy {
    /// Poll 2 s after each response, as the official client did.
    Official,
    /// Poll 250 ms after traffic, doubling up to 4 s while idle.
    Adaptive,
    /// Ask the gateway to hold each poll (`Lifespan=`), and poll again at once.
    LongPoll,
}

/// The poll policy flags of the client subcommands.
#[derive(Args, Clone, Copy, Debug)]
pub(crate) struct PolicyArgs {
    /// How the client polls while it has nothing to send.
    #[arg(long, value_enum, default_value_t = Policy::Official)]
    pub(crate) policy: Policy,
    /// With `--policy long-poll`: the seconds the gateway may hold a poll. A command written
    /// while a poll is held goes out when that poll returns, so this is also the worst send
    /// delay.
    #[arg(long, value_name = "SECS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=30))]
    pub(crate) lifespan: u32,
}

impl PolicyArgs {
    pub(crate) fn poll_policy(&self) -> PollPolicy {
        match self.policy {
            Policy::Official => PollPolicy::official(),
            Policy::Adaptive => PollPolicy::adaptive(),
            Policy::LongPoll => PollPolicy::LongPoll { lifespan_secs: self.lifespan },
        }
    }

    /// The policy in words, for people.
    pub(crate) fn describe(&self) -> String {
        match self.poll_policy() {
            PollPolicy::Official { interval } => {
                format!("official (poll {} after each response)", secs(interval))
            }
            PollPolicy::Adaptive { min, max } => format!(
                "adaptive (poll {} after traffic, doubling up to {} while idle)",
                secs(min),
                secs(max)
            ),
            PollPolicy::LongPoll { lifespan_secs } => format!(
                "long-poll (the gateway holds each poll up to {lifespan_secs} s; the next poll goes at once, or after a short pause when data arrived)"
            ),
        }
    }
}

/// A duration for people: `250 ms`, `2 s`, `1.5 s`.
pub(crate) fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// A round-trip figure: milliseconds below a second, seconds above.
pub(crate) fn ms(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// Parses `500ms`, `2s`, `1.5s`, `2m` or a bare number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (examples: 500ms, 2s, 1.5s, 2m)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        other => return Err(format!("unknown duration unit `{other}` (use ms, s or m)")),
    };
    if !seconds.is_finite() || !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("`{text}` is out of range (at most a day)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Where a client subcommand's sessions go: the gateway, an optional proxy, the poll policy.
#[derive(Args, Debug)]
pub(crate) struct GatewayArgs {
    /// The gateway: `http[s]://HOST[:PORT][/PATH]` (the path defaults to
    /// /gateway/gateway.dll; https:// checks the certificate against HOST).
    #[arg(long, value_name = "URL", value_parser = gateway_url)]
    pub(crate) gateway: GatewayUrl,
    /// An HTTP proxy to reach the gateway through: `http://[USER:PASSWORD@]HOST:PORT` (an
    /// https:// gateway is reached through a CONNECT tunnel).
    #[arg(long, value_name = "URL", value_parser = proxy_url)]
    pub(crate) proxy: Option<GatewayUrl>,
    /// Also trust the CA certificates in this PEM file for an https:// gateway (besides the
    /// system's).
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_cert: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) policy: PolicyArgs,
}

impl GatewayArgs {
    /// Client settings for these flags (reading --ca-cert).
    pub(crate) fn client_config(&self) -> Result<ClientConfig, String> {
        let mut config = ClientConfig::new(self.gateway.endpoint().clone());
        config.scheme = self.gateway.scheme();
        config.gateway_path = self.gateway.path().to_owned();
        if let Some(path) = &self.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read the CA certificate {}: {e}", path.display()))?;
            config.tls_roots = TlsRoots::default().with_extra_pem(pem);
        }
        config.proxy = self.proxy.as_ref().map(|p| Proxy {
            endpoint: p.endpoint().clone(),
            credentials: p.credentials().map(|(user, password)| (user.into(), password.into())),
        });
        config.poll_policy = self.policy.poll_policy();
        // No one is at hand to decide about a request whose fate is unknown: send it again (MSNP
        // servers answer a repeated command again; losing one is worse).
        config.unconfirmed = UnconfirmedPolicy::Resend;
        Ok(config)
    }
}

/// Parses a gateway URL (see [`GatewayUrl`]).
pub(crate) fn gateway_url(text: &str) -> Result<GatewayUrl, String> {
    GatewayUrl::parse(text).map_err(|e| format!("`{text}`: {e}"))
}

/// Parses a proxy URL: the proxy itself is spoken to in plain HTTP.
pub(crate) fn proxy_url(text: &str) -> Result<GatewayUrl, String> {
    let url = gateway_url(text)?;
    match url.scheme() {
        Scheme::Http => Ok(url),
        other => {
            Err(format!("`{text}`: a proxy is reached with http://, not {}://", other.as_str()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = gateway_url("http://127.0.0.1:8080").unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:8080/gateway/gateway.dll");
        let u = gateway_url("gw.example.net/custom/gw.dll?x=1").unwrap();
        assert_eq!((u.endpoint().port(), u.path()), (80, "/custom/gw.dll"));
        let u = gateway_url("https://gw.example.net").unwrap();
        assert_eq!(u.to_string(), "https://gw.example.net:443/gateway/gateway.dll");
        let u = proxy_url("http://me:secret@proxy.example:3128").unwrap();
        assert_eq!(u.credentials(), Some(("me", "secret")));
        assert_eq!(
            proxy_url("https://x").unwrap_err(),
            "`https://x`: a proxy is reached with http://, not https://"
        );
        assert_eq!(
            gateway_url("ftp://x").unwrap_err(),
            "`ftp://x`: unsupported scheme \"ftp\" (use http or https)"
        );
        assert_eq!(
            gateway_url("http://bad host").unwrap_err(),
            "`http://bad host`: bad address: invalid character in host"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(secs(Duration::from_millis(250)), "250 ms");
        assert_eq!(ms(Duration::from_micros(1500)), "1.5 ms");
    }
}
