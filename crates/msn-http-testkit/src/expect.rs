//! What a client saw, as tests compare it: [`Ev`], the events taken from a receiver, and the
//! helpers that turn sessions' ends, bytes and requests into comparable values.

use std::net::SocketAddr;
use std::time::Instant;

use msn_http_core::Endpoint;
use msn_http_core::client::CloseReason;
use msn_http_driver::{ClientEvent, ClientReceiver, Notice, SessionEnd};

use crate::Seen;

// ---------------------------------------------------------------------------------------------
// Client-side helpers
// ---------------------------------------------------------------------------------------------

/// The gateway endpoint of a loopback listener.
pub fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint::new(addr.ip().to_string(), addr.port()).unwrap()
}

/// An event as a test compares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    /// A received command, as text.
    Cmd(String),
    /// A notice.
    Notice(Notice),
    /// The session's end.
    Closed {
        /// Why it ended.
        reason: CloseReason,
        /// The bytes never confirmed, as text.
        unsent: String,
        /// Bytes of a received command cut off by the end.
        incomplete: usize,
    },
}

/// A received command.
pub fn cmd(text: &str) -> Ev {
    Ev::Cmd(text.to_owned())
}

/// A client event as a test compares it.
pub fn ev(event: ClientEvent) -> Ev {
    match event {
        ClientEvent::Command(c) => Ev::Cmd(String::from_utf8_lossy(c.as_bytes()).into_owned()),
        ClientEvent::Notice(n) => Ev::Notice(n),
        ClientEvent::Closed(end) => closed(&end),
        other => panic!("unexpected event {other:?}"),
    }
}

/// A session's end as a test compares it.
pub fn closed(end: &SessionEnd) -> Ev {
    Ev::Closed {
        reason: end.reason.clone(),
        unsent: String::from_utf8_lossy(&end.unsent).into_owned(),
        incomplete: end.incomplete_inbound_bytes,
    }
}

/// The next `n` events (or fewer, if the session ends first).
pub async fn take(receiver: &mut ClientReceiver, n: usize) -> Vec<Ev> {
    let mut events = Vec::new();
    while events.len() < n {
        match receiver.recv_event().await {
            Some(event) => events.push(ev(event)),
            None => break,
        }
    }
    events
}

/// The events up to and including the `n`th command (fewer if the session ends first).
pub async fn take_commands(receiver: &mut ClientReceiver, n: usize) -> Vec<Ev> {
    let mut events = Vec::new();
    let mut commands = 0;
    while commands < n {
        match receiver.recv_event().await {
            Some(event) => {
                let event = ev(event);
                commands += usize::from(matches!(event, Ev::Cmd(_)));
                events.push(event);
            }
            None => break,
        }
    }
    events
}

/// The commands among `events`, in order.
pub fn commands(events: &[Ev]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Cmd(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// The notices among `events`, in order.
pub fn notices(events: &[Ev]) -> Vec<Notice> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Notice(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// How many of `requests` arrived in `[from, to)`.
pub fn requests_between(requests: &[Seen], from: Instant, to: Instant) -> usize {
    requests.iter().filter(|r| r.at >= from && r.at < to).count()
}

/// The notice of a session established with the ID `id`.
pub fn established(id: &str) -> Ev {
    Ev::Notice(Notice::Established { session_id: id.to_owned() })
}

/// Bytes as text (lossy).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
