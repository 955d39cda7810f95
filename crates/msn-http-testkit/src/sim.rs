//! A fake-clock world: one client core [`Session`] against the [`FakeGateway`], in memory,
//! driven the way an adapter drives it. An hour of polling runs in milliseconds, and every
//! figure it yields (requests per minute, delivery latency) is exact and repeatable.

use std::time::{Duration, Instant};

use msn_http_core::client::{
    ClientConfig, Closed, Connection, Event, Notice, RequestKind, Session, Target,
};

use crate::gateway::{FakeGateway, Plan, Script};
use crate::request::{Parsed, parse_request};

/// Something the session reported, with when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// A whole command arrived.
    Command(Vec<u8>),
    /// A notice.
    Notice(Notice),
    /// The session ended.
    Closed(Closed),
}

/// The answer on its way to the session.
#[derive(Debug)]
struct Answer {
    at: Instant,
    bytes: Vec<u8>,
    close: bool,
}

/// The session, the gateway and the clock.
pub struct Sim {
    /// The client session under test.
    pub session: Session,
    /// Its gateway.
    pub gateway: FakeGateway,
    /// When the world began.
    pub start: Instant,
    /// The fake clock.
    pub now: Instant,
    /// Everything the session reported, in order, with when.
    pub reports: Vec<(Instant, Report)>,
    /// How long each answer takes to arrive after its request (or, for a held poll, after
    /// the gateway releases it).
    pub rtt: Duration,
    out: Vec<u8>,
    connection: usize,
    answer: Option<Answer>,
    held: bool,
}

/// How long a run may go without a deadline before the world is declared stuck.
const MAX_STEPS: usize = 1_000_000;

impl Sim {
    /// A session to `target` configured by `config` (its gateway address is not used: every
    /// request reaches the fake gateway), against a gateway following `script`.
    pub fn new(config: ClientConfig, target: Target, script: Script) -> Self {
        let start = Instant::now();
        let session = Session::new(config, target, start).expect("a valid configuration");
        Self {
            session,
            gateway: FakeGateway::new(script),
            start,
            now: start,
            reports: Vec::new(),
            rtt: Duration::ZERO,
            out: Vec::new(),
            connection: 0,
            answer: None,
            held: false,
        }
    }

    /// Time since the world began.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Queues MSNP bytes on the session.
    pub fn send(&mut self, msnp: &[u8]) {
        self.session.send(msnp).expect("the session takes the bytes");
        self.pump();
    }

    /// Runs the world until `elapsed()` reaches `until` (or the session has ended and nothing
    /// is left to happen).
    pub fn run_until(&mut self, until: Duration) {
        let until = self.start + until;
        for _ in 0..MAX_STEPS {
            self.pump();
            let Some(next) = self.next_wakeup() else {
                self.now = self.now.max(until);
                return;
            };
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            self.step();
        }
        panic!("the world did not reach {until:?} in {MAX_STEPS} steps: a spin");
    }

    /// Runs for `by` more.
    pub fn run_for(&mut self, by: Duration) {
        self.run_until(self.elapsed() + by);
    }

    /// Requests the gateway saw in `[from, to)` (times since the start), by kind.
    pub fn requests_between(&self, from: Duration, to: Duration) -> usize {
        let (from, to) = (self.start + from, self.start + to);
        self.gateway.requests.iter().filter(|r| r.at >= from && r.at < to).count()
    }

    /// The commands received, concatenated.
    pub fn received(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (_, report) in &self.reports {
            if let Report::Command(bytes) = report {
                out.extend_from_slice(bytes);
            }
        }
        out
    }

    /// When the command `bytes` was delivered, the first time at or after `after`.
    pub fn delivered_at(&self, bytes: &[u8], after: Instant) -> Option<Instant> {
        self.reports.iter().find_map(|(at, report)| match report {
            Report::Command(c) if *at >= after && c == bytes => Some(*at),
            _ => None,
        })
    }

    /// How the session ended, if it did.
    pub fn closed(&self) -> Option<&Closed> {
        self.reports.iter().find_map(|(_, report)| match report {
            Report::Closed(closed) => Some(closed),
            _ => None,
        })
    }

    /// The next instant something happens by itself.
    fn next_wakeup(&self) -> Option<Instant> {
        let gateway = self.held.then(|| self.gateway.next_wakeup()).flatten();
        [self.session.poll_timeout(), self.answer.as_ref().map(|a| a.at), gateway]
            .into_iter()
            .flatten()
            .min()
    }

    /// What is due at `now`: the answer arrives, a held poll is released, timers fire.
    fn step(&mut self) {
        let now = self.now;
        if self.held {
            if let Some(plan) = self.gateway.release(now) {
                self.held = false;
                self.respond(plan);
            }
        }
        if self.answer.as_ref().is_some_and(|a| a.at <= now) {
            let answer = self.answer.take().expect("checked");
            self.session.handle_input(now, &answer.bytes);
            if answer.close {
                self.session.handle_eof(now);
                self.connection += 1;
            }
        }
        self.session.handle_timeout(now);
        self.gateway.advance(now);
    }

    /// Drains the session as a driver does: requests, then events.
    fn pump(&mut self) {
        loop {
            self.out.clear();
            let Some(t) = self.session.poll_transmit(self.now, &mut self.out) else {
                break;
            };
            if t.connection == Connection::Fresh {
                self.connection += 1;
                // A request on a new connection: whatever the old one carried is gone.
                self.answer = None;
                self.held = false;
            }
            let mut wire = std::mem::take(&mut self.out);
            let Parsed::Request(request) = parse_request(&mut wire) else {
                panic!("the session wrote a request the gateway cannot read");
            };
            let plan = self.gateway.handle(self.now, 0, self.connection, &request);
            self.respond(plan);
        }
        while let Some(event) = self.session.poll_event() {
            let report = match event {
                Event::Command(cmd) => Report::Command(cmd.as_bytes().to_vec()),
                Event::Closed(closed) => Report::Closed(closed),
                Event::Notice(notice) => Report::Notice(notice),
                other => panic!("an event the world does not know: {other:?}"),
            };
            self.reports.push((self.now, report));
        }
    }

    fn respond(&mut self, plan: Plan) {
        match plan {
            Plan::Stall => self.answer = None,
            Plan::Hold { .. } => self.held = true,
            Plan::Respond { delay, parts, close } => {
                let at = self.now + self.rtt + delay.unwrap_or_default();
                self.answer = Some(Answer { at, bytes: parts.concat(), close });
            }
        }
    }
}

/// The kinds of the requests the gateway saw, in order.
pub fn kinds(gateway: &FakeGateway) -> Vec<RequestKind> {
    gateway.requests.iter().map(|r| r.kind).collect()
}

/// What an idle session costs and how fast it hears of pushed messages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IdleFigures {
    /// Requests per minute of a session with no traffic at all, after its first minute.
    pub requests_per_minute: f64,
    /// The 95th percentile of the time from a pushed message's arrival at the gateway to its
    /// delivery to the caller, with a message every 7.3 s.
    pub p95_latency: Duration,
    /// The longest such time.
    pub max_latency: Duration,
    /// Pushed messages delivered (all of them, exactly once, or the figures are not taken).
    pub delivered: usize,
}

/// Messages pushed during [`measure_idle`], one every this long (not a multiple of any poll
/// interval, so they land all over the poll cycle).
const PUSH_EVERY: Duration = Duration::from_millis(7_300);
/// The minutes each run of [`measure_idle`] lasts.
const IDLE_MINUTES: u64 = 10;

/// Two ten-minute runs of a session with `config` against a gateway with `script`, answers
/// taking `rtt` each: one with no traffic at all, for the request rate after the first
/// minute; one in which the backend pushes a message every 7.3 s, for their delivery latency.
/// Panics if any message is lost, duplicated or reordered.
pub fn measure_idle(config: ClientConfig, script: Script, rtt: Duration) -> IdleFigures {
    let minutes = Duration::from_secs(60 * IDLE_MINUTES);
    let open = |config: ClientConfig, script: Script| {
        let mut sim = Sim::new(config, Target::notification("messenger.test"), script);
        sim.rtt = rtt;
        sim.send(b"VER 1 MSNP7 CVR0\r\n");
        sim
    };
    let mut quiet = open(config.clone(), script.clone());
    quiet.run_until(minutes);
    let requests = quiet.requests_between(Duration::from_secs(60), minutes);

    let mut sim = open(config, script);
    let mut pushes = Vec::new();
    let mut at = sim.start + Duration::from_secs(1);
    for n in 0.. {
        if at >= sim.start + minutes {
            break;
        }
        let message = format!("NLN {n} user{n}@example.com User\r\n").into_bytes();
        sim.gateway.push_at(at, &message);
        pushes.push((at, message));
        at += PUSH_EVERY;
    }
    sim.run_until(minutes + Duration::from_secs(60));
    let mut expected = b"VER 1 MSNP7 CVR0\r\n".to_vec();
    pushes.iter().for_each(|(_, m)| expected.extend_from_slice(m));
    assert_eq!(sim.received(), expected, "pushed messages lost, duplicated or reordered");
    let mut latencies: Vec<Duration> =
        pushes.iter().map(|(at, m)| sim.delivered_at(m, *at).expect("delivered") - *at).collect();
    latencies.sort();
    let p95 = latencies[(latencies.len() * 95).div_ceil(100) - 1];
    IdleFigures {
        requests_per_minute: requests as f64 / (IDLE_MINUTES - 1) as f64,
        p95_latency: p95,
        max_latency: *latencies.last().expect("messages"),
        delivered: latencies.len(),
    }
}
