//! Load test of the gateway server, on loopback only: how many concurrent polling sessions it
//! holds, how many polls per second it answers, and how much memory each session costs.
//!
//! The gateway runs in a child process of its own (this program, started again with
//! `--role gateway`), so that its resident memory and its open files are its own. This process
//! is the rest: a scripted MSNP server (one TCP connection per session, answering `VER`) and the
//! load generator, which opens every session and then polls them all, round after round, over a
//! few keep-alive HTTP connections (connections are not tied to sessions: each carries the
//! polls of many sessions, one after another). Halfway through, the MSNP server pushes one
//! message to every session, and every one must arrive.
//!
//! ```text
//! cargo run --release -p msn-http-tokio --example gateway_load -- \
//!     --sessions 10000 --connections 128 --seconds 10
//! ```
//!
//! Bounded in count and time; stops by itself. Figures: sessions open at once, polls per
//! second, and the gateway's resident memory (`VmRSS`) growth divided by the sessions.

use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use msn_http_core::Endpoint;
use msn_http_core::gateway::{BackendAllowlist, GatewayConfig};
use msn_http_tokio::gateway::{GatewayServer, random_seed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

const VER: &[u8] = b"VER 1 MSNP8 CVR0\r\n";
const PUSHED: &[u8] = b"MSG Hotmail Hotmail 5\r\nhello";
/// Hard bounds, whatever the arguments say.
const MAX_SESSIONS: usize = 12_000;
const MAX_SECONDS: u64 = 60;
/// The open phase gives up after this long.
const OPEN_LIMIT: Duration = Duration::from_secs(120);

#[derive(Clone, Debug)]
struct Args {
    role: String,
    sessions: usize,
    connections: usize,
    seconds: u64,
    backend: Option<SocketAddr>,
}

fn args() -> Res<Args> {
    let mut args = Args {
        role: "load".into(),
        sessions: 10_000,
        connections: 128,
        seconds: 10,
        backend: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--role" => args.role = value,
            "--sessions" => args.sessions = value.parse()?,
            "--connections" => args.connections = value.parse()?,
            "--seconds" => args.seconds = value.parse()?,
            "--backend" => args.backend = Some(value.parse()?),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    args.sessions = args.sessions.clamp(1, MAX_SESSIONS);
    args.connections = args.connections.clamp(1, args.sessions);
    args.seconds = args.seconds.clamp(1, MAX_SECONDS);
    Ok(args)
}

fn main() -> Res<()> {
    let args = args()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match args.role.as_str() {
        "gateway" => runtime.block_on(gateway(args)),
        _ => runtime.block_on(load(args)),
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway process

async fn gateway(args: Args) -> Res<()> {
    let backend = args.backend.ok_or("--backend is required")?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let route = Endpoint::parse(&backend.to_string(), 1863)?;
    let backends = BackendAllowlist::new().route("messenger.test", None, route);
    let mut config = GatewayConfig::new(addr.to_string(), random_seed()?).with_backends(backends);
    config.max_sessions = args.sessions + 16;
    let server = GatewayServer::from_listener(listener, config)?;

    // Stops when the parent closes our stdin (or dies).
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = stop.send(());
    });
    writeln!(std::io::stdout(), "LISTEN {addr}")?;
    std::io::stdout().flush()?;
    let stats = server
        .run_until(async {
            let _ = stopped.await;
        })
        .await;
    writeln!(
        std::io::stdout(),
        "STATS sessions_opened={} requests={} responses={} errors={} accepted={} backend_connects={} backend_pauses={}",
        stats.core.sessions_opened,
        stats.core.requests,
        stats.core.responses,
        stats.core.error_responses,
        stats.connections_accepted,
        stats.backend_connects,
        stats.core.backend_pauses,
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The MSNP server and the load generator

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> Res<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).ok_or("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).ok_or("bad VmRSS")?.parse()?)
}

/// The CPU time process `pid` has used (user and system), from `/proc/PID/stat` (clock ticks
/// of 10 ms, the value of `CLK_TCK` on Linux).
fn cpu_time(pid: u32) -> Res<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').ok_or("bad stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `fields` starts at field 3.
    let ticks: u64 = fields.get(11).ok_or("no utime")?.parse::<u64>()?
        + fields.get(12).ok_or("no stime")?.parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}

/// Answers `VER` and pushes one message when told; ends when the gateway hangs up.
async fn msnp_connection(mut socket: TcpStream, mut push: watch::Receiver<bool>) {
    let mut buf = [0u8; 256];
    let mut pushed = false;
    for _ in 0..1_000_000 {
        tokio::select! {
            read = socket.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if buf[..n].starts_with(b"VER ") && socket.write_all(VER).await.is_err() {
                    return;
                }
            }
            changed = push.changed(), if !pushed => {
                pushed = true;
                if changed.is_err() || socket.write_all(PUSHED).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn msnp_server(listener: TcpListener, push: watch::Receiver<bool>, sessions: usize) {
    for _ in 0..sessions + 16 {
        let Ok((socket, _)) = listener.accept().await else {
            return;
        };
        let _ = socket.set_nodelay(true);
        tokio::spawn(msnp_connection(socket, push.clone()));
    }
}

/// One keep-alive HTTP connection of the load generator.
struct Conn {
    stream: TcpStream,
    host: String,
    request: Vec<u8>,
    buf: Vec<u8>,
}

/// A response's status, new session ID and body.
struct Answer {
    status: u16,
    session: Option<String>,
    body: Vec<u8>,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> Res<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            host: addr.to_string(),
            request: Vec::with_capacity(256),
            buf: Vec::with_capacity(4096),
        })
    }

    async fn exchange(&mut self, query: &[&str], body: &[u8]) -> Res<Answer> {
        self.request.clear();
        self.request.extend_from_slice(b"POST /gateway/gateway.dll?");
        for part in query {
            self.request.extend_from_slice(part.as_bytes());
        }
        write!(
            self.request,
            " HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        )?;
        self.request.extend_from_slice(body);
        self.stream.write_all(&self.request).await?;
        for _ in 0..10_000 {
            let mut fields = [httparse::EMPTY_HEADER; 8];
            let mut head = httparse::Response::new(&mut fields);
            if let httparse::Status::Complete(len) = head.parse(&self.buf)? {
                let mut body_len = 0;
                let mut session = None;
                for h in head.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        body_len = std::str::from_utf8(h.value)?.parse()?;
                    } else if h.name.eq_ignore_ascii_case("x-msn-messenger") {
                        let value = std::str::from_utf8(h.value)?;
                        session = value
                            .split("SessionID=")
                            .nth(1)
                            .and_then(|rest| rest.split(';').next())
                            .map(str::to_owned);
                    }
                }
                let status = head.code.unwrap_or(0);
                if self.buf.len() >= len + body_len {
                    let body = self.buf[len..len + body_len].to_vec();
                    self.buf.drain(..len + body_len);
                    return Ok(Answer { status, session, body });
                }
            }
            let start = self.buf.len();
            self.buf.resize(start + 4096, 0);
            let n = self.stream.read(&mut self.buf[start..]).await?;
            self.buf.truncate(start + n);
            if n == 0 {
                return Err("the gateway closed a connection".into());
            }
        }
        Err("no whole response".into())
    }
}

/// Opens the sessions of one connection; returns their IDs.
async fn open_sessions(conn: &mut Conn, count: usize) -> Res<Vec<String>> {
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let answer = conn.exchange(&["Action=open&Server=NS&IP=messenger.test"], VER).await?;
        if answer.status != 200 || answer.body != VER {
            return Err(format!("open answered {} {:?}", answer.status, answer.body).into());
        }
        ids.push(answer.session.ok_or("no SessionID")?);
    }
    Ok(ids)
}

/// Polls the sessions of one connection round-robin until `deadline`. Returns the polls made
/// and the pushed messages received.
async fn poll_sessions(conn: &mut Conn, ids: &mut [String], deadline: Instant) -> Res<(u64, u64)> {
    let (mut polls, mut messages) = (0u64, 0u64);
    'rounds: for _ in 0..10_000_000u64 {
        for id in ids.iter_mut() {
            if Instant::now() >= deadline {
                break 'rounds;
            }
            let answer = conn.exchange(&["Action=poll&SessionID=", id], b"").await?;
            if answer.status != 200 {
                return Err(format!("poll answered {}", answer.status).into());
            }
            *id = answer.session.ok_or("no SessionID")?;
            polls += 1;
            if answer.body == PUSHED {
                messages += 1;
            } else if !answer.body.is_empty() {
                return Err(format!("unexpected body {:?}", answer.body).into());
            }
        }
    }
    Ok((polls, messages))
}

/// Ends the child when dropped, whatever happened.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn load(args: Args) -> Res<()> {
    let mut out = std::io::stdout();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let backend = listener.local_addr()?;
    let (push, pushes) = watch::channel(false);
    let server = tokio::spawn(msnp_server(listener, pushes, args.sessions));

    let mut child = Reaper(
        Command::new(std::env::current_exe()?)
            .args(["--role", "gateway", "--backend", &backend.to_string()])
            .args(["--sessions", &args.sessions.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let pid = child.0.id();
    let mut lines = BufReader::new(child.0.stdout.take().ok_or("no stdout")?).lines();
    let first = lines.next().ok_or("the gateway said nothing")??;
    let gw: SocketAddr = first.strip_prefix("LISTEN ").ok_or("no LISTEN line")?.parse()?;

    // Connections first, each used once, so that the baseline holds them.
    let mut conns = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let mut conn = Conn::connect(gw).await?;
        let answer = conn.exchange(&["Action=poll&SessionID=1.1"], b"").await?;
        if answer.status != 400 {
            return Err("an unknown session was not refused".into());
        }
        conns.push(conn);
    }
    let baseline = rss_kib(pid)?;

    // Open every session.
    let started = Instant::now();
    let per_conn = |k: usize| {
        args.sessions / args.connections + usize::from(k < args.sessions % args.connections)
    };
    let mut tasks = Vec::new();
    for (k, mut conn) in conns.into_iter().enumerate() {
        let count = per_conn(k);
        tasks.push(tokio::spawn(async move {
            let ids = open_sessions(&mut conn, count).await.map_err(|e| e.to_string())?;
            Ok::<_, String>((conn, ids))
        }));
    }
    let mut opened = Vec::new();
    for task in tasks {
        let done =
            tokio::time::timeout(OPEN_LIMIT, task).await.map_err(|_| "opening took too long")?;
        opened.push(done??);
    }
    let open_time = started.elapsed();
    let after_open = rss_kib(pid)?;

    // Poll them all; halfway through, the MSNP server pushes one message to each.
    let poll_time = Duration::from_secs(args.seconds);
    let cpu_before = cpu_time(pid)?;
    let started = Instant::now();
    let deadline = started + poll_time;
    let mut tasks = Vec::new();
    for (mut conn, mut ids) in opened {
        tasks.push(tokio::spawn(async move {
            let counts =
                poll_sessions(&mut conn, &mut ids, deadline).await.map_err(|e| e.to_string())?;
            Ok::<_, String>((conn, counts))
        }));
    }
    tokio::time::sleep(poll_time / 2).await;
    push.send_replace(true);
    let mid_rss = rss_kib(pid)?;
    let (mut polls, mut messages) = (0, 0);
    let mut conns = Vec::new();
    for task in tasks {
        let (conn, (p, m)) = task.await??;
        polls += p;
        messages += m;
        conns.push(conn);
    }
    let elapsed = started.elapsed();
    let gateway_cpu = cpu_time(pid)?.saturating_sub(cpu_before);
    let after_poll = rss_kib(pid)?.max(mid_rss);

    // Stop: hang up, close the gateway's stdin, read its last words.
    drop(conns);
    drop(child.0.stdin.take());
    let stats = lines.next().transpose()?.unwrap_or_default();
    let _ = child.0.wait();
    server.abort();

    let grown = after_open.max(after_poll).saturating_sub(baseline);
    let sessions = args.sessions;
    writeln!(out, "gateway_load: loopback, gateway in its own process (pid {pid})")?;
    writeln!(
        out,
        "sessions: {sessions} open at once, over {} keep-alive connections (opened in {:.2} s, {:.0} opens/s)",
        args.connections,
        open_time.as_secs_f64(),
        sessions as f64 / open_time.as_secs_f64()
    )?;
    writeln!(
        out,
        "polls: {polls} in {:.2} s = {:.0} polls/s; pushed messages received: {messages}/{sessions}",
        elapsed.as_secs_f64(),
        polls as f64 / elapsed.as_secs_f64()
    )?;
    writeln!(
        out,
        "gateway CPU while polling: {:.2} s of {:.2} s ({:.1} µs per poll)",
        gateway_cpu.as_secs_f64(),
        elapsed.as_secs_f64(),
        gateway_cpu.as_secs_f64() * 1e6 / polls.max(1) as f64
    )?;
    writeln!(
        out,
        "gateway VmRSS: baseline {baseline} KiB, after opening {after_open} KiB, while polling {after_poll} KiB"
    )?;
    writeln!(
        out,
        "memory per session: {:.2} KiB (RSS growth / sessions, backend connection included)",
        grown as f64 / sessions as f64
    )?;
    writeln!(out, "gateway: {stats}")?;
    if messages != sessions as u64 {
        return Err("not every pushed message arrived".into());
    }
    Ok(())
}
