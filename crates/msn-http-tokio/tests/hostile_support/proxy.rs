//! A fault-injecting TCP proxy between the client and the gateway. Each accepted connection
//! gets a [`Plan`] from a seeded [`Schedule`]: forward faithfully, or drop the connection after
//! N bytes (either direction), stall a request, or answer one with a `5xx` itself. It forwards
//! whole requests and whole responses (it parses both), so it can log exactly what reached the
//! gateway and what reached the client; the tests judge the client's and the backend's
//! outcomes against that log.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Abort, Rng};

/// Connections the proxy takes, at most.
const MAX_CONNECTIONS: usize = 10_000;
/// Reads per message, at most.
const MAX_READS: usize = 100_000;
/// How long a closed connection waits for the client to hang up (it reads what the client
/// still sends meanwhile).
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// What goes wrong on one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Closes the connection once this many client bytes went upstream (over the connection).
    CutUp(u64),
    /// Closes the connection once this many gateway bytes went to the client.
    CutDown(u64),
    /// Holds request number `request` of the connection for `wait` before forwarding it; if the
    /// client hangs up meanwhile, nothing is forwarded.
    Stall {
        request: usize,
        wait: Duration,
    },
    /// Answers request number `request` with `status` itself (keeping the connection); the
    /// gateway never sees it.
    Status {
        request: usize,
        status: u16,
    },
    /// Forwards request number `request` whole, then drops the connection before any byte of
    /// its answer (a cut of the client-to-gateway direction just after that request).
    LoseAnswer {
        request: usize,
    },
}

/// A connection's fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub fault: Fault,
    /// Requests served before the proxy closes the connection (between requests), as proxies
    /// recycle connections; this also makes the client open new ones, which get new plans.
    pub exchanges: usize,
}

/// Draws plans: connection 0 (which carries the open) is always faithful, since a lost
/// answer to the open leaves an orphan gateway session by design; after it, each connection
/// is faulty with even odds until `budget` faults are spent.
pub struct Schedule {
    pub rng: Rng,
    pub budget: usize,
    /// The client's request timeout: short stalls stay under it, long ones pass it.
    pub request_timeout: Duration,
}

impl Schedule {
    pub fn plan(&mut self, index: usize) -> Plan {
        let exchanges = self.rng.range(1, 6) as usize;
        if index == 0 || self.budget == 0 || !self.rng.chance(50) {
            return Plan { fault: Fault::None, exchanges };
        }
        self.budget -= 1;
        let request = self.rng.range(0, exchanges as u64 - 1) as usize;
        // Weighted so that most runs survive their faults: a cut answer (and mostly a lost
        // one) ends the session by design.
        let fault = match self.rng.range(0, 99) {
            0..20 => Fault::CutUp(self.rng.range(1, 600)),
            20..30 => Fault::CutDown(self.rng.range(1, 1500)),
            30..50 => Fault::Stall { request, wait: self.rng.millis(50, 3000) },
            50..65 => Fault::Stall { request, wait: self.request_timeout + Duration::from_secs(2) },
            65..85 => {
                let status = [500, 502, 503, 504][self.rng.range(0, 3) as usize];
                Fault::Status { request, status }
            }
            _ => Fault::LoseAnswer { request },
        };
        Plan { fault, exchanges }
    }
}

/// One request the proxy read from the client, in order.
#[derive(Clone, Debug)]
pub struct Seen {
    pub connection: usize,
    pub body: Vec<u8>,
    /// Every byte of it went to the gateway.
    pub forwarded_whole: bool,
    /// The proxy answered it itself.
    pub proxy_status: Option<u16>,
}

/// A fault that took effect.
#[derive(Clone, Debug)]
pub struct Fired {
    pub connection: usize,
    pub fault: Fault,
    /// What happened, for the report.
    pub what: String,
}

#[derive(Debug, Default)]
pub struct ProxyLog {
    pub plans: Vec<Plan>,
    pub requests: Vec<Seen>,
    /// Faults that took effect.
    pub fired: Vec<Fired>,
    /// Client bytes written to the gateway.
    pub up_forwarded: u64,
    /// Connections doing something other than waiting for the client's next request.
    pub busy: usize,
    /// A request reached the gateway whole and no byte of its answer reached the client: the
    /// gateway may have moved the session ID on, so the client's next request may get `400`.
    pub maybe_lost_response: bool,
    /// Part of an answer reached the client, then the connection was dropped.
    pub cut_response: bool,
}

impl ProxyLog {
    fn fire(&mut self, connection: usize, fault: Fault, what: String) {
        self.fired.push(Fired { connection, fault, what });
    }
}

pub struct FaultProxy {
    log: Arc<Mutex<ProxyLog>>,
    _task: Abort,
}

impl FaultProxy {
    /// A proxy on `listener` in front of `upstream`.
    pub fn start(listener: TcpListener, upstream: SocketAddr, mut schedule: Schedule) -> Self {
        let log = Arc::new(Mutex::new(ProxyLog::default()));
        let shared = Arc::clone(&log);
        let task = tokio::spawn(async move {
            let mut conns = Vec::new();
            for index in 0..MAX_CONNECTIONS {
                let Ok((client, _)) = listener.accept().await else {
                    break;
                };
                let plan = schedule.plan(index);
                shared.lock().unwrap().plans.push(plan);
                let busy = Busy::new(Arc::clone(&shared));
                let task = connection(client, upstream, index, plan, busy);
                conns.push(Abort(tokio::spawn(task)));
            }
            std::future::pending::<()>().await;
        });
        Self { log, _task: Abort(task) }
    }

    pub fn log(&self) -> MutexGuard<'_, ProxyLog> {
        self.log.lock().unwrap()
    }
}

/// Counts a connection as busy while it lives (see [`ProxyLog::busy`]).
struct Busy {
    log: Arc<Mutex<ProxyLog>>,
    counted: bool,
}

impl Busy {
    fn new(log: Arc<Mutex<ProxyLog>>) -> Self {
        log.lock().unwrap().busy += 1;
        Self { log, counted: true }
    }

    fn set(&mut self, busy: bool) {
        if busy != self.counted {
            let mut log = self.log.lock().unwrap();
            if busy {
                log.busy += 1;
            } else {
                log.busy -= 1;
            }
            self.counted = busy;
        }
    }

    fn lock(&self) -> MutexGuard<'_, ProxyLog> {
        self.log.lock().unwrap()
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// A message read off a connection.
struct Message {
    wire: Vec<u8>,
    body_start: usize,
}

async fn connection(
    mut client: TcpStream,
    upstream_addr: SocketAddr,
    index: usize,
    plan: Plan,
    mut busy: Busy,
) {
    let mut cbuf = Vec::new();
    let mut up: Option<(TcpStream, Vec<u8>)> = None;
    let (mut up_sent, mut down_sent) = (0u64, 0u64);
    for number in 0..plan.exchanges {
        busy.set(false);
        let request = read_message(&mut client, &mut cbuf, true).await;
        busy.set(true);
        let Some(request) = request else {
            return;
        };
        let seen = {
            let mut log = busy.lock();
            log.requests.push(Seen {
                connection: index,
                body: request.wire[request.body_start..].to_vec(),
                forwarded_whole: false,
                proxy_status: None,
            });
            log.requests.len() - 1
        };
        match plan.fault {
            Fault::Status { request: r, status } if r == number => {
                let answer = format!("HTTP/1.1 {status} Proxy Fault\r\nContent-Length: 0\r\n\r\n");
                {
                    let mut log = busy.lock();
                    log.requests[seen].proxy_status = Some(status);
                    log.fire(index, plan.fault, format!("answered {status}"));
                }
                if client.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                continue;
            }
            Fault::Stall { request: r, wait } if r == number => {
                let gone = tokio::select! {
                    () = tokio::time::sleep(wait) => false,
                    () = client_gone(&mut client, &mut cbuf) => true,
                };
                let what = format!("stalled {wait:?}, client gone: {gone}");
                busy.lock().fire(index, plan.fault, what);
                if gone {
                    return;
                }
            }
            _ => {}
        }
        if up.is_none() {
            match TcpStream::connect(upstream_addr).await {
                Ok(stream) => up = Some((stream, Vec::new())),
                Err(_) => return,
            }
        }
        let Some((upstream, ubuf)) = up.as_mut() else {
            return;
        };
        let len = request.wire.len() as u64;
        let n = match plan.fault {
            Fault::CutUp(after) => after.saturating_sub(up_sent).min(len),
            _ => len,
        };
        if upstream.write_all(&request.wire[..n as usize]).await.is_err() {
            return;
        }
        up_sent += n;
        {
            let mut log = busy.lock();
            log.up_forwarded += n;
            log.requests[seen].forwarded_whole = n == len;
        }
        let lose = matches!(plan.fault, Fault::LoseAnswer { request: r } if r == number);
        if lose || matches!(plan.fault, Fault::CutUp(after) if up_sent >= after) {
            {
                let mut log = busy.lock();
                let what = match lose {
                    true => format!("dropped before the answer to a {len}-byte request"),
                    false => format!("cut after {n} of {len} request bytes"),
                };
                log.fire(index, plan.fault, what);
                // The gateway has the request whole: its answer will be lost.
                log.maybe_lost_response |= n == len;
            }
            return close(client, up, cbuf, index, &busy).await;
        }
        let response = tokio::select! {
            response = read_message(upstream, ubuf, false) => response,
            () = client_gone(&mut client, &mut cbuf) => None,
        };
        let Some(response) = response else {
            busy.lock().maybe_lost_response = true;
            return;
        };
        let len = response.wire.len() as u64;
        let m = match plan.fault {
            Fault::CutDown(after) => after.saturating_sub(down_sent).min(len),
            _ => len,
        };
        if client.write_all(&response.wire[..m as usize]).await.is_err() {
            busy.lock().maybe_lost_response = true;
            return;
        }
        down_sent += m;
        if m < len {
            {
                let mut log = busy.lock();
                log.fire(index, plan.fault, format!("cut after {m} of {len} response bytes"));
                log.maybe_lost_response |= m == 0;
                log.cut_response |= m > 0;
            }
            return close(client, up, cbuf, index, &busy).await;
        }
    }
    close(client, up, cbuf, index, &busy).await;
}

/// Drops the connection: the gateway side at once, then the client side with a FIN, reading
/// (and logging, never forwarding) what the client still sends until it hangs up.
async fn close(
    mut client: TcpStream,
    up: Option<(TcpStream, Vec<u8>)>,
    mut cbuf: Vec<u8>,
    index: usize,
    busy: &Busy,
) {
    drop(up);
    let _ = client.shutdown().await;
    let drain = async {
        for _ in 0..MAX_READS {
            while let Some(request) = parse_message(&mut cbuf, true) {
                busy.lock().requests.push(Seen {
                    connection: index,
                    body: request.wire[request.body_start..].to_vec(),
                    forwarded_whole: false,
                    proxy_status: None,
                });
            }
            let mut chunk = [0u8; 4096];
            match client.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => cbuf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_LIMIT, drain).await;
}

/// Resolves when the client hangs up; bytes it sends meanwhile are kept.
async fn client_gone(client: &mut TcpStream, cbuf: &mut Vec<u8>) {
    for _ in 0..MAX_READS {
        let mut chunk = [0u8; 4096];
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => cbuf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads one whole request or response (`Content-Length` bodies only, which is all the client
/// and the gateway send); `None` at EOF.
async fn read_message(stream: &mut TcpStream, buf: &mut Vec<u8>, request: bool) -> Option<Message> {
    for _ in 0..MAX_READS {
        if let Some(message) = parse_message(buf, request) {
            return Some(message);
        }
        let mut chunk = [0u8; 16 * 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    None
}

fn parse_message(buf: &mut Vec<u8>, request: bool) -> Option<Message> {
    let (head, body) = message_len(buf, request)?;
    if buf.len() < head + body {
        return None;
    }
    let wire: Vec<u8> = buf.drain(..head + body).collect();
    Some(Message { wire, body_start: head })
}

/// The head and body lengths of the message at the front of `buf`, once its head is whole.
fn message_len(buf: &[u8], request: bool) -> Option<(usize, usize)> {
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let length = |headers: &[httparse::Header<'_>]| -> usize {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map_or(0, |h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
    };
    if request {
        let mut parsed = httparse::Request::new(&mut fields);
        match parsed.parse(buf).expect("the client sends valid requests") {
            httparse::Status::Complete(head) => Some((head, length(parsed.headers))),
            httparse::Status::Partial => None,
        }
    } else {
        let mut parsed = httparse::Response::new(&mut fields);
        match parsed.parse(buf).expect("the gateway sends valid responses") {
            httparse::Status::Complete(head) => Some((head, length(parsed.headers))),
            httparse::Status::Partial => None,
        }
    }
}
