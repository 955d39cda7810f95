//! MSNP command framing over a byte stream that may be cut anywhere: command lines, payload
//! commands (`MSG 1 N 133\r\n` followed by 133 bytes), and limits on both; and writing the
//! commands a client sends ([`CommandWriter`]).
//!
//! The gateway may end a response body in the middle of a command or a payload; the stream
//! continues in the next response. [`CommandFramer`] reassembles across those boundaries and
//! hands out whole commands, byte-exact.

mod command;
mod framer;
mod scan;
mod writer;

pub use command::{Command, OwnedCommand};
pub(crate) use framer::Visit;
pub use framer::{CommandFramer, FramerLimits};
pub(crate) use scan::{Framing, Scanned, scan_command};
pub use writer::{CommandWriter, md5_login_response, message_text, text_message, with_payload};

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
    /// An open-addressing hash table of the rules: (name as a number, minimum tokens), with
    /// key 0 for an empty slot. Every line is looked up, so this is one or two probes.
    table: Vec<(u32, u8)>,
}

impl PayloadCommands {
    /// Payload commands of MSNP2 to MSNP18: `MSG`, `NOT`, `UBX`, `UUX`, `GCF`, `ADL`, `RML`,
    /// `FQY`, `UBN`, `UUN`, `IPG`, `PAG`, `QRY`, `SDG`, `NFY`, `PUT`, `DEL`, `UBM`, `UUM`, and
    /// the errors `241` (bad ADL) and `509` (bad UUX), which echo a payload in MSNP13 and later.
    /// A line announces a payload only when its last token is a number, so `ADL 12 OK` has none.
    pub fn msnp2_to_msnp18() -> Self {
        // `MSG` first: it is by far the most frequent, and lookups scan in order.
        const THREE: [&str; 19] = [
            "MSG", "UBX", "UUX", "GCF", "ADL", "RML", "FQY", "UBN", "UUN", "PAG", "QRY", "SDG",
            "NFY", "PUT", "DEL", "UBM", "UUM", "241", "509",
        ];
        let mut set = Self::none();
        for name in THREE {
            set = set.with(name, 3);
        }
        set.with("NOT", 2).with("IPG", 2)
    }

    /// No payload commands: every command is one line.
    pub fn none() -> Self {
        Self { rules: Vec::new(), table: Vec::new() }
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
        self.rules.push(PayloadRule { name, min_tokens: min_tokens.max(2) });
        self.reindex();
        self
    }

    /// Removes a payload command.
    pub fn without(mut self, name: &str) -> Self {
        self.rules.retain(|rule| rule.name != name.as_bytes());
        self.reindex();
        self
    }

    fn reindex(&mut self) {
        // At most half full, so probe runs stay short and an empty slot always ends them.
        let slots = (self.rules.len() * 2).next_power_of_two().max(TABLE_MIN_SLOTS);
        self.table = vec![(0, 0); slots];
        for rule in &self.rules {
            let key = name_key(&rule.name);
            let mut slot = table_slot(key, slots);
            while self.table[slot].0 != 0 {
                slot = (slot + 1) & (slots - 1);
            }
            self.table[slot] = (key, rule.min_tokens);
        }
    }

    /// The rules in the set.
    pub fn rules(&self) -> &[PayloadRule] {
        &self.rules
    }

    /// Whether commands named `name` carry a payload (when their line is long enough).
    ///
    /// ```
    /// use msn_http_core::msnp::PayloadCommands;
    ///
    /// let set = PayloadCommands::default();
    /// assert!(set.contains("MSG") && set.contains("NOT"));
    /// assert!(!set.contains("USR") && !set.contains("MSGX"));
    /// ```
    pub fn contains(&self, name: &str) -> bool {
        <&[u8; 3]>::try_from(name.as_bytes()).is_ok_and(|name| self.min_tokens(name).is_some())
    }

    fn min_tokens(&self, name: &[u8; 3]) -> Option<usize> {
        let slots = self.table.len();
        if slots == 0 {
            return None;
        }
        let key = name_key(name);
        let mut slot = table_slot(key, slots);
        loop {
            match self.table[slot] {
                (0, _) => return None,
                (k, min) if k == key => return Some(usize::from(min)),
                _ => slot = (slot + 1) & (slots - 1),
            }
        }
    }
}

/// The smallest payload-command table.
const TABLE_MIN_SLOTS: usize = 16;

/// A command name as a number (never 0: names are letters and digits).
fn name_key(name: &[u8; 3]) -> u32 {
    u32::from_be_bytes([0, name[0], name[1], name[2]])
}

/// The home slot of a key in a table of `slots` (a power of two), by multiplicative hashing.
fn table_slot(key: u32, slots: usize) -> usize {
    (key.wrapping_mul(0x9E37_79B1) >> 16) as usize & (slots - 1)
}

impl Default for PayloadCommands {
    fn default() -> Self {
        Self::msnp2_to_msnp18()
    }
}
