//! What every MSNP client writes: command lines with their transaction IDs, payload commands
//! with their length, and the MD5 answer of MSNP2-7 logins.

use md5::{Digest, Md5};

use crate::error::FrameError;

/// Writes MSNP commands, numbering their transaction IDs (1, 2, 3, ... per connection).
///
/// Each method returns the command's bytes, ready for `send`; arguments are written as given,
/// separated by spaces, and refused if they would break the line (empty, or holding a space,
/// CR or LF).
///
/// ```
/// use msn_http_core::msnp::CommandWriter;
///
/// let mut msnp = CommandWriter::new();
/// assert_eq!(msnp.command("VER", &["MSNP7", "CVR0"])?, b"VER 1 MSNP7 CVR0\r\n");
/// assert_eq!(msnp.command("CHG", &["NLN"])?, b"CHG 2 NLN\r\n");
/// assert_eq!(msnp.payload_command("MSG", &["N"], b"hello")?, b"MSG 3 N 5\r\nhello");
/// assert_eq!(msnp.last_trid(), Some(3));
/// # Ok::<(), msn_http_core::error::FrameError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct CommandWriter {
    last: u32,
}

impl CommandWriter {
    /// A writer whose first command gets transaction ID 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer whose next command gets transaction ID `next` (`XFR`'s switchboard sessions
    /// and logins that continue a count).
    pub fn starting_at(next: u32) -> Self {
        Self { last: next.saturating_sub(1) }
    }

    /// The next transaction ID, taken.
    pub fn next_trid(&mut self) -> u32 {
        self.last = self.last.wrapping_add(1).max(1);
        self.last
    }

    /// The transaction ID of the last command written.
    pub fn last_trid(&self) -> Option<u32> {
        (self.last > 0).then_some(self.last)
    }

    /// `NAME trid args...\r\n`.
    pub fn command(&mut self, name: &str, args: &[&str]) -> Result<Vec<u8>, FrameError> {
        let mut out = self.line(name, args)?;
        out.extend_from_slice(b"\r\n");
        Ok(out)
    }

    /// `NAME trid args... length\r\n` and the payload: `MSG`, `UUX`, `ADL` and the like.
    pub fn payload_command(
        &mut self,
        name: &str,
        args: &[&str],
        payload: &[u8],
    ) -> Result<Vec<u8>, FrameError> {
        let mut out = self.line(name, args)?;
        push_length_and_payload(&mut out, payload);
        Ok(out)
    }

    fn line(&mut self, name: &str, args: &[&str]) -> Result<Vec<u8>, FrameError> {
        let name_ok = name.len() == 3 && name.bytes().all(|b| b.is_ascii_alphanumeric());
        let args_ok =
            args.iter().all(|a| !a.is_empty() && !a.bytes().any(|b| b" \r\n".contains(&b)));
        if !name_ok || !args_ok {
            return Err(FrameError::InvalidCommand);
        }
        let mut out = Vec::with_capacity(8 + args.iter().map(|a| a.len() + 1).sum::<usize>());
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        out.extend_from_slice(itoa::Buffer::new().format(self.next_trid()).as_bytes());
        for arg in args {
            out.push(b' ');
            out.extend_from_slice(arg.as_bytes());
        }
        Ok(out)
    }
}

/// A payload command whose line the caller wrote, with its own transaction ID (a typed or
/// scripted command) or none (what servers send, `MSG alice@example.com Alice`): the line, a
/// space, the payload's length, CRLF and the payload. [`CommandWriter::payload_command`] is the
/// same with the transaction ID numbered and the arguments checked.
///
/// ```
/// use msn_http_core::msnp::with_payload;
///
/// assert_eq!(with_payload("MSG alice@example.com Alice", b"hi"), b"MSG alice@example.com Alice 2\r\nhi");
/// ```
pub fn with_payload(line: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len() + 24 + payload.len());
    out.extend_from_slice(line.as_bytes());
    push_length_and_payload(&mut out, payload);
    out
}

/// Appends ` length\r\n` and the payload to a command line.
fn push_length_and_payload(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(b' ');
    out.extend_from_slice(itoa::Buffer::new().format(payload.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(payload);
}

/// The payload of a plain-text instant message (`MSG trid N|A|U length`): MIME headers and the
/// text.
///
/// ```
/// use msn_http_core::msnp::{CommandWriter, text_message};
///
/// let mut msnp = CommandWriter::starting_at(5);
/// let msg = msnp.payload_command("MSG", &["N"], &text_message("hi"))?;
/// assert!(msg.starts_with(b"MSG 5 N 64\r\nMIME-Version: 1.0\r\n"));
/// assert!(msg.ends_with(b"\r\n\r\nhi"));
/// # Ok::<(), msn_http_core::error::FrameError>(())
/// ```
pub fn text_message(text: &str) -> Vec<u8> {
    let mut out = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n".to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

/// The text of a plain-text instant message: what follows its MIME headers, when they say
/// `Content-Type: text/plain`. `None` for the other messages a switchboard carries (typing
/// notifications are `text/x-msmsgscontrol`, invitations `text/x-msmsgsinvite`) and for
/// payloads without headers, so a bot that answers text answers nothing else.
///
/// ```
/// use msn_http_core::msnp::{message_text, text_message};
///
/// assert_eq!(message_text(&text_message("hi")), Some(&b"hi"[..]));
/// let typing = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: a@b.c\r\n\r\n\r\n";
/// assert_eq!(message_text(typing), None);
/// ```
pub fn message_text(payload: &[u8]) -> Option<&[u8]> {
    let at = memchr::memmem::find(payload, b"\r\n\r\n")?;
    let plain = payload[..at].split(|&b| b == b'\n').any(|header| {
        let Some(colon) = header.iter().position(|&b| b == b':') else { return false };
        let (name, value) = (header[..colon].trim_ascii(), header[colon + 1..].trim_ascii());
        let media_type = value.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
        name.eq_ignore_ascii_case(b"Content-Type") && media_type.eq_ignore_ascii_case(b"text/plain")
    });
    plain.then(|| &payload[at + 4..])
}

/// The answer to an MSNP2-7 MD5 login challenge: `USR n MD5 S <this>` after the server's
/// `USR n MD5 S <salt>`, the lowercase hex MD5 of the salt followed by the password.
///
/// ```
/// use msn_http_core::msnp::md5_login_response;
///
/// assert_eq!(md5_login_response("1013928519.693957190", "password"), "7f919fab309532df353c901430df36fa");
/// ```
pub fn md5_login_response(salt: &str, password: &str) -> String {
    let digest = Md5::new().chain_update(salt).chain_update(password).finalize();
    let mut hex = String::with_capacity(32);
    for byte in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_that_would_break_are_refused() {
        let mut w = CommandWriter::new();
        for (name, args) in [
            ("MS", &["a"][..]),
            ("MSG!", &[]),
            ("CHG", &["N LN"]),
            ("CHG", &[""]),
            ("CHG", &["a\r\n"]),
        ] {
            assert_eq!(w.command(name, args), Err(FrameError::InvalidCommand), "{name} {args:?}");
        }
        assert_eq!(w.last_trid(), None, "a refused command takes no ID");
        assert_eq!(w.command("SYN", &["0"]).unwrap(), b"SYN 1 0\r\n");
    }

    #[test]
    fn a_written_line_gets_its_payload_length() {
        assert_eq!(with_payload("MSG 4 N", b"hi\r\nyo"), b"MSG 4 N 6\r\nhi\r\nyo");
        assert_eq!(with_payload("MSG 4 N", b""), b"MSG 4 N 0\r\n");
        let mut w = CommandWriter::starting_at(4);
        assert_eq!(
            w.payload_command("MSG", &["N"], b"hi\r\nyo").unwrap(),
            with_payload("MSG 4 N", b"hi\r\nyo")
        );
    }

    #[test]
    fn message_text_follows_the_headers_of_text_messages_only() {
        assert_eq!(message_text(&text_message("héllo")), Some("héllo".as_bytes()));
        assert_eq!(message_text(b"no headers"), None);
        let sent_by_a_client = b"MIME-Version: 1.0\r\ncontent-type:TEXT/PLAIN\r\nX-MMS-IM-Format: FN=Arial\r\n\r\nhi\r\n\r\nyou";
        assert_eq!(message_text(sent_by_a_client), Some(&b"hi\r\n\r\nyou"[..]));
        let typing = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: a@b.c\r\n\r\n\r\n";
        assert_eq!(message_text(typing), None);
        let almost = b"MIME-Version: 1.0\r\nContent-Type: text/plainer\r\n\r\nhi";
        assert_eq!(message_text(almost), None);
        assert_eq!(message_text(b"X-Note: Content-Type: text/plain\r\n\r\nhi"), None);
    }
}
