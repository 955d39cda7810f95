//! The built-in MSNP server of msn-http: a small notification server (NS) and switchboard (SB)
//! speaking MSNP5 to MSNP7 with MD5 login. It is what `msn-http demo` and
//! `msn-http gateway --builtin` serve, and what the adapters' tests and examples talk to.
//!
//! [`BuiltinServer::start`] listens on two loopback ports (on the current tokio runtime);
//! [`BuiltinServer::backends`] are the rules that put it behind a gateway: its NS as
//! `IP=messenger.hotmail.com` ([`NS_NAME`]), its SB by the address `XFR SB` and `RNG` give.
//!
//! ```
//! use std::net::Ipv4Addr;
//! use msn_http_core::gateway::GatewayConfig;
//! use msn_http_server::BuiltinServer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let server = BuiltinServer::start(Ipv4Addr::LOCALHOST.into()).await?;
//! let config = GatewayConfig::new("127.0.0.1:8080", [7; 32]).with_backends(server.backends());
//! assert_eq!(config.backends.rules().len(), 3);
//! # Ok(())
//! # }
//! ```
//!
//! # Accounts
//!
//! [`USERS`]: `alice@example.com` (password `alicepass`), `bob@example.com` (`bobpass`) and
//! `carol@example.com` (`carolpass`). Every user is on every other user's contact list.
//!
//! # What a client says
//!
//! `>>` is what the client sends, `<<` what it gets; the server echoes the client's
//! transaction IDs. The notification server, logging in and going online:
//!
//! ```text
//! >> VER 1 MSNP7 MSNP6 MSNP5 CVR0       the versions the client speaks
//! << VER 1 MSNP7                        the best one of MSNP7, 6, 5 offered (VER 1 0 and a
//!                                       close when none is)
//! >> CVR 2 0x0409 winnt 5.1 i386 MSMSGS 6.0.0602 MSMSGS alice@example.com     (optional)
//! << CVR 2 6.0.0602 6.0.0602 1.0.0000 http://msn-http.invalid/download http://msn-http.invalid/
//! >> INF 3                              (optional) the login method
//! << INF 3 MD5
//! >> USR 4 MD5 I alice@example.com
//! << USR 4 MD5 S 1234567890.123456789   the salt
//! >> USR 5 MD5 S <hex MD5 of salt + password>   md5_login_response(salt, password)
//! << USR 5 OK alice@example.com Alice   (911 5 for a wrong password or an unknown user)
//! >> SYN 6 0                            (optional) the contact lists
//! << SYN 6 1, GTC 6 1 A, BLP 6 1 AL, then LST 6 FL|AL|BL|RL ... one line per contact
//! >> CHG 7 NLN                          go online: NLN BSY IDL BRB AWY PHN LUN or HDN
//! << CHG 7 NLN, then ILN 7 NLN bob@example.com Bob for each user online
//! ```
//!
//! Until its first `CHG` a user is signed in but invisible; the others then get
//! `NLN NLN alice@example.com Alice` (and `FLN alice@example.com` when she leaves). `VER` must
//! come first (anything else gets `715` and a close); `SYN`, `CHG` and `XFR` need the login.
//! A second login of the same user ends the first with `OUT OTH`. `PNG` gets `QNG 50`, `OUT`
//! logs out.
//!
//! A switchboard, opened by alice and joined by bob:
//!
//! ```text
//! alice's NS  >> XFR 8 SB
//!             << XFR 8 SB 127.0.0.1:PORT CKI <cookie>
//! alice's SB  (a new connection to 127.0.0.1:PORT: Server=SB through a gateway)
//!             >> USR 1 alice@example.com <cookie>
//!             << USR 1 OK alice@example.com Alice
//!             >> CAL 2 bob@example.com       (217 2 if bob is not online, 215 2 if he is there)
//!             << CAL 2 RINGING <session>
//! bob's NS    << RNG <session> 127.0.0.1:PORT CKI <cookie> alice@example.com Alice
//! bob's SB    >> ANS 1 bob@example.com <cookie> <session>
//!             << IRO 1 1 1 alice@example.com Alice   (one per member)
//!             << ANS 1 OK
//! alice's SB  << JOI bob@example.com Bob
//!             >> MSG 3 A <length>\r\n<payload>   (a text message: msnp::text_message)
//!             << ACK 3                       (A and D: ACK, or NAK when nobody else is there;
//!                                             N: only the NAK)
//! bob's SB    << MSG alice@example.com Alice <length>\r\n<payload>
//!             >> OUT                         leaving; the others get BYE bob@example.com
//! ```
//!
//! Unknown commands get `200`, commands out of place `715`, a bad cookie `911` and a close.
//! Cookies last [`DEFAULT_TICKET_LIFETIME`] (2 minutes) and are used up by one
//! `USR` or `ANS`; a user holds at most [`DEFAULT_TICKETS_PER_USER`] (16), the
//! oldest going first.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod ns;
mod sb;
mod tickets;

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use msn_http_core::Endpoint;
use msn_http_core::gateway::{BackendAllowlist, BackendRule};
use msn_http_core::msnp::{Command, CommandFramer, FramerLimits, PayloadCommands};
use msn_http_core::wire::ServerKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::task::{JoinHandle, JoinSet};

use self::tickets::{Admits, TicketLimits, TicketStore};
pub use self::tickets::{DEFAULT_TICKET_LIFETIME, DEFAULT_TICKETS_PER_USER};

/// A user of the built-in server.
#[derive(Debug)]
pub struct User {
    /// The account name (`USR ... MD5 I <email>`).
    pub email: &'static str,
    /// The password, for `USR ... MD5 S`.
    pub password: &'static str,
    /// The friendly name other users see.
    pub friendly: &'static str,
}

/// The built-in server's accounts.
pub const USERS: &[User] = &[
    User { email: "alice@example.com", password: "alicepass", friendly: "Alice" },
    User { email: "bob@example.com", password: "bobpass", friendly: "Bob" },
    User { email: "carol@example.com", password: "carolpass", friendly: "Carol" },
];

/// The name clients give the NS in `IP=` (the official dispatch server's), routed by the
/// gateway to the built-in NS.
pub const NS_NAME: &str = "messenger.hotmail.com";

/// Messages waiting for one connection's writer before the peer counts as stuck.
const OUTBOX_MESSAGES: usize = 1024;

fn user(email: &str) -> Option<&'static User> {
    USERS.iter().find(|u| u.email.eq_ignore_ascii_case(email))
}

/// A running built-in server; dropping it stops it (listeners and connections).
#[derive(Debug)]
pub struct BuiltinServer {
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
    /// Starts the NS and the SB at free ports on `ip` if it is a loopback address, else on
    /// 127.0.0.1: the MSNP ports are reachable only from this host (through the gateway), and
    /// the switchboard address that `XFR SB` and `RNG` hand out is never `0.0.0.0`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (it spawns its tasks there).
    pub async fn start(ip: IpAddr) -> io::Result<Self> {
        let ip = if ip.is_loopback() { ip } else { IpAddr::V4(Ipv4Addr::LOCALHOST) };
        let ns_listener = TcpListener::bind((ip, 0)).await?;
        let sb_listener = TcpListener::bind((ip, 0)).await?;
        let (ns, sb) = (ns_listener.local_addr()?, sb_listener.local_addr()?);
        let state = Arc::new(Shared(Mutex::new(State::new(sb, TicketLimits::default()))));
        let tasks = vec![
            tokio::spawn(accept_loop(ns_listener, Arc::clone(&state), Role::Ns)),
            tokio::spawn(accept_loop(sb_listener, state, Role::Sb)),
        ];
        tracing::info!(%ns, %sb, "built-in MSNP server listening");
        Ok(Self { ns, sb, tasks })
    }

    /// The notification server's address.
    pub fn ns_addr(&self) -> SocketAddr {
        self.ns
    }

    /// The switchboard's address (what `XFR SB` and `RNG` announce).
    pub fn sb_addr(&self) -> SocketAddr {
        self.sb
    }

    /// One line for people: where the servers are and who can log in.
    pub fn describe(&self) -> String {
        let users: Vec<String> =
            USERS.iter().map(|u| format!("{} (password {})", u.email, u.password)).collect();
        format!("NS {} (IP={NS_NAME}), SB {}; users {}", self.ns, self.sb, users.join(", "))
    }

    /// The gateway rules that put this server behind a gateway: its NS as [`NS_NAME`], its SB
    /// by address, with the port (as `XFR SB` and `RNG` give it) or without (as real clients
    /// send it); each only for opens of its kind.
    pub fn backend_rules(&self) -> [BackendRule; 3] {
        backend_rules(self.ns, self.sb)
    }

    /// An allowlist of [`backend_rules`](Self::backend_rules) alone, for
    /// [`GatewayConfig::with_backends`](msn_http_core::gateway::GatewayConfig::with_backends).
    pub fn backends(&self) -> BackendAllowlist {
        self.backend_rules().into_iter().fold(BackendAllowlist::new(), BackendAllowlist::rule)
    }
}

/// See [`BuiltinServer::backend_rules`].
fn backend_rules(ns: SocketAddr, sb: SocketAddr) -> [BackendRule; 3] {
    let sb_host = sb.ip().to_string();
    [
        BackendRule::route(NS_NAME, None, endpoint(ns)).only(ServerKind::Notification),
        BackendRule::allow(sb_host.clone(), Some(sb.port())).only(ServerKind::Switchboard),
        BackendRule::route(sb_host, None, endpoint(sb)).only(ServerKind::Switchboard),
    ]
}

/// A socket address as an endpoint.
fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint::new(addr.ip().to_string(), addr.port()).expect("a bound address is an endpoint")
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
    tickets: TicketStore,
    boards: HashMap<u64, Board>,
    next_id: u64,
    random: RandomState,
}

impl State {
    fn new(sb_addr: SocketAddr, tickets: TicketLimits) -> Self {
        Self {
            sb_addr,
            online: HashMap::new(),
            tickets: TicketStore::new(tickets),
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

    /// A cookie for `email` to open or join a switchboard, issued at `now`.
    fn ticket(&mut self, now: Instant, email: &'static str, admits: Admits) -> String {
        let cookie = self.token();
        self.tickets.issue(now, email, admits, cookie.clone());
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

/// A connection's protocol side; `now` is when the command arrived.
trait Handler {
    fn handle(&mut self, now: Instant, cmd: &Command<'_>, out: &mut Vec<u8>) -> Flow;
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
        let now = Instant::now();
        loop {
            let mut out = Vec::new();
            let flow = match framer.next_command() {
                Ok(Some(cmd)) => handler.handle(now, &cmd, &mut out),
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

/// The space-separated arguments of a command (after its name), as text.
fn args(cmd: &Command<'_>) -> Vec<String> {
    cmd.args().map(|a| a.into_owned()).collect()
}

/// The transaction ID argument of a command, as written (`0` when missing).
fn trid(args: &[String]) -> &str {
    args.first().map_or("0", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use msn_http_core::msnp::md5_login_response;

    /// A connection's handler fed commands directly, without sockets, at a time of the test's
    /// choosing.
    struct Fed {
        handler: Box<dyn Handler + Send>,
        framer: CommandFramer,
    }

    impl Fed {
        fn new(state: &Arc<Shared>, role: Role) -> Self {
            let (tx, _rx) = mpsc::channel(OUTBOX_MESSAGES);
            let id = state.lock().next_id();
            let peer = Peer { id, tx, kill: Arc::new(Notify::new()) };
            let handler: Box<dyn Handler + Send> = match role {
                Role::Ns => Box::new(ns::NsConnection::new(Arc::clone(state), peer)),
                Role::Sb => Box::new(sb::SbConnection::new(Arc::clone(state), peer)),
            };
            let framer = CommandFramer::new(PayloadCommands::default(), FramerLimits::default());
            Self { handler, framer }
        }

        /// The answer to one command line arriving at `now`.
        fn say_at(&mut self, now: Instant, line: &str) -> String {
            self.framer.push(format!("{line}\r\n").as_bytes());
            let mut out = Vec::new();
            while let Some(cmd) = self.framer.next_command().expect("framable") {
                self.handler.handle(now, &cmd, &mut out);
            }
            String::from_utf8(out).expect("ASCII answers")
        }

        fn login(&mut self, now: Instant, user: &User) {
            assert_eq!(self.say_at(now, "VER 1 MSNP7"), "VER 1 MSNP7\r\n");
            let challenge = self.say_at(now, &format!("USR 2 MD5 I {}", user.email));
            let salt = challenge.trim_end().rsplit(' ').next().expect("a salt");
            let hash = md5_login_response(salt, user.password);
            let ok = self.say_at(now, &format!("USR 3 MD5 S {hash}"));
            assert!(ok.starts_with("USR 3 OK "), "{ok}");
        }

        /// The cookie of an `XFR SB` answer.
        fn xfr_sb(&mut self, now: Instant, trid: u32) -> String {
            let answer = self.say_at(now, &format!("XFR {trid} SB"));
            let prefix = format!("XFR {trid} SB 127.0.0.1:1864 CKI ");
            let cookie = answer.strip_prefix(&prefix).unwrap_or_else(|| panic!("{answer}"));
            cookie.trim_end().to_owned()
        }
    }

    fn state() -> Arc<Shared> {
        let sb = SocketAddr::from(([127, 0, 0, 1], 1864));
        Arc::new(Shared(Mutex::new(State::new(sb, TicketLimits::default()))))
    }

    /// Whether alice opens a board with `cookie` at `now`.
    fn opens_board(state: &Arc<Shared>, now: Instant, cookie: &str) -> bool {
        let answer =
            Fed::new(state, Role::Sb).say_at(now, &format!("USR 1 {} {cookie}", USERS[0].email));
        answer.starts_with("USR 1 OK ")
    }

    #[test]
    fn the_sb_is_reached_with_or_without_its_port() {
        use msn_http_core::gateway::MsnpPorts;

        let ns: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let sb: SocketAddr = "127.0.0.1:40002".parse().unwrap();
        let rules =
            backend_rules(ns, sb).into_iter().fold(BackendAllowlist::new(), BackendAllowlist::rule);
        let ports = MsnpPorts::default();
        let open = |server, ip: &str| {
            let asked = Endpoint::parse(ip, ports.of(server)).unwrap();
            rules.resolve(&asked, server, ports).map(|e| e.to_string())
        };
        let (ns, sb) = (ServerKind::Notification, ServerKind::Switchboard);
        assert_eq!(open(ns, NS_NAME).as_deref(), Some("127.0.0.1:40001"));
        assert_eq!(open(sb, NS_NAME), None, "the NS name is no switchboard");
        assert_eq!(open(sb, "127.0.0.1:40002").as_deref(), Some("127.0.0.1:40002"));
        assert_eq!(open(sb, "127.0.0.1").as_deref(), Some("127.0.0.1:40002"));
        assert_eq!(open(ns, "127.0.0.1:40002"), None);
        let v6 = backend_rules("[::1]:40001".parse().unwrap(), "[::1]:40002".parse().unwrap());
        assert_eq!(
            v6[2].connect_to.as_ref().map(ToString::to_string).as_deref(),
            Some("[::1]:40002")
        );
    }

    #[test]
    fn xfr_floods_hold_a_bounded_number_of_tickets() {
        let (state, now) = (state(), Instant::now());
        let mut alice = Fed::new(&state, Role::Ns);
        alice.login(now, &USERS[0]);
        let cookies: Vec<String> = (10..1010).map(|trid| alice.xfr_sb(now, trid)).collect();
        let held = state.lock().tickets.len();
        let cap = TicketLimits::default().max_per_user;
        assert_eq!(held, cap, "{held} tickets held after 1000 XFRs");
        assert!(!opens_board(&state, now, &cookies[0]), "the oldest ticket was replaced");
        assert!(opens_board(&state, now, &cookies[999]), "the newest ticket still works");
    }

    #[test]
    fn switchboard_tickets_expire() {
        let (state, start) = (state(), Instant::now());
        let lifetime = TicketLimits::default().lifetime;
        let mut alice = Fed::new(&state, Role::Ns);
        alice.login(start, &USERS[0]);
        let stale = alice.xfr_sb(start, 10);
        let fresh = alice.xfr_sb(start + lifetime / 2, 11);
        assert!(!opens_board(&state, start + lifetime, &stale), "used too late");
        assert!(opens_board(&state, start + lifetime, &fresh), "used in time");
        let _unused = alice.xfr_sb(start + lifetime, 12);
        assert_eq!(state.lock().tickets.len(), 1);
        alice.xfr_sb(start + lifetime * 3, 13);
        assert_eq!(state.lock().tickets.len(), 1, "the unused ticket expired");
    }
}

#[cfg(test)]
mod socket_tests {
    use std::time::Duration;

    use tokio::io::{AsyncBufReadExt, BufReader};

    use super::*;
    use msn_http_core::msnp::md5_login_response;

    /// Sends `line` and returns the first answer line starting with `prefix` (within 10 s).
    async fn ask(conn: &mut BufReader<TcpStream>, line: &str, prefix: &str) -> String {
        conn.get_mut().write_all(format!("{line}\r\n").as_bytes()).await.expect("send");
        let mut answer = String::new();
        loop {
            answer.clear();
            let read = tokio::time::timeout(Duration::from_secs(10), conn.read_line(&mut answer));
            let n = read.await.expect("an answer in time").expect("read");
            assert!(n > 0, "closed while waiting for {prefix:?}");
            if answer.starts_with(prefix) {
                return answer.trim_end().to_owned();
            }
        }
    }

    #[tokio::test]
    async fn an_unspecified_address_still_binds_loopback_and_announces_it() {
        let server = BuiltinServer::start(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).await.expect("start");
        let (ns, sb) = (server.ns_addr(), server.sb_addr());
        assert_eq!(
            (ns.ip(), sb.ip()),
            (IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        // Bound to the wildcard, the ports would answer on every address, 127.0.0.2 included.
        for port in [ns.port(), sb.port()] {
            let other = SocketAddr::from(([127, 0, 0, 2], port));
            assert!(TcpStream::connect(other).await.is_err(), "{other} accepted a connection");
        }

        let mut conn = BufReader::new(TcpStream::connect(ns).await.expect("connect to the NS"));
        ask(&mut conn, "VER 1 MSNP7", "VER 1 MSNP7").await;
        let user = &USERS[0];
        let challenge = ask(&mut conn, &format!("USR 2 MD5 I {}", user.email), "USR 2 ").await;
        let salt = challenge.rsplit(' ').next().expect("a salt");
        let hash = md5_login_response(salt, user.password);
        ask(&mut conn, &format!("USR 3 MD5 S {hash}"), "USR 3 OK ").await;
        let xfr = ask(&mut conn, "XFR 4 SB", "XFR 4 ").await;
        assert!(xfr.starts_with(&format!("XFR 4 SB {sb} CKI ")), "{xfr}");
    }
}
