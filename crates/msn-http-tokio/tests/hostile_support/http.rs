//! A raw HTTP/1.1 connection to the gateway, written by hand so the tests can send what no
//! well-behaved client would.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads per response, at most.
const MAX_READS: usize = 100_000;

/// A response as it came off the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The head, status line included.
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value (name matched without regard to case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// The session ID of a `200`.
    pub fn session_id(&self) -> String {
        let value = self.header("X-MSN-Messenger").expect("an X-MSN-Messenger header");
        let id = value.split(';').find_map(|p| p.trim().strip_prefix("SessionID="));
        id.expect("a SessionID").to_owned()
    }

    /// Whether the answer ends the session.
    pub fn session_close(&self) -> bool {
        self.header("X-MSN-Messenger").is_some_and(|v| v.contains("Session=close"))
    }

    pub fn connection_close(&self) -> bool {
        self.header("Connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Splits `stable.suffix`.
pub fn id_parts(id: &str) -> (u64, u32) {
    let (stable, suffix) = id.split_once('.').expect("a dot in the session ID");
    (stable.parse().expect("a numeric stable part"), suffix.parse().expect("a numeric suffix"))
}

pub struct Http {
    pub stream: TcpStream,
    buf: Vec<u8>,
    host: String,
}

impl Http {
    pub async fn connect(addr: SocketAddr) -> Http {
        let stream = TcpStream::connect(addr).await.expect("connect to the gateway");
        Http { stream, buf: Vec::new(), host: addr.to_string() }
    }

    /// A `POST` to the gateway with a `Content-Length` body.
    pub fn request(&self, query: &str, body: &[u8]) -> Vec<u8> {
        let mut request = format!(
            "POST /gateway/gateway.dll?{query} HTTP/1.1\r\nHost: {}\r\n\
             Content-Type: application/x-msn-messenger\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        request
    }

    pub async fn send(&mut self, query: &str, body: &[u8]) {
        let request = self.request(query, body);
        self.send_raw(&request).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write to the gateway");
    }

    pub async fn exchange(&mut self, query: &str, body: &[u8]) -> Response {
        self.send(query, body).await;
        self.response().await.expect("an answer")
    }

    /// The next whole response (`Content-Length` bodies), or `None` if the connection ended
    /// first.
    pub async fn response(&mut self) -> Option<Response> {
        for _ in 0..MAX_READS {
            if let Some(response) = take_response(&mut self.buf) {
                return Some(response);
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
        panic!("no whole response");
    }

    /// Whether the gateway ended the connection (nothing more to read) within `within`.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut chunk = [0u8; 256];
        matches!(
            tokio::time::timeout(within, self.stream.read(&mut chunk)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    /// Whether nothing arrives (and the connection stays open) for `quiet`.
    pub async fn silent_for(&mut self, quiet: Duration) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut chunk = [0u8; 256];
        tokio::time::timeout(quiet, self.stream.read(&mut chunk)).await.is_err()
    }
}

/// Takes one whole response off the front of `buf`.
pub fn take_response(buf: &mut Vec<u8>) -> Option<Response> {
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut fields);
    let head_len = match parsed.parse(buf).expect("a well-formed response") {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return None,
    };
    let status = parsed.code.expect("a status");
    let body_len: usize = parsed
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
        .unwrap_or(0);
    if buf.len() < head_len + body_len {
        return None;
    }
    let head = String::from_utf8(buf[..head_len - 4].to_vec()).expect("an ASCII head");
    let body = buf[head_len..head_len + body_len].to_vec();
    buf.drain(..head_len + body_len);
    Some(Response { status, head, body })
}
