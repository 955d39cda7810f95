//! Encoding gateway requests: `POST /gateway/gateway.dll?...` with the open, send and poll query
//! forms, origin or absolute target, and a configurable header set.

use base64::Engine as _;

use crate::error::ConfigError;
use crate::{Endpoint, Scheme};

/// The gateway script every request goes to.
pub const DEFAULT_GATEWAY_PATH: &str = "/gateway/gateway.dll";

/// Which kind of MSNP server a session opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// A notification server (`Server=NS`): the dispatch server or the NS from `XFR NS`.
    Notification,
    /// A switchboard (`Server=SB`): the address from `XFR SB` or `RNG`.
    Switchboard,
}

impl ServerKind {
    /// The query value: `NS` or `SB`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Notification => "NS",
            Self::Switchboard => "SB",
        }
    }
}

/// One request header field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The field name, an HTTP token.
    pub name: String,
    /// The field value: visible ASCII, spaces and tabs.
    pub value: String,
}

impl Header {
    /// A header field.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), value: value.into() }
    }
}

/// The header fields of every request, in order. The encoder writes `Host` between the two
/// lists, `Proxy-Authorization` right after `Host` when a proxy needs credentials, and
/// `Content-Length` last; those three may not appear in the lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderSet {
    /// Fields before `Host`.
    pub before_host: Vec<Header>,
    /// Fields after `Host` (and before `Content-Length`).
    pub after_host: Vec<Header>,
}

impl HeaderSet {
    /// The official client's headers in its order, minus `Accept-Encoding`: we do not decode
    /// gzip, so we must not ask for it.
    pub fn official() -> Self {
        Self {
            before_host: vec![
                Header::new("Accept", "*/*"),
                Header::new("Accept-Language", "en-us"),
                Header::new("User-Agent", "MSMSGS"),
            ],
            after_host: vec![
                Header::new("Proxy-Connection", "Keep-Alive"),
                Header::new("Connection", "Keep-Alive"),
                Header::new("Pragma", "no-cache"),
                Header::new("Content-Type", "application/x-msn-messenger"),
            ],
        }
    }

    /// The later clients' variant for proxies that block `application/x-msn-messenger`:
    /// `text/xml; charset=utf-8` and `Cache-Control: no-cache`.
    pub fn proxy_friendly() -> Self {
        let mut set = Self::official();
        set.after_host.push(Header::new("Cache-Control", "no-cache"));
        set.with_content_type("text/xml; charset=utf-8")
    }

    /// Replaces (or adds) the `Content-Type` field.
    pub fn with_content_type(mut self, content_type: &str) -> Self {
        let fields = self.before_host.iter_mut().chain(self.after_host.iter_mut());
        match fields.into_iter().find(|h| h.name.eq_ignore_ascii_case("content-type")) {
            Some(field) => field.value = content_type.to_owned(),
            None => self.after_host.push(Header::new("Content-Type", content_type)),
        }
        self
    }
}

impl Default for HeaderSet {
    fn default() -> Self {
        Self::official()
    }
}

/// Where the request target points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetForm {
    /// `/gateway/gateway.dll?...`: talking to the gateway directly.
    Origin,
    /// `http://host/gateway/gateway.dll?...`: through an HTTP proxy.
    Absolute,
}

/// The query of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestLine<'a> {
    /// `Action=open&Server=NS|SB&IP=server`: the first request of a session.
    Open {
        /// NS or SB.
        server: ServerKind,
        /// The MSNP server the gateway should connect to.
        ip: &'a str,
    },
    /// `SessionID=id`: a request that carries commands.
    Send {
        /// The latest session ID.
        session_id: &'a str,
    },
    /// `Action=poll&SessionID=id[&Lifespan=N]`: an empty poll.
    Poll {
        /// The latest session ID.
        session_id: &'a str,
        /// Ask the gateway to hold the poll up to this many seconds (long polling).
        lifespan: Option<u32>,
    },
}

/// Encodes requests into a caller-owned buffer, with the header block rendered once up front.
///
/// ```
/// use msn_http_core::Endpoint;
/// use msn_http_core::wire::{HeaderSet, RequestEncoder, RequestLine, TargetForm};
///
/// let enc = RequestEncoder::new("/gateway/gateway.dll", &HeaderSet::official(), None).unwrap();
/// let gw = Endpoint::parse("gateway.messenger.hotmail.com", 80).unwrap();
/// let mut out = Vec::new();
/// enc.encode(&mut out, &gw, TargetForm::Origin, RequestLine::Poll { session_id: "1.2", lifespan: None }, b"");
/// assert!(out.starts_with(b"POST /gateway/gateway.dll?Action=poll&SessionID=1.2 HTTP/1.1\r\n"));
/// assert!(out.ends_with(b"Content-Length: 0\r\n\r\n"));
/// ```
#[derive(Clone, Debug)]
pub struct RequestEncoder {
    path: String,
    /// `POST {path}?Action=open&Server=NS&IP=`, `...SB...`, `POST {path}?SessionID=` and
    /// `POST {path}?Action=poll&SessionID=`: the request line up to its variable value, for
    /// the origin form (the absolute form puts the authority after `POST `).
    open_ns: Vec<u8>,
    open_sb: Vec<u8>,
    send: Vec<u8>,
    poll: Vec<u8>,
    /// ` HTTP/1.1`, the fields before `Host`, and `Host: `.
    before_host: Vec<u8>,
    /// The end of the `Host` line, `Proxy-Authorization`, the fields after `Host`, and
    /// `Content-Length: `.
    after_host: Vec<u8>,
    /// The port a `Host` field leaves out: the scheme's (80 unless
    /// [`for_scheme`](Self::for_scheme) said otherwise).
    default_port: u16,
}

impl RequestEncoder {
    /// An encoder for `path` (normally [`DEFAULT_GATEWAY_PATH`]) with `headers`, adding
    /// `Proxy-Authorization: Basic ...` for `proxy_credentials` (user, password).
    pub fn new(
        path: &str,
        headers: &HeaderSet,
        proxy_credentials: Option<(&str, &str)>,
    ) -> Result<Self, ConfigError> {
        if !crate::url::valid_path(path) {
            return Err(ConfigError::InvalidPath);
        }
        let mut before_host = b" HTTP/1.1\r\n".to_vec();
        before_host.extend_from_slice(&render_fields(&headers.before_host)?);
        before_host.extend_from_slice(b"Host: ");
        let mut after_host = b"\r\n".to_vec();
        if let Some((user, password)) = proxy_credentials {
            after_host.extend_from_slice(&proxy_authorization(user, password)?);
        }
        after_host.extend_from_slice(&render_fields(&headers.after_host)?);
        after_host.extend_from_slice(b"Content-Length: ");
        let target = |query: &str| format!("POST {path}?{query}").into_bytes();
        Ok(Self {
            path: path.to_owned(),
            open_ns: target("Action=open&Server=NS&IP="),
            open_sb: target("Action=open&Server=SB&IP="),
            send: target("SessionID="),
            poll: target("Action=poll&SessionID="),
            before_host,
            after_host,
            default_port: Scheme::Http.default_port(),
        })
    }

    /// The gateway script this encoder posts to.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Writes `Host` as a client of `scheme` does: without the port when it is the scheme's
    /// (`gw:443` is `gw` over `https://`).
    pub fn for_scheme(mut self, scheme: Scheme) -> Self {
        self.default_port = scheme.default_port();
        self
    }

    /// Appends one complete request (head and body) for `gateway` to `out`.
    pub fn encode(
        &self,
        out: &mut Vec<u8>,
        gateway: &Endpoint,
        form: TargetForm,
        line: RequestLine<'_>,
        body: &[u8],
    ) {
        let (target, value) = match line {
            RequestLine::Open { server: ServerKind::Notification, ip } => (&self.open_ns, ip),
            RequestLine::Open { server: ServerKind::Switchboard, ip } => (&self.open_sb, ip),
            RequestLine::Send { session_id } => (&self.send, session_id),
            RequestLine::Poll { session_id, .. } => (&self.poll, session_id),
        };
        // One capacity check up front instead of one per piece.
        let authority = 2 * (gateway.host().len() + 8);
        let fixed = self.before_host.len() + self.after_host.len() + target.len() + 48;
        out.reserve(fixed + authority + 3 * value.len() + body.len());
        match form {
            TargetForm::Origin => out.extend_from_slice(target),
            TargetForm::Absolute => {
                out.extend_from_slice(b"POST http://");
                gateway.write_authority(out, 80);
                out.extend_from_slice(&target[b"POST ".len()..]);
            }
        }
        escape_query_value(out, value.as_bytes());
        if let RequestLine::Poll { lifespan: Some(seconds), .. } = line {
            out.extend_from_slice(b"&Lifespan=");
            out.extend_from_slice(itoa::Buffer::new().format(seconds).as_bytes());
        }
        out.extend_from_slice(&self.before_host);
        gateway.write_authority(out, self.default_port);
        out.extend_from_slice(&self.after_host);
        out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body);
    }
}

/// Header fields the encoder writes itself and a header set may not repeat.
const RESERVED_FIELDS: [&str; 4] =
    ["host", "content-length", "transfer-encoding", "proxy-authorization"];

/// The `Proxy-Authorization: Basic ...` field (with its CRLF) for `user` and `password`.
pub(super) fn proxy_authorization(user: &str, password: &str) -> Result<Vec<u8>, ConfigError> {
    let credentials = format!("{user}:{password}");
    if user.contains(':') || !credentials.bytes().all(is_field_value_byte) {
        return Err(ConfigError::InvalidCredentials);
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    Ok(format!("Proxy-Authorization: Basic {encoded}\r\n").into_bytes())
}

fn render_fields(fields: &[Header]) -> Result<Vec<u8>, ConfigError> {
    let mut out = Vec::new();
    for Header { name, value } in fields {
        let reserved = RESERVED_FIELDS.iter().any(|r| name.eq_ignore_ascii_case(r));
        if reserved
            || name.is_empty()
            || !name.bytes().all(is_token_byte)
            || !value.bytes().all(is_field_value_byte)
        {
            return Err(ConfigError::InvalidHeader(name.clone()));
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    Ok(out)
}

/// An HTTP token byte (RFC 9110 `tchar`).
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_field_value_byte(b: u8) -> bool {
    b == b' ' || b == b'\t' || b.is_ascii_graphic()
}

/// Bytes a query value may carry as they are: RFC 3986 unreserved, and `:`.
const QUERY_SAFE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b':');
        b += 1;
    }
    table
};

/// Appends `value` percent-encoded, leaving RFC 3986 unreserved bytes and `:` as they are.
fn escape_query_value(out: &mut Vec<u8>, mut value: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    // Session IDs and hosts are almost always safe: check without branching per byte, then
    // copy whole.
    if value.iter().fold(true, |safe, &b| safe & QUERY_SAFE[usize::from(b)]) {
        out.extend_from_slice(value);
        return;
    }
    while let Some(at) = value.iter().position(|&b| !QUERY_SAFE[usize::from(b)]) {
        let b = value[at];
        out.extend_from_slice(&value[..at]);
        out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        value = &value[at + 1..];
    }
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(line: RequestLine<'_>, form: TargetForm, body: &[u8]) -> String {
        let enc = RequestEncoder::new(DEFAULT_GATEWAY_PATH, &HeaderSet::official(), None).unwrap();
        let gw = Endpoint::parse("gw.example.net:8080", 80).unwrap();
        let mut out = Vec::new();
        enc.encode(&mut out, &gw, form, line, body);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn query_values_are_escaped() {
        let text = encode(
            RequestLine::Open { server: ServerKind::Switchboard, ip: "a b&c=d%:1864" },
            TargetForm::Origin,
            b"",
        );
        assert!(text.starts_with(
            "POST /gateway/gateway.dll?Action=open&Server=SB&IP=a%20b%26c%3Dd%25:1864 HTTP/1.1\r\n"
        ));
        let text = encode(RequestLine::Send { session_id: "x=y;z" }, TargetForm::Origin, b"");
        assert!(text.starts_with("POST /gateway/gateway.dll?SessionID=x%3Dy%3Bz HTTP/1.1\r\n"));
    }

    #[test]
    fn absolute_form_names_the_gateway_and_its_port() {
        let text = encode(
            RequestLine::Poll { session_id: "1", lifespan: Some(30) },
            TargetForm::Absolute,
            b"",
        );
        assert!(text.starts_with(
            "POST http://gw.example.net:8080/gateway/gateway.dll?Action=poll&SessionID=1&Lifespan=30 HTTP/1.1\r\n"
        ));
        assert!(text.contains("\r\nHost: gw.example.net:8080\r\n"));
    }

    #[test]
    fn proxy_credentials_are_sent_as_basic_auth_after_host() {
        let enc = RequestEncoder::new(
            DEFAULT_GATEWAY_PATH,
            &HeaderSet::official(),
            Some(("Aladdin", "open sesame")),
        )
        .unwrap();
        let gw = Endpoint::parse("gw", 80).unwrap();
        let mut out = Vec::new();
        enc.encode(&mut out, &gw, TargetForm::Absolute, RequestLine::Send { session_id: "1" }, b"");
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(
            "Host: gw\r\nProxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\nProxy-Connection"
        ));
    }

    #[test]
    fn bad_configuration_is_refused() {
        let bad_value = HeaderSet {
            before_host: vec![Header::new("X-Evil", "a\r\nHost: b")],
            after_host: vec![],
        };
        let reserved =
            HeaderSet { before_host: vec![Header::new("HOST", "b")], after_host: vec![] };
        let bad_name = HeaderSet { before_host: vec![Header::new("A B", "c")], after_host: vec![] };
        for set in [bad_value, reserved, bad_name] {
            assert!(matches!(
                RequestEncoder::new(DEFAULT_GATEWAY_PATH, &set, None),
                Err(ConfigError::InvalidHeader(_))
            ));
        }
        assert_eq!(
            RequestEncoder::new("gateway.dll", &HeaderSet::official(), None).err(),
            Some(ConfigError::InvalidPath)
        );
        assert_eq!(
            RequestEncoder::new(DEFAULT_GATEWAY_PATH, &HeaderSet::official(), Some(("a:b", "c")))
                .err(),
            Some(ConfigError::InvalidCredentials)
        );
    }

    #[test]
    fn proxy_friendly_set_swaps_the_content_type() {
        let set = HeaderSet::proxy_friendly();
        let ct: Vec<_> =
            set.after_host.iter().filter(|h| h.name == "Content-Type").map(|h| &h.value).collect();
        assert_eq!(ct, ["text/xml; charset=utf-8"]);
        assert!(set.after_host.iter().any(|h| h.name == "Cache-Control"));
    }
}
