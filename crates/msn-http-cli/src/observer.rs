//! The demo's observer: a small forwarding HTTP proxy per user, between that user's clients
//! and the gateway. It records every exchange (request line, `X-MSN-Messenger`, body sizes,
//! round trip) for the transcript and the summary, and passes the bytes through unchanged.
//!
//! The clients reach it as their configured HTTP proxy, so they send absolute-form targets,
//! exactly as the official client did through a proxy, and it sees which host each request is
//! for (the gateway's `GW-IP`).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use msn_http_core::wire::{HttpLimits, ResponseDecoder, ResponseStep, parse_messenger_header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The largest request head the observer reads.
const MAX_HEAD: usize = 16 * 1024;
/// The largest request body it forwards (the client's own cap is 16 KiB).
const MAX_BODY: usize = 1024 * 1024;

/// The transcript: numbered by time since the start, one writer at a time, to stdout.
#[derive(Debug)]
pub(crate) struct Transcript {
    start: Instant,
    lock: Mutex<()>,
}

impl Transcript {
    pub(crate) fn new(start: Instant) -> Self {
        Self { start, lock: Mutex::new(()) }
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Prints a line for `who`, then `more` continuation lines under it.
    #[allow(clippy::print_stdout)]
    pub(crate) fn say(&self, who: &str, text: &str, more: &[String]) {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = io::stdout().lock();
        let t = self.start.elapsed().as_secs_f64();
        let _ = writeln!(out, "{t:>8.3}s  {who:<9} {text}");
        for line in more {
            let _ = writeln!(out, "{:20}{line}", "");
        }
    }
}

/// What a request was, from its query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Open,
    Send,
    Poll,
}

/// One request and its response, as the observer saw them.
#[derive(Clone, Debug)]
pub(crate) struct Exchange {
    pub(crate) action: Action,
    pub(crate) request_bytes: usize,
    pub(crate) request_body: usize,
    pub(crate) response_bytes: usize,
    pub(crate) response_body: usize,
    pub(crate) round_trip: Duration,
}

/// Every exchange of every observer.
pub(crate) type Log = Arc<Mutex<Vec<Exchange>>>;

/// A running observer for one user.
#[derive(Debug)]
pub(crate) struct Observer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Observer {
    /// Starts an observer on loopback that forwards to `gateway` only, printing as `user`.
    pub(crate) async fn start(
        user: &'static str,
        gateway: SocketAddr,
        transcript: Arc<Transcript>,
        log: Log,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let ctx = Arc::new(Context { user, gateway, transcript, log, kinds: Mutex::default() });
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let ctx = Arc::clone(&ctx);
                        connections.spawn(async move {
                            if let Err(error) = forward(stream, &ctx).await {
                                tracing::debug!(%error, "observer connection ended");
                            }
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Self { addr, task })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

struct Context {
    user: &'static str,
    gateway: SocketAddr,
    transcript: Arc<Transcript>,
    log: Log,
    /// Latest session ID → `NS`/`SB`, to label requests that carry only the ID.
    kinds: Mutex<Vec<(String, &'static str)>>,
}

impl Context {
    fn kind_of(&self, session_id: &str) -> &'static str {
        let kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        kinds.iter().find(|(id, _)| id == session_id).map_or("??", |(_, kind)| kind)
    }

    /// The session moved from `old` (or opened) to `new`.
    fn rename(&self, old: Option<&str>, new: &str, kind: &'static str) {
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        kinds.retain(|(id, _)| Some(id.as_str()) != old);
        kinds.push((new.to_owned(), kind));
    }
}

/// A parsed request head.
struct RequestHead {
    target: String,
    content_length: usize,
}

fn parse_head(head: &[u8]) -> Result<RequestHead, String> {
    let text = std::str::from_utf8(head).map_err(|_| "request head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some("POST"), Some(target)) = (parts.next(), parts.next()) else {
        return Err(format!("not a gateway request: {request_line}"));
    };
    let mut content_length = 0;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().map_err(|_| "bad Content-Length")?;
            }
        }
    }
    if content_length > MAX_BODY {
        return Err("request body too large".into());
    }
    Ok(RequestHead { target: target.to_owned(), content_length })
}

/// The value of `key` in a query string.
fn query_value<'a>(target: &'a str, key: &str) -> Option<&'a str> {
    let query = target.split_once('?')?.1;
    query.split('&').find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

/// Serves one client connection: request by request, forwarded over one upstream connection.
async fn forward(mut client: TcpStream, ctx: &Context) -> io::Result<()> {
    client.set_nodelay(true)?;
    let mut pending: Vec<u8> = Vec::new();
    let mut upstream: Option<TcpStream> = None;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // One whole request from the client.
        let head_end = loop {
            if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if pending.len() > MAX_HEAD {
                return Err(io::Error::other("request head too large"));
            }
            let n = client.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            pending.extend_from_slice(&buf[..n]);
        };
        let head = parse_head(&pending[..head_end]).map_err(io::Error::other)?;
        while pending.len() < head_end + head.content_length {
            let n = client.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            pending.extend_from_slice(&buf[..n]);
        }
        let request: Vec<u8> = pending.drain(..head_end + head.content_length).collect();
        let started = Instant::now();

        // Only the demo's gateway (by name or address): the observer is no open proxy.
        let authority = head.target.strip_prefix("http://").and_then(|t| t.split('/').next());
        let port = ctx.gateway.port();
        let allowed = [format!("localhost:{port}"), ctx.gateway.to_string()];
        if !authority.is_some_and(|a| allowed.iter().any(|ok| ok == a)) {
            client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n").await?;
            return Err(io::Error::other(format!("request for another host: {}", head.target)));
        }
        let server = query_value(&head.target, "Server");
        let session_id = query_value(&head.target, "SessionID");
        let action = match (query_value(&head.target, "Action"), server) {
            (Some("open"), _) | (None, Some(_)) => Action::Open,
            (Some("poll"), _) => Action::Poll,
            _ => Action::Send,
        };
        let kind = match server {
            Some("NS") => "NS",
            Some("SB") => "SB",
            _ => session_id.map_or("??", |id| ctx.kind_of(id)),
        };

        let up = match upstream.as_mut() {
            Some(up) => up,
            None => {
                let stream = TcpStream::connect(ctx.gateway).await?;
                stream.set_nodelay(true)?;
                upstream.insert(stream)
            }
        };
        up.write_all(&request).await?;

        // The whole response, decoded with the core's decoder to find where it ends.
        let mut decoder = ResponseDecoder::new(HttpLimits::default());
        let (mut raw, mut body) = (Vec::new(), Vec::new());
        'response: loop {
            let n = up.read(&mut buf).await?;
            if n == 0 {
                match decoder.finish() {
                    msn_http_core::wire::EofOutcome::Complete => break 'response,
                    _ => return Err(io::Error::other("gateway closed mid-response")),
                }
            }
            let mut input = &buf[..n];
            loop {
                let before = input.len();
                let step = decoder.decode(&mut input).map_err(io::Error::other)?;
                raw.extend_from_slice(&buf[n - before..n - input.len()]);
                match step {
                    ResponseStep::NeedMore => break,
                    ResponseStep::Head => {}
                    ResponseStep::Body(bytes) => body.extend_from_slice(bytes),
                    ResponseStep::Complete => break 'response,
                }
            }
        }
        let round_trip = started.elapsed();
        let status_line =
            String::from_utf8_lossy(raw.split(|&b| b == b'\r').next().unwrap_or_default())
                .into_owned();
        let messenger = decoder.head().messenger().map(|v| String::from_utf8_lossy(v).into_owned());
        if let Some(header) =
            messenger.as_deref().and_then(|v| parse_messenger_header(v.as_bytes()).ok())
        {
            if let Some(new_id) = header.session_id {
                ctx.rename(session_id, new_id, kind);
            }
        }
        let exchange = Exchange {
            action,
            request_bytes: request.len(),
            request_body: head.content_length,
            response_bytes: raw.len(),
            response_body: body.len(),
            round_trip,
        };
        ctx.log.lock().unwrap_or_else(PoisonError::into_inner).push(exchange);
        let who = format!("{} {kind}", ctx.user);
        let reply = match &messenger {
            Some(value) => format!("X-MSN-Messenger: {value}"),
            None => "(no X-MSN-Messenger)".into(),
        };
        ctx.transcript.say(
            &who,
            &format!("POST {}  [{} B]", head.target, head.content_length),
            &[format!(
                "-> {status_line}  {reply}  [{} B, {}]",
                body.len(),
                crate::common::ms(round_trip)
            )],
        );
        client.write_all(&raw).await?;
        if !decoder.head().keep_alive() {
            return Ok(());
        }
    }
}
