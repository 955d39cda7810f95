//! Host and port of a gateway, proxy or MSNP server, parsed from `host`, `host:port`,
//! `[v6]:port` or a bare IPv6 literal.

use std::fmt;

/// The longest host name accepted (the DNS limit).
pub const MAX_HOST_LEN: usize = 253;

/// A host (name or IP literal) and a TCP port.
///
/// ```
/// use msn_http_core::Endpoint;
/// let gw = Endpoint::parse("207.46.110.18", 80).unwrap();
/// assert_eq!((gw.host(), gw.port()), ("207.46.110.18", 80));
/// let v6 = Endpoint::parse("[::1]:8080", 80).unwrap();
/// assert_eq!((v6.host(), v6.port()), ("::1", 8080));
/// assert_eq!(v6.to_string(), "[::1]:8080");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    host: String,
    port: u16,
    /// Whether the host is an IPv6 literal (derived from `host`, kept to avoid rescans).
    ipv6: bool,
}

/// Why a host or address was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressError {
    /// The host part is empty.
    EmptyHost,
    /// The host is longer than [`MAX_HOST_LEN`].
    HostTooLong,
    /// The host holds a byte that no host name or IP literal may contain.
    InvalidHost,
    /// The port is not a number from 1 to 65535.
    InvalidPort,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EmptyHost => "empty host",
            Self::HostTooLong => "host name too long",
            Self::InvalidHost => "invalid character in host",
            Self::InvalidPort => "port is not a number from 1 to 65535",
        })
    }
}

impl std::error::Error for AddressError {}

impl Endpoint {
    /// An endpoint from a host (name, IPv4 or bare IPv6 literal) and a port.
    pub fn new(host: impl Into<String>, port: u16) -> Result<Self, AddressError> {
        let host = host.into();
        validate_host(&host)?;
        if port == 0 {
            return Err(AddressError::InvalidPort);
        }
        let ipv6 = host.contains(':');
        Ok(Self { host, port, ipv6 })
    }

    /// An endpoint from a host known to be valid (a constant of this crate).
    pub(crate) fn trusted(host: &str, port: u16) -> Self {
        debug_assert!(validate_host(host).is_ok() && port != 0);
        Self { host: host.to_owned(), port, ipv6: host.contains(':') }
    }

    /// Parses `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 literal; a missing port
    /// becomes `default_port`.
    pub fn parse(text: &str, default_port: u16) -> Result<Self, AddressError> {
        let (host, port) = split_host_port(text)?;
        let port = match port {
            Some(port) => parse_port(port)?,
            None => default_port,
        };
        Self::new(host, port)
    }

    /// Where `text` (a `GW-IP` or `X-MSN-Host` value) moves a session now at `self`: `None` when
    /// it names this same endpoint. A missing port keeps the current one, so a gateway on a
    /// non-default port that answers with its bare host keeps working. Allocates only on a move.
    pub(crate) fn moved_to(&self, text: &str) -> Result<Option<Self>, AddressError> {
        let (host, port) = split_host_port(text)?;
        let port = match port {
            Some(port) => parse_port(port)?,
            None => self.port,
        };
        if host == self.host && port == self.port {
            return Ok(None);
        }
        Self::new(host, port).map(Some)
    }

    /// The host name or IP literal (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the host is an IPv6 literal (it then needs brackets in a URL or `Host` header).
    pub fn is_ipv6(&self) -> bool {
        self.ipv6
    }

    /// Appends the URL authority form: `host`, with `:port` unless it is `omit_port`.
    pub(crate) fn write_authority(&self, out: &mut Vec<u8>, omit_port: u16) {
        if self.is_ipv6() {
            out.push(b'[');
            out.extend_from_slice(self.host.as_bytes());
            out.push(b']');
        } else {
            out.extend_from_slice(self.host.as_bytes());
        }
        if self.port != omit_port {
            out.push(b':');
            out.extend_from_slice(itoa::Buffer::new().format(self.port).as_bytes());
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ipv6() {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Splits `text` into a host and an optional port text, handling brackets and bare IPv6.
pub(crate) fn split_host_port(text: &str) -> Result<(&str, Option<&str>), AddressError> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(AddressError::InvalidHost)?;
        if !host.contains(':') {
            return Err(AddressError::InvalidHost);
        }
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(AddressError::InvalidHost),
            },
        };
    }
    match text.split_once(':') {
        // Two or more colons without brackets: a bare IPv6 literal, which has no port.
        Some((_, rest)) if rest.contains(':') => Ok((text, None)),
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((text, None)),
    }
}

fn parse_port(text: &str) -> Result<u16, AddressError> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddressError::InvalidPort);
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(AddressError::InvalidPort),
        Ok(port) => Ok(port),
    }
}

fn validate_host(host: &str) -> Result<(), AddressError> {
    if host.is_empty() {
        return Err(AddressError::EmptyHost);
    }
    if host.len() > MAX_HOST_LEN {
        return Err(AddressError::HostTooLong);
    }
    let ipv6 = host.contains(':');
    let valid = host.bytes().all(|b| {
        if ipv6 {
            b.is_ascii_hexdigit() || b == b':' || b == b'.'
        } else {
            b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'
        }
    });
    if valid { Ok(()) } else { Err(AddressError::InvalidHost) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        let cases = [
            ("gateway.messenger.hotmail.com", ("gateway.messenger.hotmail.com", 80)),
            ("207.46.110.18:8080", ("207.46.110.18", 8080)),
            ("[::1]", ("::1", 80)),
            ("[2001:db8::1]:443", ("2001:db8::1", 443)),
            ("2001:db8::1", ("2001:db8::1", 80)),
            ("127.0.0.2:1", ("127.0.0.2", 1)),
        ];
        for (text, (host, port)) in cases {
            let ep = Endpoint::parse(text, 80).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((ep.host(), ep.port()), (host, port), "{text}");
        }
    }

    #[test]
    fn refuses_bad_addresses_with_a_reason() {
        let cases = [
            ("", AddressError::EmptyHost),
            (":80", AddressError::EmptyHost),
            ("host:", AddressError::InvalidPort),
            ("host:0", AddressError::InvalidPort),
            ("host:65536", AddressError::InvalidPort),
            ("host:+80", AddressError::InvalidPort),
            ("host:99999999999", AddressError::InvalidPort),
            ("ho st", AddressError::InvalidHost),
            ("host/path", AddressError::InvalidHost),
            ("[::1", AddressError::InvalidHost),
            ("[::1]x", AddressError::InvalidHost),
            ("[host]", AddressError::InvalidHost),
            ("a\0b", AddressError::InvalidHost),
        ];
        for (text, want) in cases {
            assert_eq!(Endpoint::parse(text, 80), Err(want), "{text:?}");
        }
        let long = "a".repeat(MAX_HOST_LEN + 1);
        assert_eq!(Endpoint::parse(&long, 80), Err(AddressError::HostTooLong));
    }

    #[test]
    fn authority_omits_the_default_port_and_brackets_ipv6() {
        let mut out = Vec::new();
        Endpoint::parse("example.net:80", 80).unwrap().write_authority(&mut out, 80);
        out.push(b' ');
        Endpoint::parse("example.net:81", 80).unwrap().write_authority(&mut out, 80);
        out.push(b' ');
        Endpoint::parse("[::1]:80", 80).unwrap().write_authority(&mut out, 80);
        assert_eq!(out, b"example.net example.net:81 [::1]");
    }
}
