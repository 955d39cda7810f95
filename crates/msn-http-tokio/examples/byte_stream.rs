//! An MSNP client written for a `TcpStream`, moved to the HTTP gateway by swapping the stream:
//! `ClientStream::connect(url, target)` where it had `TcpStream::connect(address)`, and
//! `into_split` as before. It signs in, invites one user to a switchboard, says one line and
//! prints the answer.
//!
//! Against the built-in server (`msn-http gateway --listen 127.0.0.1:8080 --builtin`), with the
//! `echo_bot` example signed in as bob:
//!
//! ```text
//! cargo run -p msn-http-tokio --example byte_stream -- http://127.0.0.1:8080 alice@example.com alicepass bob@example.com "Hello, bot"
//! ```
#![allow(clippy::print_stdout)] // a program tells its user on stdout

use std::io;

use msn_http_tokio::{
    ClientStream, OwnedReadHalf, OwnedWriteHalf, Target, md5_login_response, message_text,
    text_message,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// The longest line or payload this client reads.
const MAX_READ: u64 = 64 * 1024;

#[tokio::main]
async fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).map_or(default, String::as_str).to_owned();
    let (url, email, password) =
        (arg(0, "http://127.0.0.1:8080"), arg(1, "alice@example.com"), arg(2, "alicepass"));
    let answer =
        say(&url, &email, &password, &arg(3, "bob@example.com"), &arg(4, "Hello!")).await?;
    println!("{answer}");
    Ok(())
}

/// Signs in as `email`, waits for `to` to come online, invites them, says `text` and returns
/// their first answer.
pub(crate) async fn say(
    url: &str,
    email: &str,
    password: &str,
    to: &str,
    text: &str,
) -> io::Result<String> {
    let mut ns = Msnp::connect(url, Target::notification("messenger.hotmail.com")).await?;
    ns.call("VER", "MSNP7 MSNP6 MSNP5 CVR0").await?;
    let salt = ns.call("USR", &format!("MD5 I {email}")).await?.arg(3).to_owned();
    ns.call("USR", &format!("MD5 S {}", md5_login_response(&salt, password))).await?;
    ns.call("CHG", "NLN").await?;
    // Online already (ILN, after CHG's answer) or later (NLN).
    ns.read_until(|c| {
        (c.name() == "ILN" && c.arg(2) == to) || (c.name() == "NLN" && c.arg(1) == to)
    })
    .await?;
    let xfr = ns.call("XFR", "SB").await?; // XFR trid SB address CKI cookie
    let mut sb = Msnp::connect(url, Target::switchboard(xfr.arg(2))).await?;
    sb.call("USR", &format!("{email} {}", xfr.arg(4))).await?;
    sb.call("CAL", to).await?;
    sb.read_until(|c| c.name() == "JOI").await?;
    sb.send_message(text).await?;
    let answer = sb.read_until(|c| c.name() == "MSG").await?;
    sb.log_out().await?;
    ns.log_out().await?;
    let text = message_text(&answer.payload).ok_or_else(|| invalid("the answer is no text"))?;
    Ok(String::from_utf8_lossy(text).into_owned())
}

/// A received command: its words, and the payload of a `MSG`.
struct Received {
    words: Vec<String>,
    payload: Vec<u8>,
}

impl Received {
    fn name(&self) -> &str {
        self.arg_or_name(0)
    }

    /// Argument `i` after the name (empty when missing).
    fn arg(&self, i: usize) -> &str {
        self.arg_or_name(i + 1)
    }

    fn arg_or_name(&self, i: usize) -> &str {
        self.words.get(i).map_or("", String::as_str)
    }
}

/// One MSNP connection as a TCP client keeps it: lines (and payloads) read from one half,
/// commands written to the other.
struct Msnp<R, W> {
    reader: BufReader<R>,
    writer: W,
    trid: u32,
}

impl Msnp<OwnedReadHalf, OwnedWriteHalf> {
    async fn connect(url: &str, target: Target) -> io::Result<Self> {
        // Over TCP: `TcpStream::connect(address).await?.into_split()`.
        let (reader, writer) = ClientStream::connect(url, target).await?.into_split();
        Ok(Self { reader: BufReader::new(reader), writer, trid: 0 })
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Msnp<R, W> {
    /// Sends `name trid args` and reads up to its answer: the same name and transaction ID.
    async fn call(&mut self, name: &str, args: &str) -> io::Result<Received> {
        self.trid += 1;
        let trid = self.trid.to_string();
        self.writer.write_all(format!("{name} {trid} {args}\r\n").as_bytes()).await?;
        self.read_until(|c| c.name() == name && c.arg(0) == trid).await
    }

    async fn send_message(&mut self, text: &str) -> io::Result<()> {
        self.trid += 1;
        let payload = text_message(text);
        let line = format!("MSG {} N {}\r\n", self.trid, payload.len());
        self.writer.write_all(&[line.as_bytes(), &payload].concat()).await
    }

    /// Reads commands until one is `wanted`; an error reply (a number) fails.
    async fn read_until(&mut self, wanted: impl Fn(&Received) -> bool) -> io::Result<Received> {
        loop {
            let cmd = self.read().await?;
            if cmd.name().bytes().all(|b| b.is_ascii_digit()) {
                return Err(io::Error::other(format!(
                    "the server refused: {}",
                    cmd.words.join(" ")
                )));
            }
            if wanted(&cmd) {
                return Ok(cmd);
            }
        }
    }

    async fn read(&mut self) -> io::Result<Received> {
        let mut line = String::new();
        (&mut self.reader).take(MAX_READ).read_line(&mut line).await?;
        if !line.ends_with('\n') {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the connection ended"));
        }
        let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        let mut payload = Vec::new();
        if words.first().is_some_and(|name| name == "MSG") {
            let len = words.last().and_then(|n| n.parse().ok()).filter(|&n| n <= MAX_READ);
            let len = len.ok_or_else(|| invalid("a MSG without a usable length"))?;
            (&mut self.reader).take(len).read_to_end(&mut payload).await?;
            if payload.len() as u64 != len {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the connection ended"));
            }
        }
        Ok(Received { words, payload })
    }

    /// Logs out and closes, as over TCP: `OUT`, the writing side shut down, and what is left
    /// read up to the end (an error if the session did not end cleanly).
    async fn log_out(mut self) -> io::Result<()> {
        self.writer.write_all(b"OUT\r\n").await?;
        self.writer.shutdown().await?;
        tokio::io::copy(&mut (&mut self.reader).take(MAX_READ), &mut tokio::io::sink()).await?;
        Ok(())
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}
