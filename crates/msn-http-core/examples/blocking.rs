//! A blocking driver on the sans-IO core: one thread, `std::net`, the session's deadlines as
//! socket timeouts. It signs in to the notification server and prints the friendly name the
//! server knows the user by.
//!
//! Against the built-in server (`msn-http gateway --listen 127.0.0.1:8080 --builtin`):
//!
//! ```text
//! cargo run -p msn-http-core --example blocking -- http://127.0.0.1:8080 alice@example.com alicepass
//! ```
// An example drives the session with real sockets and clocks; the core library itself may not.
#![allow(clippy::disallowed_methods, clippy::disallowed_types, clippy::print_stdout)]

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use msn_http_core::client::{ClientConfig, Connection, Event, Session, Target};
use msn_http_core::msnp::{CommandWriter, OwnedCommand, md5_login_response};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let email = args.next().unwrap_or_else(|| "alice@example.com".into());
    let password = args.next().unwrap_or_else(|| "alicepass".into());
    println!("{}", friendly_name(&url, &email, &password)?);
    Ok(())
}

/// Signs in as `email`, logs out, and returns the friendly name from `USR trid OK email name`.
pub(crate) fn friendly_name(url: &str, email: &str, password: &str) -> Result<String, Error> {
    let target = Target::notification("messenger.hotmail.com");
    let mut ns = Blocking::new(Session::new(ClientConfig::from_url(url)?, target, Instant::now())?);
    let mut msnp = CommandWriter::new();
    ns.session.send(&msnp.command("VER", &["MSNP7", "MSNP6", "MSNP5", "CVR0"])?)?;
    ns.reply("VER")?;
    ns.session.send(&msnp.command("USR", &["MD5", "I", email])?)?;
    let salt = ns.reply("USR")?.arg(3).ok_or("no salt")?.into_owned();
    ns.session.send(&msnp.command("USR", &["MD5", "S", &md5_login_response(&salt, password)])?)?;
    let ok = ns.reply("USR")?;
    ns.session.send(b"OUT\r\n")?;
    ns.session.close();
    while ns.next_event()?.is_some() {} // until the session has ended
    Ok(ok.arg(3).ok_or("no friendly name")?.into_owned())
}

/// A session and the one connection its requests go over.
struct Blocking {
    session: Session,
    tcp: Option<TcpStream>,
    out: Vec<u8>,
}

impl Blocking {
    fn new(session: Session) -> Self {
        Self { session, tcp: None, out: Vec::new() }
    }

    /// The next command named `name`, skipping others; an error reply or the end fails.
    fn reply(&mut self, name: &str) -> Result<OwnedCommand, Error> {
        loop {
            match self.next_event()? {
                Some(cmd) if cmd.is_error() => return Err(format!("refused: {cmd}").into()),
                Some(cmd) if cmd.name() == name => return Ok(cmd),
                Some(_) => {}
                None => return Err("the session ended".into()),
            }
        }
    }

    /// The next received command, doing I/O until there is one; `None` once the session ended
    /// cleanly.
    fn next_event(&mut self) -> Result<Option<OwnedCommand>, Error> {
        loop {
            // The event borrows the session: take what is needed (an owned command), then act.
            match self.session.poll_event() {
                Some(Event::Command(cmd)) => return Ok(Some(cmd.to_owned_command())),
                Some(Event::Closed(closed)) if closed.reason.is_clean() => return Ok(None),
                Some(Event::Closed(closed)) => return Err(closed.to_string().into()),
                Some(_) => continue, // notices
                None => self.step()?,
            }
        }
    }

    /// Makes the request that is due (and reads its response), or sleeps until one is.
    fn step(&mut self) -> io::Result<()> {
        let now = Instant::now();
        self.out.clear();
        let Some(transmit) = self.session.poll_transmit(now, &mut self.out) else {
            let wake = self.session.poll_timeout().ok_or(io::ErrorKind::BrokenPipe)?;
            std::thread::sleep(wake.saturating_duration_since(now));
            self.session.handle_timeout(Instant::now());
            return Ok(());
        };
        if transmit.connection == Connection::Fresh || self.tcp.is_none() {
            let gateway = transmit.destination;
            match TcpStream::connect((gateway.host(), gateway.port())) {
                Ok(tcp) => self.tcp = Some(tcp),
                Err(e) => {
                    self.session.handle_connect_failed(now, e.kind());
                    return Ok(());
                }
            }
        }
        let tcp = self.tcp.as_mut().ok_or(io::ErrorKind::NotConnected)?;
        let written = tcp.write_all(&self.out);
        let mut buf = [0; 16 * 1024];
        while written.is_ok() && self.session.in_flight().is_some() {
            let deadline = self.session.poll_timeout().unwrap_or(now);
            let left = deadline.saturating_duration_since(Instant::now());
            tcp.set_read_timeout(Some(left.max(std::time::Duration::from_millis(1))))?;
            match tcp.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.session.handle_input(Instant::now(), &buf[..n]),
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
                {
                    self.session.handle_timeout(Instant::now());
                    self.tcp = None;
                    return Ok(());
                }
                Err(_) => break,
            }
        }
        if self.session.in_flight().is_some() {
            // Written in part or ended before the response was whole.
            self.session.handle_eof(Instant::now());
            self.tcp = None;
        }
        Ok(())
    }
}
