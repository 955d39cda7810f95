//! A steady-state poll cycle makes no heap allocation: counted with an instrumented allocator.
//! Runs without the test harness (`harness = false`), so no other thread's allocations can be
//! counted in the window.
// Tests live in a process of their own: they may read a clock for an origin and read files.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![allow(clippy::print_stdout)]

use std::alloc::System;
use std::time::{Duration, Instant};

use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, Event, Session, Target};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Official-style responses: the SessionID suffix rotates, every other one carries a command.
fn responses() -> Vec<Vec<u8>> {
    (0..8)
        .map(|n| {
            let body: &[u8] = if n % 2 == 0 { b"" } else { b"NLN NLN bob@example.com Bob\r\n" };
            let mut wire = format!(
                "HTTP/1.1 200 OK\r\nX-MSN-Messenger: SessionID=954547325.1000{n}; GW-IP=207.46.110.18\r\nContent-Type: application/x-msn-messenger\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            wire.extend_from_slice(body);
            wire
        })
        .collect()
}

/// One poll cycle: time passes, the poll goes out, its response comes back in two reads (so
/// the head is buffered across reads too), events are drained. Returns commands seen.
fn cycle(session: &mut Session, now: &mut Instant, out: &mut Vec<u8>, response: &[u8]) -> usize {
    *now += Duration::from_secs(2);
    session.handle_timeout(*now);
    out.clear();
    let sent = session.poll_transmit(*now, out).map(|t| t.len);
    assert!(sent.is_some_and(|len| len > 0), "a poll is due every 2 s");
    let (first, second) = response.split_at(40);
    session.handle_input(*now, first);
    session.handle_input(*now, second);
    let mut commands = 0;
    while let Some(event) = session.poll_event() {
        match event {
            Event::Command(cmd) => commands += usize::from(cmd.name() == "NLN"),
            other => panic!("unexpected {other:?}"),
        }
    }
    commands
}

fn main() {
    steady_state_poll_cycles_allocate_nothing();
    println!("test result: ok. 1 passed; 0 failed (steady-state poll cycles allocate nothing)");
}

fn steady_state_poll_cycles_allocate_nothing() {
    let start = Instant::now();
    let gateway = Endpoint::parse("207.46.110.18", 80).unwrap();
    let target = Target::notification("messenger.hotmail.com");
    let mut session = Session::new(ClientConfig::new(gateway), target, start).unwrap();
    let mut now = start;
    let mut out = Vec::with_capacity(1024);
    session.send(b"VER 1 MSNP8 CVR0\r\n").unwrap();
    session.poll_transmit(now, &mut out).unwrap();
    session.handle_input(now, &responses()[0]);
    while session.poll_event().is_some() {}
    let responses = responses();
    // Warm up: buffers grow to their working size.
    for response in &responses {
        cycle(&mut session, &mut now, &mut out, response);
    }

    let region = Region::new(GLOBAL);
    let mut commands = 0;
    for response in responses.iter().cycle().take(1000) {
        commands += cycle(&mut session, &mut now, &mut out, response);
    }
    let change = region.change();

    assert_eq!(commands, 500, "half the responses carried a command");
    assert_eq!(session.stats().polls, 1008);
    assert_eq!(
        (change.allocations, change.reallocations, change.bytes_allocated),
        (0, 0, 0),
        "heap traffic in 1000 steady-state cycles: {change:?}"
    );
}
