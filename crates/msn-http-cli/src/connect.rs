//! `msn-http connect`: one MSNP session through a gateway, typed on stdin or run from a
//! script, with received commands printed as they arrive and replies checked for automation.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use msn_http_core::client::Target;
use msn_http_core::msnp::{OwnedCommand, with_payload};
use msn_http_tokio::{Client, ClientEvent, ClientSender, SessionEnd};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::common::{Failure, GatewayArgs, parse_duration, secs};
use crate::msnp::{is_payload_command, payload_lines};
use crate::script::{Numbered, Pattern, Step, Vars, expand};

/// Unmatched received commands kept for later `expect`s; older ones are dropped.
const MAX_BACKLOG: usize = 10_000;

/// Which kind of MSNP server the session opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Server {
    /// A notification server (`Server=NS`).
    Ns,
    /// A switchboard (`Server=SB`); the first command must be `USR` or `ANS`.
    Sb,
}

/// The flags of `msn-http connect`.
#[derive(Args, Debug)]
pub(crate) struct ConnectArgs {
    #[command(flatten)]
    sessions: GatewayArgs,
    /// The kind of MSNP server to open.
    #[arg(long, value_enum, default_value_t = Server::Ns)]
    server: Server,
    /// The MSNP server as the gateway should see it (`IP=`): the dispatch server, an NS from
    /// XFR NS, or an SB address from XFR SB / RNG.
    #[arg(long, value_name = "HOST[:PORT]", default_value = "messenger.hotmail.com")]
    ip: String,
    /// Run this script instead of reading stdin (the format is in the help above).
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,
    /// After the input, wait for a command matching PATTERN; repeat for several, in order.
    /// Exits 1 if one does not come within --timeout.
    #[arg(long = "expect", value_name = "PATTERN")]
    expect: Vec<String>,
    /// How long each expectation (and the final logout) may take.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

/// Runs the session until the input ends (then logs out), or Ctrl-C.
pub(crate) async fn run(args: ConnectArgs) -> Result<(), Failure> {
    let steps = match &args.script {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the script {}: {e}", path.display()))?;
            let steps = crate::script::parse(&text)
                .map_err(|e| format!("script {}: {e}", path.display()))?;
            Some(steps)
        }
        None => None,
    };
    let config = args.sessions.client_config()?;
    let target = match args.server {
        Server::Ns => Target::notification(args.ip.clone()),
        Server::Sb => Target::switchboard(args.ip.clone()),
    };
    let client =
        Client::open(config, target).map_err(|e| format!("cannot open the session: {e}"))?;
    let echo = steps.is_some() || !std::io::stdin().is_terminal();
    let keep = steps.is_some() || !args.expect.is_empty();
    let mut live = Live::start(client, args.timeout, echo, keep);
    tracing::info!(gateway = %args.sessions.gateway, ip = %args.ip, "session opened");

    let interactive = steps.is_none() && args.expect.is_empty();
    let work = async {
        match &steps {
            Some(steps) => live.run_script(steps).await?,
            None => live.run_stdin().await?,
        }
        for pattern in &args.expect {
            let pattern = Pattern::new(&expand(pattern, &live.vars)?);
            live.expect(&pattern, None).await.map_err(|e| format!("--expect: {e}"))?;
        }
        Ok::<(), String>(())
    };
    let outcome = tokio::select! {
        outcome = work => outcome,
        _ = tokio::signal::ctrl_c() => Err(String::new()),
    };
    match outcome {
        Ok(()) => live.finish().await.map_err(Failure::from),
        Err(interrupted) if interrupted.is_empty() => {
            crate::note("interrupted: logging out");
            let logout = live.finish().await;
            match (interactive, logout) {
                (true, result) => result.map_err(Failure::from),
                (false, _) => Err(Failure::interrupted()),
            }
        }
        Err(reason) => {
            // Still log out, so the server sees a clean end.
            let _ = live.finish().await;
            Err(Failure::from(reason))
        }
    }
}

/// The running session: a task prints what arrives and keeps it for `expect`.
struct Live {
    sender: ClientSender,
    incoming: mpsc::UnboundedReceiver<OwnedCommand>,
    backlog: Vec<OwnedCommand>,
    reader: JoinHandle<Option<SessionEnd>>,
    ended: Arc<Notify>,
    vars: Vars,
    timeout: Duration,
    echo: bool,
    closed: bool,
}

impl Live {
    fn start(client: Client, timeout: Duration, echo: bool, keep: bool) -> Self {
        let (sender, mut receiver) = client.split();
        let (tx, incoming) = mpsc::unbounded_channel();
        let ended = Arc::new(Notify::new());
        let ended_by_reader = Arc::clone(&ended);
        let reader = tokio::spawn(async move {
            while let Some(event) = receiver.recv_event().await {
                match event {
                    ClientEvent::Command(cmd) => {
                        tracing::trace!(wire = %cmd.as_bytes().escape_ascii(), "received");
                        print_received(&cmd);
                        if keep {
                            let _ = tx.send(cmd);
                        }
                    }
                    ClientEvent::Notice(notice) => crate::note(&notice.to_string()),
                    ClientEvent::Closed(end) => {
                        crate::note(&format!("session over: {}", end.reason));
                        ended_by_reader.notify_one();
                        return Some(end);
                    }
                    _ => {}
                }
            }
            ended_by_reader.notify_one();
            receiver.end().cloned()
        });
        Self {
            sender,
            incoming,
            backlog: Vec::new(),
            reader,
            ended,
            vars: Vars::new(),
            timeout,
            echo,
            closed: false,
        }
    }

    async fn send(&self, bytes: &[u8]) -> Result<(), String> {
        let text = String::from_utf8_lossy(bytes);
        let first = text.split("\r\n").next().unwrap_or_default().to_owned();
        self.sender.send(bytes).await.map_err(|e| format!("cannot send `{first}`: {e}"))?;
        tracing::trace!(wire = %bytes.escape_ascii(), "sent");
        if self.echo {
            crate::out(&format!(">> {first}"));
        }
        Ok(())
    }

    async fn run_script(&mut self, steps: &[Numbered]) -> Result<(), String> {
        for Numbered { line, step } in steps {
            let at = |e: String| format!("script line {line}: {e}");
            match step {
                Step::Send { line: text, payload } => {
                    let head = expand(text, &self.vars).map_err(at)?;
                    let bytes = match payload {
                        Some(lines) => {
                            let body = expand(&lines.join("\r\n"), &self.vars).map_err(at)?;
                            with_payload(&head, body.as_bytes())
                        }
                        None => format!("{head}\r\n").into_bytes(),
                    };
                    self.send(&bytes).await.map_err(at)?;
                }
                Step::Expect { pattern, payload } => {
                    let pattern = Pattern::new(&expand(pattern, &self.vars).map_err(at)?);
                    let payload = match payload {
                        Some(lines) => Some(Pattern::new(
                            &expand(&lines.join("\r\n"), &self.vars).map_err(at)?,
                        )),
                        None => None,
                    };
                    self.expect(&pattern, payload.as_ref()).await.map_err(at)?;
                }
                Step::Timeout(d) => self.timeout = *d,
                Step::Sleep(d) => tokio::time::sleep(*d).await,
                Step::Close => self.finish().await.map_err(at)?,
            }
        }
        Ok(())
    }

    /// Sends what is typed: a line per command; a payload command's line is followed by its
    /// payload lines up to a line holding only `.` (a payload line starting with `.` is
    /// written with one more `.`), and gets its length appended.
    async fn run_stdin(&mut self) -> Result<(), String> {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut payload: Option<(String, Vec<String>)> = None;
        loop {
            let line = tokio::select! {
                line = lines.next_line() => line.map_err(|e| format!("cannot read stdin: {e}"))?,
                () = self.ended.notified() => return Ok(()),
            };
            let Some(line) = line else { break };
            let line = line.trim_end_matches('\r');
            if let Some((head, body)) = payload.as_mut() {
                if line == "." {
                    let bytes = with_payload(head, body.join("\r\n").as_bytes());
                    payload = None;
                    self.send(&bytes).await?;
                } else {
                    body.push(
                        line.strip_prefix('.')
                            .filter(|l| l.starts_with('.'))
                            .unwrap_or(line)
                            .to_owned(),
                    );
                }
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let name = line.split(' ').next().unwrap_or_default();
            if is_payload_command(name) {
                payload = Some((line.to_owned(), Vec::new()));
                continue;
            }
            if let Err(e) = self.send(format!("{line}\r\n").as_bytes()).await {
                // A refused line (PNG, a malformed command) is not the end of a typed session.
                if self.sender.is_closed() {
                    return Err(e);
                }
                crate::note(&format!("{e}; not sent"));
            }
        }
        match payload {
            Some((head, _)) => {
                Err(format!("stdin ended inside the payload of `{head}` (end it with a `.` line)"))
            }
            None => Ok(()),
        }
    }

    /// Waits for a command matching `pattern` (and `payload`), taking the oldest one not yet
    /// taken.
    async fn expect(&mut self, pattern: &Pattern, payload: Option<&Pattern>) -> Result<(), String> {
        let mut vars = self.vars.clone();
        let hit = |cmd: &OwnedCommand, vars: &mut Vars| {
            let mut trial = vars.clone();
            let line_ok = pattern.matches(&cmd.to_string(), &mut trial);
            let payload_ok = payload.is_none_or(|p| {
                let text = String::from_utf8_lossy(cmd.payload().unwrap_or_default());
                p.matches(&text, &mut trial)
            });
            let ok = line_ok && payload_ok;
            if ok {
                *vars = trial;
            }
            ok
        };
        if let Some(i) = self.backlog.iter().position(|c| hit(c, &mut vars)) {
            self.backlog.remove(i);
            self.vars = vars;
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some(cmd)) if hit(&cmd, &mut vars) => {
                    self.vars = vars;
                    return Ok(());
                }
                Ok(Some(cmd)) => {
                    seen.push(cmd.to_string());
                    if self.backlog.len() == MAX_BACKLOG {
                        self.backlog.remove(0);
                    }
                    self.backlog.push(cmd);
                }
                Ok(None) => {
                    return Err(format!(
                        "the session ended before a command matching `{}` arrived{}",
                        pattern.text(),
                        meanwhile(&seen)
                    ));
                }
                Err(_) => {
                    return Err(format!(
                        "no command matching `{}` within {}{}",
                        pattern.text(),
                        secs(self.timeout),
                        meanwhile(&seen)
                    ));
                }
            }
        }
    }

    /// Logs out (once) and reports how the session ended.
    async fn finish(&mut self) -> Result<(), String> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        self.sender.close();
        let end = match tokio::time::timeout(self.timeout, &mut self.reader).await {
            Ok(Ok(end)) => end,
            Ok(Err(_)) => None,
            Err(_) => {
                return Err(format!("the logout did not complete within {}", secs(self.timeout)));
            }
        };
        match end {
            Some(end) if end.is_clean() => Ok(()),
            Some(end) => Err(end.reason.to_string()),
            None => Err("the session ended without a reason".into()),
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn meanwhile(seen: &[String]) -> String {
    match seen.len() {
        0 => "; nothing else arrived".into(),
        n => {
            let last: Vec<String> =
                seen.iter().rev().take(3).rev().map(|s| format!("`{s}`")).collect();
            format!("; {n} other commands arrived, the last: {}", last.join(", "))
        }
    }
}

fn print_received(cmd: &OwnedCommand) {
    crate::out(&format!("<< {cmd}"));
    if let Some(payload) = cmd.payload() {
        for line in payload_lines(payload) {
            crate::out(&format!("   | {line}"));
        }
    }
}
