//! `msn-http gateway`: our [`GatewayServer`] in front of TCP MSNP servers, with the backend
//! allowlist, limits and expiry as flags, optionally with the built-in MSNP server behind it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use msn_http_core::Endpoint;
use msn_http_core::gateway::{
    BackendAllowlist, BackendRule, DEFAULT_NS_PORT, DEFAULT_SB_PORT, GatewayConfig, MsnpPorts,
    PingPolicy,
};
use msn_http_core::wire::ServerKind;
use msn_http_tokio::gateway::{
    DESCRIPTOR_RESERVE, GatewayServer, OpenFileLimit, ServerOptions, TlsConfig, descriptors_needed,
    random_seed,
};

use crate::common::{parse_duration, secs};
use msn_http_server::BuiltinServer;

/// What the gateway does with `PNG`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Ping {
    /// Answer 400 and end the session, as the official gateway did.
    Refuse,
    /// Drop it and answer `QNG 50` from the gateway.
    Answer,
    /// Pass it to the MSNP server.
    Forward,
}

/// The flags of `msn-http gateway`.
#[derive(Args, Debug)]
pub(crate) struct GatewayArgs {
    /// The address to serve HTTP on (port 0: any free port; the URL is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS #8, PKCS #1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Route `IP=NAME` to an MSNP server: NAME=HOST:PORT. NAME alone matches the MSNP ports
    /// (--ns-port, --sb-port), NAME:PORT that port; NAME/ns or NAME/sb only opens of that kind.
    /// Repeat for more servers.
    #[arg(long = "backend", value_name = "NAME[/KIND]=HOST:PORT", value_parser = parse_backend)]
    backends: Vec<Backend>,
    /// Allow `IP=HOST[:PORT]` as given, connecting there (for switchboards, whose addresses
    /// come from `XFR SB` and `RNG`). Without a port, only the MSNP port of the kind opened
    /// (--ns-port, --sb-port), never another service of the host. HOST/ns or HOST/sb allows
    /// opens of that kind only.
    #[arg(long = "allow", value_name = "HOST[:PORT][/KIND]", value_parser = parse_allow)]
    allow: Vec<RuleTarget>,
    /// The notification server port: an `IP=` without a port opened with `Server=NS` (real
    /// clients strip the port) connects there.
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_NS_PORT)]
    ns_port: u16,
    /// The switchboard port: an `IP=` without a port opened with `Server=SB` connects there.
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_SB_PORT)]
    sb_port: u16,
    /// Serve the built-in MSNP server behind the gateway: its NS as `IP=messenger.hotmail.com`,
    /// its SB by address. Users: alice@example.com, bob@example.com and carol@example.com,
    /// passwords alicepass, bobpass and carolpass.
    #[arg(long)]
    builtin: bool,
    /// The host (and port) announced as `GW-IP`, where clients send their next request.
    /// Default: the address listened on; required when that is `0.0.0.0` or `[::]`.
    #[arg(long, value_name = "HOST[:PORT]")]
    public_host: Option<String>,
    /// Sessions open at once; more get 503. Default 10000, or fewer to fit the open-file
    /// limit (each session holds a descriptor, two with --builtin).
    #[arg(long, value_name = "N")]
    max_sessions: Option<usize>,
    /// Client connections open at once; more are refused. Default 20000, or fewer to fit the
    /// open-file limit.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// The largest request head (bytes); larger heads get 431 (414 for the request line).
    /// Also what a connection keeps of pipelined requests while an answer is unwritten.
    #[arg(long, value_name = "BYTES", default_value_t = 8 * 1024)]
    max_head_bytes: usize,
    /// Partial heads buffered over all connections together; the connection that would pass it
    /// gets 503.
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024)]
    max_buffered_head_bytes: usize,
    /// The largest request body (bytes); larger requests get 413.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    max_request_bytes: u64,
    /// The largest response body (bytes); a longer command goes in pieces.
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024)]
    max_response_bytes: usize,
    /// Bytes from the MSNP server queued per session before the server is paused.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    max_queued_bytes: usize,
    /// A session with no request for this long ends (its MSNP connection is closed).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// The longest a poll is held for `Lifespan=` (0: never held).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    max_lifespan: Duration,
    /// How long a request carrying commands waits for the MSNP server's answer, so it comes
    /// back in the same response.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    reply_wait: Duration,
    /// Once the MSNP server answers such a request, how long it must stay quiet before the
    /// answer goes (servers write replies line by line; all of it goes in one response).
    #[arg(long, value_name = "DURATION", default_value = "20ms", value_parser = parse_duration)]
    reply_quiet_gap: Duration,
    /// How long connecting to an MSNP server may take (then 504).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// How long a request may take to arrive, first byte to last (then 408 and a close).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    request_timeout: Duration,
    /// How long an idle client connection is kept open between requests.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    keep_alive_timeout: Duration,
    /// A client connection that takes no byte of its answer for this long is closed.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    send_timeout: Duration,
    /// What to do when a client sends PNG.
    #[arg(long, value_enum, default_value_t = Ping::Refuse)]
    ping: Ping,
    /// How long Ctrl-C waits for requests in flight before stopping.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    shutdown_grace: Duration,
}

/// What an `--allow` names, and the name side of a `--backend`: a host, maybe a port, maybe
/// the kind of server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RuleTarget {
    host: String,
    port: Option<u16>,
    server: Option<ServerKind>,
}

impl RuleTarget {
    fn allow(&self) -> BackendRule {
        self.kind_of(BackendRule::allow(self.host.clone(), self.port))
    }

    fn route(&self, to: Endpoint) -> BackendRule {
        self.kind_of(BackendRule::route(self.host.clone(), self.port, to))
    }

    fn kind_of(&self, rule: BackendRule) -> BackendRule {
        match self.server {
            Some(server) => rule.only(server),
            None => rule,
        }
    }
}

/// One `--backend` rule.
#[derive(Clone, Debug)]
pub(crate) struct Backend {
    name: RuleTarget,
    to: Endpoint,
}

fn parse_backend(text: &str) -> Result<Backend, String> {
    let (name, to) = text.split_once('=').ok_or("expected NAME=HOST:PORT")?;
    let name = parse_allow(name)?;
    let to = Endpoint::parse(to, 1863).map_err(|e| format!("bad backend address `{to}`: {e}"))?;
    Ok(Backend { name, to })
}

fn parse_allow(text: &str) -> Result<RuleTarget, String> {
    let (address, server) = match text.rsplit_once('/') {
        Some((address, kind)) if kind.eq_ignore_ascii_case("ns") => {
            (address, Some(ServerKind::Notification))
        }
        Some((address, kind)) if kind.eq_ignore_ascii_case("sb") => {
            (address, Some(ServerKind::Switchboard))
        }
        Some((_, kind)) => return Err(format!("unknown server kind `{kind}` (use ns or sb)")),
        None => (text, None),
    };
    let endpoint =
        Endpoint::parse(address, 1).map_err(|e| format!("bad address `{address}`: {e}"))?;
    // Two default ports tell whether the text named one.
    let named = Endpoint::parse(address, 2).is_ok_and(|other| other.port() == endpoint.port());
    Ok(RuleTarget {
        host: endpoint.host().to_owned(),
        port: named.then_some(endpoint.port()),
        server,
    })
}

/// The rules the flags give, in order: `--backend` routes, then `--allow`s.
fn flag_rules(args: &GatewayArgs) -> BackendAllowlist {
    let routes = args.backends.iter().map(|b| b.name.route(b.to.clone()));
    let allowed = args.allow.iter().map(RuleTarget::allow);
    routes.chain(allowed).fold(BackendAllowlist::new(), BackendAllowlist::rule)
}

/// The `GW-IP` to announce: `--public-host`, or the address listened on if clients can reach it.
fn announced(public_host: Option<&str>, listening: SocketAddr) -> Result<String, String> {
    match public_host {
        Some(host) => Ok(host.to_owned()),
        None if listening.ip().is_unspecified() => Err(format!(
            "--listen {listening} serves every address of this machine, none of which it can \
             announce as GW-IP: give --public-host NAME[:PORT], where clients reach the gateway"
        )),
        None => Ok(listening.to_string()),
    }
}

/// `max_connections` and `max_sessions` that fit the open-file limit: connections plus
/// `fds_per_session` per session plus a reserve. What the flags name is kept (or refused with
/// a message naming the limit); defaults shrink to fit, two connections per session.
fn fit_descriptors(
    limit: OpenFileLimit,
    fds_per_session: u64,
    args: &GatewayArgs,
) -> Result<(usize, usize), String> {
    let defaults = GatewayConfig::new("", [0; 32]);
    let wanted_connections = args.max_connections.unwrap_or(defaults.max_connections);
    let wanted_sessions = args.max_sessions.unwrap_or(defaults.max_sessions);
    let Some(soft) = limit.soft else {
        return Ok((wanted_connections, wanted_sessions));
    };
    let room = soft.saturating_sub(DESCRIPTOR_RESERVE);
    let need = |connections: usize, sessions: usize| {
        connections as u64 + fds_per_session * sessions as u64
    };
    let fitted = match (args.max_connections, args.max_sessions) {
        _ if need(wanted_connections, wanted_sessions) <= room => {
            Some((wanted_connections, wanted_sessions))
        }
        (Some(c), Some(s)) => (need(c, s) <= room).then_some((c, s)),
        (Some(c), None) => {
            let sessions = room.saturating_sub(c as u64) / fds_per_session;
            Some((c, sessions.min(wanted_sessions as u64) as usize))
        }
        (None, Some(s)) => {
            let connections = room.saturating_sub(need(0, s));
            Some((connections.min(wanted_connections as u64) as usize, s))
        }
        (None, None) => {
            let sessions = room / (fds_per_session + 2);
            Some((2 * sessions as usize, sessions as usize))
        }
    };
    match fitted {
        Some((c, s)) if c > 0 && s > 0 && need(c, s) <= room => Ok((c, s)),
        _ => Err(format!(
            "{wanted_connections} connections and {wanted_sessions} sessions ({fds_per_session} \
             descriptors each) need {} file descriptors with the reserve of \
             {DESCRIPTOR_RESERVE}, but the open-file limit (RLIMIT_NOFILE) is {soft}{}: lower \
             --max-connections or --max-sessions, or raise the limit (ulimit -n)",
            need(wanted_connections, wanted_sessions) + DESCRIPTOR_RESERVE,
            limit.hard.map_or_else(String::new, |hard| format!(" (hard limit {hard})")),
        )),
    }
}

/// The core's settings the flags give.
fn gateway_config(
    args: &GatewayArgs,
    gw_ip: String,
    seed: [u8; 32],
    allowlist: BackendAllowlist,
) -> GatewayConfig {
    let mut config = GatewayConfig::new(gw_ip, seed).with_backends(allowlist);
    config.msnp_ports = MsnpPorts { notification: args.ns_port, switchboard: args.sb_port };
    if let Some(sessions) = args.max_sessions {
        config.max_sessions = sessions;
    }
    if let Some(connections) = args.max_connections {
        config.max_connections = connections;
    }
    config.http_limits.max_head_bytes = args.max_head_bytes;
    config.max_buffered_head_bytes = args.max_buffered_head_bytes;
    config.http_limits.max_body_bytes = args.max_request_bytes;
    config.max_response_body_bytes = args.max_response_bytes;
    config.max_queued_bytes = args.max_queued_bytes;
    config.idle_timeout = args.idle_timeout;
    config.max_lifespan = args.max_lifespan;
    config.reply_wait = args.reply_wait;
    config.reply_quiet_gap = args.reply_quiet_gap;
    config.connect_timeout = args.connect_timeout;
    config.request_timeout = args.request_timeout;
    config.keep_alive_timeout = args.keep_alive_timeout;
    config.send_timeout = args.send_timeout;
    config.ping = match args.ping {
        Ping::Refuse => PingPolicy::Refuse,
        Ping::Answer => PingPolicy::answer(),
        Ping::Forward => PingPolicy::Forward,
    };
    config
}

/// Runs the gateway until Ctrl-C.
#[allow(clippy::print_stdout)]
pub(crate) async fn run(args: GatewayArgs) -> Result<(), String> {
    // Before anything listens: a certificate that cannot be used is a mistake to say at once.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            TlsConfig::from_pem_files(cert, key).map_err(|e| format!("cannot serve HTTPS: {e}"))?,
        ),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let gw_ip = announced(args.public_host.as_deref(), local)?;
    let mut allowlist = flag_rules(&args);
    let builtin = match args.builtin {
        true => {
            let server = BuiltinServer::start(local.ip())
                .await
                .map_err(|e| format!("cannot start the built-in MSNP server: {e}"))?;
            allowlist = server.backend_rules().into_iter().fold(allowlist, BackendAllowlist::rule);
            Some(server)
        }
        false => None,
    };
    if allowlist.rules().is_empty() {
        return Err(
            "no backend allowed: give --backend NAME=HOST:PORT, --allow HOST[:PORT] or --builtin"
                .into(),
        );
    }
    let seed = random_seed().map_err(|e| format!("no random seed from the system: {e}"))?;
    let mut config = gateway_config(&args, gw_ip.clone(), seed, allowlist.clone());
    let fds_per_session = if builtin.is_some() { 2 } else { 1 };
    let limit = OpenFileLimit::raise_to(descriptors_needed(&config, fds_per_session))
        .unwrap_or_else(|_| OpenFileLimit::current());
    let (connections, sessions) = fit_descriptors(limit, fds_per_session, &args)?;
    let sized = (connections, sessions) != (config.max_connections, config.max_sessions);
    (config.max_connections, config.max_sessions) = (connections, sessions);
    let mut options = ServerOptions::default();
    options.shutdown_grace = args.shutdown_grace;
    let mut server = GatewayServer::from_listener(listener, config)
        .map_err(|e| format!("invalid gateway settings: {e}"))?
        .with_options(options);
    let scheme = match tls {
        Some(tls) => {
            server = server.with_tls(tls);
            "https"
        }
        None => "http",
    };

    println!("msn-http gateway listening on {scheme}://{local}/gateway/gateway.dll");
    println!("  GW-IP {gw_ip}");
    if sized {
        let soft = limit.soft.unwrap_or(u64::MAX);
        println!(
            "  sized to the open-file limit ({soft}): --max-connections {connections}, \
             --max-sessions {sessions}"
        );
    }
    for rule in allowlist.rules() {
        let port = rule.port.map_or_else(|| "MSNP port".to_owned(), |p| format!("port {p}"));
        let kind = rule.server.map_or("NS and SB", ServerKind::as_str);
        match &rule.connect_to {
            Some(to) => println!("  backend IP={} ({port}, {kind}) -> {to}", rule.host),
            None => println!("  backend IP={} ({port}, {kind}) as given", rule.host),
        }
    }
    if let Some(server) = &builtin {
        println!("  built-in MSNP server: {}", server.describe());
    }
    println!(
        "  sessions expire after {} idle; polls held up to {}; Ctrl-C stops",
        secs(args.idle_timeout),
        secs(args.max_lifespan)
    );
    let stats = server
        .run_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    println!(
        "stopped: {} sessions opened, {} requests, {} refused backends, {} expired sessions",
        stats.core.sessions_opened,
        stats.core.requests,
        stats.core.refused_backends,
        stats.core.sessions_expired
    );
    drop(builtin);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        gateway: GatewayArgs,
    }

    fn args(flags: &[&str]) -> GatewayArgs {
        let argv = std::iter::once("gateway").chain(flags.iter().copied());
        Cli::try_parse_from(argv).expect("valid flags").gateway
    }

    fn target(host: &str, port: Option<u16>, server: Option<ServerKind>) -> RuleTarget {
        RuleTarget { host: host.into(), port, server }
    }

    #[test]
    fn backend_rules() {
        let b = parse_backend("messenger.hotmail.com=127.0.0.1:1863").unwrap();
        assert_eq!((b.name, b.to.port()), (target("messenger.hotmail.com", None, None), 1863));
        let b = parse_backend("ns.example:1863/NS=10.0.0.1:2000").unwrap();
        let ns = Some(ServerKind::Notification);
        assert_eq!((b.name, b.to.port()), (target("ns.example", Some(1863), ns), 2000));
        assert!(parse_backend("no-equals").is_err());
        assert_eq!(parse_allow("127.0.0.1").unwrap(), target("127.0.0.1", None, None));
        assert_eq!(parse_allow("127.0.0.1:1864").unwrap(), target("127.0.0.1", Some(1864), None));
        let sb = Some(ServerKind::Switchboard);
        assert_eq!(parse_allow("[::1]:1864/sb").unwrap(), target("::1", Some(1864), sb));
        assert_eq!(parse_allow("::1").unwrap(), target("::1", None, None));
        assert!(parse_allow("127.0.0.1/xx").unwrap_err().contains("unknown server kind `xx`"));
    }

    /// What the gateway built from `flags` connects to for an open of `server` at `ip`.
    fn resolved(flags: &[&str], server: ServerKind, ip: &str) -> Option<String> {
        let args = args(flags);
        let ports = MsnpPorts { notification: args.ns_port, switchboard: args.sb_port };
        let asked = Endpoint::parse(ip, ports.of(server)).unwrap();
        flag_rules(&args).resolve(&asked, server, ports).map(|e| e.to_string())
    }

    #[test]
    fn port_less_ns_and_sb_opens_of_one_host_work_with_plain_flags() {
        let allow = ["--allow", "127.0.0.1"];
        let ns = ServerKind::Notification;
        let sb = ServerKind::Switchboard;
        assert_eq!(resolved(&allow, ns, "127.0.0.1").as_deref(), Some("127.0.0.1:1863"));
        assert_eq!(resolved(&allow, sb, "127.0.0.1").as_deref(), Some("127.0.0.1:1864"));
        let moved = ["--allow", "127.0.0.1", "--ns-port", "2863", "--sb-port", "2864"];
        assert_eq!(resolved(&moved, sb, "127.0.0.1").as_deref(), Some("127.0.0.1:2864"));
        // No other port of the host: a plain allow is no tunnel.
        assert_eq!(resolved(&allow, ns, "127.0.0.1:22"), None);
        assert_eq!(resolved(&allow, sb, "127.0.0.1:6379"), None);
        let only_sb = ["--allow", "127.0.0.1/sb"];
        assert_eq!(resolved(&only_sb, ns, "127.0.0.1"), None);
        assert_eq!(resolved(&only_sb, sb, "127.0.0.1").as_deref(), Some("127.0.0.1:1864"));
    }

    #[test]
    fn flag_defaults_are_the_core_defaults() {
        let flags = gateway_config(&args(&[]), "gw".into(), [1; 32], BackendAllowlist::new());
        assert_eq!(flags, GatewayConfig::new("gw", [1; 32]));
        let named = args(&["--max-connections", "7", "--max-sessions", "3"]);
        let config = gateway_config(&named, "gw".into(), [1; 32], BackendAllowlist::new());
        assert_eq!((config.max_connections, config.max_sessions), (7, 3));
    }

    #[test]
    fn connections_and_sessions_are_sized_to_the_open_file_limit() {
        let limit = |soft| OpenFileLimit { soft: Some(soft), hard: Some(soft) };
        let fit = |soft, fds, flags: &[&str]| fit_descriptors(limit(soft), fds, &args(flags));
        // The defaults fit a large limit, and shrink to fit a small one: 20 000 less the
        // reserve of 64, two connections and one session (two descriptors) at a time.
        assert_eq!(fit(1 << 20, 2, &[]), Ok((20_000, 10_000)));
        assert_eq!(fit(20_000, 2, &[]), Ok((9_968, 4_984)));
        assert_eq!(fit(20_000, 1, &[]), Ok((13_290, 6_645)));
        let unlimited = OpenFileLimit { soft: None, hard: None };
        assert_eq!(fit_descriptors(unlimited, 2, &args(&[])), Ok((20_000, 10_000)));
        // What the flags name is kept; the other fills the rest.
        assert_eq!(fit(20_000, 2, &["--max-connections", "1000"]), Ok((1000, 9_468)));
        assert_eq!(fit(20_000, 2, &["--max-sessions", "100"]), Ok((19_736, 100)));
        assert_eq!(
            fit(1024, 2, &["--max-connections", "20", "--max-sessions", "10"]),
            Ok((20, 10))
        );
        // Named values that cannot fit are refused, naming the limit.
        let err =
            fit(20_000, 2, &["--max-connections", "20000", "--max-sessions", "10000"]).unwrap_err();
        assert!(err.contains("need 40064 file descriptors"), "{err}");
        assert!(err.contains("open-file limit (RLIMIT_NOFILE) is 20000 (hard limit 20000)"));
        assert!(fit(100, 2, &["--max-connections", "500"]).is_err());
        assert!(fit(50, 2, &[]).is_err(), "not even one session fits");
    }

    #[test]
    fn an_unspecified_listen_address_is_never_announced() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let err = announced(None, any).unwrap_err();
        assert!(err.starts_with("--listen 0.0.0.0:8080 serves every address"), "{err}");
        assert!(announced(None, "[::]:80".parse().unwrap()).is_err());
        assert_eq!(announced(Some("gw.example.net"), any).unwrap(), "gw.example.net");
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(announced(None, local).unwrap(), "127.0.0.1:8080");
    }
}
