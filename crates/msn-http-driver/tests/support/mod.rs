//! Test partners for the driver on its own: an in-memory [`Runtime`] whose "network" is the
//! fake gateway's answer logic, called synchronously on every write, and a one-thread executor
//! that moves the virtual clock to the next timer whenever nothing else can run — like tokio's
//! paused clock, but exact: with no real I/O, "nothing can run" is known for sure.
#![allow(dead_code, unreachable_pub)]

pub use msn_http_testkit::expect::*;
pub use msn_http_testkit::{clock, *};

use std::future::{Future, pending, poll_fn};
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

pub use clock::Clock;
use msn_http_driver::Runtime;

/// Polls before a test is failed as a livelock.
const MAX_POLLS: usize = 1_000_000;

/// Runs `fut` on this thread. Whenever it is pending with nothing woken, the clock jumps to
/// the earliest sleeper's deadline; with no sleeper either, the test is stuck and fails.
pub fn run<T>(clock: &Clock, fut: impl Future<Output = T>) -> T {
    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    for _ in 0..MAX_POLLS {
        flag.0.store(false, Ordering::SeqCst);
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        if !flag.0.load(Ordering::SeqCst) {
            match clock.earliest_deadline() {
                Some(at) => clock.advance_to(at),
                None => panic!("stuck: nothing can wake the test"),
            }
        }
    }
    panic!("still running after {MAX_POLLS} polls");
}

/// What the in-memory network records and how it misbehaves.
#[derive(Default)]
pub struct NetState {
    pub gateway: FakeGateway,
    /// The `host:port` destinations that accept connections: gateway listener 0, 1...
    pub hosts: Vec<String>,
    /// Connections accepted, per host.
    pub accepted: Vec<usize>,
    /// Every connect attempt: destination, and virtual time since the start.
    pub connects: Vec<(String, Duration)>,
    /// Connect attempts (0-based) that never complete.
    pub hanging_connects: Vec<usize>,
    /// Writes (0-based) that never complete, and deliver nothing.
    pub hanging_writes: Vec<usize>,
    writes: usize,
    /// Every sleep the driver started: since the start, when, and until when.
    pub sleeps: Vec<(Duration, Duration)>,
}

/// The in-memory network, shared by the runtime and the test.
pub struct Net {
    pub clock: Arc<Clock>,
    start: Instant,
    state: Mutex<NetState>,
}

impl Net {
    pub fn new(clock: &Arc<Clock>, script: Script, hosts: &[&str]) -> Arc<Self> {
        Arc::new(Self {
            clock: Arc::clone(clock),
            start: clock.now(),
            state: Mutex::new(NetState {
                gateway: FakeGateway::new(script),
                hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
                accepted: vec![0; hosts.len()],
                ..NetState::default()
            }),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().unwrap()
    }

    fn since_start(&self, at: Instant) -> Duration {
        at - self.start
    }
}

/// One in-memory connection.
pub struct MemStream {
    pipe: Arc<Mutex<Pipe>>,
}

struct Pipe {
    listener: usize,
    connection: usize,
    /// Request bytes not yet parsed.
    inbound: Vec<u8>,
    /// Response bytes not yet read.
    outbound: Vec<u8>,
    /// The gateway closed the connection (after `outbound`).
    closed: bool,
    reader: Option<Waker>,
}

/// The [`Runtime`] over [`Net`].
#[derive(Clone)]
pub struct Memory(pub Arc<Net>);

impl Runtime for Memory {
    type Stream = MemStream;

    fn now(&self) -> Instant {
        self.0.clock.now()
    }

    async fn connect(&self, host: &str, port: u16) -> io::Result<MemStream> {
        let destination = format!("{host}:{port}");
        let (hang, listener) = {
            let mut net = self.0.lock();
            let attempt = net.connects.len();
            let at = self.0.since_start(self.0.clock.now());
            net.connects.push((destination.clone(), at));
            let listener = net.hosts.iter().position(|h| *h == destination);
            (net.hanging_connects.contains(&attempt), listener)
        };
        if hang {
            pending::<()>().await;
        }
        let listener = listener.ok_or(io::ErrorKind::ConnectionRefused)?;
        let connection = {
            let mut net = self.0.lock();
            net.accepted[listener] += 1;
            net.accepted[listener] - 1
        };
        Ok(MemStream {
            pipe: Arc::new(Mutex::new(Pipe {
                listener,
                connection,
                inbound: Vec::new(),
                outbound: Vec::new(),
                closed: false,
                reader: None,
            })),
        })
    }

    async fn write_all(&self, stream: &mut MemStream, buf: &[u8]) -> io::Result<()> {
        let hang = {
            let mut net = self.0.lock();
            net.writes += 1;
            net.hanging_writes.contains(&(net.writes - 1))
        };
        if hang {
            pending::<()>().await;
        }
        let mut net = self.0.lock();
        let mut pipe = stream.pipe.lock().unwrap();
        if pipe.closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        pipe.inbound.extend_from_slice(buf);
        loop {
            match parse_request(&mut pipe.inbound) {
                Parsed::Partial => break,
                Parsed::Invalid => {
                    pipe.closed = true;
                    break;
                }
                Parsed::Request(request) => {
                    let now = self.0.clock.now();
                    match net.gateway.handle(now, pipe.listener, pipe.connection, &request) {
                        // Answered or not, a stalled connection takes no further request.
                        Plan::Stall => break,
                        Plan::Hold { .. } => panic!("no held polls in memory"),
                        Plan::Respond { delay, parts, close } => {
                            assert!(delay.is_none(), "no delays in memory");
                            pipe.outbound.extend(parts.concat());
                            pipe.closed |= close;
                        }
                    }
                }
            }
        }
        if let Some(reader) = pipe.reader.take() {
            reader.wake();
        }
        Ok(())
    }

    async fn read(&self, stream: &mut MemStream, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| {
            let mut pipe = stream.pipe.lock().unwrap();
            if !pipe.outbound.is_empty() {
                let n = buf.len().min(pipe.outbound.len());
                buf[..n].copy_from_slice(&pipe.outbound[..n]);
                pipe.outbound.drain(..n);
                return Poll::Ready(Ok(n));
            }
            if pipe.closed {
                return Poll::Ready(Ok(0));
            }
            pipe.reader = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send {
        let now = self.0.clock.now();
        let entry = (self.0.since_start(now), self.0.since_start(deadline));
        self.0.lock().sleeps.push(entry);
        self.0.clock.sleep_until(deadline)
    }
}
