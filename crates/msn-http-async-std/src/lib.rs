//! Drives `msn-http-core` sessions over `futures-io` + `async-io`, serving async-std and smol
//! alike.
//!
//! MSN Messenger's HTTP connection method tunnels MSNP through `POST /gateway/gateway.dll`
//! requests. All protocol logic lives in the sans-IO [`msn_http_core`]; the loop around it
//! (connect, reuse or replace the connection, write each request, read with a deadline, sleep
//! until the core's next deadline) lives in `msn-http-driver`, shared with `msn-http-tokio`.
//! This crate adds [`AsyncIo`]: `async-io`'s `Async<TcpStream>` and `Timer`, the reactor both
//! async-std and smol run on. [`Client`] and [`ClientStream`] are the driver's types with
//! [`AsyncIo`] filled in (`futures-io`'s traits come with the driver's `futures-io` feature).
//! It depends on neither async-std nor smol.
//!
//! Two faces:
//!
//! - the command API, [`Client`]: [`send`](ClientSender::send) MSNP bytes from any number of
//!   tasks, [`recv`](ClientReceiver::recv) whole commands, [`close`](Client::close) cleanly;
//! - the byte-stream face, [`ClientStream`]: `futures_io::AsyncRead + AsyncWrite`, for MSNP
//!   clients written against a `TcpStream`.
//!
//! Every session runs in a `msn_http_session` `tracing` span; notices (gateway moves,
//! fallbacks, failed requests, warnings) also reach the caller as [`Notice`] values.
//!
//! # Spawning the driver
//!
//! `open` returns the session's handle together with its [`Driver`], a `Send` future that
//! owns the TCP connection and the timers. Spawn it on the executor you use; it completes when
//! the session has ended:
//!
//! - async-std: `async_std::task::spawn(driver);`
//! - smol: `smol::spawn(driver).detach();` (or `executor.spawn(driver).detach()` on your own
//!   `smol::Executor`; keep the task instead of detaching it to await the driver's end).
//!
//! A driver that is dropped — never spawned, or cancelled with its executor — aborts the
//! session, so no handle waits forever.
//!
//! # Example
//!
//! On smol:
//!
//! ```no_run
//! use msn_http_async_std::{Client, Target};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! smol::block_on(async {
//!     let gateway = "http://gateway.messenger.hotmail.com/gateway/gateway.dll";
//!     let (mut client, driver) =
//!         Client::connect(gateway, Target::notification("messenger.hotmail.com")).await?;
//!     smol::spawn(driver).detach();
//!     client.send(b"VER 1 MSNP7 MSNP6 MSNP5 CVR0\r\n").await?;
//!     // `recv` fails once the session has ended (or a request's delivery is uncertain).
//!     while client.recv().await?.name() != "VER" {}
//!     let end = client.close().await;
//!     assert!(end.is_clean(), "{end}");
//!     Ok(())
//! })
//! # }
//! ```
//!
//! The same session as a byte stream, on async-std:
//!
//! ```no_run
//! use futures_lite::{AsyncBufReadExt, AsyncWriteExt, io::BufReader};
//! use msn_http_async_std::{ClientStream, Target};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! async_std::task::block_on(async {
//!     let gateway = "http://gateway.messenger.hotmail.com/gateway/gateway.dll";
//!     let (stream, driver) =
//!         ClientStream::connect(gateway, Target::notification("messenger.hotmail.com")).await?;
//!     async_std::task::spawn(driver);
//!     let mut stream = BufReader::new(stream);
//!     stream.write_all(b"VER 1 MSNP7 MSNP6 MSNP5 CVR0\r\n").await?;
//!     let mut line = String::new();
//!     stream.read_line(&mut line).await?;
//!     stream.close().await?;
//!     Ok(())
//! })
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod gateway;
pub mod runtime;
pub mod stream;

pub use client::{
    Client, ClientEvent, ClientReceiver, ClientSender, Notice, OpenError, RecvError, SessionEnd,
};
pub use gateway::{GatewayHandle, GatewayServer, ServerOptions, ServerStats};
pub use msn_http_core;
pub use msn_http_driver::api::*;
pub use msn_http_driver::{Driver, Runtime};
pub use runtime::AsyncIo;
pub use stream::{ClientStream, OwnedReadHalf, OwnedWriteHalf, StreamError};
