//! `msn-http demo`: a scripted NS session through an embedded gateway, on a virtual clock.

use std::time::{Duration, Instant};

use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, CloseReason, Event, PollPolicy, Session, Target};

use crate::Policy;

/// What the embedded gateway's MSNP server answers to each client command.
fn server_reply(command: &str) -> &'static [u8] {
    match command.split(' ').next().unwrap_or("") {
        "VER" => b"VER 1 MSNP7 CVR0\r\n",
        "CVR" => b"CVR 2 6.0.0602 6.0.0602 6.0.0602 http://download http://www\r\n",
        "INF" => b"INF 3 MD5\r\n",
        "USR" if command.contains(" I ") => b"USR 4 MD5 S 1013928519.693957190\r\n",
        "USR" => b"USR 5 OK alice@example.com Alice\r\n",
        "CHG" => b"CHG 6 NLN\r\n",
        "OUT" => b"OUT\r\n",
        _ => b"",
    }
}

/// Server pushes that arrive while the client only polls: a message split over two responses.
const PUSHES: [&[u8]; 2] = [
    b"MSG Hotmail Hotmail 54\r\nMIME-Version: 1.0\r\nContent-Type: text/",
    b"plain\r\n\r\nhello!!",
];

pub(crate) fn run(policy: Policy) -> Result<(), String> {
    let mut config =
        ClientConfig::new(Endpoint::parse("gateway.example.net", 80).map_err(|e| e.to_string())?);
    config.poll_policy = match policy {
        Policy::Official => PollPolicy::official(),
        Policy::Adaptive => PollPolicy::adaptive(),
        Policy::LongPoll => PollPolicy::long_poll(),
    };
    let start = Instant::now();
    let mut now = start;
    let mut session = Session::new(config, Target::notification("messenger.example.net"), now)
        .map_err(|e| e.to_string())?;
    let script: [&[u8]; 5] = [
        b"VER 1 MSNP7 MSNP6 CVR0\r\n",
        b"CVR 2 0x0409 win 4.10 i386 MSMSGS 6.0.0602 MSMSGS alice@example.com\r\n",
        b"INF 3\r\nUSR 4 MD5 I alice@example.com\r\n",
        b"USR 5 MD5 S 4f13a15b9c6d1f0e2b4a8c7d6e5f4a3b\r\n",
        b"CHG 6 NLN\r\n",
    ];
    for cmd in script {
        session.send(cmd).map_err(|e| e.to_string())?;
    }
    println!("msn-http demo: one NS session through an embedded gateway ({policy:?} polling)\n");
    let (mut out, mut sequence, mut pushes, mut closing) = (Vec::new(), 0u32, PUSHES.iter(), false);
    let mut received = 0;
    loop {
        out.clear();
        if session.poll_transmit(now, &mut out).is_some() {
            let head_end =
                out.windows(4).position(|w| w == b"\r\n\r\n").map_or(out.len(), |p| p + 4);
            let (head, body) = out.split_at(head_end);
            let line = String::from_utf8_lossy(head.split(|&b| b == b'\r').next().unwrap_or(b""));
            println!("[{:>6.2}s] -> {line}", (now - start).as_secs_f64());
            let mut reply = Vec::new();
            for cmd in String::from_utf8_lossy(body).split("\r\n").filter(|c| !c.is_empty()) {
                println!("            >> {cmd}");
                reply.extend_from_slice(server_reply(cmd));
            }
            if body.is_empty() {
                if let Some(push) = pushes.next() {
                    reply.extend_from_slice(push);
                }
            }
            sequence += 1;
            let ending = body.starts_with(b"OUT");
            let messenger = format!(
                "SessionID=1013928519.{sequence}; GW-IP=gateway.example.net{}",
                if ending { "; Session=close" } else { "" }
            );
            println!("            <- 200 OK, X-MSN-Messenger: {messenger}, {} bytes", reply.len());
            let response = format!(
                "HTTP/1.1 200 OK\r\nX-MSN-Messenger: {messenger}\r\nContent-Length: {}\r\n\r\n",
                reply.len()
            );
            session.handle_input(now, response.as_bytes());
            session.handle_input(now, &reply);
        }
        while let Some(event) = session.poll_event() {
            match event {
                Event::Command(cmd) => {
                    received += 1;
                    println!("            << {}", String::from_utf8_lossy(cmd.line()));
                    if let Some(payload) = cmd.payload() {
                        println!("               ({} payload bytes, whole)", payload.len());
                    }
                }
                Event::Closed(closed) => {
                    let stats = session.stats();
                    println!(
                        "\nclosed ({:?}): {} requests, {} polls, {} commands received, {} MSNP bytes sent, {} received",
                        closed.reason,
                        stats.requests,
                        stats.polls,
                        received,
                        stats.msnp_bytes_sent,
                        stats.msnp_bytes_received
                    );
                    return match closed.reason {
                        CloseReason::ServerClosed | CloseReason::LocalClose => Ok(()),
                        other => Err(format!("session ended badly: {other:?}")),
                    };
                }
                other => println!("            ** {other:?}"),
            }
        }
        if pushes.len() == 0 && !closing && session.in_flight().is_none() {
            closing = true;
            session.close();
            continue;
        }
        let Some(deadline) = session.poll_timeout() else {
            return Err("session stalled".into());
        };
        now = now.max(deadline);
        session.handle_timeout(now);
        if now - start > Duration::from_secs(600) {
            return Err("demo did not finish in 10 virtual minutes".into());
        }
    }
}
