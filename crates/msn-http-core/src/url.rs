//! Gateway and proxy URLs as people write them: `http://host[:port][/path]`, with optional
//! `user:password@` credentials (for proxies). The one parser the library, the adapters and the
//! `msn-http` program share.

use std::fmt;
use std::str::FromStr;

use crate::endpoint::{AddressError, Endpoint};
use crate::wire::DEFAULT_GATEWAY_PATH;

/// How a URL's host is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `http://`, port 80 unless given.
    Http,
    /// `https://`, port 443 unless given.
    Https,
}

impl Scheme {
    /// The port a URL of this scheme means when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }

    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// A gateway (or proxy) URL: `[scheme://][user:password@]host[:port][/path]`.
///
/// Without a scheme, `http://` is meant; without a port, the scheme's; without a path (or with
/// `/`), the official `/gateway/gateway.dll`. A query or fragment is ignored.
///
/// ```
/// use msn_http_core::{GatewayUrl, Scheme};
///
/// let url: GatewayUrl = "http://127.0.0.1:18080/gateway/gateway.dll".parse()?;
/// assert_eq!((url.endpoint().host(), url.endpoint().port()), ("127.0.0.1", 18080));
/// assert_eq!(url.path(), "/gateway/gateway.dll");
/// assert_eq!(url.to_string(), "http://127.0.0.1:18080/gateway/gateway.dll");
///
/// let proxy: GatewayUrl = "me:secret@proxy.example:3128".parse()?;
/// assert_eq!(proxy.credentials(), Some(("me", "secret")));
/// assert_eq!(proxy.scheme(), Scheme::Http);
/// # Ok::<(), msn_http_core::UrlError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct GatewayUrl {
    scheme: Scheme,
    endpoint: Endpoint,
    path: String,
    credentials: Option<(String, String)>,
}

/// Why a URL was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// A scheme other than `http` or `https`.
    UnsupportedScheme(String),
    /// The host or port is not valid.
    Address(AddressError),
    /// The path holds a byte a request target may not.
    InvalidPath,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedScheme(scheme) => {
                write!(f, "unsupported scheme \"{}\" (use http or https)", scheme.escape_debug())
            }
            Self::Address(e) => write!(f, "bad address: {e}"),
            Self::InvalidPath => f.write_str("the path holds a byte a URL path may not"),
        }
    }
}

impl std::error::Error for UrlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Address(e) => Some(e),
            _ => None,
        }
    }
}

impl GatewayUrl {
    /// Parses a URL; see the type's documentation for the forms.
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let (scheme, rest) = match text.split_once("://") {
            Some((s, rest)) if s.eq_ignore_ascii_case("http") => (Scheme::Http, rest),
            Some((s, rest)) if s.eq_ignore_ascii_case("https") => (Scheme::Https, rest),
            Some((s, _)) => return Err(UrlError::UnsupportedScheme(s.to_owned())),
            None => (Scheme::Http, text),
        };
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (Some((user.to_owned(), password.to_owned())), host_port)
            }
            None => (None, authority),
        };
        let endpoint =
            Endpoint::parse(host_port, scheme.default_port()).map_err(UrlError::Address)?;
        let path = match path {
            "" | "/" => DEFAULT_GATEWAY_PATH.to_owned(),
            p if valid_path(p) => p.to_owned(),
            _ => return Err(UrlError::InvalidPath),
        };
        Ok(Self { scheme, endpoint, path, credentials })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Host and port.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The path (the gateway script).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// User and password, if the URL named them.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// Takes the parts: scheme, endpoint, path, credentials.
    pub fn into_parts(self) -> (Scheme, Endpoint, String, Option<(String, String)>) {
        (self.scheme, self.endpoint, self.path, self.credentials)
    }
}

/// The bytes a path may hold: those of an origin-form request target.
pub(crate) fn valid_path(path: &str) -> bool {
    path.starts_with('/')
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:@".contains(&b))
}

impl FromStr for GatewayUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Self, UrlError> {
        Self::parse(text)
    }
}

/// The URL without its credentials: `http://host:port/path` (the port always shown).
impl fmt::Display for GatewayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme.as_str(), self.endpoint, self.path)
    }
}

/// Like `Display`: the password is never printed.
impl fmt::Debug for GatewayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GatewayUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_people_write() {
        let cases = [
            (
                "http://127.0.0.1:18080/gateway/gateway.dll",
                "http://127.0.0.1:18080/gateway/gateway.dll",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/gateway/gateway.dll"),
            ("HTTP://gw.example.net/", "http://gw.example.net:80/gateway/gateway.dll"),
            ("gw.example.net/custom/gw.dll?x=1", "http://gw.example.net:80/custom/gw.dll"),
            ("https://gw.example.net", "https://gw.example.net:443/gateway/gateway.dll"),
            ("http://[::1]:8080/g", "http://[::1]:8080/g"),
            ("http://u:p@proxy:3128", "http://proxy:3128/gateway/gateway.dll"),
        ];
        for (text, want) in cases {
            let url = GatewayUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(url.to_string(), want, "{text}");
        }
        let url = GatewayUrl::parse("http://me:se:cret@proxy.example:3128").unwrap();
        assert_eq!(url.credentials(), Some(("me", "se:cret")));
        assert!(!format!("{url:?}").contains("cret"), "no password in Debug");
    }

    #[test]
    fn bad_urls_say_why() {
        let cases = [
            ("ftp://x", UrlError::UnsupportedScheme("ftp".into())),
            ("http://bad host", UrlError::Address(AddressError::InvalidHost)),
            ("http://", UrlError::Address(AddressError::EmptyHost)),
            ("http://h:0", UrlError::Address(AddressError::InvalidPort)),
            ("http://h/a b", UrlError::InvalidPath),
        ];
        for (text, want) in cases {
            assert_eq!(GatewayUrl::parse(text), Err(want), "{text}");
        }
        assert_eq!(
            UrlError::UnsupportedScheme("ftp".into()).to_string(),
            "unsupported scheme \"ftp\" (use http or https)"
        );
    }
}
