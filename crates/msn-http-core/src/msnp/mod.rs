//! MSNP command framing over a byte stream that may be cut anywhere: command lines, payload
//! commands (`MSG 1 N 133\r\n` followed by 133 bytes), and limits on both.
//!
//! The gateway may end a response body in the middle of a command or a payload; the stream
//! continues in the next response. [`CommandFramer`] reassembles across those boundaries and
//! hands out whole commands, byte-exact.

mod command;
mod framer;

pub use command::{Command, OwnedCommand};
pub use framer::{CommandFramer, FramerLimits};

pub(crate) use command::parse_line;

/// A command that carries a payload: its name, and how many space-separated tokens (name
/// included) its line must have for the last one to be the payload length.
///
/// The minimum keeps replies apart from requests: the server's `QRY 12` acknowledgement has
/// two tokens and no payload, while `NOT 1234` (no transaction ID) has two and one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadRule {
    /// The 3-byte command name (`MSG`) or numeric error code (`241`).
    pub name: [u8; 3],
    /// The fewest tokens, name included, for the line to announce a payload.
    pub min_tokens: u8,
}

/// The set of payload commands. The set depends on the MSNP version; the default covers
/// MSNP2 to MSNP18.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadCommands {
    rules: Vec<PayloadRule>,
}

impl PayloadCommands {
    /// Payload commands of MSNP2 to MSNP18: `MSG`, `NOT`, `UBX`, `UUX`, `GCF`, `ADL`, `RML`,
    /// `FQY`, `UBN`, `UUN`, `IPG`, `PAG`, `QRY`, `SDG`, `NFY`, `PUT`, `DEL`, `UBM`, `UUM`, and
    /// the errors `241` (bad ADL) and `509` (bad UUX), which echo a payload in MSNP13 and later.
    /// A line announces a payload only when its last token is a number, so `ADL 12 OK` has none.
    pub fn msnp2_to_msnp18() -> Self {
        const THREE: [&str; 19] = [
            "MSG", "UBX", "UUX", "GCF", "ADL", "RML", "FQY", "UBN", "UUN", "PAG", "QRY", "SDG",
            "NFY", "PUT", "DEL", "UBM", "UUM", "241", "509",
        ];
        let mut set = Self::none().with("NOT", 2).with("IPG", 2);
        for name in THREE {
            set = set.with(name, 3);
        }
        set
    }

    /// No payload commands: every command is one line.
    pub fn none() -> Self {
        Self { rules: Vec::new() }
    }

    /// Adds (or replaces) a payload command. `name` must be 3 ASCII letters or digits;
    /// anything else is ignored, since no MSNP line could match it.
    pub fn with(mut self, name: &str, min_tokens: u8) -> Self {
        let Ok(name) = <[u8; 3]>::try_from(name.as_bytes()) else {
            return self;
        };
        if !name.iter().all(u8::is_ascii_alphanumeric) {
            return self;
        }
        self.rules.retain(|rule| rule.name != name);
        self.rules.push(PayloadRule {
            name,
            min_tokens: min_tokens.max(2),
        });
        self
    }

    /// Removes a payload command.
    pub fn without(mut self, name: &str) -> Self {
        self.rules.retain(|rule| rule.name != name.as_bytes());
        self
    }

    /// The rules in the set.
    pub fn rules(&self) -> &[PayloadRule] {
        &self.rules
    }

    fn min_tokens(&self, name: &[u8]) -> Option<usize> {
        self.rules
            .iter()
            .find(|rule| rule.name == name)
            .map(|rule| usize::from(rule.min_tokens))
    }
}

impl Default for PayloadCommands {
    fn default() -> Self {
        Self::msnp2_to_msnp18()
    }
}
