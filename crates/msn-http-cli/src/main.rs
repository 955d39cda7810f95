//! The `msn-http` command-line program: the demo, an interactive or scripted client, a TCP
//! relay for MSN clients, and the gateway server.
#![forbid(unsafe_code)]

mod common;
mod connect;
mod demo;
mod gateway_cmd;
mod msnp;
mod observer;
mod relay;
mod script;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::common::{Failure, PolicyArgs, parse_duration};

const ABOUT: &str = "MSN Messenger over HTTP: MSNP tunnelled through POST /gateway/gateway.dll, \
client and gateway side.";

const EXAMPLES: &str = "\
Examples:
  msn-http demo                                  alice and bob chat through our gateway
  msn-http demo --policy adaptive                the same with adaptive polling
  msn-http gateway --listen 127.0.0.1:8080 --builtin
  msn-http connect --gateway http://127.0.0.1:8080 --script login.msnp
  msn-http relay --listen 127.0.0.1:1863 --gateway http://127.0.0.1:8080";

const DEMO_HELP: &str = "\
Starts, in one process and on loopback only: a built-in MSNP server (an MSNP7 notification
server and switchboard), our HTTP gateway in front of it, and one observing HTTP proxy per
user. Then alice and bob log in (MD5), see each other online, open a switchboard (XFR SB, CAL,
RNG, ANS), exchange a message each way, and log out. Every request and response is printed
with its X-MSN-Messenger header, every MSNP command with the user who sent or received it,
and a summary gives requests, polls, bytes, round trips and the delays between the users,
which is where the poll policies differ.

Exits 0 only if the whole scenario succeeded; otherwise 1, with the reason on stderr.

Example:
  msn-http demo --policy long-poll --lifespan 1";

const CONNECT_HELP: &str = "\
Opens one MSNP session (an NS or an SB) through a gateway. Received commands are printed as
they arrive (`<< LINE`, payload lines as `   | LINE`); notices go to stderr.

Typing (stdin): each line is one command; CRLF is added. A payload command (MSG, QRY, UUX...)
is typed without its length, followed by its payload lines and a line holding only `.`; the
lines are joined with CRLF and the length is appended (a payload line starting with `.` is
typed with one more `.`). At the end of stdin the session logs out (OUT).

Scripts (--script FILE), one statement a line:
  # comment                         blank lines are ignored too
  send LINE                         send a command (CRLF added)
  | TEXT                            after `send` of a payload command: a payload line
  expect PATTERN                    wait for a received command matching PATTERN
  | PATTERN                         after `expect`: the payload must match too
  timeout DURATION                  how long later expects wait (default --timeout)
  sleep DURATION                    pause (500ms, 2s, 1m)
  close                             log out and wait for the session to end
Patterns: `*` any text, `?` one character, `{name}` one word, captured as ${name}.
In sends, payloads and patterns: ${name}, and ${md5:TEXT} (hex MD5 of TEXT, expanded).
An expect takes the oldest received command that matches and was not taken yet. A failed
expect stops the script, logs out and exits 1 with the reason.

Example script (the built-in server of `msn-http gateway --builtin`):
  send VER 1 MSNP7 CVR0
  expect VER 1 MSNP7
  send INF 2
  expect INF 2 MD5
  send USR 3 MD5 I alice@example.com
  expect USR 3 MD5 S {salt}
  send USR 4 MD5 S ${md5:${salt}alicepass}
  expect USR 4 OK alice@example.com *

Examples:
  msn-http connect --gateway http://127.0.0.1:8080 --script login.msnp
  printf 'VER 1 MSNP7 CVR0\\n' | msn-http connect --gateway http://127.0.0.1:8080 --expect 'VER 1 *'";

const RELAY_HELP: &str = "\
Listens for MSN clients that speak plain TCP MSNP and carries each connection over the HTTP
gateway as its own session (IP= from --ip). In what the server sends back, the addresses of
XFR (SB or NS) and RNG are replaced by relay listeners opened on demand, each mapping to the
real address (Server=SB, or Server=NS for XFR NS), so switchboards go through the gateway
too. Commands are rewritten only whole, payloads pass untouched, and the client's PNG is
answered by the relay (QNG 50), since PNG is not allowed over the gateway.

A connection whose login the server has not accepted within --login-timeout is closed, so
clients that connect and wait cannot hold the --max-connections slots. What a server can make
the relay hold is bounded too: an address that is no HOST:PORT passes
unchanged and opens nothing; each distinct address gets one listener, held by the connections
that passed it on (their latest --listeners-per-connection) and closed --listener-linger after
the last lets go; at most --max-listeners are open. Warnings a peer can repeat are logged at
most once per 10 s, with the count of those left out.

Example (point the MSN client's server at 127.0.0.1:1863):
  msn-http relay --listen 127.0.0.1:1863 --gateway http://gateway.example.net --policy adaptive";

const GATEWAY_HELP: &str = "\
Serves the MSN HTTP gateway protocol (POST /gateway/gateway.dll) in front of TCP MSNP
servers. Only the backends the flags allow can be opened: --backend routes a name given as
IP= to a server, --allow lets an address through as given (switchboards), --builtin puts the
built-in MSNP server behind the gateway. The first line printed is the gateway's URL.

Example:
  msn-http gateway --listen 0.0.0.0:80 --public-host gateway.example.net \\
      --backend messenger.hotmail.com/ns=10.0.0.5:1863 --allow 10.0.0.6:1864/sb --idle-timeout 90s";

#[derive(Parser)]
#[command(name = "msn-http", version, about = ABOUT, after_help = EXAMPLES)]
struct Cli {
    /// More logs on stderr: -v progress, -vv wire dumps (RUST_LOG overrides).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Alice and bob chat through our gateway on a built-in MSNP server, with a transcript.
    #[command(long_about = DEMO_HELP)]
    Demo {
        #[command(flatten)]
        policy: PolicyArgs,
        /// The longest wait for any one step of the scenario.
        #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
        timeout: Duration,
        /// Serve and speak HTTPS, with a certificate the demo makes for itself.
        #[arg(long)]
        tls: bool,
    },
    /// One MSNP session through a gateway: typed on stdin, or scripted with checked replies.
    #[command(long_about = CONNECT_HELP)]
    Connect(connect::ConnectArgs),
    /// A TCP relay, so MSN clients that only speak TCP can use an HTTP-only network.
    #[command(long_about = RELAY_HELP)]
    Relay(relay::RelayArgs),
    /// The HTTP gateway in front of TCP MSNP servers (or the built-in one).
    #[command(long_about = GATEWAY_HELP)]
    Gateway(gateway_cmd::GatewayArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&Failure::from(format!("cannot start the async runtime: {e}"))),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo { policy, timeout, tls } => {
                tokio::select! {
                    result = demo::run(policy, timeout, tls) => result.map_err(Failure::from),
                    _ = tokio::signal::ctrl_c() => Err(Failure::interrupted()),
                }
            }
            Command::Connect(args) => connect::run(args).await,
            Command::Relay(args) => relay::run(args).await,
            Command::Gateway(args) => gateway_cmd::run(args).await.map_err(Failure::from),
        }
    });
    // A pending stdin read must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => fail(&failure),
    }
}

fn init_logging(verbose: u8) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::new(directives),
        _ => EnvFilter::new(match verbose {
            0 => "warn",
            1 => "info,msn_http=debug",
            _ => "trace",
        }),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(verbose > 1)
        .init();
}

/// Prints a line of the program's output (stdout).
#[allow(clippy::print_stdout)]
pub(crate) fn out(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
}

/// Prints a notice for people (stderr), apart from the output.
#[allow(clippy::print_stderr)]
pub(crate) fn note(line: &str) {
    eprintln!("** {line}");
}

#[allow(clippy::print_stderr)]
fn fail(failure: &Failure) -> ExitCode {
    eprintln!("msn-http: {}", failure.message);
    ExitCode::from(failure.code)
}
