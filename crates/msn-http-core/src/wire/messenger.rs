//! The `X-MSN-Messenger` response header: `SessionID=...; GW-IP=...; Session=close`.
//!
//! Keys are matched as written, unknown keys are ignored, spacing around `;` varies between
//! servers, and the SessionID is opaque: it is never split on `.`.

use nom::{
    IResult, Parser,
    bytes::complete::{tag, take_till, take_while, take_while1},
    combinator::opt,
    sequence::{delimited, preceded},
};

use crate::error::MessengerHeaderError;

/// The longest SessionID accepted, in bytes.
pub const MAX_SESSION_ID_LEN: usize = 256;

/// A parsed `X-MSN-Messenger` value, borrowing from the header bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessengerHeader<'a> {
    /// The session ID to send with the next request (`None` only with `Session=close`).
    pub session_id: Option<&'a str>,
    /// The raw `GW-IP` value: where the next request goes. `Some("")` means "keep the current
    /// host"; `None` means the key was absent (also "keep the current host").
    pub gateway: Option<&'a str>,
    /// `Session=close`: deliver this response's body, then the session is over.
    pub session_close: bool,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn space(input: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while(is_space)(input)
}

/// One `key[=value]` pair of the header value.
type Param<'a> = (&'a [u8], Option<&'a [u8]>);

/// `key [= value]`, the value running to the next `;` with trailing spaces removed.
fn param(input: &[u8]) -> IResult<&[u8], Param<'_>> {
    (
        take_while1(|b| b != b'=' && b != b';' && !is_space(b)),
        opt(preceded((space, tag("="), space), take_till(|b| b == b';'))),
    )
        .map(|(key, value): (&[u8], Option<&[u8]>)| (key, value.map(<[u8]>::trim_ascii_end)))
        .parse(input)
}

/// One `;`-separated item, which may be empty (stray or trailing `;`).
fn item(input: &[u8]) -> IResult<&[u8], Option<Param<'_>>> {
    delimited(space, opt(param), space).parse(input)
}

/// Parses an `X-MSN-Messenger` value.
///
/// ```
/// use msn_http_core::wire::parse_messenger_header;
/// let h = parse_messenger_header(b"SessionID=954547325.13160; GW-IP=207.46.110.18").unwrap();
/// assert_eq!(h.session_id, Some("954547325.13160"));
/// assert_eq!(h.gateway, Some("207.46.110.18"));
/// assert!(!h.session_close);
/// ```
pub fn parse_messenger_header(value: &[u8]) -> Result<MessengerHeader<'_>, MessengerHeaderError> {
    if value.trim_ascii().is_empty() {
        return Err(MessengerHeaderError::Empty);
    }
    let mut header = MessengerHeader::default();
    let mut rest = value;
    loop {
        let (after, parsed) = item(rest).map_err(|_| MessengerHeaderError::Syntax)?;
        if let Some((key, value)) = parsed {
            match (key, value) {
                (b"SessionID", Some(id)) => header.session_id = Some(validate_session_id(id)?),
                (b"SessionID", None) => return Err(MessengerHeaderError::EmptySessionId),
                (b"GW-IP", value) => {
                    let value = value.unwrap_or_default();
                    let text =
                        std::str::from_utf8(value).map_err(|_| MessengerHeaderError::Syntax)?;
                    header.gateway = Some(text);
                }
                (b"Session", Some(v)) if v.eq_ignore_ascii_case(b"close") => {
                    header.session_close = true;
                }
                _ => {}
            }
        }
        match after.split_first() {
            None => break,
            Some((b';', next)) => rest = next,
            Some(_) => return Err(MessengerHeaderError::Syntax),
        }
    }
    if header.session_id.is_none() && !header.session_close {
        return Err(MessengerHeaderError::MissingSessionId);
    }
    Ok(header)
}

fn validate_session_id(id: &[u8]) -> Result<&str, MessengerHeaderError> {
    if id.is_empty() {
        return Err(MessengerHeaderError::EmptySessionId);
    }
    if id.len() > MAX_SESSION_ID_LEN {
        return Err(MessengerHeaderError::SessionIdTooLong);
    }
    if !id.iter().all(u8::is_ascii_graphic) {
        return Err(MessengerHeaderError::InvalidSessionId);
    }
    std::str::from_utf8(id).map_err(|_| MessengerHeaderError::InvalidSessionId)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<MessengerHeader<'_>, MessengerHeaderError> {
        parse_messenger_header(value.as_bytes())
    }

    #[test]
    fn accepts_every_shape_seen_in_the_wild() {
        let official = parse("SessionID=954547325.13160; GW-IP=207.46.110.18").unwrap();
        assert_eq!(official.session_id, Some("954547325.13160"));
        assert_eq!(official.gateway, Some("207.46.110.18"));

        let revival =
            parse("SessionID=ee242912-db5a-4b93-bc49-d615b0fa7965; GW-IP=127.0.0.1").unwrap();
        assert_eq!(revival.session_id, Some("ee242912-db5a-4b93-bc49-d615b0fa7965"));

        let tight = parse("SessionID=1.2;GW-IP=10.0.0.1:8080;Session=close").unwrap();
        assert_eq!(
            tight,
            MessengerHeader {
                session_id: Some("1.2"),
                gateway: Some("10.0.0.1:8080"),
                session_close: true
            }
        );

        let loose =
            parse("  GW-IP = gw.example.net ;\tSessionID=abc== ;  Foo=bar; Flag; ").unwrap();
        assert_eq!(loose.session_id, Some("abc=="));
        assert_eq!(loose.gateway, Some("gw.example.net"));

        let empty_gw = parse("SessionID=x; GW-IP=").unwrap();
        assert_eq!(empty_gw.gateway, Some(""));

        let close_only = parse("Session=close").unwrap();
        assert!(close_only.session_close && close_only.session_id.is_none());

        let folded = parse("SessionID=x;\r\n GW-IP=1.2.3.4").unwrap();
        assert_eq!(folded.gateway, Some("1.2.3.4"));
    }

    #[test]
    fn keys_are_case_sensitive_as_written() {
        assert_eq!(parse("sessionid=1"), Err(MessengerHeaderError::MissingSessionId));
    }

    #[test]
    fn bad_values_give_typed_errors() {
        let long = format!("SessionID={}", "9".repeat(MAX_SESSION_ID_LEN + 1));
        let cases = [
            ("", MessengerHeaderError::Empty),
            ("   ", MessengerHeaderError::Empty),
            ("GW-IP=1.2.3.4", MessengerHeaderError::MissingSessionId),
            ("SessionID=", MessengerHeaderError::EmptySessionId),
            ("SessionID; GW-IP=1.2.3.4", MessengerHeaderError::EmptySessionId),
            ("SessionID=a b", MessengerHeaderError::InvalidSessionId),
            ("SessionID=a\u{1}b", MessengerHeaderError::InvalidSessionId),
            ("SessionID=caf\u{e9}", MessengerHeaderError::InvalidSessionId),
            (long.as_str(), MessengerHeaderError::SessionIdTooLong),
            ("=x; SessionID=1", MessengerHeaderError::Syntax),
        ];
        for (value, want) in cases {
            assert_eq!(parse(value), Err(want), "{value:?}");
        }
        assert_eq!(
            parse_messenger_header(b"SessionID=1; GW-IP=\xff"),
            Err(MessengerHeaderError::Syntax)
        );
    }
}
