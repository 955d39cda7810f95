//! MSNP helpers shared by the subcommands: the MD5 login hash, payload commands, and readable
//! rendering of commands.

use md5::{Digest, Md5};
use msn_http_core::msnp::{Command, PayloadCommands};

/// Lowercase hex MD5, as MSNP's `USR MD5 S` answer wants it (`md5(salt + password)`).
pub(crate) fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a command with this name carries a payload (`MSG`, `QRY`, `UUX`, ...).
pub(crate) fn is_payload_command(name: &str) -> bool {
    PayloadCommands::default().rules().iter().any(|rule| rule.name == name.as_bytes())
}

/// A payload command: `head` (its line without the length), the length, CRLF, the payload.
pub(crate) fn with_payload(head: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{} {}\r\n", head.trim_end(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The command line as text (lossy), without its line ending.
pub(crate) fn line_text(cmd: &Command<'_>) -> String {
    String::from_utf8_lossy(cmd.line()).into_owned()
}

/// The payload's lines as text (lossy), for printing.
pub(crate) fn payload_lines(payload: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(payload).split("\r\n").map(str::to_owned).collect()
}

/// The space-separated arguments of a command (after its name), as text.
pub(crate) fn args(cmd: &Command<'_>) -> Vec<String> {
    cmd.args().map(|a| a.into_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_the_rfc_vector() {
        // RFC 1321 test suite: MD5("abc").
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn payload_commands_get_their_length() {
        assert!(is_payload_command("MSG"));
        assert!(!is_payload_command("USR"));
        assert_eq!(with_payload("MSG 4 N ", b"hi\r\nyo"), b"MSG 4 N 6\r\nhi\r\nyo");
    }
}
