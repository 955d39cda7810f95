//! A malicious gateway: it reads each request, then answers with something endless (a body, a
//! header, chunks, interim `100 Continue`s) or with nothing at all. It writes until the client
//! hangs up (or a generous byte cap), so what bounds the exchange is the client's limits.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Abort;

/// Bytes one attack writes at most (far more than any client limit in the tests).
const MAX_ATTACK_BYTES: u64 = 256 * 1024 * 1024;
/// Connections the gateway takes, at most.
const MAX_CONNECTIONS: usize = 64;
/// Reads while waiting for a request or for the client to hang up, at most.
const MAX_READS: usize = 100_000;

/// The command the endless bodies repeat: 31 bytes, so limits cut it in the middle.
pub const ILN: &[u8] = b"ILN 0 NLN bob@example.com Bob\r\n";

/// How the gateway answers every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// A `200` announcing a terabyte body, then commands forever.
    HugeContentLength,
    /// An `HTTP/1.0` `200` without a length (ends at close), then commands forever.
    EndlessCloseDelimited,
    /// A chunked `200`, then 1000-byte chunks of commands forever.
    EndlessChunks,
    /// A chunked `200`, then a chunk-size line that never ends.
    EndlessChunkLine,
    /// A status line, then a header line that never ends.
    EndlessHeaderLine,
    /// A status line, then short header fields forever.
    EndlessHeaderFields,
    /// `100 Continue` heads forever, one per `every`.
    EndlessContinue { every: Duration },
    /// `100 Continue` heads forever, as fast as the socket takes them.
    ContinueFlood,
    /// Reads the request and never answers.
    Silent,
    /// A `200` head and 11 of its 100 body bytes, then silence.
    StallMidBody,
}

#[derive(Debug, Default)]
pub struct EvilLog {
    pub connections: usize,
    pub requests: usize,
    /// Attack bytes written.
    pub written: u64,
    /// Connections the client closed while under attack.
    pub closed_by_client: usize,
}

pub struct EvilGateway {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<EvilLog>>,
    _task: Abort,
}

impl EvilGateway {
    pub async fn start(attack: Attack) -> EvilGateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the evil gateway");
        let addr = listener.local_addr().expect("its address");
        let log = Arc::new(Mutex::new(EvilLog::default()));
        let shared = Arc::clone(&log);
        let task = tokio::spawn(async move {
            let mut conns = Vec::new();
            for _ in 0..MAX_CONNECTIONS {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                shared.lock().unwrap().connections += 1;
                conns.push(Abort(tokio::spawn(serve(stream, addr, attack, Arc::clone(&shared)))));
            }
            std::future::pending::<()>().await;
        });
        EvilGateway { addr, log, _task: Abort(task) }
    }

    pub fn log(&self) -> std::sync::MutexGuard<'_, EvilLog> {
        self.log.lock().unwrap()
    }
}

async fn serve(mut stream: TcpStream, own: SocketAddr, attack: Attack, log: Arc<Mutex<EvilLog>>) {
    let mut buf = Vec::new();
    if !read_request(&mut stream, &mut buf).await {
        return;
    }
    log.lock().unwrap().requests += 1;
    let messenger = format!("X-MSN-Messenger: SessionID=1.1; GW-IP={own}\r\n");
    let head = |status_line: &str, rest: &str| format!("{status_line}\r\n{messenger}{rest}\r\n");
    let (start, repeat): (String, Vec<u8>) = match attack {
        Attack::HugeContentLength => {
            (head("HTTP/1.1 200 OK", "Content-Length: 1000000000000\r\n"), ILN.repeat(64))
        }
        Attack::EndlessCloseDelimited => (head("HTTP/1.0 200 OK", ""), ILN.repeat(64)),
        Attack::EndlessChunks => {
            // 31 chunks of 1000 bytes carry exactly 1000 commands: the stream loops seamlessly.
            let stream = ILN.repeat(1000);
            let mut chunks = Vec::new();
            for piece in stream.chunks(1000) {
                chunks.extend_from_slice(b"3e8\r\n");
                chunks.extend_from_slice(piece);
                chunks.extend_from_slice(b"\r\n");
            }
            (head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked\r\n"), chunks)
        }
        Attack::EndlessChunkLine => {
            let start = head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked\r\n") + "1;ext=";
            (start, vec![b'x'; 1024])
        }
        Attack::EndlessHeaderLine => ("HTTP/1.1 200 OK\r\nX-Junk: ".to_owned(), vec![b'a'; 1024]),
        Attack::EndlessHeaderFields => {
            ("HTTP/1.1 200 OK\r\n".to_owned(), b"X-A: b\r\n".repeat(128))
        }
        Attack::EndlessContinue { every } => {
            return paced(stream, b"HTTP/1.1 100 Continue\r\n\r\n", every, &log).await;
        }
        Attack::ContinueFlood => (String::new(), b"HTTP/1.1 100 Continue\r\n\r\n".repeat(64)),
        Attack::Silent => return hold(stream, &log).await,
        Attack::StallMidBody => {
            let start = head("HTTP/1.1 200 OK", "Content-Length: 100\r\n") + "VER 1 MSNP8";
            if stream.write_all(start.as_bytes()).await.is_ok() {
                log.lock().unwrap().written += start.len() as u64;
            }
            return hold(stream, &log).await;
        }
    };
    if stream.write_all(start.as_bytes()).await.is_err() {
        return;
    }
    let mut written = start.len() as u64;
    let mut hung_up = false;
    while written < MAX_ATTACK_BYTES && !hung_up {
        hung_up = stream.write_all(&repeat).await.is_err();
        written += u64::from(!hung_up) * repeat.len() as u64;
    }
    // One update, so a reader never sees the hang-up without the bytes.
    let mut log = log.lock().unwrap();
    log.written += written;
    log.closed_by_client += usize::from(hung_up);
}

/// Writes `bytes` every `every` until the client hangs up.
async fn paced(mut stream: TcpStream, bytes: &[u8], every: Duration, log: &Mutex<EvilLog>) {
    let mut sink = [0u8; 1024];
    for _ in 0..MAX_READS {
        tokio::select! {
            read = stream.read(&mut sink) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            () = tokio::time::sleep(every) => {
                if stream.write_all(bytes).await.is_err() {
                    break;
                }
                log.lock().unwrap().written += bytes.len() as u64;
            }
        }
    }
    log.lock().unwrap().closed_by_client += 1;
}

/// Holds the connection, answering nothing, until the client hangs up.
async fn hold(mut stream: TcpStream, log: &Mutex<EvilLog>) {
    let mut sink = [0u8; 1024];
    for _ in 0..MAX_READS {
        match stream.read(&mut sink).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    log.lock().unwrap().closed_by_client += 1;
}

/// Reads one request (head and `Content-Length` body); false at EOF or on garbage.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    for _ in 0..MAX_READS {
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut fields);
        match request.parse(buf) {
            Ok(httparse::Status::Complete(head)) => {
                let body: usize = request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                    .unwrap_or(0);
                if buf.len() >= head + body {
                    buf.drain(..head + body);
                    return true;
                }
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => return false,
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    false
}
