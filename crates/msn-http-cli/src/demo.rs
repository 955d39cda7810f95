//! `msn-http demo`: alice and bob chat on the built-in MSNP server, every byte through our
//! HTTP gateway over loopback, with a transcript of the HTTP exchanges and MSNP commands and a
//! summary of what the poll policy cost.
//!
//! With `--tls` the gateway serves HTTPS with a certificate the demo makes for itself (a CA
//! of its own, trusted by its clients alone), and the clients speak TLS to it directly: an
//! observing proxy would see only a tunnel, so the transcript shows the MSNP commands and
//! the summary the sessions' own counters.
//!
//! One process holds it all: the built-in NS and SB, a [`GatewayServer`] in front of them,
//! one observing proxy per user, and four client sessions (each user's NS and SB). Every wait
//! is for a command the scenario needs, bounded by the step timeout; the gateway answers a
//! request that carries commands with their replies (it holds the request up to `reply_wait`,
//! 500 ms, for the server to answer, then until the server has been quiet for
//! `reply_quiet_gap`, 20 ms: at most 520 ms), so only the steps where one user waits for the
//! other depend on the poll policy.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use msn_http_core::Endpoint;
use msn_http_core::Scheme;
use msn_http_core::client::{ClientConfig, Proxy, Stats, Target, TlsRoots};
use msn_http_core::gateway::GatewayConfig;
use msn_http_core::msnp::{
    CommandWriter, OwnedCommand, md5_login_response, message_text, text_message,
};
use msn_http_driver::certs::{CertError, SelfMadeCa};
use msn_http_tokio::gateway::{GatewayServer, TlsConfig, random_seed};
use msn_http_tokio::{Client, ClientEvent, ClientSender, SessionEnd};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use msn_http_server::{BuiltinServer, NS_NAME, USERS, User};

use crate::common::{Policy, PolicyArgs, ms, secs};
use crate::msnp::payload_lines;
use crate::observer::{Action, Exchange, Log, Observer, Transcript};

const ALICE: &User = &USERS[0];
const BOB: &User = &USERS[1];

/// What each user says, as the text of a `text/plain` message.
const ALICE_SAYS: &str = "Hi Bob! This came to you through the HTTP gateway.";
const BOB_SAYS: &str = "Hi Alice, and this went back the same way.";

/// Runs the demo; `Err` carries the reason the scenario failed.
pub(crate) async fn run(
    policy: PolicyArgs,
    step_timeout: Duration,
    tls: bool,
) -> Result<(), String> {
    let start = Instant::now();
    let transcript = Arc::new(Transcript::new(start));
    let server = BuiltinServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .map_err(|e| format!("cannot start the built-in MSNP server: {e}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    let gateway_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let seed = random_seed().map_err(|e| format!("no random seed: {e}"))?;
    let config =
        GatewayConfig::new(gateway_addr.to_string(), seed).with_backends(server.backends());
    let mut gateway = GatewayServer::from_listener(listener, config)
        .map_err(|e| format!("cannot start the gateway: {e}"))?;
    let tls_roots = match tls {
        true => {
            let (tls, roots) = self_made_tls()?;
            gateway = gateway.with_tls(tls);
            Some(roots)
        }
        false => None,
    };
    let gateway = gateway.spawn();

    let log: Log = Arc::default();
    let mut proxies = HashMap::new();
    for user in [ALICE, BOB].into_iter().filter(|_| !tls) {
        let observer =
            Observer::start(name(user), gateway_addr, Arc::clone(&transcript), Arc::clone(&log))
                .await
                .map_err(|e| format!("cannot start the observer: {e}"))?;
        proxies.insert(user.email, observer);
    }

    say_intro(&server, gateway_addr, &policy, tls);
    // Clients start at the gateway's name; its first answer moves them to its address (GW-IP).
    let gateway_name = endpoint(&format!("localhost:{}", gateway_addr.port()))?;
    let ctx = Arc::new(Ctx {
        transcript: Arc::clone(&transcript),
        step_timeout,
        policy,
        gateway: gateway_name,
        proxies: proxies.iter().map(|(k, v)| (*k, v.addr().to_string())).collect(),
        tls_roots,
        sessions: Mutex::default(),
        marks: Mutex::default(),
        reply_times: Mutex::default(),
    });

    let (ready_tx, ready_rx) = oneshot::channel();
    let scenario = async {
        let (bob, alice) = tokio::join!(bob(&ctx, ready_tx), alice(&ctx, ready_rx));
        bob.and(alice)
    };
    let outcome = match tokio::time::timeout(step_timeout * 8, scenario).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("the scenario did not finish within {}", secs(step_timeout * 8))),
    };
    let elapsed = transcript.elapsed();
    let sessions = ctx.finish().await;
    let gateway_stats = gateway.shutdown().await.ok();
    drop(proxies);
    drop(server);
    let exchanges = log.lock().unwrap_or_else(PoisonError::into_inner).clone();
    print_summary(&ctx, &outcome, elapsed, &sessions, &exchanges, gateway_stats);
    outcome
}

fn endpoint(text: &str) -> Result<Endpoint, String> {
    Endpoint::parse(text, 1863).map_err(|e| format!("bad address {text}: {e}"))
}

fn name(user: &User) -> &'static str {
    if user.email == ALICE.email { "alice" } else { "bob" }
}

/// A certificate for the gateway's names by a CA made here, and the roots that trust it.
fn self_made_tls() -> Result<(TlsConfig, TlsRoots), String> {
    let made = |e: CertError| e.to_string();
    let ca = SelfMadeCa::new().map_err(made)?;
    let cert = ca.issue(&["localhost", "127.0.0.1"]).map_err(made)?;
    let tls = TlsConfig::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes())
        .map_err(|e| format!("cannot serve HTTPS: {e}"))?;
    let mut roots = TlsRoots::default().with_extra_pem(ca.cert_pem.into_bytes());
    roots.platform = false;
    Ok((tls, roots))
}

#[allow(clippy::print_stdout)]
fn say_intro(
    server: &BuiltinServer,
    gateway: std::net::SocketAddr,
    policy: &PolicyArgs,
    tls: bool,
) {
    let scheme = if tls { "https" } else { "http" };
    println!("msn-http demo: alice and bob chat through the HTTP gateway, all on loopback");
    println!(
        "  built-in MSNP server  NS {} (IP={NS_NAME}), SB {}",
        server.ns_addr(),
        server.sb_addr()
    );
    println!("  gateway               {scheme}://{gateway}/gateway/gateway.dll");
    println!("  poll policy           {}", policy.describe());
    if tls {
        println!(
            "  TLS with a certificate made just now by the demo's own CA, which the clients trust;"
        );
        println!("  the requests are encrypted end to end, so no observing proxy prints them");
    } else {
        println!("  each user's requests pass an observing HTTP proxy, which prints them:");
        println!(
            "    POST <target> [body bytes]  -> <status>  X-MSN-Messenger: ...  [body bytes, round trip]"
        );
    }
    println!("  MSNP commands: >> sent, << received, | message text, ** session notices\n");
}

/// What the two users share.
struct Ctx {
    transcript: Arc<Transcript>,
    step_timeout: Duration,
    policy: PolicyArgs,
    gateway: Endpoint,
    proxies: HashMap<&'static str, String>,
    /// With `--tls`: whom the clients trust (they then reach the gateway directly).
    tls_roots: Option<TlsRoots>,
    /// Every session's sender (for the counters) and how it ended.
    sessions: Mutex<Vec<(String, ClientSender)>>,
    /// Named instants, for the latencies in the summary.
    marks: Mutex<HashMap<&'static str, Instant>>,
    /// Time from sending a command to its reply.
    reply_times: Mutex<Vec<Duration>>,
}

impl Ctx {
    fn mark(&self, what: &'static str) {
        self.marks.lock().unwrap_or_else(PoisonError::into_inner).insert(what, Instant::now());
    }

    fn between(&self, from: &str, to: &str) -> Option<Duration> {
        let marks = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        Some(marks.get(to)?.saturating_duration_since(*marks.get(from)?))
    }

    fn config(&self, user: &User) -> Result<ClientConfig, String> {
        let mut config = ClientConfig::new(self.gateway.clone());
        config.poll_policy = self.policy.poll_policy();
        if let Some(roots) = &self.tls_roots {
            config.scheme = Scheme::Https;
            config.tls_roots = roots.clone();
            return Ok(config);
        }
        let proxy = self.proxies.get(user.email).ok_or("no observer for the user")?;
        config.proxy = Some(Proxy { endpoint: endpoint(proxy)?, credentials: None });
        Ok(config)
    }

    /// Every session's counters, once sessions still open (after a failure) have logged out,
    /// or been aborted if they cannot within a second.
    async fn finish(&self) -> Vec<(String, Stats)> {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for (_, sender) in &sessions {
            sender.close();
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline && sessions.iter().any(|(_, s)| !s.is_closed()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sessions
            .iter()
            .map(|(who, sender)| {
                sender.abort();
                (who.clone(), sender.stats())
            })
            .collect()
    }
}

/// One client session of one user, with a task that prints what arrives as it arrives.
struct Conn<'a> {
    ctx: &'a Ctx,
    who: String,
    /// Numbers the transaction IDs of this connection's commands.
    msnp: CommandWriter,
    sender: ClientSender,
    incoming: mpsc::UnboundedReceiver<OwnedCommand>,
    backlog: Vec<OwnedCommand>,
    reader: JoinHandle<Option<SessionEnd>>,
}

impl<'a> Conn<'a> {
    fn open(ctx: &'a Ctx, user: &User, target: Target) -> Result<Self, String> {
        let who = format!("{} {}", name(user), target.server.as_str());
        let client = Client::open(ctx.config(user)?, target)
            .map_err(|e| format!("{who}: cannot open the session: {e}"))?;
        let (sender, mut receiver) = client.split();
        ctx.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((who.clone(), sender.clone()));
        let (tx, incoming) = mpsc::unbounded_channel();
        let (printer, label) = (Arc::clone(&ctx.transcript), who.clone());
        let reader = tokio::spawn(async move {
            while let Some(event) = receiver.recv_event().await {
                match event {
                    ClientEvent::Command(cmd) => {
                        printer.say(&label, &format!("<< {cmd}"), &shown_text(&cmd));
                        let _ = tx.send(cmd);
                    }
                    ClientEvent::Notice(notice) => {
                        printer.say(&label, &format!("** {notice}"), &[]);
                    }
                    ClientEvent::Closed(end) => {
                        printer.say(&label, &format!("** session over: {}", end.reason), &[]);
                        return Some(end);
                    }
                    _ => {}
                }
            }
            receiver.end().cloned()
        });
        let msnp = CommandWriter::new();
        Ok(Self { ctx, who, msnp, sender, incoming, backlog: Vec::new(), reader })
    }

    async fn send(&self, bytes: Vec<u8>) -> Result<(), String> {
        let text = String::from_utf8_lossy(&bytes);
        let (line, rest) = text.split_once("\r\n").unwrap_or((&text, ""));
        let shown = if rest.is_empty() { Vec::new() } else { body_text(rest.as_bytes()) };
        self.ctx.transcript.say(&self.who, &format!(">> {line}"), &shown);
        self.sender.send(&bytes).await.map_err(|e| format!("{}: cannot send {line}: {e}", self.who))
    }

    /// Sends `name args...` with the next transaction ID and waits for its reply: the
    /// command of the same name and ID.
    async fn request(
        &mut self,
        name: &str,
        args: &[&str],
        what: &str,
    ) -> Result<OwnedCommand, String> {
        let bytes = self.msnp.command(name, args).map_err(|e| format!("{}: {e}", self.who))?;
        self.await_reply(bytes, name, what).await
    }

    /// Sends a text message and waits for its `ACK`.
    async fn say(&mut self, text: &str) -> Result<OwnedCommand, String> {
        let msg = self.msnp.payload_command("MSG", &["A"], &text_message(text));
        let msg = msg.map_err(|e| format!("{}: {e}", self.who))?;
        self.await_reply(msg, "ACK", "ACK").await
    }

    /// Sends the command just written and waits for the `reply` with its transaction ID.
    async fn await_reply(
        &mut self,
        bytes: Vec<u8>,
        reply: &str,
        what: &str,
    ) -> Result<OwnedCommand, String> {
        let trid = self.msnp.last_trid();
        let sent = Instant::now();
        self.send(bytes).await?;
        let reply = self.expect(what, |c| c.name() == reply && c.trid() == trid).await?;
        self.ctx.reply_times.lock().unwrap_or_else(PoisonError::into_inner).push(sent.elapsed());
        Ok(reply)
    }

    /// The first command (already received or still to come) that matches, within the step
    /// timeout. An MSNP error fails the step at once.
    async fn expect(
        &mut self,
        what: &str,
        matches: impl Fn(&OwnedCommand) -> bool,
    ) -> Result<OwnedCommand, String> {
        if let Some(i) = self.backlog.iter().position(&matches) {
            return Ok(self.backlog.remove(i));
        }
        let deadline = tokio::time::Instant::now() + self.ctx.step_timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some(cmd)) if matches(&cmd) => return Ok(cmd),
                Ok(Some(cmd)) if cmd.is_error() => {
                    return Err(format!(
                        "{}: the server answered `{cmd}` while we waited for {what}",
                        self.who,
                    ));
                }
                Ok(Some(cmd)) => self.backlog.push(cmd),
                Ok(None) => {
                    return Err(format!(
                        "{}: the session ended while we waited for {what}",
                        self.who
                    ));
                }
                Err(_) => {
                    return Err(format!(
                        "{}: no {what} within {}",
                        self.who,
                        secs(self.ctx.step_timeout)
                    ));
                }
            }
        }
    }

    /// Logs out (`OUT`) and checks the session ended cleanly.
    async fn close(mut self) -> Result<(), String> {
        self.ctx.transcript.say(&self.who, ">> OUT   (closing the session)", &[]);
        self.sender.close();
        let end = match tokio::time::timeout(self.ctx.step_timeout, &mut self.reader).await {
            Ok(Ok(end)) => end,
            Ok(Err(_)) => None,
            Err(_) => return Err(format!("{}: the close did not complete", self.who)),
        };
        match end {
            Some(end) if end.is_clean() => Ok(()),
            Some(end) => Err(format!("{}: {}", self.who, end.reason)),
            None => Err(format!("{}: the session ended without a reason", self.who)),
        }
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn arg(cmd: &OwnedCommand, i: usize) -> String {
    cmd.arg(i).map(|a| a.into_owned()).unwrap_or_default()
}

/// `name` with argument `i` equal to `value`.
fn is(cmd: &OwnedCommand, name: &str, i: usize, value: &str) -> bool {
    cmd.name() == name && cmd.arg(i).as_deref() == Some(value)
}

/// The text of a message payload (after its MIME headers), for the transcript.
fn shown_text(cmd: &OwnedCommand) -> Vec<String> {
    cmd.payload().map(body_text).unwrap_or_default()
}

fn body_text(payload: &[u8]) -> Vec<String> {
    let text = message_text(payload).unwrap_or(payload);
    payload_lines(text).iter().map(|l| format!("| {l}")).collect()
}

/// The MSNP7 login up to `USR OK`: version, client version, policy, MD5 challenge.
async fn login(ns: &mut Conn<'_>, user: &User) -> Result<(), String> {
    ns.request("VER", &["MSNP7", "MSNP6", "CVR0"], "VER").await?;
    let cvr = ["0x0409", "winnt", "5.1", "i386", "MSMSGS", "6.0.0602", "MSMSGS", user.email];
    ns.request("CVR", &cvr, "CVR").await?;
    ns.request("INF", &[], "INF").await?;
    let challenge = ns.request("USR", &["MD5", "I", user.email], "the MD5 challenge").await?;
    let answer = md5_login_response(&arg(&challenge, 3), user.password);
    ns.request("USR", &["MD5", "S", &answer], "USR OK").await?;
    Ok(())
}

/// Goes online; the answer lists who is online already (`ILN`).
async fn go_online(ns: &mut Conn<'_>) -> Result<(), String> {
    ns.request("CHG", &["NLN"], "CHG").await.map(drop)
}

/// Whether `cmd` says `who` is online (`ILN` or `NLN`).
fn online(cmd: &OwnedCommand, who: &User) -> bool {
    match cmd.name() {
        "ILN" => arg(cmd, 2) == who.email,
        "NLN" => arg(cmd, 1) == who.email,
        _ => false,
    }
}

/// Bob goes online first, waits for alice's invitation, answers it, replies to her, and
/// leaves.
async fn bob(ctx: &Ctx, online_cue: oneshot::Sender<()>) -> Result<(), String> {
    let mut ns = Conn::open(ctx, BOB, Target::notification(NS_NAME))?;
    login(&mut ns, BOB).await?;
    go_online(&mut ns).await?;
    let _ = online_cue.send(());
    ns.expect("alice coming online (NLN)", |c| online(c, ALICE)).await?;
    let rng = ns.expect("alice's invitation (RNG)", |c| c.name() == "RNG").await?;
    ctx.mark("bob got RNG");
    let (session, address, cookie) = (arg(&rng, 0), arg(&rng, 1), arg(&rng, 3));

    let mut sb = Conn::open(ctx, BOB, Target::switchboard(address))?;
    ctx.mark("bob sent ANS");
    sb.request("ANS", &[BOB.email, &cookie, &session], "ANS OK").await?;
    sb.expect("alice in the room (IRO)", |c| c.name() == "IRO" && arg(c, 3) == ALICE.email).await?;
    let msg = sb.expect("alice's message", |c| is(c, "MSG", 0, ALICE.email)).await?;
    ctx.mark("bob got MSG");
    if !shown_text(&msg).concat().contains(ALICE_SAYS) {
        return Err("bob: alice's message arrived changed".into());
    }
    ctx.mark("bob sent MSG");
    sb.say(BOB_SAYS).await?;
    let (sb, ns) = tokio::join!(sb.close(), ns.close());
    sb.and(ns)
}

/// Alice logs in beside bob, goes online once he is (the director's cue, so that she learns
/// it from her own `CHG` answer), opens a switchboard, invites him, and they talk.
async fn alice(ctx: &Ctx, bob_online: oneshot::Receiver<()>) -> Result<(), String> {
    let mut ns = Conn::open(ctx, ALICE, Target::notification(NS_NAME))?;
    login(&mut ns, ALICE).await?;
    bob_online.await.map_err(|_| "alice: bob never came online".to_owned())?;
    go_online(&mut ns).await?;
    ns.expect("bob online (ILN)", |c| online(c, BOB)).await?;
    let xfr = ns.request("XFR", &["SB"], "a switchboard (XFR)").await?;
    let (address, cookie) = (arg(&xfr, 2), arg(&xfr, 4));

    let mut sb = Conn::open(ctx, ALICE, Target::switchboard(address))?;
    sb.request("USR", &[ALICE.email, &cookie], "USR OK").await?;
    ctx.mark("alice sent CAL");
    sb.request("CAL", &[BOB.email], "CAL RINGING").await?;
    sb.expect("bob joining (JOI)", |c| is(c, "JOI", 0, BOB.email)).await?;
    ctx.mark("alice got JOI");
    ctx.mark("alice sent MSG");
    sb.say(ALICE_SAYS).await?;
    let msg = sb.expect("bob's reply", |c| is(c, "MSG", 0, BOB.email)).await?;
    ctx.mark("alice got MSG");
    if !shown_text(&msg).concat().contains(BOB_SAYS) {
        return Err("alice: bob's message arrived changed".into());
    }
    sb.expect("bob leaving (BYE)", |c| is(c, "BYE", 0, BOB.email)).await?;
    ns.expect("bob going offline (FLN)", |c| is(c, "FLN", 0, BOB.email)).await?;
    let (sb, ns) = tokio::join!(sb.close(), ns.close());
    sb.and(ns)
}

fn median(mut values: Vec<Duration>) -> Option<(Duration, Duration)> {
    values.sort();
    Some((*values.get(values.len() / 2)?, *values.last()?))
}

#[allow(clippy::print_stdout)]
fn print_summary(
    ctx: &Ctx,
    outcome: &Result<(), String>,
    elapsed: Duration,
    sessions: &[(String, Stats)],
    exchanges: &[Exchange],
    gateway: Option<msn_http_tokio::ServerStats>,
) {
    let sum = |f: fn(&Stats) -> u64| sessions.iter().map(|(_, s)| f(s)).sum::<u64>();
    let count = |a: Action| exchanges.iter().filter(|e| e.action == a).count();
    let trips = |keep: fn(Action) -> bool| {
        median(exchanges.iter().filter(|e| keep(e.action)).map(|e| e.round_trip).collect())
    };
    let figure = |m: Option<(Duration, Duration)>| match m {
        Some((median, worst)) => format!("median {}, worst {}", ms(median), ms(worst)),
        None => "none".into(),
    };
    println!("\nsummary");
    match outcome {
        Ok(()) => println!(
            "  scenario        ok: both logged in, saw each other online, exchanged messages both ways on a switchboard, logged out cleanly"
        ),
        Err(reason) => println!("  scenario        FAILED: {reason}"),
    }
    println!("  poll policy     {}", ctx.policy.describe());
    println!("  elapsed         {:.2} s", elapsed.as_secs_f64());
    if ctx.tls_roots.is_some() {
        println!(
            "  requests        {} in {} sessions, over TLS: {} polls ({} empty); {} bytes of requests written",
            sum(|s| s.requests),
            sessions.len(),
            sum(|s| s.polls),
            sum(|s| s.empty_polls),
            sum(|s| s.wire_bytes_sent),
        );
    }
    if ctx.tls_roots.is_none() {
        println!(
            "  requests        {} in {} sessions: {} opens, {} with commands, {} polls ({} empty)",
            exchanges.len(),
            sessions.len(),
            count(Action::Open),
            count(Action::Send),
            count(Action::Poll),
            sum(|s| s.empty_polls),
        );
    }
    for (who, s) in sessions {
        let polls = if s.polls == 1 { "poll" } else { "polls" };
        println!(
            "    {who:<13} {} requests, {} {polls} ({} empty)",
            s.requests, s.polls, s.empty_polls
        );
    }
    if ctx.tls_roots.is_none() {
        let wire_in: usize = exchanges.iter().map(|e| e.response_bytes).sum();
        let wire_out: usize = exchanges.iter().map(|e| e.request_bytes).sum();
        let body_out: usize = exchanges.iter().map(|e| e.request_body).sum();
        let body_in: usize = exchanges.iter().map(|e| e.response_body).sum();
        println!(
            "  bytes           MSNP {} sent, {} received; HTTP {wire_out} sent, {wire_in} received ({:.0}% overhead)",
            sum(|s| s.msnp_bytes_sent),
            sum(|s| s.msnp_bytes_received),
            overhead(wire_in + wire_out, body_in + body_out),
        );
        println!("  round trip      {}", figure(trips(|_| true)));
        println!("    with commands {}", figure(trips(|a| a != Action::Poll)));
        println!("    polls         {}", figure(trips(|a| a == Action::Poll)));
    }
    let replies = ctx.reply_times.lock().unwrap_or_else(PoisonError::into_inner).clone();
    println!("  command->reply  {}", figure(median(replies)));
    if ctx.policy.policy == Policy::LongPoll {
        println!(
            "    (a command written while a poll is held goes out when that poll returns: one request at a time per session)"
        );
    }
    let hops = [
        ("invitation", "alice sent CAL", "bob got RNG"),
        ("join", "bob sent ANS", "alice got JOI"),
        ("message a->b", "alice sent MSG", "bob got MSG"),
        ("message b->a", "bob sent MSG", "alice got MSG"),
    ];
    let shown: Vec<String> = hops
        .iter()
        .filter_map(|(label, from, to)| Some(format!("{label} {}", ms(ctx.between(from, to)?))))
        .collect();
    if !shown.is_empty() {
        println!("  between users   {}", shown.join(", "));
    }
    if let Some(g) = gateway {
        println!(
            "  gateway         {} sessions opened, {} requests answered, {} bytes to backends, {} from them",
            g.core.sessions_opened,
            g.core.responses,
            g.core.bytes_to_backends,
            g.core.bytes_from_backends
        );
    }
}

fn overhead(wire: usize, body: usize) -> f64 {
    if body == 0 { 0.0 } else { (wire - body.min(wire)) as f64 * 100.0 / body as f64 }
}
