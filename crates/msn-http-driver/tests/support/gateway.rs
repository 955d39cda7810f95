//! The runtime-independent half of the adapters' loopback test partners: the testkit's fake
//! gateway (what a scriptable, misbehaving gateway with an echoing MSNP backend answers to each
//! request, as bytes), plus the helpers tests use to compare what a client saw. Each adapter's
//! test support adds the sockets (tokio or async-io) around it, and includes this file with
//! `#[path]`.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Instant;

use msn_http_core::Endpoint;
use msn_http_core::client::CloseReason;
use msn_http_driver::{ClientEvent, ClientReceiver, Notice, SessionEnd};

pub use msn_http_testkit::*;

// ---------------------------------------------------------------------------------------------
// Client-side helpers
// ---------------------------------------------------------------------------------------------

pub fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint::new(addr.ip().to_string(), addr.port()).unwrap()
}

/// An event as a test compares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Cmd(String),
    Notice(Notice),
    Closed { reason: CloseReason, unsent: String, incomplete: usize },
}

pub fn cmd(text: &str) -> Ev {
    Ev::Cmd(text.to_owned())
}

pub fn ev(event: ClientEvent) -> Ev {
    match event {
        ClientEvent::Command(c) => Ev::Cmd(String::from_utf8_lossy(c.as_bytes()).into_owned()),
        ClientEvent::Notice(n) => Ev::Notice(n),
        ClientEvent::Closed(end) => closed(&end),
        other => panic!("unexpected event {other:?}"),
    }
}

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

pub fn established(id: &str) -> Ev {
    Ev::Notice(Notice::Established { session_id: id.to_owned() })
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
