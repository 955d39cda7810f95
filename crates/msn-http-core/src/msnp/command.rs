//! One MSNP command: its line, its arguments and its payload, borrowed or owned.

use std::borrow::Cow;
use std::fmt;

use nom::IResult;

use crate::error::FrameError;

use super::PayloadCommands;

/// The longest payload length field we read (20 digits hold any `u64`).
const MAX_LENGTH_DIGITS: usize = 20;

/// What a command line says about the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LineInfo<'a> {
    pub(super) name: &'a [u8; 3],
    pub(super) payload_len: Option<u64>,
}

/// `NAME` (three ASCII letters or digits) followed by the end of the line or a space.
fn name(input: &[u8]) -> IResult<&[u8], &[u8; 3]> {
    match input.split_first_chunk::<3>() {
        Some((name, rest))
            if name.iter().all(u8::is_ascii_alphanumeric)
                && rest.first().is_none_or(|&sp| sp == b' ') =>
        {
            Ok((rest, name))
        }
        _ => {
            Err(nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::AlphaNumeric)))
        }
    }
}

/// Parses a command line (without its line ending) and, for payload commands, the announced
/// payload length, refusing lengths above `max_payload`.
pub(super) fn parse_line<'a>(
    text: &'a [u8],
    rules: &PayloadCommands,
    max_payload: usize,
) -> Result<LineInfo<'a>, FrameError> {
    let (args, name) = name(text).map_err(|_| FrameError::InvalidCommand)?;
    let payload_len = match rules.min_tokens(name) {
        Some(min_tokens) => payload_length(args, min_tokens, max_payload)?,
        None => None,
    };
    Ok(LineInfo { name, payload_len })
}

/// The payload length a payload command announces: its last token, when it is a number and
/// the line has at least `min_tokens` tokens (the name included).
fn payload_length(
    args: &[u8],
    min_tokens: usize,
    max_payload: usize,
) -> Result<Option<u64>, FrameError> {
    let args = args.trim_ascii_end();
    let digits_start = args.len() - args.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let (before, digits) = args.split_at(digits_start);
    // The last token must be all digits: it starts the line's arguments after a space.
    if digits.is_empty() || digits.len() > MAX_LENGTH_DIGITS || before.last() != Some(&b' ') {
        return Ok(None);
    }
    // The name and the length are two tokens; the rest must be between them.
    if count_tokens(before, min_tokens.saturating_sub(2)) < min_tokens.saturating_sub(2) {
        return Ok(None);
    }
    let len = digits
        .iter()
        .try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .unwrap_or(u64::MAX);
    if len > max_payload as u64 {
        return Err(FrameError::PayloadTooLarge { len, limit: max_payload });
    }
    Ok(Some(len))
}

/// Counts space-separated tokens in `text`, stopping once `enough` are found.
fn count_tokens(text: &[u8], enough: usize) -> usize {
    let mut count = 0;
    let mut in_token = false;
    for &b in text {
        if count == enough {
            break;
        }
        let starts = b != b' ' && !in_token;
        count += usize::from(starts);
        in_token = b != b' ';
    }
    count
}

fn split_args(args: &[u8]) -> impl Iterator<Item = &[u8]> {
    args.split(|&b| b == b' ').filter(|t| !t.is_empty())
}

/// How much of a payload `Debug` shows.
const DEBUG_PAYLOAD_BYTES: usize = 48;

/// One whole MSNP command, borrowed from the stream: the line, and the payload if it has one.
///
/// ```
/// use msn_http_core::msnp::{CommandFramer, FramerLimits, PayloadCommands};
///
/// let mut framer = CommandFramer::new(PayloadCommands::default(), FramerLimits::default());
/// framer.push(b"MSG alice@example.com Alice 5\r\nhello");
/// let cmd = framer.next_command().unwrap().unwrap();
/// assert_eq!(cmd.name(), "MSG");
/// assert_eq!(cmd.args().collect::<Vec<_>>(), ["alice@example.com", "Alice", "5"]);
/// assert_eq!(cmd.payload(), Some(&b"hello"[..]));
/// assert_eq!(cmd.to_string(), "MSG alice@example.com Alice 5");
/// assert_eq!(format!("{cmd:?}"), r#"MSG alice@example.com Alice 5 + "hello""#);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Command<'a> {
    bytes: &'a [u8],
    line_len: usize,
    payload_start: Option<usize>,
}

impl<'a> Command<'a> {
    pub(super) fn new(bytes: &'a [u8], line_len: usize, payload_start: Option<usize>) -> Self {
        Self { bytes, line_len, payload_start }
    }

    /// The command name: three ASCII letters (`MSG`) or digits for errors (`911`).
    pub fn name(&self) -> &'a str {
        std::str::from_utf8(&self.bytes[..3]).expect("framing accepts only alphanumeric names")
    }

    /// The command line without its line ending, as received.
    pub fn line(&self) -> &'a [u8] {
        &self.bytes[..self.line_len]
    }

    /// The space-separated arguments after the name, as text (MSNP lines are text; a byte
    /// that is not UTF-8 reads as U+FFFD here, and [`arg_bytes`](Self::arg_bytes) has it as
    /// received).
    pub fn args(&self) -> impl Iterator<Item = Cow<'a, str>> + use<'a> {
        self.arg_bytes().map(String::from_utf8_lossy)
    }

    /// Argument `index` (0 is the first after the name), as text.
    pub fn arg(&self, index: usize) -> Option<Cow<'a, str>> {
        self.args().nth(index)
    }

    /// The arguments after the name, as received.
    pub fn arg_bytes(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let line: &'a [u8] = &self.bytes[3..self.line_len];
        split_args(line)
    }

    /// The transaction ID, when the first argument is a number (`NOT` and `IPG` have none).
    pub fn trid(&self) -> Option<u32> {
        let first = self.arg_bytes().next()?;
        std::str::from_utf8(first).ok()?.parse().ok()
    }

    /// Whether this is a numeric error reply such as `911 3`.
    pub fn is_error(&self) -> bool {
        self.bytes[..3].iter().all(u8::is_ascii_digit)
    }

    /// The payload of a payload command.
    pub fn payload(&self) -> Option<&'a [u8]> {
        self.payload_start.map(|start| &self.bytes[start..])
    }

    /// The whole command as it was on the wire: line, line ending and payload.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// An owned copy.
    pub fn to_owned_command(&self) -> OwnedCommand {
        OwnedCommand {
            bytes: self.bytes.to_vec(),
            line_len: self.line_len,
            payload_start: self.payload_start,
        }
    }
}

/// The line, as text.
impl fmt::Display for Command<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.line()))
    }
}

/// The line as text, then the payload, quoted and cut after 48 bytes.
impl fmt::Debug for Command<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.line().escape_ascii())?;
        if let Some(payload) = self.payload() {
            let shown = &payload[..payload.len().min(DEBUG_PAYLOAD_BYTES)];
            write!(f, " + \"{}\"", shown.escape_ascii())?;
            if shown.len() < payload.len() {
                write!(f, "... ({} bytes)", payload.len())?;
            }
        }
        Ok(())
    }
}

/// An owned [`Command`], for sending across tasks: what the adapters' `recv` returns.
///
/// ```
/// use msn_http_core::msnp::{CommandFramer, FramerLimits, PayloadCommands};
///
/// let mut framer = CommandFramer::new(PayloadCommands::default(), FramerLimits::default());
/// framer.push(b"USR 7 OK alice@example.com Alice\r\n");
/// let cmd = framer.next_command().unwrap().unwrap().to_owned_command();
/// assert_eq!((cmd.name(), cmd.trid()), ("USR", Some(7)));
/// assert_eq!(cmd.arg(1).as_deref(), Some("OK"));
/// assert_eq!(cmd.to_string(), "USR 7 OK alice@example.com Alice");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct OwnedCommand {
    bytes: Vec<u8>,
    line_len: usize,
    payload_start: Option<usize>,
}

impl OwnedCommand {
    /// Borrows it as a [`Command`].
    pub fn as_command(&self) -> Command<'_> {
        Command::new(&self.bytes, self.line_len, self.payload_start)
    }

    /// The command name.
    pub fn name(&self) -> &str {
        self.as_command().name()
    }

    /// The transaction ID, when the first argument is a number.
    pub fn trid(&self) -> Option<u32> {
        self.as_command().trid()
    }

    /// The arguments after the name, as text; see [`Command::args`].
    pub fn args(&self) -> impl Iterator<Item = Cow<'_, str>> + '_ {
        self.as_command().args()
    }

    /// Argument `index` (0 is the first after the name), as text.
    pub fn arg(&self, index: usize) -> Option<Cow<'_, str>> {
        self.as_command().arg(index)
    }

    /// Whether this is a numeric error reply such as `911 3`.
    pub fn is_error(&self) -> bool {
        self.as_command().is_error()
    }

    /// The payload of a payload command.
    pub fn payload(&self) -> Option<&[u8]> {
        self.as_command().payload()
    }

    /// The command line without its line ending, as received.
    pub fn line(&self) -> &[u8] {
        self.as_command().line()
    }

    /// The whole command as it was on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The wire bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// The line, as text.
impl fmt::Display for OwnedCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_command().fmt(f)
    }
}

/// The line as text, then the payload, quoted and cut after 48 bytes.
impl fmt::Debug for OwnedCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.as_command(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(text: &str) -> Result<LineInfo<'_>, FrameError> {
        parse_line(text.as_bytes(), &PayloadCommands::default(), 1000)
    }

    #[test]
    fn payload_lengths_follow_the_rules() {
        let cases = [
            ("MSG 1 N 133", Some(133)),
            ("MSG alice@example.com Alice 0", Some(0)),
            ("NOT 12", Some(12)),
            ("QRY 12", None),
            ("QRY 12 PROD0090YUAUV{2B 32", Some(32)),
            ("ADL 12 OK", None),
            ("UUX 12 0", Some(0)),
            ("241 12 40", Some(40)),
            ("241 12", None),
            ("VER 1 MSNP8 CVR0", None),
            ("911 3", None),
            ("CHL 0 123", None),
            ("MSG  1   N  7  ", Some(7)),
        ];
        for (line, want) in cases {
            assert_eq!(info(line).unwrap().payload_len, want, "{line}");
        }
    }

    #[test]
    fn malformed_lines_are_refused() {
        for bad in ["", "MS", "MSGX 1", "M G 1", "\u{e9}AB 1", " MSG 1"] {
            assert_eq!(info(bad), Err(FrameError::InvalidCommand), "{bad:?}");
        }
        assert_eq!(
            info("MSG 1 N 1001"),
            Err(FrameError::PayloadTooLarge { len: 1001, limit: 1000 })
        );
        assert_eq!(
            info("MSG 1 N 99999999999999999999"),
            Err(FrameError::PayloadTooLarge { len: u64::MAX, limit: 1000 })
        );
    }

    #[test]
    fn debug_is_text_with_the_payload_cut_short() {
        let payload = [b'x'; 100];
        let mut bytes = b"MSG a A 100\r\n".to_vec();
        bytes.extend_from_slice(&payload);
        let cmd = Command::new(&bytes, 11, Some(13));
        let want = format!("MSG a A 100 + \"{}\"... (100 bytes)", "x".repeat(48));
        assert_eq!(format!("{cmd:?}"), want);
        assert_eq!(format!("{:?}", cmd.to_owned_command()), want);
        let odd = Command::new(b"NLN a\xff\r\n", 6, None);
        assert_eq!(format!("{odd:?}"), "NLN a\\xff");
        assert_eq!(odd.to_string(), "NLN a\u{fffd}");
        assert_eq!(odd.arg_bytes().next(), Some(&b"a\xff"[..]));
    }

    #[test]
    fn accessors_read_the_line() {
        let bytes = b"USR 7 OK alice@example.com 1\r\n";
        let cmd = Command::new(bytes, bytes.len() - 2, None);
        assert_eq!(cmd.name(), "USR");
        assert_eq!(cmd.trid(), Some(7));
        assert!(!cmd.is_error());
        assert_eq!(cmd.line(), b"USR 7 OK alice@example.com 1");
        assert_eq!(cmd.to_owned_command().as_command(), cmd);
        assert_eq!(cmd.arg(2).as_deref(), Some("alice@example.com"));
        assert_eq!(cmd.arg(4), None);
    }
}
