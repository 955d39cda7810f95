//! Where a session's requests go: the configured gateway, the host a `GW-IP` or `X-MSN-Host`
//! moves it to, the way back when that host turns out not to be a gateway, and the values that
//! are not followed at all.

use crate::AddressError;
use crate::Endpoint;
use crate::endpoint::split_host_port;

use super::event::MoveRefusal;

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
}

impl GatewayRoute {
    /// A route starting at `configured`, for a session whose `IP=` is `target_ip` (already
    /// checked to parse).
    pub(crate) fn new(configured: Endpoint, target_ip: &str) -> Self {
        let (host, port) = split_host_port(target_ip).unwrap_or((target_ip, None));
        Self {
            current: configured.clone(),
            configured,
            pending: None,
            unreachable: Vec::new(),
            unproven: false,
            target_host: host.to_owned(),
            target_port: port.and_then(|p| p.parse().ok()),
            last_refused: None,
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
        if self.names_target(&to, text) {
            if self.last_refused.as_ref() == Some(&to) {
                return Ok(Named::Stay);
            }
            self.last_refused = Some(to.clone());
            return Ok(Named::Refused(to, MoveRefusal::NamesMsnpServer));
        }
        if !self.unreachable.contains(&to) {
            self.pending = Some(to);
            return Ok(Named::Move);
        }
        Ok(Named::Stay)
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
        self.unproven = true;
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
        GatewayRoute::new(Endpoint::parse(gateway, 80).unwrap(), target)
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
    fn other_hosts_and_ports_are_moves() {
        let cases = [
            ("gw.test", "messenger.test", "207.46.110.18", "207.46.110.18:80"),
            ("gw.test", "10.1.2.3:1864", "10.1.2.3:8080", "10.1.2.3:8080"),
            ("gw.test", "10.1.2.3", "10.1.2.3:8080", "10.1.2.3:8080"),
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
        assert_eq!(r.named("10.0.0.9").unwrap(), Named::Move);
        r.response_complete();
        let (gone, back) = r.fall_back().expect("moved away");
        assert_eq!(
            (gone.to_string(), back.to_string()),
            ("10.0.0.9:80".into(), "gw.test:80".into())
        );
        assert_eq!(r.fall_back(), None, "already at the configured gateway");
        assert_eq!(r.named("10.0.0.9").unwrap(), Named::Stay);
    }
}
