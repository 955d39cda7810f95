//! The field cases (PROTOCOL.md §7) as the adapters' field tests play them: the commands sent
//! and pushed, and the checks of what went on the wire, so that each adapter's test only
//! drives its runtime.

use std::time::Duration;

use msn_http_core::client::{CloseReason, RequestKind};
use msn_http_core::error::{NetworkError, RemoteError, SessionError};
use msn_http_driver::SessionEnd;

use crate::Seen;
use crate::expect::{Ev, commands, text};

/// The NS handshake's first command.
pub const VER: &str = "VER 1 MSNP8 CVR0\r\n";
/// An SB login.
pub const USR: &str = "USR 1 alice@example.com 123.456\r\n";
/// An SB invitation.
pub const CAL: &str = "CAL 2 bob@example.com\r\n";
/// A contact joining an SB.
pub const JOI: &str = "JOI bob@example.com Bob\r\n";
/// A payload command with a 5-byte body.
pub const MSG: &str = "MSG 3 N 5\r\nhello";
/// A status change.
pub const CHG: &str = "CHG 2 NLN 0\r\n";
/// A contact's initial status, pushed by the server.
pub const ILN: &str = "ILN 0 NLN bob@example.com Bob\r\n";
/// The first session ID of a rotating-ID gateway.
pub const FIRST_ID: &str = "954547325.1";
/// The session ID a constant-ID gateway hands out.
pub const UUID: &str = "ee242912-db5a-4b93-bc49-d615b0fa7965";
/// A login sent at once, whose reply a line-by-line backend writes a line at a time.
pub const LOGIN: [&str; 3] = ["USR 2 MD5 I alice@example.com\r\n", "CHG 3 NLN\r\n", "SYN 4 0\r\n"];
/// The unsolicited profile a server pushes right after the login reply.
pub const PROFILE: &str = "MSG Hotmail Hotmail 19\r\nMIME-Version: 1.0\r\n";
/// A payload command whose length has a leading zero: strict servers answer `500`.
pub const ZERO_PADDED: &str = "MSG 2 N 05\r\nhello";
/// One second.
pub const SECOND: Duration = Duration::from_secs(1);
/// One minute.
pub const MINUTE: Duration = Duration::from_secs(60);
/// Bursts in the constant-ID chat, and commands in each.
pub const BURSTS: usize = 10;
/// Commands in each burst of the constant-ID chat.
pub const BURST_LEN: usize = 5;

/// Burst `n` of the constant-ID chat: the commands sent at once, and the command the server
/// pushes meanwhile, every third burst.
pub fn burst(n: usize) -> (Vec<String>, Option<String>) {
    let sent = (0..BURST_LEN)
        .map(|i| {
            let trid = n * BURST_LEN + i + 2;
            format!("MSG {trid} N 6\r\nhi {trid:03}")
        })
        .collect();
    let push = (n % 3 == 0).then(|| format!("ILN 0 NLN user{n}@example.com User{n}\r\n"));
    (sent, push)
}

/// What arrived for burst `n`: its echoes in order, and the push once, before or after them
/// (never inside a command); no notice. Returns the commands.
pub fn check_burst(n: usize, events: &[Ev], sent: &[String], push: Option<&String>) -> usize {
    let arrived = commands(events);
    assert_eq!(events.len(), arrived.len(), "no notices: {events:?}");
    let (pushed, echoed): (Vec<_>, Vec<_>) =
        arrived.iter().cloned().partition(|c| c.starts_with("ILN"));
    assert_eq!(echoed, sent, "burst {n}");
    assert_eq!(pushed, Vec::from_iter(push.cloned()), "burst {n}");
    arrived.len()
}

/// After the constant-ID chat (`sent` being every command, `VER` first; `arrived` the number
/// of commands received): every command processed once, every request carrying the one ID.
pub fn check_constant_id_chat(requests: &[Seen], received: &[u8], sent: &str, arrived: usize) {
    assert_eq!(text(received), format!("{sent}OUT\r\n"), "every command once");
    let pushes = (0..BURSTS).filter(|n| burst(*n).1.is_some()).count();
    assert_eq!(arrived, 1 + BURSTS * BURST_LEN + pushes);
    assert!(requests.len() >= 100, "{} requests", requests.len());
    for r in &requests[1..] {
        assert_eq!(r.session_id.as_deref(), Some(UUID), "{r:?}");
    }
}

/// After the switchboard chat through a gateway echoing `IP=` (`ip`): nothing reached the raw
/// switchboard (`raw`: its connections and bytes), every request went to the gateway at
/// `host` on one connection, polls included, and the backend processed each command once.
pub fn check_stayed_on_the_gateway(
    requests: &[Seen],
    received: &[u8],
    connections: &[usize],
    raw: (usize, usize),
    ip: &str,
    host: &str,
) {
    assert_eq!(raw, (0, 0), "nothing reached the raw switchboard");
    assert_eq!(text(received), format!("{USR}{CAL}{MSG}OUT\r\n"), "each command once");
    assert!(requests[0].target.ends_with(&format!("Action=open&Server=SB&IP={ip}")));
    for r in requests {
        assert_eq!((r.listener, r.connection), (0, 0), "{r:?}");
        assert_eq!(r.host.as_deref(), Some(host));
    }
    let polls = requests.iter().filter(|r| r.kind == RequestKind::Poll).count();
    assert!(polls >= 40, "polled on the gateway: {polls} polls in 5 s");
    assert_eq!(connections, [1]);
}

/// The longest time between two requests.
pub fn longest_gap(requests: &[Seen]) -> Duration {
    requests.windows(2).map(|w| w[1].at - w[0].at).max().unwrap_or_default()
}

/// The end of a session whose server a zero-padded length wedged: it gave up on `500`s, with
/// the command handed back, after a bounded number of requests from `before` on, all polls
/// after the send.
pub fn check_gave_up_on_500(end: &SessionEnd, kinds: &[RequestKind], before: usize) {
    let CloseReason::Failed(SessionError::Network(NetworkError::TooManyFailures { last, .. })) =
        &end.reason
    else {
        panic!("gave up: {end:?}");
    };
    assert_eq!(**last, SessionError::Remote(RemoteError::ServerError(500)));
    assert_eq!(text(&end.unsent), ZERO_PADDED, "the command comes back");
    let made = kinds.len() - before;
    assert!((2..=7).contains(&made), "{made} requests");
    assert_eq!(kinds[before], RequestKind::Send);
    assert!(kinds[before + 1..].iter().all(|k| *k == RequestKind::Poll), "{kinds:?}");
}
