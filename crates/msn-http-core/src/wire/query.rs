//! The gateway parameters of a request's query (`Action`, `Server`, `IP`, `SessionID`,
//! `Lifespan`): percent-decoded, checked, and kept in buffers reused between requests.

use std::fmt;

use crate::MAX_HOST_LEN;

use super::{MAX_SESSION_ID_LEN, ServerKind};

/// The longest `IP=` value accepted: a host, brackets and a port.
pub const MAX_IP_PARAM_LEN: usize = MAX_HOST_LEN + 8;

/// The `Action=` query value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryAction {
    /// `Action=open`: the first request of a session.
    Open,
    /// `Action=poll`: an empty request asking for queued commands.
    Poll,
}

/// Why the query of a request was refused (answered with `400`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryError {
    /// A `%` not followed by two hexadecimal digits.
    InvalidEscape,
    /// A parameter the gateway reads appeared twice.
    Duplicate(&'static str),
    /// `Action` is neither `open` nor `poll`.
    InvalidAction,
    /// `Server` is neither `NS` nor `SB`.
    InvalidServer,
    /// `Lifespan` is not a decimal number of seconds that fits in 32 bits.
    InvalidLifespan,
    /// A value holds a byte other than visible ASCII after decoding.
    InvalidValue(&'static str),
    /// A value is longer than the gateway accepts.
    ValueTooLong(&'static str),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidEscape => f.write_str("invalid percent escape in the query"),
            Self::Duplicate(key) => write!(f, "query parameter {key} given twice"),
            Self::InvalidAction => f.write_str("Action is neither open nor poll"),
            Self::InvalidServer => f.write_str("Server is neither NS nor SB"),
            Self::InvalidLifespan => f.write_str("Lifespan is not a number of seconds"),
            Self::InvalidValue(key) => write!(f, "query parameter {key} holds an invalid byte"),
            Self::ValueTooLong(key) => write!(f, "query parameter {key} is too long"),
        }
    }
}

impl std::error::Error for QueryError {}

/// A string kept between requests so that decoding allocates only while it grows.
#[derive(Clone, Debug, Default)]
pub(super) struct Slot {
    pub(super) value: String,
    pub(super) present: bool,
}

impl Slot {
    pub(super) fn get(&self) -> Option<&str> {
        self.present.then_some(self.value.as_str())
    }

    pub(super) fn clear(&mut self) {
        self.value.clear();
        self.present = false;
    }
}

/// The gateway parameters of a request's query, percent-decoded. Other parameters are ignored;
/// keys are matched without regard to case, values of `Action` and `Server` too.
#[derive(Clone, Debug, Default)]
pub struct GatewayQuery {
    action: Option<QueryAction>,
    server: Option<ServerKind>,
    ip: Slot,
    session_id: Slot,
    lifespan: Option<u32>,
}

impl GatewayQuery {
    /// `Action=open|poll`.
    pub fn action(&self) -> Option<QueryAction> {
        self.action
    }

    /// `Server=NS|SB`.
    pub fn server(&self) -> Option<ServerKind> {
        self.server
    }

    /// `IP=`: the MSNP server to open, as the client named it.
    pub fn ip(&self) -> Option<&str> {
        self.ip.get()
    }

    /// `SessionID=`.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.get()
    }

    /// `Lifespan=`: seconds the client lets the gateway hold a poll.
    pub fn lifespan(&self) -> Option<u32> {
        self.lifespan
    }

    /// Bytes held on the heap by the reused value buffers.
    pub(super) fn heap_capacity(&self) -> usize {
        self.ip.value.capacity() + self.session_id.value.capacity()
    }

    pub(super) fn clear(&mut self) {
        self.action = None;
        self.server = None;
        self.ip.clear();
        self.session_id.clear();
        self.lifespan = None;
    }
}

/// The query parameters the gateway reads.
#[derive(Clone, Copy)]
enum Key {
    Action,
    Server,
    Ip,
    SessionId,
    Lifespan,
}

pub(super) fn parse_query(query: &str, q: &mut GatewayQuery) -> Result<(), QueryError> {
    const KEYS: &[(&[u8], Key)] = &[
        (b"action", Key::Action),
        (b"server", Key::Server),
        (b"ip", Key::Ip),
        (b"sessionid", Key::SessionId),
        (b"lifespan", Key::Lifespan),
    ];
    const ACTIONS: &[(&[u8], QueryAction)] =
        &[(b"open", QueryAction::Open), (b"poll", QueryAction::Poll)];
    const SERVERS: &[(&[u8], ServerKind)] =
        &[(b"NS", ServerKind::Notification), (b"SB", ServerKind::Switchboard)];
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        // Unknown keys are still checked for valid escapes.
        let Some(key) = word_of(key.as_bytes(), KEYS)? else {
            continue;
        };
        let value = value.as_bytes();
        match key {
            Key::Action => {
                let action = word_of(value, ACTIONS)?.ok_or(QueryError::InvalidAction)?;
                set_once(&mut q.action, action, "Action")?;
            }
            Key::Server => {
                let server = word_of(value, SERVERS)?.ok_or(QueryError::InvalidServer)?;
                set_once(&mut q.server, server, "Server")?;
            }
            Key::Ip => decode_into(value, &mut q.ip, "IP", MAX_IP_PARAM_LEN)?,
            Key::SessionId => {
                decode_into(value, &mut q.session_id, "SessionID", MAX_SESSION_ID_LEN)?
            }
            Key::Lifespan => {
                let mut buf = [0u8; 10];
                let seconds = decode_small(value, &mut buf)?
                    .filter(|v| !v.is_empty() && v.iter().all(u8::is_ascii_digit))
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u32>().ok())
                    .ok_or(QueryError::InvalidLifespan)?;
                set_once(&mut q.lifespan, seconds, "Lifespan")?;
            }
        }
    }
    Ok(())
}

/// Which of `words` `raw` (still percent-encoded) is, ASCII case ignored; `None` for none.
fn word_of<T: Copy>(raw: &[u8], words: &[(&[u8], T)]) -> Result<Option<T>, QueryError> {
    // As long as the longest word ("sessionid"): a longer value matches none.
    let mut buf = [0u8; 9];
    let Some(word) = decode_small(raw, &mut buf)? else {
        return Ok(None);
    };
    Ok(words.iter().find(|(name, _)| word.eq_ignore_ascii_case(name)).map(|&(_, value)| value))
}

/// Stores a parameter's value; a parameter given twice is refused.
fn set_once<T>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), QueryError> {
    match slot.replace(value) {
        Some(_) => Err(QueryError::Duplicate(name)),
        None => Ok(()),
    }
}

/// Percent-decodes `raw` into `buf`; `None` when it does not fit (it then matches no short
/// value), an error on a bad escape.
fn decode_small<'b>(raw: &[u8], buf: &'b mut [u8]) -> Result<Option<&'b [u8]>, QueryError> {
    let mut len = 0;
    let mut fits = true;
    for_each_decoded(raw, |b| {
        if len < buf.len() {
            buf[len] = b;
            len += 1;
        } else {
            fits = false;
        }
        Ok(())
    })?;
    Ok(fits.then_some(&buf[..len]))
}

/// Percent-decodes a value into a reused string: visible ASCII only, at most `max` bytes, and
/// given at most once.
fn decode_into(
    raw: &[u8],
    slot: &mut Slot,
    name: &'static str,
    max: usize,
) -> Result<(), QueryError> {
    if slot.present {
        return Err(QueryError::Duplicate(name));
    }
    slot.present = true;
    for_each_decoded(raw, |b| {
        if !b.is_ascii_graphic() {
            return Err(QueryError::InvalidValue(name));
        }
        if slot.value.len() == max {
            return Err(QueryError::ValueTooLong(name));
        }
        slot.value.push(char::from(b));
        Ok(())
    })
}

fn for_each_decoded(
    raw: &[u8],
    mut f: impl FnMut(u8) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let hex = |at: usize| raw.get(at).and_then(|&d| char::from(d).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                return Err(QueryError::InvalidEscape);
            };
            // Two hex digits are at most 255.
            f((hi * 16 + lo) as u8)?;
            i += 3;
        } else {
            f(b)?;
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded_and_checked() {
        let mut q = GatewayQuery::default();
        parse_query("action=Poll&SessionID=a%3Db%25c&Lifespan=30&x=%41&&flag", &mut q).unwrap();
        assert_eq!(q.action(), Some(QueryAction::Poll));
        assert_eq!(q.session_id(), Some("a=b%c"));
        assert_eq!(q.lifespan(), Some(30));
        let long_ip = format!("IP={}", "a".repeat(MAX_IP_PARAM_LEN + 1));
        let cases = [
            ("Action=close", QueryError::InvalidAction),
            ("Action=openx", QueryError::InvalidAction),
            ("Server=XX", QueryError::InvalidServer),
            ("Lifespan=-1", QueryError::InvalidLifespan),
            ("Lifespan=4294967296", QueryError::InvalidLifespan),
            ("Lifespan=", QueryError::InvalidLifespan),
            ("IP=a%2", QueryError::InvalidEscape),
            ("zz%g0=1", QueryError::InvalidEscape),
            ("IP=a%20b", QueryError::InvalidValue("IP")),
            ("SessionID=1&sessionid=2", QueryError::Duplicate("SessionID")),
            ("Action=open&Action=open", QueryError::Duplicate("Action")),
            (long_ip.as_str(), QueryError::ValueTooLong("IP")),
        ];
        for (query, want) in cases {
            let mut q = GatewayQuery::default();
            assert_eq!(parse_query(query, &mut q), Err(want), "{query}");
        }
    }
}
