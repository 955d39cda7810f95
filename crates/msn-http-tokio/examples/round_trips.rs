//! Sequential round trips through a local echo gateway: send a command, receive its echo,
//! repeat. The client runs on a current-thread runtime on the main thread; the gateway (a
//! minimal blocking one) on a thread of its own, so the client's system calls can be counted
//! apart, for example with `strace -c` (which follows only the main thread without `-f`):
//!
//! ```text
//! cargo build --example round_trips
//! strace -c target/debug/examples/round_trips 0
//! strace -c target/debug/examples/round_trips 10000
//! ```
//!
//! The difference, divided by the number of round trips, is the cost of one.

use std::error::Error;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, Target};
use msn_http_tokio::Client;

fn main() -> Result<(), Box<dyn Error>> {
    let rounds: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 1_000,
    };
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        if let Ok((socket, _)) = listener.accept() {
            let _ = echo_gateway(socket);
        }
    });

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let end = runtime.block_on(async move {
        let config = ClientConfig::new(Endpoint::new("127.0.0.1", port)?);
        let mut client = Client::open(config, Target::notification("127.0.0.1"))?;
        // The work runs as a task, as in an application: wake-ups between the driver and a
        // task stay inside the runtime.
        let work = tokio::spawn(async move {
            client.send(b"VER 1 MSNP8 CVR0\r\n").await?;
            client.recv().await?;
            let mut command = Vec::with_capacity(32);
            for i in 0..rounds {
                command.clear();
                write!(command, "CHG {} NLN 0\r\n", i + 2)?;
                client.send(&command).await?;
                let echo = client.recv().await?;
                if echo.as_bytes() != command {
                    return Err("wrong echo".into());
                }
            }
            Ok::<_, Box<dyn Error + Send + Sync>>(client.close().await)
        });
        Ok::<_, Box<dyn Error>>(work.await?.map_err(|e| e.to_string())?)
    })?;
    writeln!(std::io::stdout(), "{rounds} round trips; session ended: {:?}", end.reason)?;
    Ok(())
}

/// Answers every request on one connection with its own body, on one session.
fn echo_gateway(mut socket: TcpStream) -> Result<(), Box<dyn Error>> {
    socket.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut response = Vec::with_capacity(4096);
    loop {
        let (head_len, body_len) = loop {
            let mut fields = [httparse::EMPTY_HEADER; 32];
            let mut request = httparse::Request::new(&mut fields);
            if let httparse::Status::Complete(head_len) = request.parse(&buf)? {
                let body_len = request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                    .unwrap_or(0usize);
                if buf.len() >= head_len + body_len {
                    break (head_len, body_len);
                }
            }
            let n = socket.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let body = &buf[head_len..head_len + body_len];
        let close = body.starts_with(b"OUT");
        response.clear();
        write!(
            response,
            "HTTP/1.1 200 OK\r\nX-MSN-Messenger: SessionID=1; GW-IP=127.0.0.1{}\r\n\
             Content-Length: {}\r\n\r\n",
            if close { "; Session=close" } else { "" },
            body.len()
        )?;
        response.extend_from_slice(body);
        socket.write_all(&response)?;
        buf.drain(..head_len + body_len);
        if close {
            return Ok(());
        }
    }
}
