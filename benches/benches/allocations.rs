//! Heap allocations per steady-state cycle, counted (not timed): a client poll cycle and a
//! message cycle. Prints one line per figure.
#![allow(clippy::print_stdout)]

use std::alloc::System;
use std::time::{Duration, Instant};

use msn_http_benches::response;
use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, Session, Target};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const CYCLES: usize = 10_000;

/// Allocations per cycle of a client session answering polls with `reply`.
fn client_cycle(reply: &[u8], send: Option<&[u8]>) -> f64 {
    let start = Instant::now();
    let gateway = Endpoint::parse("207.46.110.18", 80).unwrap();
    let target = Target::notification("messenger.hotmail.com");
    let mut session = Session::new(ClientConfig::new(gateway), target, start).unwrap();
    let mut now = start;
    let mut out = Vec::with_capacity(4096);
    session.send(b"VER 1 MSNP8 CVR0\r\n").unwrap();
    let mut cycle = |session: &mut Session, now: &mut Instant| {
        *now += Duration::from_secs(2);
        session.handle_timeout(*now);
        if let Some(bytes) = send {
            session.send(bytes).unwrap();
        }
        out.clear();
        session.poll_transmit(*now, &mut out).expect("a request is due");
        session.handle_input(*now, reply);
        while session.poll_event().is_some() {}
    };
    for _ in 0..100 {
        cycle(&mut session, &mut now);
    }
    let region = Region::new(GLOBAL);
    for _ in 0..CYCLES {
        cycle(&mut session, &mut now);
    }
    let change = region.change();
    (change.allocations + change.reallocations) as f64 / CYCLES as f64
}

fn main() {
    // Cargo passes `--bench`; there is nothing to filter.
    let empty = client_cycle(&response(0), None);
    let busy = client_cycle(&response(4096), Some(b"MSG 9 N 5\r\nhello"));
    println!("allocations per steady-state cycle: client empty poll {empty}");
    println!("allocations per steady-state cycle: client 4 KiB response + send {busy}");
}
