//! MSNP helpers shared by the subcommands, beside the core's (`msn_http_core::msnp`): which
//! typed commands carry a payload, and payloads as lines for printing.

use msn_http_core::msnp::PayloadCommands;

/// Whether a command with this name carries a payload (`MSG`, `QRY`, `UUX`, ...).
pub(crate) fn is_payload_command(name: &str) -> bool {
    PayloadCommands::default().contains(name)
}

/// The payload's lines as text (lossy), for printing.
pub(crate) fn payload_lines(payload: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(payload).split("\r\n").map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_commands_are_known_by_name() {
        assert!(is_payload_command("MSG") && is_payload_command("QRY"));
        assert!(!is_payload_command("USR") && !is_payload_command("MSGS"));
        assert_eq!(payload_lines(b"a\r\n\r\nb"), ["a", "", "b"]);
    }
}
