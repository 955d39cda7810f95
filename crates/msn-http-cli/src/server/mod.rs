//! The built-in MSNP server: a small notification server (NS) and switchboard (SB) speaking
//! MSNP7 with MD5 login, enough for the demo, scripted sessions and the relay tests.
//!
//! Coverage: NS `VER`, `CVR`, `INF`, `USR MD5 I/S`, `SYN`, `CHG` (with `ILN`, `NLN`, `FLN` to
//! the other users), `XFR SB`, `PNG`/`QNG`, `OUT`, and `RNG` for invitations; SB `USR`, `ANS`
//! (with `IRO`, `JOI`), `CAL`, `MSG` (with `ACK`/`NAK`), `OUT` and `BYE`. Every user is on every
//! other user's contact list. Anything else gets `200` (unknown command) or `715` (not
//! expected now).

mod ns;
mod sb;

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use msn_http_core::msnp::{Command, CommandFramer, FramerLimits, PayloadCommands};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::task::{JoinHandle, JoinSet};

/// A user of the built-in server.
#[derive(Debug)]
pub(crate) struct User {
    pub(crate) email: &'static str,
    pub(crate) password: &'static str,
    pub(crate) friendly: &'static str,
}

/// The built-in server's accounts.
pub(crate) const USERS: &[User] = &[
    User { email: "alice@example.com", password: "alicepass", friendly: "Alice" },
    User { email: "bob@example.com", password: "bobpass", friendly: "Bob" },
    User { email: "carol@example.com", password: "carolpass", friendly: "Carol" },
];

/// The name clients give the NS in `IP=` (the official dispatch server's), routed by the
/// gateway to the built-in NS.
pub(crate) const NS_NAME: &str = "messenger.hotmail.com";

/// Messages waiting for one connection's writer before the peer counts as stuck.
const OUTBOX_MESSAGES: usize = 1024;

fn user(email: &str) -> Option<&'static User> {
    USERS.iter().find(|u| u.email.eq_ignore_ascii_case(email))
}

/// A running built-in server; dropping it stops it (listeners and connections).
#[derive(Debug)]
pub(crate) struct BuiltinServer {
    ns: SocketAddr,
    sb: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for BuiltinServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl BuiltinServer {
    /// Starts the NS and the SB on `ip`, at free ports.
    pub(crate) async fn start(ip: IpAddr) -> io::Result<Self> {
        let ns_listener = TcpListener::bind((ip, 0)).await?;
        let sb_listener = TcpListener::bind((ip, 0)).await?;
        let (ns, sb) = (ns_listener.local_addr()?, sb_listener.local_addr()?);
        let state = Arc::new(Shared(Mutex::new(State::new(sb))));
        let tasks = vec![
            tokio::spawn(accept_loop(ns_listener, Arc::clone(&state), Role::Ns)),
            tokio::spawn(accept_loop(sb_listener, state, Role::Sb)),
        ];
        tracing::info!(%ns, %sb, "built-in MSNP server listening");
        Ok(Self { ns, sb, tasks })
    }

    /// The notification server's address.
    pub(crate) fn ns_addr(&self) -> SocketAddr {
        self.ns
    }

    /// The switchboard's address (what `XFR SB` and `RNG` announce).
    pub(crate) fn sb_addr(&self) -> SocketAddr {
        self.sb
    }

    /// One line for people: where the servers are and who can log in.
    pub(crate) fn describe(&self) -> String {
        let users: Vec<String> =
            USERS.iter().map(|u| format!("{} (password {})", u.email, u.password)).collect();
        format!("NS {} (IP={NS_NAME}), SB {}; users {}", self.ns, self.sb, users.join(", "))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Ns,
    Sb,
}

/// A connection's identity, so stale entries are never mistaken for a newer connection.
type ConnId = u64;

/// The sending side of one connection: whole commands, written in order.
#[derive(Clone, Debug)]
struct Peer {
    id: ConnId,
    tx: mpsc::Sender<Vec<u8>>,
    kill: Arc<Notify>,
}

impl Peer {
    /// Queues bytes for the connection; a peer that stopped reading is disconnected rather
    /// than buffered for without bound.
    fn send(&self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        if self.tx.try_send(bytes).is_err() {
            self.kill.notify_one();
        }
    }

    /// Asks the connection to close (after what is already queued).
    fn disconnect(&self) {
        self.kill.notify_one();
    }
}

/// A user signed in on the NS.
#[derive(Debug)]
struct Presence {
    user: &'static User,
    /// `None` until the first `CHG`: signed in but not yet visible.
    status: Option<String>,
    peer: Peer,
}

impl Presence {
    fn visible_status(&self) -> Option<&str> {
        self.status.as_deref().filter(|s| *s != "HDN")
    }
}

/// Who may use a switchboard cookie.
#[derive(Debug)]
struct Ticket {
    email: &'static str,
    /// `None`: a new switchboard (from `XFR SB`); `Some`: an invitation to this one (`RNG`).
    board: Option<u64>,
}

#[derive(Debug)]
struct Member {
    user: &'static User,
    peer: Peer,
}

#[derive(Debug, Default)]
struct Board {
    members: Vec<Member>,
}

/// Everything the NS and SB connections share.
#[derive(Debug)]
struct State {
    sb_addr: SocketAddr,
    online: HashMap<&'static str, Presence>,
    tickets: HashMap<String, Ticket>,
    boards: HashMap<u64, Board>,
    next_id: u64,
    random: RandomState,
}

impl State {
    fn new(sb_addr: SocketAddr) -> Self {
        Self {
            sb_addr,
            online: HashMap::new(),
            tickets: HashMap::new(),
            boards: HashMap::new(),
            next_id: 1,
            random: RandomState::new(),
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// An unguessable-enough token for salts and cookies (a demo server: not cryptographic).
    fn token(&mut self) -> String {
        let n = self.next_id();
        let a = self.random.hash_one(n);
        let b = self.random.hash_one(a);
        format!("{}.{}", a % 10_000_000_000, b % 1_000_000_000)
    }

    /// A cookie for `email` to open (`board: None`) or join a switchboard.
    fn ticket(&mut self, email: &'static str, board: Option<u64>) -> String {
        let cookie = self.token();
        self.tickets.insert(cookie.clone(), Ticket { email, board });
        cookie
    }
}

#[derive(Debug)]
struct Shared(Mutex<State>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a handler wants after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// A connection's protocol side.
trait Handler {
    fn handle(&mut self, cmd: &Command<'_>, out: &mut Vec<u8>) -> Flow;
    fn disconnected(&mut self);
}

async fn accept_loop(listener: TcpListener, state: Arc<Shared>, role: Role) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    tracing::debug!(?role, %addr, "MSNP connection");
                    connections.spawn(serve(stream, Arc::clone(&state), role));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve(stream: TcpStream, state: Arc<Shared>, role: Role) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(OUTBOX_MESSAGES);
    let kill = Arc::new(Notify::new());
    let id = state.lock().next_id();
    let peer = Peer { id, tx, kill: Arc::clone(&kill) };
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut handler: Box<dyn Handler + Send> = match role {
        Role::Ns => Box::new(ns::NsConnection::new(Arc::clone(&state), peer.clone())),
        Role::Sb => Box::new(sb::SbConnection::new(Arc::clone(&state), peer.clone())),
    };
    let mut framer = CommandFramer::new(PayloadCommands::default(), FramerLimits::default());
    let mut buf = vec![0u8; 16 * 1024];
    'conn: loop {
        let n = tokio::select! {
            read = rd.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            () = kill.notified() => break,
        };
        framer.push(&buf[..n]);
        loop {
            let mut out = Vec::new();
            let flow = match framer.next_command() {
                Ok(Some(cmd)) => handler.handle(&cmd, &mut out),
                Ok(None) => break,
                Err(error) => {
                    tracing::debug!(%error, "unreadable MSNP; closing");
                    Flow::Close
                }
            };
            peer.send(out);
            if flow == Flow::Close {
                break 'conn;
            }
        }
    }
    handler.disconnected();
    // The state holds no sender of ours any more: the writer drains what is queued and ends.
    drop(handler);
    drop(peer);
    let _ = writer.await;
}

/// Appends one command line with CRLF.
fn line(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The transaction ID argument of a command, as written (`0` when missing).
fn trid(args: &[String]) -> &str {
    args.first().map_or("0", String::as_str)
}
