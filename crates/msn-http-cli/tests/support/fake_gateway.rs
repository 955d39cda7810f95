//! The testkit's fake gateway (an echoing MSNP backend behind a scriptable gateway with the
//! quirks of the field) behind a loopback HTTP server on real time, for tests of the binary.
//! Each open request starts a session with a fake gateway of its own; the session IDs it hands
//! out are prefixed with the session's number, so the relay's NS and SB sessions each reach
//! their own backend. Also: a listener that accepts and never answers (a raw MSNP server).
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use msn_http_testkit::{
    FakeGateway, MAX_CONNECTIONS, MAX_READS_PER_MESSAGE, MAX_REQUESTS_PER_CONNECTION, Parsed, Plan,
    RawRequest, Script, parse_request,
};

/// How long a connection may sit without a request before the server drops it.
const IDLE_CONNECTION: Duration = Duration::from_secs(60);
/// How often a held poll looks for data (real time).
const HOLD_STEP: Duration = Duration::from_millis(10);

/// The fake gateway's sessions, in the order they were opened.
pub struct GatewayServer {
    pub addr: SocketAddr,
    sessions: Arc<Mutex<Vec<FakeGateway>>>,
}

impl GatewayServer {
    /// Serves `script` (for every session) on a free `127.0.0.1` port.
    pub fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake gateway");
        let addr = listener.local_addr().expect("fake gateway address");
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&sessions);
        std::thread::spawn(move || {
            for _ in 0..MAX_CONNECTIONS {
                let Ok((conn, _)) = listener.accept() else { break };
                let (shared, script) = (Arc::clone(&shared), script.clone());
                std::thread::spawn(move || serve(conn, &shared, &script));
            }
        });
        Self { addr, sessions }
    }

    /// The URL to give `--gateway`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The sessions, each with its requests and what its backend processed.
    pub fn sessions(&self) -> MutexGuard<'_, Vec<FakeGateway>> {
        self.sessions.lock().unwrap()
    }
}

/// Serves one connection until the client closes it, a fault ends it, or it idles out.
fn serve(mut conn: TcpStream, sessions: &Mutex<Vec<FakeGateway>>, script: &Script) {
    conn.set_read_timeout(Some(IDLE_CONNECTION)).expect("read timeout");
    let mut buf = Vec::new();
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let Some(request) = read_request(&mut conn, &mut buf) else { return };
        let Some((session, plan)) = route(sessions, script, request) else {
            let refused = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
            if conn.write_all(refused).is_err() {
                return;
            }
            continue;
        };
        let plan = match plan {
            Plan::Hold { until } => released(sessions, session, until),
            plan => plan,
        };
        match plan {
            Plan::Respond { delay, parts, close } => {
                if let Some(delay) = delay {
                    std::thread::sleep(delay);
                }
                let wire = with_session_number(parts.concat(), session);
                if conn.write_all(&wire).is_err() || close {
                    return;
                }
            }
            // Answered or not, a stalled connection takes no further request.
            Plan::Stall | Plan::Hold { .. } => return hold_until_closed(&mut conn),
        }
    }
}

/// The session a request belongs to (a new one for an open) and what its gateway answers;
/// `None` for a session ID no session handed out.
fn route(
    sessions: &Mutex<Vec<FakeGateway>>,
    script: &Script,
    mut request: RawRequest,
) -> Option<(usize, Plan)> {
    let mut sessions = sessions.lock().unwrap();
    let session = match request.param("Action").as_deref() {
        Some("open") => {
            sessions.push(FakeGateway::new(script.clone()));
            sessions.len() - 1
        }
        _ => {
            let id = request.param("SessionID")?;
            let (number, original) = id.split_once('-')?;
            let session: usize = number.strip_prefix('s')?.parse().ok()?;
            request.target = request
                .target
                .replace(&format!("SessionID={id}"), &format!("SessionID={original}"));
            session
        }
    };
    let gateway = sessions.get_mut(session)?;
    Some((session, gateway.handle(Instant::now(), 0, 0, &request)))
}

/// The answer to a held poll of `session`, once data is queued or `until` has passed.
fn released(sessions: &Mutex<Vec<FakeGateway>>, session: usize, until: Instant) -> Plan {
    for _ in 0..MAX_READS_PER_MESSAGE {
        if let Some(plan) = sessions.lock().unwrap()[session].release(Instant::now()) {
            return plan;
        }
        std::thread::sleep(HOLD_STEP.min(until.saturating_duration_since(Instant::now())));
    }
    Plan::Stall
}

/// `wire` with the session IDs in its heads (`SessionID=<id>`) prefixed `s<session>-`.
fn with_session_number(wire: Vec<u8>, session: usize) -> Vec<u8> {
    let marker = b"SessionID=";
    let Some(at) = wire.windows(marker.len()).position(|w| w == marker) else { return wire };
    let head_end = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(wire.len());
    if at > head_end {
        return wire;
    }
    let at = at + marker.len();
    let mut out = wire[..at].to_vec();
    out.extend_from_slice(format!("s{session}-").as_bytes());
    out.extend_from_slice(&wire[at..]);
    out
}

fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<RawRequest> {
    for _ in 0..MAX_READS_PER_MESSAGE {
        match parse_request(buf) {
            Parsed::Request(request) => return Some(request),
            Parsed::Invalid => return None,
            Parsed::Partial => {}
        }
        let mut chunk = [0u8; 4096];
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    None
}

fn hold_until_closed(conn: &mut TcpStream) {
    let mut sink = [0u8; 1024];
    for _ in 0..MAX_READS_PER_MESSAGE {
        if matches!(conn.read(&mut sink), Ok(0) | Err(_)) {
            return;
        }
    }
}

/// A TCP listener that accepts connections and never answers, as a raw MSNP server treats
/// HTTP: it counts the connections and the bytes it was sent.
pub struct RawServer {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
}

impl RawServer {
    /// Listens on `addr` (a loopback address; port 0 for any).
    pub fn start(addr: &str) -> Self {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let local = listener.local_addr().expect("local address");
        let (accepted, bytes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (count, sink) = (Arc::clone(&accepted), Arc::clone(&bytes));
        std::thread::spawn(move || {
            for _ in 0..MAX_CONNECTIONS {
                let Ok((mut conn, _)) = listener.accept() else { break };
                count.fetch_add(1, Ordering::SeqCst);
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || {
                    conn.set_read_timeout(Some(IDLE_CONNECTION)).expect("read timeout");
                    let mut buf = [0u8; 1024];
                    for _ in 0..MAX_READS_PER_MESSAGE {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => sink.fetch_add(n, Ordering::SeqCst),
                        };
                    }
                });
            }
        });
        Self { addr: local, accepted, bytes }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Bytes received so far, all connections together.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::SeqCst)
    }
}
