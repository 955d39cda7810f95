//! `msn-http relay`: lets an MSN client that only speaks TCP use an HTTP-only network. Each
//! accepted TCP connection becomes a gateway session (the [`ClientStream`] byte face); the
//! addresses in `XFR` and `RNG` coming back are rewritten to relay listeners, opened on
//! demand, each of which maps to the real server address (`Server=SB`, or `Server=NS` for
//! `XFR NS`), so switchboards are relayed too.
//!
//! Both directions are framed with the core's [`CommandFramer`], so commands are only ever
//! rewritten whole and payloads pass untouched. `PNG` from the client is answered here with
//! `QNG 50`: over the gateway, polling keeps the session alive and `PNG` is not allowed.
//!
//! What a server can make the relay hold is bounded ([`RelayLimits`]): an address is checked
//! before a listener is opened for it; one listener serves each distinct address, held by the
//! connections that passed it to their clients (each its latest few) and closed a short
//! linger after the last lets go; the listeners open at once are capped; warnings about
//! addresses are rate-limited.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use clap::Args;
use msn_http_core::client::{ClientConfig, Target};
use msn_http_core::msnp::{Command, CommandFramer, FramerLimits, PayloadCommands};
use msn_http_core::wire::ServerKind;
use msn_http_core::{AddressError, Endpoint};
use msn_http_tokio::ClientStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::common::{Failure, GatewayArgs, parse_duration, secs};

/// How long a session may take to end after its TCP client went away.
const LOGOUT_GRACE: Duration = Duration::from_secs(10);
/// Warnings of one kind are logged at most this often; the ones between are counted.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// The flags of `msn-http relay`.
#[derive(Args, Debug)]
pub(crate) struct RelayArgs {
    /// Where MSN clients connect (their "server" setting). Port 0: any free port (printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:1863")]
    listen: SocketAddr,
    #[command(flatten)]
    sessions: GatewayArgs,
    /// The NS that sessions from --listen open (`IP=`).
    #[arg(long, value_name = "HOST[:PORT]", default_value = "messenger.hotmail.com")]
    ip: String,
    #[command(flatten)]
    limits: RelayLimits,
}

/// What clients and servers can make the relay hold, at most.
#[derive(Args, Clone, Copy, Debug)]
pub(crate) struct RelayLimits {
    /// TCP connections relayed at once (NS and SB together); more are closed at once.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_connections: usize,
    /// A relayed connection is closed (and its session logged out) unless the server accepts
    /// its login (`USR ... OK`, or `ANS ... OK` on a switchboard) within this long, so
    /// clients that connect and wait cannot hold every slot.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    login_timeout: Duration,
    /// Relay listeners open at once for XFR/RNG addresses, all connections together; past
    /// this, addresses pass unchanged.
    #[arg(long, value_name = "N", default_value_t = 128)]
    max_listeners: usize,
    /// Relay listeners one connection holds: those of the latest distinct addresses it passed
    /// to its client (an older one closes unless another connection holds it).
    #[arg(long, value_name = "N", default_value_t = 8)]
    listeners_per_connection: usize,
    /// How long a relay listener stays open after the last connection holding it ended (a
    /// client leaves the server that sent `XFR NS` before it connects to the new address).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    listener_linger: Duration,
}

/// What every relayed connection shares.
struct Relay {
    config: ClientConfig,
    host: IpAddr,
    limits: RelayLimits,
    /// (server kind, real address) → its relay listener, while a connection holds it.
    listeners: Mutex<HashMap<(ServerKind, String), Weak<RelayListener>>>,
    /// The relay listeners' accept loops and the lingering holds; finished ones are reaped.
    tasks: Mutex<JoinSet<()>>,
    slots: Arc<Semaphore>,
    warnings: Mutex<Warnings>,
    /// Turns true on Ctrl-C: stop accepting, log every session out.
    stop: watch::Receiver<bool>,
}

/// A relay listener for one real server address; its socket closes as the last holder lets
/// go (its accept loop holds it only while polling).
struct RelayListener {
    tcp: TcpListener,
    addr: SocketAddr,
    /// Dropped with the listener: wakes its accept loop to end (connections accepted go on).
    _close: oneshot::Sender<()>,
}

/// Where an accept loop takes connections from.
enum Accepting {
    /// The relay's own listener (`--listen`).
    Main(TcpListener),
    /// A relay listener, while a connection holds it.
    Relayed { listener: Weak<RelayListener>, closed: oneshot::Receiver<()> },
}

impl Accepting {
    /// The next connection; `None` once a relay listener was let go.
    async fn accept(&mut self) -> Option<std::io::Result<(TcpStream, SocketAddr)>> {
        match self {
            Self::Main(tcp) => Some(tcp.accept().await),
            Self::Relayed { listener, closed } => {
                let accepted = std::future::poll_fn(|cx| match listener.upgrade() {
                    Some(listener) => listener.tcp.poll_accept(cx).map(Some),
                    None => Poll::Ready(None),
                });
                tokio::select! {
                    accepted = accepted => accepted,
                    _ = closed => None,
                }
            }
        }
    }
}

/// The relay listeners one connection holds, latest last.
struct Held {
    listeners: VecDeque<Arc<RelayListener>>,
    max: usize,
}

impl Held {
    fn new(max: usize) -> Self {
        Self { listeners: VecDeque::new(), max: max.max(1) }
    }

    /// Holds `listener` as the latest, letting go of the oldest past the limit.
    fn hold(&mut self, listener: Arc<RelayListener>) {
        self.listeners.retain(|held| !Arc::ptr_eq(held, &listener));
        self.listeners.push_back(listener);
        while self.listeners.len() > self.max {
            self.listeners.pop_front();
        }
    }
}

/// Why an address in `XFR`/`RNG` is passed on unchanged.
#[derive(Debug)]
enum Unrelayable {
    /// It is no server address.
    Invalid(AddressError),
    /// [`RelayLimits::max_listeners`] are open.
    Full(usize),
    /// No listener could be opened.
    Bind(std::io::Error),
}

impl fmt::Display for Unrelayable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(_) => f.write_str("it is not a server address"),
            Self::Full(n) => write!(f, "{n} relay listeners are open already (--max-listeners)"),
            Self::Bind(_) => f.write_str("no relay listener could be opened"),
        }
    }
}

impl std::error::Error for Unrelayable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Invalid(e) => Some(e),
            Self::Full(_) => None,
            Self::Bind(e) => Some(e),
        }
    }
}

/// The kinds of warning that a peer can repeat at will, each rate-limited on its own.
#[derive(Clone, Copy, Debug)]
enum Warning {
    AcceptFailed,
    TooManyConnections,
    ConnectionFailed,
    Unrelayable,
}

/// One throttle per kind of warning.
#[derive(Debug, Default)]
struct Warnings {
    accept_failed: Throttle,
    too_many_connections: Throttle,
    connection_failed: Throttle,
    unrelayable: Throttle,
}

impl Warnings {
    fn of(&mut self, kind: Warning) -> &mut Throttle {
        match kind {
            Warning::AcceptFailed => &mut self.accept_failed,
            Warning::TooManyConnections => &mut self.too_many_connections,
            Warning::ConnectionFailed => &mut self.connection_failed,
            Warning::Unrelayable => &mut self.unrelayable,
        }
    }
}

/// Warnings of one kind: at most one logged per interval, the others counted.
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// Whether a warning at `now` is logged: `Some(how many were not since the last one)`.
    fn admit(&mut self, now: Instant, interval: Duration) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// Runs the relay until Ctrl-C.
pub(crate) async fn run(args: RelayArgs) -> Result<(), Failure> {
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop_tx, stop) = watch::channel(false);
    let relay = Arc::new(Relay {
        config: args.sessions.client_config()?,
        host: local.ip(),
        limits: args.limits,
        listeners: Mutex::default(),
        tasks: Mutex::default(),
        slots: Arc::new(Semaphore::new(args.limits.max_connections.max(1))),
        warnings: Mutex::default(),
        stop,
    });
    // Fail here, not on the first client, if the settings cannot make a session.
    msn_http_core::client::Session::new(
        relay.config.clone(),
        Target::notification(args.ip.clone()),
        Instant::now(),
    )
    .map_err(|e| format!("invalid relay settings: {e}"))?;
    crate::out(&format!("msn-http relay listening on {local}"));
    crate::out(&format!("  sessions open IP={} through {}", args.ip, args.sessions.gateway));
    crate::out(&format!("  poll policy {}", args.sessions.policy.describe()));
    crate::out(
        "  XFR/RNG addresses are rewritten to relay listeners opened on demand; Ctrl-C stops",
    );
    let main = tokio::spawn(accept_loop(
        Accepting::Main(listener),
        Target::notification(args.ip),
        Arc::clone(&relay),
    ));
    let _ = tokio::signal::ctrl_c().await;
    crate::note("stopping: logging the relayed sessions out");
    let _ = stop_tx.send(true);
    let main_abort = main.abort_handle();
    let drained = async {
        let _ = main.await;
        // Ending connections may still start lingering holds: drain until none is left.
        loop {
            let mut tasks = std::mem::take(&mut *relay.tasks());
            if tasks.is_empty() {
                break;
            }
            while tasks.join_next().await.is_some() {}
        }
    };
    if tokio::time::timeout(LOGOUT_GRACE, drained).await.is_err() {
        crate::note("some sessions did not log out in time; ending them");
        main_abort.abort();
        relay.tasks().abort_all();
    }
    crate::out("relay stopped");
    Ok(())
}

/// Resolves once the stop signal is given (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Accepts and relays connections until the stop signal or the listener is let go, then
/// waits for the connections accepted to end (they log out on the stop signal).
async fn accept_loop(mut accepting: Accepting, target: Target, relay: Arc<Relay>) {
    let mut connections = JoinSet::new();
    let mut stop = relay.stop.clone();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            accepted = accepting.accept() => {
                let (tcp, peer) = match accepted {
                    None => {
                        tracing::debug!(ip = %target.ip, "relay listener closed");
                        break;
                    }
                    Some(Ok(accepted)) => accepted,
                    Some(Err(error)) => {
                        if let Some(suppressed) = relay.should_warn(Warning::AcceptFailed) {
                            tracing::warn!(%error, suppressed, "accept failed");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&relay.slots).try_acquire_owned() else {
                    if let Some(suppressed) = relay.should_warn(Warning::TooManyConnections) {
                        tracing::warn!(%peer, suppressed, "too many relayed connections; closing");
                    }
                    continue;
                };
                let (target, relay) = (target.clone(), Arc::clone(&relay));
                connections.spawn(async move {
                    tracing::info!(%peer, server = target.server.as_str(), ip = %target.ip, "client connected");
                    match relay_connection(tcp, target, &relay).await {
                        Ok(()) => tracing::info!(%peer, "client done"),
                        Err(error) => match relay.should_warn(Warning::ConnectionFailed) {
                            Some(suppressed) => tracing::warn!(%peer, %error, suppressed, "relayed connection ended"),
                            None => tracing::debug!(%peer, %error, "relayed connection ended"),
                        },
                    }
                    drop(permit);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(accepting);
    while connections.join_next().await.is_some() {}
}

/// Relays one TCP connection; the relay listeners it held linger a while after it ends.
async fn relay_connection(
    tcp: TcpStream,
    target: Target,
    relay: &Arc<Relay>,
) -> Result<(), String> {
    let mut held = Held::new(relay.limits.listeners_per_connection);
    let result = relay_streams(tcp, target, relay, &mut held).await;
    relay.release_later(held);
    result
}

/// Relays one TCP connection through one gateway session until either side ends.
async fn relay_streams(
    tcp: TcpStream,
    target: Target,
    relay: &Arc<Relay>,
    held: &mut Held,
) -> Result<(), String> {
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let stream = ClientStream::open(relay.config.clone(), target)
        .map_err(|e| format!("cannot open the gateway session: {e}"))?;
    let (mut gw_rd, mut gw_wr) = tokio::io::split(stream);
    let (mut tcp_rd, mut tcp_wr) = tcp.into_split();
    // Answers the relay gives itself (`QNG`), written between whole commands.
    let (local_tx, mut local_rx) = mpsc::channel::<&'static [u8]>(8);

    // Set by the server's answer to the login; until then the login timeout runs.
    let logged_in = AtomicBool::new(false);

    let mut stop = relay.stop.clone();
    let up = async {
        let mut framer = CommandFramer::new(PayloadCommands::default(), FramerLimits::default());
        let mut buf = vec![0u8; 16 * 1024];
        let login_timeout = relay.limits.login_timeout;
        let login_deadline = tokio::time::sleep(login_timeout);
        tokio::pin!(login_deadline);
        let mut awaiting_login = true;
        let result = loop {
            let read = tokio::select! {
                read = tcp_rd.read(&mut buf) => read,
                () = stopped(&mut stop) => break Ok(()),
                () = &mut login_deadline, if awaiting_login => {
                    if logged_in.load(Ordering::Relaxed) {
                        awaiting_login = false;
                        continue;
                    }
                    break Err(format!("no login within {}; closing", secs(login_timeout)));
                }
            };
            let n = match read {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) => break Err(format!("client read failed: {e}")),
            };
            framer.push(&buf[..n]);
            let sent = loop {
                match framer.next_command() {
                    Ok(Some(cmd)) if cmd.name() == "PNG" => {
                        tracing::trace!("client sent PNG; the relay answers QNG 50");
                        let _ = local_tx.send(b"QNG 50\r\n").await;
                    }
                    Ok(Some(cmd)) => {
                        tracing::trace!(wire = %cmd.as_bytes().escape_ascii(), "client to server");
                        if let Err(e) = gw_wr.write_all(cmd.as_bytes()).await {
                            break Err(format!("gateway session refused a command: {e}"));
                        }
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(format!("the client sent unreadable MSNP: {e}")),
                }
            };
            if sent.is_err() {
                break sent;
            }
        };
        // The client is gone (or broke the stream): log out of the session.
        let _ = gw_wr.shutdown().await;
        result
    };

    let down = async {
        let mut framer = CommandFramer::new(PayloadCommands::default(), FramerLimits::default());
        let mut buf = vec![0u8; 16 * 1024];
        let result = loop {
            tokio::select! {
                read = gw_rd.read(&mut buf) => {
                    let n = match read {
                        Ok(0) => break Ok(()),
                        Ok(n) => n,
                        Err(e) => break Err(format!("gateway session failed: {e}")),
                    };
                    framer.push(&buf[..n]);
                    let mut out = Vec::new();
                    let framed = loop {
                        match framer.next_command() {
                            Ok(Some(cmd)) => {
                                tracing::trace!(wire = %cmd.as_bytes().escape_ascii(), "server to client");
                                if accepts_login(&cmd) {
                                    logged_in.store(true, Ordering::Relaxed);
                                }
                                match relay.rewrite(&cmd, held) {
                                    Some(line) => out.extend_from_slice(&line),
                                    None => out.extend_from_slice(cmd.as_bytes()),
                                }
                            }
                            Ok(None) => break Ok(()),
                            Err(e) => break Err(format!("the server sent unreadable MSNP: {e}")),
                        }
                    };
                    if let Err(e) = tcp_wr.write_all(&out).await {
                        break Err(format!("client write failed: {e}"));
                    }
                    if framed.is_err() {
                        break framed;
                    }
                }
                Some(local) = local_rx.recv() => {
                    if let Err(e) = tcp_wr.write_all(local).await {
                        break Err(format!("client write failed: {e}"));
                    }
                }
            }
        };
        let _ = tcp_wr.shutdown().await;
        result
    };

    tokio::pin!(up, down);
    tokio::select! {
        result = &mut down => result,
        result = &mut up => {
            match tokio::time::timeout(LOGOUT_GRACE, &mut down).await {
                Ok(down) => result.and(down),
                Err(_) => result.and(Err("the session did not end after the client left".into())),
            }
        }
    }
}

/// Whether a server command accepts the login: `USR trid OK ...` (NS and SB) or `ANS trid OK`
/// (SB).
fn accepts_login(cmd: &Command<'_>) -> bool {
    matches!(cmd.name(), "USR" | "ANS") && cmd.arg(1).as_deref() == Some("OK")
}

impl Relay {
    /// `XFR ... SB|NS <addr> ...` and `RNG <session> <addr> ...` with the address replaced by
    /// a relay listener's, which `held` then holds; `None` for every other command, and for
    /// an address that cannot be relayed (passed on unchanged).
    fn rewrite(self: &Arc<Self>, cmd: &Command<'_>, held: &mut Held) -> Option<Vec<u8>> {
        let mut args: Vec<String> = cmd.args().map(|a| a.into_owned()).collect();
        let (index, kind) = match cmd.name() {
            "XFR" => match args.get(1).map(String::as_str) {
                Some("SB") => (2, ServerKind::Switchboard),
                Some("NS") => (2, ServerKind::Notification),
                _ => return None,
            },
            "RNG" => (1, ServerKind::Switchboard),
            _ => return None,
        };
        let real = args.get(index)?.clone();
        let listener = match self.listener_for(kind, &real) {
            Ok(listener) => listener,
            Err(error) => {
                let real = real.escape_default();
                match self.should_warn(Warning::Unrelayable) {
                    Some(suppressed) => tracing::warn!(
                        %real, %error, suppressed,
                        "cannot relay this address; passing it unchanged"
                    ),
                    None => tracing::debug!(%real, %error, "cannot relay this address"),
                }
                return None;
            }
        };
        tracing::debug!(%real, local = %listener.addr, server = kind.as_str(), "address rewritten");
        args[index] = listener.addr.to_string();
        held.hold(listener);
        Some(format!("{} {}\r\n", cmd.name(), args.join(" ")).into_bytes())
    }

    /// The relay listener for a real server address: the open one, or a new one if the
    /// address is valid and the cap has room.
    fn listener_for(
        self: &Arc<Self>,
        kind: ServerKind,
        real: &str,
    ) -> Result<Arc<RelayListener>, Unrelayable> {
        // The rule the session applies to `IP=`, checked before anything is opened.
        Endpoint::parse(real, 1863).map_err(Unrelayable::Invalid)?;
        let mut listeners = self.listeners.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (kind, real.to_owned());
        if let Some(listener) = listeners.get(&key).and_then(Weak::upgrade) {
            return Ok(listener);
        }
        listeners.retain(|_, listener| listener.strong_count() > 0);
        if listeners.len() >= self.limits.max_listeners {
            return Err(Unrelayable::Full(listeners.len()));
        }
        let std_listener =
            std::net::TcpListener::bind((self.host, 0)).map_err(Unrelayable::Bind)?;
        std_listener.set_nonblocking(true).map_err(Unrelayable::Bind)?;
        let tcp_listener = TcpListener::from_std(std_listener).map_err(Unrelayable::Bind)?;
        let addr = tcp_listener.local_addr().map_err(Unrelayable::Bind)?;
        let (close, closed) = oneshot::channel();
        let listener = Arc::new(RelayListener { tcp: tcp_listener, addr, _close: close });
        listeners.insert(key, Arc::downgrade(&listener));
        drop(listeners);
        let target = Target { server: kind, ip: real.to_owned() };
        let accepting = Accepting::Relayed { listener: Arc::downgrade(&listener), closed };
        self.spawn(accept_loop(accepting, target, Arc::clone(self)));
        tracing::info!(%real, %addr, server = kind.as_str(), "relay listener opened");
        Ok(listener)
    }

    /// Lets go of a finished connection's listeners after [`RelayLimits::listener_linger`]
    /// (at once on the stop signal).
    fn release_later(&self, held: Held) {
        if held.listeners.is_empty() {
            return;
        }
        let (linger, mut stop) = (self.limits.listener_linger, self.stop.clone());
        self.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(linger) => {}
                () = stopped(&mut stop) => {}
            }
            drop(held);
        });
    }

    /// Runs `task` among the relay's tasks, reaping those that finished.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks();
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a warning of this kind is logged now: `Some(how many were not since)`.
    fn should_warn(&self, kind: Warning) -> Option<u64> {
        let mut warnings = self.warnings.lock().unwrap_or_else(PoisonError::into_inner);
        warnings.of(kind).admit(Instant::now(), WARNING_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_servers_ok_to_usr_or_ans_accepts_a_login() {
        let accepts = |line: &[u8]| {
            let mut framer =
                CommandFramer::new(PayloadCommands::default(), FramerLimits::default());
            framer.push(line);
            let cmd = framer.next_command().expect("framable").expect("a whole command");
            accepts_login(&cmd)
        };
        assert!(accepts(b"USR 4 OK alice@example.com Alice\r\n"));
        assert!(accepts(b"USR 7 OK alice@example.com 1 0\r\n"));
        assert!(accepts(b"ANS 1 OK\r\n"));
        assert!(!accepts(b"USR 3 MD5 S 1234.5678\r\n"));
        assert!(!accepts(b"XFR 3 NS 10.0.0.1:1863 0 10.0.0.1:1863\r\n"));
        assert!(!accepts(b"911 4\r\n"));
    }

    #[test]
    fn a_throttle_logs_once_per_interval_and_counts_the_rest() {
        let (mut throttle, start) = (Throttle::default(), Instant::now());
        let interval = Duration::from_secs(10);
        assert_eq!(throttle.admit(start, interval), Some(0));
        for ms in [1, 500, 9_999] {
            assert_eq!(throttle.admit(start + Duration::from_millis(ms), interval), None);
        }
        assert_eq!(throttle.admit(start + interval, interval), Some(3));
        assert_eq!(throttle.admit(start + interval * 2, interval), Some(0));
    }

    async fn listener() -> Arc<RelayListener> {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = tcp.local_addr().expect("address");
        Arc::new(RelayListener { tcp, addr, _close: oneshot::channel().0 })
    }

    #[tokio::test]
    async fn a_connection_holds_its_latest_listeners() {
        let (a, b, c) = (listener().await, listener().await, listener().await);
        let mut held = Held::new(2);
        held.hold(Arc::clone(&a));
        held.hold(Arc::clone(&b));
        held.hold(Arc::clone(&a));
        held.hold(Arc::clone(&c));
        let ports: Vec<u16> = held.listeners.iter().map(|l| l.addr.port()).collect();
        assert_eq!(ports, [a.addr.port(), c.addr.port()], "b was the least recent");
        assert_eq!(Arc::strong_count(&b), 1, "let go of");
        let b_addr = b.addr;
        drop(b);
        assert!(TcpStream::connect(b_addr).await.is_err(), "closed as the last holder let go");
    }
}
