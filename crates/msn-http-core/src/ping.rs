//! `PNG` and `QNG`: what the client session and the gateway do with a client's ping (one
//! policy for both), and the `QNG` answer they write.

/// What is done with a `PNG` on its way to the MSNP server: by the client session for commands
/// given to [`Session::send`](crate::client::Session::send), by the gateway for commands in
/// request bodies. Over HTTP, polling keeps the session alive and the official gateway ends
/// the session of a client that pings, so by default `PNG` never goes on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PingPolicy {
    /// The official behaviour. The client session refuses the `send` with
    /// [`SendError::PingNotAllowed`](crate::error::SendError::PingNotAllowed); the gateway
    /// answers the request with `400 Bad Request` and ends the session, dropping the whole
    /// request, commands before the `PNG` included.
    #[default]
    Refuse,
    /// Drop the `PNG` and answer it here with `QNG <next_ping_secs>`, delivered at the next
    /// command boundary of the received stream: for MSNP clients written for TCP, which ping
    /// and expect an answer.
    Answer {
        /// The seconds `QNG` tells the client to wait before the next ping.
        next_ping_secs: u32,
    },
    /// Pass the `PNG` on, to be answered further along: by a gateway that answers or forwards
    /// pings, or by the backend, which answers as it would over TCP.
    Forward,
}

impl PingPolicy {
    /// Answering with `QNG 50`, as MSNP servers do.
    pub const fn answer() -> Self {
        Self::Answer { next_ping_secs: 50 }
    }

    /// What a scanner of outgoing commands does with the command named `name`.
    pub(crate) fn step(self, name: &[u8]) -> PingStep {
        if name != b"PNG" {
            return PingStep::Keep;
        }
        match self {
            Self::Refuse => PingStep::Refuse,
            Self::Answer { .. } => PingStep::Strip,
            Self::Forward => PingStep::Keep,
        }
    }

    /// The `QNG` this policy answers stripped pings with.
    pub(crate) fn qng(self) -> Option<Qng> {
        match self {
            Self::Answer { next_ping_secs } => Some(Qng::new(next_ping_secs)),
            Self::Refuse | Self::Forward => None,
        }
    }
}

/// What to do with one outgoing command, as far as pings go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PingStep {
    /// Not a ping, or a ping passed on: it goes as it is.
    Keep,
    /// A ping answered here: take it out (and count it, to answer it).
    Strip,
    /// A ping refused: refuse what carries it.
    Refuse,
}

/// A `QNG <seconds>\r\n` line, on the stack.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Qng {
    /// `QNG `, at most 10 digits, CRLF.
    buf: [u8; 16],
    len: usize,
}

impl Qng {
    fn new(next_ping_secs: u32) -> Self {
        let mut buf = [0u8; 16];
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(next_ping_secs).as_bytes();
        let mut len = 0;
        for part in [&b"QNG "[..], digits, b"\r\n"] {
            buf[len..len + part.len()].copy_from_slice(part);
            len += part.len();
        }
        Self { buf, len }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_policy_keeps_strips_or_refuses_pings_only() {
        for policy in [PingPolicy::Refuse, PingPolicy::answer(), PingPolicy::Forward] {
            assert_eq!(policy.step(b"CHG"), PingStep::Keep);
            assert_eq!(policy.step(b"QNG"), PingStep::Keep);
        }
        assert_eq!(PingPolicy::Refuse.step(b"PNG"), PingStep::Refuse);
        assert_eq!(PingPolicy::answer().step(b"PNG"), PingStep::Strip);
        assert_eq!(PingPolicy::Forward.step(b"PNG"), PingStep::Keep);
    }

    #[test]
    fn qng_lines_hold_any_number_of_seconds() {
        let line = |policy: PingPolicy| policy.qng().map(|q| q.as_bytes().to_vec());
        assert_eq!(line(PingPolicy::answer()), Some(b"QNG 50\r\n".to_vec()));
        let max = PingPolicy::Answer { next_ping_secs: u32::MAX };
        assert_eq!(line(max), Some(b"QNG 4294967295\r\n".to_vec()));
        assert_eq!(line(PingPolicy::Answer { next_ping_secs: 0 }), Some(b"QNG 0\r\n".to_vec()));
        assert_eq!(line(PingPolicy::Refuse), None);
        assert_eq!(line(PingPolicy::Forward), None);
    }
}
