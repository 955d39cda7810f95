//! `msn-http relay`: lets an MSN client that only speaks TCP use an HTTP-only network. Each
//! accepted TCP connection becomes a gateway session (the [`ClientStream`] byte face); the
//! addresses in `XFR` and `RNG` coming back are rewritten to relay listeners, opened on
//! demand, each of which maps to the real server address (`Server=SB`, or `Server=NS` for
//! `XFR NS`), so switchboards are relayed too.
//!
//! Both directions are framed with the core's [`CommandFramer`], so commands are only ever
//! rewritten whole and payloads pass untouched. `PNG` from the client is answered here with
//! `QNG 50`: over the gateway, polling keeps the session alive and `PNG` is not allowed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Args;
use msn_http_core::client::{ClientConfig, Target};
use msn_http_core::msnp::{Command, CommandFramer, FramerLimits, PayloadCommands};
use msn_http_core::wire::ServerKind;
use msn_http_tokio::ClientStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::common::{Failure, HttpUrl, PolicyArgs, client_config};
use crate::msnp::args;

/// Relay listeners opened for `XFR`/`RNG` addresses at most; later addresses pass unchanged.
const MAX_LISTENERS: usize = 1024;
/// How long a session may take to end after its TCP client went away.
const LOGOUT_GRACE: Duration = Duration::from_secs(10);

/// The flags of `msn-http relay`.
#[derive(Args, Debug)]
pub(crate) struct RelayArgs {
    /// Where MSN clients connect (their "server" setting). Port 0: any free port (printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:1863")]
    listen: SocketAddr,
    /// The gateway: `http://HOST[:PORT][/PATH]`.
    #[arg(long, value_name = "URL", value_parser = HttpUrl::parse)]
    gateway: HttpUrl,
    /// The NS that sessions from --listen open (`IP=`).
    #[arg(long, value_name = "HOST[:PORT]", default_value = "messenger.hotmail.com")]
    ip: String,
    /// An HTTP proxy to reach the gateway through: `http://[USER:PASSWORD@]HOST:PORT`.
    #[arg(long, value_name = "URL", value_parser = HttpUrl::parse)]
    proxy: Option<HttpUrl>,
    #[command(flatten)]
    policy: PolicyArgs,
    /// TCP connections relayed at once (NS and SB together); more are closed at once.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_connections: usize,
}

/// What every relayed connection shares.
struct Relay {
    config: ClientConfig,
    host: IpAddr,
    /// (server kind, real address) → relay listener.
    listeners: Mutex<HashMap<(ServerKind, String), SocketAddr>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    slots: Arc<Semaphore>,
    /// Turns true on Ctrl-C: stop accepting, log every session out.
    stop: watch::Receiver<bool>,
}

/// Runs the relay until Ctrl-C.
pub(crate) async fn run(args: RelayArgs) -> Result<(), Failure> {
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop_tx, stop) = watch::channel(false);
    let relay = Arc::new(Relay {
        config: client_config(&args.gateway, args.proxy.as_ref(), &args.policy),
        host: local.ip(),
        listeners: Mutex::default(),
        tasks: Mutex::default(),
        slots: Arc::new(Semaphore::new(args.max_connections.max(1))),
        stop,
    });
    // Fail here, not on the first client, if the settings cannot make a session.
    msn_http_core::client::Session::new(
        relay.config.clone(),
        Target::notification(args.ip.clone()),
        std::time::Instant::now(),
    )
    .map_err(|e| format!("invalid relay settings: {e}"))?;
    crate::out(&format!("msn-http relay listening on {local}"));
    crate::out(&format!("  sessions open IP={} through {}", args.ip, args.gateway.display()));
    crate::out(&format!("  poll policy {}", args.policy.describe()));
    crate::out(
        "  XFR/RNG addresses are rewritten to relay listeners opened on demand; Ctrl-C stops",
    );
    let main =
        tokio::spawn(accept_loop(listener, Target::notification(args.ip), Arc::clone(&relay)));
    let _ = tokio::signal::ctrl_c().await;
    crate::note("stopping: logging the relayed sessions out");
    let _ = stop_tx.send(true);
    let mut loops = vec![main];
    loops.extend(relay.tasks.lock().unwrap_or_else(PoisonError::into_inner).drain(..));
    let aborts: Vec<_> = loops.iter().map(JoinHandle::abort_handle).collect();
    if tokio::time::timeout(LOGOUT_GRACE, join_all(loops)).await.is_err() {
        crate::note("some sessions did not log out in time; ending them");
        aborts.iter().for_each(tokio::task::AbortHandle::abort);
    }
    crate::out("relay stopped");
    Ok(())
}

/// Resolves once the stop signal is given (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Waits for every task.
async fn join_all(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// Accepts and relays connections until the stop signal, then waits for them to log out.
async fn accept_loop(listener: TcpListener, target: Target, relay: Arc<Relay>) {
    let mut connections = tokio::task::JoinSet::new();
    let mut stop = relay.stop.clone();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => {
                drop(listener);
                while connections.join_next().await.is_some() {}
                return;
            }
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&relay.slots).try_acquire_owned() else {
                    tracing::warn!(%peer, "too many relayed connections; closing");
                    continue;
                };
                let (target, relay) = (target.clone(), Arc::clone(&relay));
                connections.spawn(async move {
                    tracing::info!(%peer, server = target.server.as_str(), ip = %target.ip, "client connected");
                    match relay_connection(tcp, target, &relay).await {
                        Ok(()) => tracing::info!(%peer, "client done"),
                        Err(error) => tracing::warn!(%peer, %error, "relayed connection ended"),
                    }
                    drop(permit);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Relays one TCP connection through one gateway session until either side ends.
async fn relay_connection(
    tcp: TcpStream,
    target: Target,
    relay: &Arc<Relay>,
) -> Result<(), String> {
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let stream = ClientStream::open(relay.config.clone(), target)
        .map_err(|e| format!("cannot open the gateway session: {e}"))?;
    let (mut gw_rd, mut gw_wr) = tokio::io::split(stream);
    let (mut tcp_rd, mut tcp_wr) = tcp.into_split();
    // Answers the relay gives itself (`QNG`), written between whole commands.
    let (local_tx, mut local_rx) = mpsc::channel::<&'static [u8]>(8);

    let mut stop = relay.stop.clone();
    let up = async {
        let mut framer = CommandFramer::new(PayloadCommands::default(), FramerLimits::default());
        let mut buf = vec![0u8; 16 * 1024];
        let result = loop {
            let read = tokio::select! {
                read = tcp_rd.read(&mut buf) => read,
                () = stopped(&mut stop) => break Ok(()),
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
                                match relay.rewrite(&cmd) {
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

impl Relay {
    /// `XFR ... SB|NS <addr> ...` and `RNG <session> <addr> ...` with the address replaced by
    /// a relay listener's; `None` for every other command (passed on unchanged).
    fn rewrite(self: &Arc<Self>, cmd: &Command<'_>) -> Option<Vec<u8>> {
        let mut args = args(cmd);
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
        let local = match self.listener_for(kind, &real) {
            Ok(local) => local,
            Err(error) => {
                tracing::warn!(%real, %error, "cannot relay this address; passing it unchanged");
                return None;
            }
        };
        tracing::debug!(%real, %local, server = kind.as_str(), "address rewritten");
        args[index] = local.to_string();
        Some(format!("{} {}\r\n", cmd.name(), args.join(" ")).into_bytes())
    }

    /// The relay listener for a real server address, opened on first use.
    fn listener_for(self: &Arc<Self>, kind: ServerKind, real: &str) -> Result<SocketAddr, String> {
        let mut listeners = self.listeners.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(addr) = listeners.get(&(kind, real.to_owned())) {
            return Ok(*addr);
        }
        if listeners.len() >= MAX_LISTENERS {
            return Err(format!("already {MAX_LISTENERS} relay listeners"));
        }
        let std_listener =
            std::net::TcpListener::bind((self.host, 0)).map_err(|e| e.to_string())?;
        std_listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let listener = TcpListener::from_std(std_listener).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        listeners.insert((kind, real.to_owned()), addr);
        let target = Target { server: kind, ip: real.to_owned() };
        let relay = Arc::clone(self);
        let task = tokio::spawn(accept_loop(listener, target, relay));
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner).push(task);
        tracing::info!(%real, %addr, server = kind.as_str(), "relay listener opened");
        Ok(addr)
    }
}
