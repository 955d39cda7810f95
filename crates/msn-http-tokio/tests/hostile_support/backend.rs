//! A scripted TCP MSNP server: answers `VER`, hangs up on `OUT`, and otherwise sends what its
//! script says (on demand, as a paced stream, or as a flood as fast as the socket takes it).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

use super::{Abort, VER};

/// Connections one backend takes, at most.
const MAX_CONNECTIONS: usize = 64;
/// Reads per connection, at most.
const MAX_READS: usize = 1_000_000;
/// Length of a flood command's payload.
const FLOOD_PAYLOAD: usize = 1000;

/// What the backend sends after answering `VER`.
#[derive(Clone)]
pub enum Script {
    /// What [`Backend::push`] is given.
    Interactive,
    /// Each command after its gap; then nothing (until `OUT`).
    Stream(Arc<Vec<(Duration, Vec<u8>)>>),
    /// `count` [`flood_command`]s as fast as the socket takes them, then a hang-up.
    Flood { count: u64 },
}

/// Flood command number `i`: a `MSG` with a 1000-byte payload that names `i`.
pub fn flood_command(i: u64) -> Vec<u8> {
    let mut command = format!("MSG Hotmail Hotmail {FLOOD_PAYLOAD}\r\n#{i:010}|").into_bytes();
    let filler = (0..FLOOD_PAYLOAD - 12).map(|k| b'a' + ((i * 31 + k as u64 * 7) % 26) as u8);
    command.extend(filler);
    command
}

/// What one backend connection saw and did.
#[derive(Default)]
pub struct ConnLog {
    pub received: Vec<u8>,
    /// Bytes written to the gateway.
    pub written: u64,
    /// The connection is over (`OUT`, or the gateway closed it).
    pub ended: bool,
    push: Option<mpsc::UnboundedSender<Vec<u8>>>,
}

pub struct Backend {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<ConnLog>>>,
    _task: Abort,
}

impl Backend {
    pub async fn start(script: Script) -> Backend {
        Self::start_with(script, None).await
    }

    /// With a send buffer of `send_buffer` bytes per connection (the kernel's default grows to
    /// megabytes, which would hide backpressure).
    pub async fn start_with(script: Script, send_buffer: Option<u32>) -> Backend {
        let socket = TcpSocket::new_v4().expect("a socket");
        if let Some(size) = send_buffer {
            socket.set_send_buffer_size(size).expect("a send buffer size");
        }
        socket.bind("127.0.0.1:0".parse().expect("an address")).expect("bind the backend");
        let listener = socket.listen(64).expect("listen");
        let addr = listener.local_addr().expect("backend address");
        let log = Arc::new(Mutex::new(Vec::<ConnLog>::new()));
        let shared = Arc::clone(&log);
        let task = tokio::spawn(async move {
            let mut conns = Vec::new();
            for index in 0..MAX_CONNECTIONS {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                shared.lock().unwrap().push(ConnLog::default());
                let task = serve(stream, index, script.clone(), Arc::clone(&shared));
                conns.push(Abort(tokio::spawn(task)));
            }
            // The connections live until the backend is dropped.
            std::future::pending::<()>().await;
        });
        Backend { addr, log, _task: Abort(task) }
    }

    pub fn lock(&self) -> MutexGuard<'_, Vec<ConnLog>> {
        self.log.lock().unwrap()
    }

    pub fn connections(&self) -> usize {
        self.lock().len()
    }

    pub fn received(&self, index: usize) -> Vec<u8> {
        self.lock().get(index).map(|c| c.received.clone()).unwrap_or_default()
    }

    pub fn received_len(&self, index: usize) -> usize {
        self.lock().get(index).map_or(0, |c| c.received.len())
    }

    pub fn written(&self, index: usize) -> u64 {
        self.lock().get(index).map_or(0, |c| c.written)
    }

    pub fn ended(&self, index: usize) -> bool {
        self.lock().get(index).is_some_and(|c| c.ended)
    }

    /// Sends `bytes` on connection `index` ([`Script::Interactive`]).
    pub fn push(&self, index: usize, bytes: &[u8]) {
        let log = self.lock();
        let push = log[index].push.as_ref().expect("an interactive connection");
        push.send(bytes.to_vec()).expect("the connection is alive");
    }
}

async fn serve(stream: TcpStream, index: usize, script: Script, log: Arc<Mutex<Vec<ConnLog>>>) {
    let (read, write) = stream.into_split();
    let (push, pushed) = mpsc::unbounded_channel();
    log.lock().unwrap()[index].push = Some(push);
    let (ver_seen, ver) = watch::channel(false);
    let writer = Abort(tokio::spawn(send(write, index, script, pushed, ver, Arc::clone(&log))));
    receive(read, index, &ver_seen, &log).await;
    log.lock().unwrap()[index].ended = true;
    // Aborting the writer drops its half too: the connection is closed.
    drop(writer);
}

/// Logs what arrives; answers `VER` (through the writer); returns on `OUT` or EOF.
async fn receive(
    mut read: OwnedReadHalf,
    index: usize,
    ver_seen: &watch::Sender<bool>,
    log: &Mutex<Vec<ConnLog>>,
) {
    let mut line = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    for _ in 0..MAX_READS {
        let n = match read.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        log.lock().unwrap()[index].received.extend_from_slice(&chunk[..n]);
        // Test payloads are lowercase, so a line is `VER`/`OUT` only when it is a command.
        for &byte in &chunk[..n] {
            line.push(byte);
            if byte != b'\n' {
                if line.len() > 64 {
                    line.clear();
                }
                continue;
            }
            if line.starts_with(b"VER ") {
                let _ = ver_seen.send(true);
            }
            if line == b"OUT\r\n" {
                return;
            }
            line.clear();
        }
    }
}

/// Writes per the script once `VER` was seen (aborted when the connection ends).
async fn send(
    mut write: OwnedWriteHalf,
    index: usize,
    script: Script,
    mut pushed: mpsc::UnboundedReceiver<Vec<u8>>,
    mut ver: watch::Receiver<bool>,
    log: Arc<Mutex<Vec<ConnLog>>>,
) {
    if ver.wait_for(|seen| *seen).await.is_err() {
        return;
    }
    let count = |n: usize| log.lock().unwrap()[index].written += n as u64;
    if write.write_all(VER).await.is_err() {
        return;
    }
    count(VER.len());
    match script {
        Script::Interactive => {
            while let Some(bytes) = pushed.recv().await {
                if write.write_all(&bytes).await.is_err() {
                    return;
                }
                count(bytes.len());
            }
        }
        Script::Stream(commands) => {
            for (gap, command) in commands.iter() {
                tokio::time::sleep(*gap).await;
                if write.write_all(command).await.is_err() {
                    return;
                }
                count(command.len());
            }
            // Then nothing, until the connection ends.
            std::future::pending::<()>().await;
        }
        Script::Flood { count: total } => {
            // Partial writes are counted, so `written` says exactly how far the flood got.
            let mut next = 0;
            let mut buf = Vec::new();
            while next < total || !buf.is_empty() {
                while buf.len() < 32 * 1024 && next < total {
                    buf.extend(flood_command(next));
                    next += 1;
                }
                match write.write(&buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        buf.drain(..n);
                        count(n);
                    }
                }
            }
            // The flood is over: hang up (the gateway then ends the session).
        }
    }
}
