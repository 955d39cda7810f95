//! Drives `msn-http-core` sessions over tokio TCP connections and timers.
//!
//! MSN Messenger's HTTP connection method tunnels MSNP through `POST /gateway/gateway.dll`
//! requests. All protocol logic lives in the sans-IO [`msn_http_core`]; this crate is the loop
//! around it: one spawned task per session owns the TCP connection (reused while the gateway
//! keeps it alive, replaced when the core asks for a fresh one), connects to the gateway or the
//! configured HTTP proxy, and sleeps until the core's next deadline. That loop, the handles and
//! the byte-stream logic are runtime-agnostic and live in `msn-http-driver` (shared with
//! `msn-http-async-std`); this crate supplies tokio's sockets, clock and timers ([`Tokio`]) and
//! spawns the driver task. [`Client`] and [`ClientStream`] are the driver's types with
//! [`Tokio`] filled in (tokio's I/O traits come with the driver's `tokio` feature).
//!
//! Two faces:
//!
//! - the command API, [`Client`]: [`send`](ClientSender::send) MSNP bytes from any number of
//!   tasks, [`recv`](ClientReceiver::recv) whole commands, [`close`](Client::close) cleanly;
//! - the byte-stream face, [`ClientStream`]: `AsyncRead + AsyncWrite`, for MSNP clients
//!   written against a `TcpStream`.
//!
//! Every session runs in a `msn_http_session` `tracing` span; received commands, notices
//! (gateway moves, fallbacks, failed requests, warnings) and connection events are `tracing`
//! events, and notices also reach the caller as [`Notice`] values.
//!
//! # Example
//!
//! ```no_run
//! use msn_http_tokio::{Client, Target};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let gateway = "http://gateway.messenger.hotmail.com/gateway/gateway.dll";
//! let mut client = Client::connect(gateway, Target::notification("messenger.hotmail.com")).await?;
//! client.send(b"VER 1 MSNP7 MSNP6 MSNP5 CVR0\r\n").await?;
//! // `recv` fails once the session has ended (or a request's delivery is uncertain).
//! while client.recv().await?.name() != "VER" {}
//! let end = client.close().await;
//! assert!(end.is_clean(), "{end}");
//! # Ok(())
//! # }
//! ```
//!
//! The same session as a byte stream:
//!
//! ```no_run
//! use msn_http_tokio::{ClientStream, Target};
//! use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let gateway = "http://gateway.messenger.hotmail.com/gateway/gateway.dll";
//! let stream = ClientStream::connect(gateway, Target::notification("messenger.hotmail.com")).await?;
//! let mut stream = BufReader::new(stream);
//! stream.write_all(b"VER 1 MSNP7 MSNP6 MSNP5 CVR0\r\n").await?;
//! let mut line = String::new();
//! stream.read_line(&mut line).await?;
//! stream.shutdown().await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod gateway;
mod runtime;
pub mod stream;

pub use client::{
    Client, ClientEvent, ClientReceiver, ClientSender, Notice, OpenError, RecvError, SessionEnd,
};
pub use gateway::{GatewayHandle, GatewayServer, ServerOptions, ServerStats};
pub use msn_http_core;
pub use msn_http_driver::api::*;
pub use runtime::Tokio;
pub use stream::{ClientStream, OwnedReadHalf, OwnedWriteHalf, StreamError};
