//! One MSNP command: its line, its arguments and its payload, borrowed or owned.

use nom::IResult;

use crate::error::FrameError;

use super::PayloadCommands;

/// The longest payload length field we read (20 digits hold any `u64`).
const MAX_LENGTH_DIGITS: usize = 20;

/// What a command line says about the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LineInfo<'a> {
    pub(crate) name: &'a [u8; 3],
    pub(crate) payload_len: Option<u64>,
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
pub(crate) fn parse_line<'a>(
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

/// The length of a line's text without its `\n` or `\r\n` ending.
pub(super) fn text_len(line_with_ending: &[u8]) -> usize {
    let without_lf = line_with_ending.len().saturating_sub(1);
    match line_with_ending[..without_lf].last() {
        Some(b'\r') => without_lf - 1,
        _ => without_lf,
    }
}

/// One whole MSNP command, borrowed from the stream: the line, and the payload if it has one.
///
/// ```
/// use msn_http_core::msnp::{CommandFramer, FramerLimits, PayloadCommands};
///
/// let mut framer = CommandFramer::new(PayloadCommands::default(), FramerLimits::default());
/// framer.push(b"MSG alice@example.com Alice 5\r\nhello");
/// let cmd = framer.next_command().unwrap().unwrap();
/// assert_eq!(cmd.name(), "MSG");
/// assert_eq!(cmd.args().collect::<Vec<_>>(), [&b"alice@example.com"[..], b"Alice", b"5"]);
/// assert_eq!(cmd.payload(), Some(&b"hello"[..]));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
        // Framing only accepts ASCII alphanumeric names, so this never falls back.
        std::str::from_utf8(&self.bytes[..3]).unwrap_or("???")
    }

    /// The command line without its line ending.
    pub fn line(&self) -> &'a [u8] {
        &self.bytes[..self.line_len]
    }

    /// The space-separated arguments after the name.
    pub fn args(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let line: &'a [u8] = &self.bytes[3..self.line_len];
        split_args(line)
    }

    /// The transaction ID, when the first argument is a number (`NOT` and `IPG` have none).
    pub fn trid(&self) -> Option<u32> {
        let first = self.args().next()?;
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

/// An owned [`Command`], for sending across tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
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

    /// The whole command as it was on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The wire bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
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
    fn accessors_read_the_line() {
        let bytes = b"USR 7 OK alice@example.com 1\r\n";
        let cmd = Command::new(bytes, bytes.len() - 2, None);
        assert_eq!(cmd.name(), "USR");
        assert_eq!(cmd.trid(), Some(7));
        assert!(!cmd.is_error());
        assert_eq!(cmd.line(), b"USR 7 OK alice@example.com 1");
        assert_eq!(cmd.to_owned_command().as_command(), cmd);
        assert_eq!(text_len(b"ab\r\n"), 2);
        assert_eq!(text_len(b"ab\n"), 2);
    }
}
