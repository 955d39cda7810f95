//! Where a session's requests go: the configured gateway, the host a `GW-IP` or `X-MSN-Host`
//! moves it to, the way back when that host turns out not to be a gateway, and the values that
//! are not followed at all ([`MovePolicy`]).

// `core::net`: address types only, no sockets.
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::AddressError;
use crate::Endpoint;
use crate::endpoint::split_host_port;

use super::event::MoveRefusal;

/// Which `GW-IP`/`X-MSN-Host` moves a session follows. A gateway names the host of the next
/// request; a hostile one could name any host and port, and the session would carry its
/// traffic there. Whatever the settings, a move is never followed to:
///
/// - the session's own MSNP server (revival gateways echo `IP=`);
/// - an unspecified, multicast or broadcast address;
/// - a narrower network than the configured gateway's: from a gateway on the internet, no
///   loopback, link-local (`169.254.0.0/16`, `fe80::/10`), private (`10/8`, `172.16/12`,
///   `192.168/16`, `100.64/10`, `fc00::/7`) address or `localhost`; from one on a private
///   network, no loopback; link-local only from link-local;
/// - from a gateway on the internet, a port other than 80, 443 and the configured gateway's;
/// - anywhere, once a host a move led to has failed (the session then stays with the
///   configured gateway rather than be steered from host to host).
///
/// Host names are judged by name (the core resolves nothing): a name that resolves into a
/// private network is not caught here. A refused move is reported
/// ([`Notice::MoveRefused`](crate::client::Notice::MoveRefused), once per value) and the session
/// stays where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MovePolicy {
    /// Follow moves at all. Default: yes.
    pub follow: bool,
    /// Follow only moves to the configured gateway's domain: its host name, or names ending in
    /// its parent domain (`gw2.example.net` for `gateway.example.net`); no IP literals.
    /// Default: no.
    pub same_domain_only: bool,
}

impl Default for MovePolicy {
    fn default() -> Self {
        Self { follow: true, same_domain_only: false }
    }
}

impl MovePolicy {
    /// Why a move from a session configured for `configured` to `to` is not followed, if it
    /// is not.
    fn refusal(&self, configured: &Endpoint, to: &Endpoint) -> Option<MoveRefusal> {
        if !self.follow {
            return Some(MoveRefusal::MovesOff);
        }
        let target = Scope::of(to.host());
        if target == Scope::NotAHost {
            return Some(MoveRefusal::NotAHost);
        }
        let from = Scope::of(configured.host());
        let narrower = match (from, target) {
            (Scope::LinkLocal, _) => false,
            (_, Scope::LinkLocal) => true,
            (from, target) => target < from,
        };
        if narrower {
            return Some(MoveRefusal::NarrowerNetwork);
        }
        if from == Scope::Internet && ![80, 443, configured.port()].contains(&to.port()) {
            return Some(MoveRefusal::UnexpectedPort);
        }
        if self.same_domain_only && !in_domain(configured.host(), to.host()) {
            return Some(MoveRefusal::OutsideDomain);
        }
        None
    }
}

/// The network a host is in, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    NotAHost,
    Loopback,
    LinkLocal,
    Private,
    Internet,
}

impl Scope {
    fn of(host: &str) -> Self {
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if name == "localhost" || name.ends_with(".localhost") {
            return Self::Loopback;
        }
        match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => Self::of_v4(v4),
            Ok(IpAddr::V6(v6)) => Self::of_v6(v6),
            Err(_) => Self::Internet,
        }
    }

    fn of_v4(ip: Ipv4Addr) -> Self {
        let [a, b, ..] = ip.octets();
        if a == 0 || ip.is_multicast() || ip.is_broadcast() {
            Self::NotAHost
        } else if ip.is_loopback() {
            Self::Loopback
        } else if ip.is_link_local() {
            Self::LinkLocal
        } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
            Self::Private
        } else {
            Self::Internet
        }
    }

    fn of_v6(ip: Ipv6Addr) -> Self {
        if let Some(v4) = ip.to_ipv4_mapped() {
            return Self::of_v4(v4);
        }
        let first = ip.segments()[0];
        if ip.is_unspecified() || ip.is_multicast() {
            Self::NotAHost
        } else if ip.is_loopback() {
            Self::Loopback
        } else if first & 0xffc0 == 0xfe80 {
            Self::LinkLocal
        } else if first & 0xfe00 == 0xfc00 {
            Self::Private
        } else {
            Self::Internet
        }
    }
}

/// Whether `host` is in the domain of `configured`: the same name, or a name under its parent
/// domain (the configured name without its first label, when that leaves two labels or more).
fn in_domain(configured: &str, host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return false;
    }
    let (configured, host) = (configured.to_ascii_lowercase(), host.to_ascii_lowercase());
    if configured == host {
        return true;
    }
    let parent = match configured.split_once('.') {
        Some((_, rest)) if rest.contains('.') => rest,
        _ => configured.as_str(),
    };
    host.strip_suffix(parent).is_some_and(|label| label.ends_with('.'))
}

/// Gateways remembered as unreachable, so a `GW-IP` naming one again is not followed.
const MAX_UNREACHABLE_GATEWAYS: usize = 8;
/// The MSNP ports (NS, SB): a `GW-IP` naming the target host on one of them names the MSNP
/// server when `IP=` gave no port.
const MSNP_PORTS: [u16; 2] = [1863, 1864];

/// What a `GW-IP` or `X-MSN-Host` value decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Named {
    /// Nothing changes: the value names where the session already is, or a value already
    /// refused.
    Stay,
    /// The next request goes to this host, once the response is complete.
    Move,
    /// Not followed, reported for the first time.
    Refused(Endpoint, MoveRefusal),
}

/// The destination of one session's requests.
#[derive(Clone, Debug)]
pub(crate) struct GatewayRoute {
    policy: MovePolicy,
    configured: Endpoint,
    current: Endpoint,
    /// Named by the response being read: where the next request goes if it completes.
    pending: Option<Endpoint>,
    unreachable: Vec<Endpoint>,
    /// The session moved to `current` and no response came from there yet.
    unproven: bool,
    /// The host and port of the session's MSNP server, as `IP=` gave them.
    target_host: String,
    target_port: Option<u16>,
    /// The last value refused, so a repeated one is reported once.
    last_refused: Option<Endpoint>,
    /// A host a move led to failed: no more moves.
    fell_back: bool,
}

impl GatewayRoute {
    /// A route starting at `configured`, for a session whose `IP=` is `target_ip` (already
    /// checked to parse).
    pub(crate) fn new(configured: Endpoint, target_ip: &str, policy: MovePolicy) -> Self {
        let (host, port) = split_host_port(target_ip).unwrap_or((target_ip, None));
        Self {
            policy,
            current: configured.clone(),
            configured,
            pending: None,
            unreachable: Vec::new(),
            unproven: false,
            target_host: host.to_owned(),
            target_port: port.and_then(|p| p.parse().ok()),
            last_refused: None,
            fell_back: false,
        }
    }

    /// Where requests go now.
    pub(crate) fn current(&self) -> &Endpoint {
        &self.current
    }

    /// Whether requests go somewhere a response moved them, and nothing has answered there.
    pub(crate) fn unproven(&self) -> bool {
        self.unproven
    }

    /// A response named `text` as the next gateway.
    pub(crate) fn named(&mut self, text: &str) -> Result<Named, AddressError> {
        self.pending = None;
        let Some(to) = self.current.moved_to(text)? else {
            return Ok(Named::Stay);
        };
        if self.unreachable.contains(&to) {
            return Ok(Named::Stay);
        }
        let refusal = match self.names_target(&to, text) {
            true => Some(MoveRefusal::NamesMsnpServer),
            false if self.fell_back => Some(MoveRefusal::AfterFallback),
            false => self.policy.refusal(&self.configured, &to),
        };
        let Some(refusal) = refusal else {
            self.pending = Some(to);
            return Ok(Named::Move);
        };
        if self.last_refused.as_ref() == Some(&to) {
            return Ok(Named::Stay);
        }
        self.last_refused = Some(to.clone());
        Ok(Named::Refused(to, refusal))
    }

    /// The response being read will not complete: forget what it named.
    pub(crate) fn forget_pending(&mut self) {
        self.pending = None;
    }

    /// A response completed: the host it named becomes the destination (returning where the
    /// session was), and the host that answered is proven.
    pub(crate) fn response_complete(&mut self) -> Option<(Endpoint, Endpoint)> {
        self.unproven = false;
        let to = self.pending.take()?;
        let from = std::mem::replace(&mut self.current, to.clone());
        // The configured gateway is a gateway by configuration, also when a move leads back.
        self.unproven = self.current != self.configured;
        Some((from, to))
    }

    /// The current host failed like a host that is not a gateway (unreachable, or not
    /// answering HTTP): go back to the configured gateway and never follow this one again.
    /// Returns the host given up and the configured gateway, or `None` when already there.
    pub(crate) fn fall_back(&mut self) -> Option<(Endpoint, Endpoint)> {
        self.pending = None;
        self.unproven = false;
        if self.current == self.configured {
            return None;
        }
        self.fell_back = true;
        if self.unreachable.len() == MAX_UNREACHABLE_GATEWAYS {
            self.unreachable.remove(0);
        }
        let to = self.configured.clone();
        let unreachable = std::mem::replace(&mut self.current, to.clone());
        self.unreachable.push(unreachable.clone());
        Some((unreachable, to))
    }

    /// Whether `to` (parsed from `text`) is the session's MSNP server: revival gateways echo
    /// the `IP=` of the open request, with or without its port, and following it would send
    /// HTTP to a raw MSNP server.
    fn names_target(&self, to: &Endpoint, text: &str) -> bool {
        if !to.host().eq_ignore_ascii_case(&self.target_host) {
            return false;
        }
        let named_port = split_host_port(text).ok().and_then(|(_, port)| port);
        match (named_port, self.target_port) {
            (None, _) => true,
            (Some(_), Some(target)) => to.port() == target,
            (Some(_), None) => MSNP_PORTS.contains(&to.port()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(gateway: &str, target: &str) -> GatewayRoute {
        GatewayRoute::new(Endpoint::parse(gateway, 80).unwrap(), target, MovePolicy::default())
    }

    #[test]
    fn an_echo_of_the_msnp_server_is_refused_once() {
        let cases = [
            ("gw.test", "messenger.test", "messenger.test"),
            ("gw.test", "MESSENGER.test", "messenger.test"),
            ("gw.test", "10.1.2.3:1864", "10.1.2.3:1864"),
            ("gw.test", "10.1.2.3:1864", "10.1.2.3"),
            ("gw.test", "10.1.2.3", "10.1.2.3:1864"),
            ("gw.test", "10.1.2.3", "10.1.2.3:1863"),
        ];
        for (gateway, target, named) in cases {
            let mut r = route(gateway, target);
            let refused = r.named(named).unwrap();
            assert!(
                matches!(refused, Named::Refused(_, MoveRefusal::NamesMsnpServer)),
                "{target} / {named}: {refused:?}"
            );
            assert_eq!(r.named(named).unwrap(), Named::Stay, "reported once");
            assert_eq!(r.response_complete(), None, "{target} / {named}: no move");
            assert_eq!(r.current().to_string(), "gw.test:80");
        }
    }

    #[test]
    fn a_move_back_to_the_configured_gateway_leaves_it_trusted() {
        let mut r = route("gw.test", "messenger.test");
        assert_eq!(r.named("207.46.110.18").unwrap(), Named::Move);
        r.response_complete().expect("moved");
        assert_eq!(r.response_complete(), None);
        assert_eq!(r.named("gw.test").unwrap(), Named::Move);
        let (_, back) = r.response_complete().expect("moved back");
        assert_eq!(back.to_string(), "gw.test:80");
        assert!(!r.unproven(), "the configured gateway is no host to give up");
    }

    #[test]
    fn other_hosts_and_ports_are_moves() {
        let cases = [
            ("gw.test", "messenger.test", "207.46.110.18", "207.46.110.18:80"),
            ("10.0.0.1:8080", "10.1.2.3:1864", "10.1.2.3:8080", "10.1.2.3:8080"),
            ("10.0.0.1:8080", "10.1.2.3", "10.1.2.3:8080", "10.1.2.3:8080"),
            ("127.0.0.1:8080", "127.0.0.1", "127.0.0.2", "127.0.0.2:8080"),
        ];
        for (gateway, target, named, to) in cases {
            let mut r = route(gateway, target);
            assert_eq!(r.named(named).unwrap(), Named::Move, "{target} / {named}");
            let (_, moved) = r.response_complete().expect("moved");
            assert_eq!(moved.to_string(), to);
            assert!(r.unproven());
            assert_eq!(r.response_complete(), None);
            assert!(!r.unproven(), "proven by the next response");
        }
    }

    #[test]
    fn the_current_host_is_no_move_even_when_it_is_the_target_host() {
        let mut r = route("127.0.0.1:8080", "127.0.0.1");
        assert_eq!(r.named("127.0.0.1").unwrap(), Named::Stay);
        assert_eq!(r.named("127.0.0.1:8080").unwrap(), Named::Stay);
    }

    #[test]
    fn a_host_given_up_is_not_followed_again() {
        let mut r = route("gw.test", "messenger.test");
        assert_eq!(r.named("207.46.110.9").unwrap(), Named::Move);
        r.response_complete();
        let (gone, back) = r.fall_back().expect("moved away");
        assert_eq!(
            (gone.to_string(), back.to_string()),
            ("207.46.110.9:80".into(), "gw.test:80".into())
        );
        assert_eq!(r.fall_back(), None, "already at the configured gateway");
        assert_eq!(r.named("207.46.110.9").unwrap(), Named::Stay);
        // Nor any other: the gateway steered the session to a host that failed.
        let refused = r.named("207.46.110.10").unwrap();
        assert!(matches!(refused, Named::Refused(_, MoveRefusal::AfterFallback)), "{refused:?}");
    }

    #[test]
    fn the_policy_refuses_what_a_hostile_gateway_names() {
        use MoveRefusal::*;
        let cases = [
            // From a gateway on the internet.
            ("gw.example.net", "0.0.0.0:80", Some(NotAHost)),
            ("gw.example.net", "[::]:80", Some(NotAHost)),
            ("gw.example.net", "224.0.0.1", Some(NotAHost)),
            ("gw.example.net", "255.255.255.255", Some(NotAHost)),
            ("gw.example.net", "127.0.0.1", Some(NarrowerNetwork)),
            ("gw.example.net", "localhost", Some(NarrowerNetwork)),
            ("gw.example.net", "10.255.255.1", Some(NarrowerNetwork)),
            ("gw.example.net", "192.168.1.1", Some(NarrowerNetwork)),
            ("gw.example.net", "100.64.0.1", Some(NarrowerNetwork)),
            ("gw.example.net", "169.254.169.254", Some(NarrowerNetwork)),
            ("gw.example.net", "[fd00::1]", Some(NarrowerNetwork)),
            ("gw.example.net", "[::ffff:127.0.0.1]", Some(NarrowerNetwork)),
            ("gw.example.net", "203.0.113.7:22", Some(UnexpectedPort)),
            ("gw.example.net", "203.0.113.7:6379", Some(UnexpectedPort)),
            ("gw.example.net", "207.46.110.18", None),
            ("gw.example.net", "207.46.110.18:443", None),
            ("gw.example.net:8080", "207.46.110.18:8080", None),
            ("gw.example.net", "gw2.example.net", None),
            // From a gateway on a private network or on this host (test rigs).
            ("10.0.0.5:8080", "10.0.0.6:9000", None),
            ("10.0.0.5:8080", "127.0.0.1:9000", Some(NarrowerNetwork)),
            ("10.0.0.5:8080", "169.254.169.254", Some(NarrowerNetwork)),
            ("127.0.0.1:8080", "127.0.0.2:9000", None),
            ("127.0.0.1:8080", "10.0.0.6:22", None),
        ];
        for (gateway, named, want) in cases {
            let mut r = route(gateway, "messenger.test");
            let got = match r.named(named).unwrap() {
                Named::Refused(_, why) => Some(why),
                Named::Move => None,
                Named::Stay => panic!("{gateway} -> {named}: no decision"),
            };
            assert_eq!(got, want, "{gateway} -> {named}");
        }
    }

    #[test]
    fn moves_can_be_kept_to_the_gateway_domain_or_turned_off() {
        let domain_only = MovePolicy { same_domain_only: true, ..MovePolicy::default() };
        let configured = Endpoint::parse("gateway.example.net", 80).unwrap();
        for (named, ok) in [
            ("gw2.example.net", true),
            ("GATEWAY.example.net", true),
            ("example.net", false),
            ("evil.net", false),
            ("notexample.net", false),
            ("207.46.110.18", false),
        ] {
            let mut r = GatewayRoute::new(configured.clone(), "messenger.test", domain_only);
            let moved = r.named(named).unwrap() == Named::Move;
            assert_eq!(moved, ok, "{named}");
        }
        let off = MovePolicy { follow: false, ..MovePolicy::default() };
        let mut r = GatewayRoute::new(configured, "messenger.test", off);
        assert!(matches!(
            r.named("207.46.110.18").unwrap(),
            Named::Refused(_, MoveRefusal::MovesOff)
        ));
    }
}
