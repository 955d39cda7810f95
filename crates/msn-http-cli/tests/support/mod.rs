//! Helpers for the tests that run the real `msn-http` binary: long-running children that are
//! killed on every path, bounded line reads, a raw MSNP client and raw HTTP, all on loopback.
#![allow(dead_code, unreachable_pub)]

pub mod fake_gateway;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use msn_http_core::msnp::{
    CommandFramer, FramerLimits, OwnedCommand, PayloadCommands, md5_login_response,
};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_msn-http")
}

/// A one-shot run of the binary, bounded in time.
pub fn run(args: &[&str]) -> assert_cmd::assert::Assert {
    assert_cmd::Command::new(bin()).args(args).timeout(Duration::from_secs(120)).assert()
}

/// A child process killed (and reaped) when dropped, whatever happened in the test.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
    /// The thread collecting its stderr lines, when captured
    /// ([`Running::start_capturing_stderr`]).
    stderr: Option<JoinHandle<Vec<String>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Starts `msn-http args...`, reading its stdout line by line (stderr is the test's).
    pub fn start(args: &[&str]) -> Self {
        Self::spawn(args, false)
    }

    /// Like [`Running::start`], and keeps the stderr lines for [`Running::stop_for_stderr`].
    pub fn start_capturing_stderr(args: &[&str]) -> Self {
        Self::spawn(args, true)
    }

    fn spawn(args: &[&str], capture_stderr: bool) -> Self {
        let mut child = Command::new(bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if capture_stderr { Stdio::piped() } else { Stdio::inherit() })
            .spawn()
            .expect("start msn-http");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().map(|stderr| {
            std::thread::spawn(move || {
                BufReader::new(stderr).lines().map_while(Result::ok).collect()
            })
        });
        Self { child, lines, seen: Vec::new(), stderr }
    }

    /// Stops the process and returns every line it wrote to stderr (which must be captured).
    pub fn stop_for_stderr(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr.take().expect("stderr captured").join().expect("the stderr reader")
    }

    /// The file descriptors the process holds open now (Linux: `/proc/PID/fd`).
    pub fn open_fds(&self) -> usize {
        let dir = format!("/proc/{}/fd", self.child.id());
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")).count()
    }

    /// The first line (from now) that contains `needle`, within 20 s.
    pub fn line_with(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; output so far: {:#?}", self.seen),
            }
        }
    }
}

/// The word after `marker` in `line`.
pub fn word_after(line: &str, marker: &str) -> String {
    let at = line.find(marker).unwrap_or_else(|| panic!("{marker:?} not in {line:?}"));
    line[at + marker.len()..].split([' ', ',', ';']).next().unwrap_or_default().to_owned()
}

/// `msn-http gateway` on a free loopback port with `extra` flags: the child and its URL.
pub fn gateway(extra: &[&str]) -> (Running, String) {
    let mut args = vec!["gateway", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut gateway = Running::start(&args);
    let url = word_after(&gateway.line_with("listening on "), "listening on ");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    (gateway, url)
}

/// `msn-http gateway --builtin` on a free loopback port: the child, the gateway URL, and the
/// built-in switchboard's address.
pub fn builtin_gateway(extra: &[&str]) -> (Running, String, String) {
    let mut args = vec!["--builtin"];
    args.extend_from_slice(extra);
    let (mut gateway, url) = gateway(&args);
    let sb = word_after(&gateway.line_with("built-in MSNP server"), ", SB ");
    assert!(sb.starts_with("127.0.0.1:"), "{sb}");
    (gateway, url, sb)
}

/// `msn-http relay --policy adaptive` on a free loopback port in front of `gateway_url`, with
/// `extra` flags: the child (its stderr kept when `capture_stderr`) and the address clients
/// connect to.
pub fn relay(gateway_url: &str, extra: &[&str], capture_stderr: bool) -> (Running, String) {
    let mut args =
        vec!["relay", "--listen", "127.0.0.1:0", "--gateway", gateway_url, "--policy", "adaptive"];
    args.extend_from_slice(extra);
    let mut relay = match capture_stderr {
        true => Running::start_capturing_stderr(&args),
        false => Running::start(&args),
    };
    let listen = word_after(&relay.line_with("listening on "), "listening on ");
    (relay, listen)
}

/// A file in the temporary directory, removed when dropped.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(name: &str, contents: &str) -> Self {
        let path = std::env::temp_dir().join(format!("msn-http-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("write temp file");
        Self(path)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A raw TCP MSNP client, as an MSN client that only speaks TCP would be.
pub struct Msnp {
    pub name: &'static str,
    stream: TcpStream,
    framer: CommandFramer,
    backlog: Vec<OwnedCommand>,
}

impl Msnp {
    pub fn connect(name: &'static str, addr: &str) -> Self {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{name}: {addr}: {e}"));
        stream.set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
        let framer = CommandFramer::new(PayloadCommands::default(), FramerLimits::default());
        Self { name, stream, framer, backlog: Vec::new() }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap_or_else(|e| panic!("{}: send: {e}", self.name));
    }

    pub fn line(&mut self, line: &str) {
        self.send(format!("{line}\r\n").as_bytes());
    }

    /// The oldest received command that `matches`, within 20 s.
    pub fn expect(&mut self, what: &str, matches: impl Fn(&OwnedCommand) -> bool) -> OwnedCommand {
        if let Some(i) = self.backlog.iter().position(&matches) {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            while let Some(cmd) = self.framer.next_command().expect("framable MSNP") {
                let cmd = cmd.to_owned_command();
                if matches(&cmd) {
                    return cmd;
                }
                self.backlog.push(cmd);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.framer.push(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("{}: read: {e}", self.name),
            }
        }
        let got: Vec<String> = self.backlog.iter().map(text).collect();
        panic!("{}: no {what}; received meanwhile: {got:#?}", self.name);
    }

    /// Whether the server closed the connection within 20 s.
    pub fn closed(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

/// A command's line as text.
pub fn text(cmd: &OwnedCommand) -> String {
    cmd.to_string()
}

/// Argument `i` (after the name) of a command.
pub fn arg(cmd: &OwnedCommand, i: usize) -> String {
    cmd.arg(i).map(|a| a.into_owned()).unwrap_or_default()
}

/// Logs `email` in with the MD5 challenge and goes online.
pub fn login(c: &mut Msnp, email: &str, password: &str) {
    c.line("VER 1 MSNP7 MSNP6 CVR0");
    c.expect("VER", |x| text(x) == "VER 1 MSNP7");
    c.line("INF 2");
    c.expect("INF", |x| text(x) == "INF 2 MD5");
    c.line(&format!("USR 3 MD5 I {email}"));
    let challenge = c.expect("the challenge", |x| text(x).starts_with("USR 3 MD5 S "));
    c.line(&format!("USR 4 MD5 S {}", md5_login_response(&arg(&challenge, 3), password)));
    c.expect("USR OK", |x| text(x).starts_with(&format!("USR 4 OK {email} ")));
    c.line("CHG 5 NLN");
    c.expect("CHG", |x| text(x) == "CHG 5 NLN");
}

/// One raw HTTP exchange on a fresh connection: (status, X-MSN-Messenger, body).
pub fn http(addr: &str, target: &str, body: &[u8]) -> (u16, Option<String>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect to the gateway");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("read timeout");
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-msn-messenger\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).expect("read response");
        assert!(n > 0, "connection closed before the response head: {raw:?}");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let status: u16 = head[9..12].parse().expect("status code");
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let length: usize = header("Content-Length").map_or(0, |v| v.parse().expect("length"));
    while raw.len() < head_end + length {
        let n = stream.read(&mut buf).expect("read body");
        assert!(n > 0, "connection closed inside the body");
        raw.extend_from_slice(&buf[..n]);
    }
    (status, header("X-MSN-Messenger"), raw[head_end..head_end + length].to_vec())
}

/// A TCP MSNP server played by the test, on a free loopback port: every command line it reads
/// is answered with `answer(line)` (nothing when empty). A connection ends at EOF, `OUT`, or
/// after 60 s without a command. Returns the server's address.
pub fn scripted_backend(answer: impl Fn(&str) -> String + Send + Sync + 'static) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the backend");
    let addr = listener.local_addr().expect("backend address").to_string();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { break };
            let answer = Arc::clone(&answer);
            std::thread::spawn(move || {
                conn.set_read_timeout(Some(Duration::from_secs(60))).expect("read timeout");
                let mut writer = conn.try_clone().expect("clone the backend connection");
                for line in BufReader::new(conn).lines() {
                    let Ok(line) = line else { break };
                    if line == "OUT" {
                        break;
                    }
                    let reply = answer(&line);
                    if !reply.is_empty() && writer.write_all(reply.as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Calls `check` every 50 ms until it gives a value, for at most `within`.
pub fn eventually<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
