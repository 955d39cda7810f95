//! The runtime-agnostic half of the `msn-http` adapters: everything between the sans-IO
//! [`msn_http_core`] session and a runtime's sockets and timers.
//!
//! An adapter (`msn-http-tokio`, `msn-http-async-std`) is a [`Runtime`] implementation — a
//! clock, TCP connect/read/write and a timer — plus its runtime's `AsyncRead`/`AsyncWrite`
//! traits over [`ByteStream`]. This crate holds the rest:
//!
//! - the [`Driver`]: the loop that follows the core's drive contract, deciding when to
//!   connect, reuse or replace a connection, writing requests, reading with a deadline, and
//!   mapping connect failures and timeouts to the core. It is a future the adapter spawns;
//! - the command API: [`Client`], [`ClientSender`] (cloneable, cancel-safe `send`),
//!   [`ClientReceiver`] (cancel-safe `recv`, clean `close`), and what they report:
//!   [`ClientEvent`], [`Notice`], [`SessionEnd`];
//! - the byte stream: [`ByteStream`], `AsyncRead`/`AsyncWrite` logic over plain slices, and
//!   [`StreamError`], with tokio's and `futures-io`'s traits behind the features `tokio` and
//!   `futures-io`;
//! - how the driver runs ([`launch`]): the handles' type parameter says whether the adapter
//!   spawns it ([`Spawned`]) or hands it to the caller ([`Detached`]), so each adapter names
//!   the same [`Client`] and [`ByteStream`] with its runtime filled in.
//!
//! Every session runs in a `msn_http_session` `tracing` span; received commands, notices and
//! connection events are `tracing` events. All of them have the target [`TRACING_TARGET`]
//! (`msn_http`), whichever adapter runs the session: `RUST_LOG=msn_http=debug` shows them.
//!
//! # Example
//!
//! Opening a session on any runtime, and handing its driver to the caller's executor:
//!
//! ```no_run
//! use msn_http_core::Endpoint;
//! use msn_http_core::client::{ClientConfig, Target};
//! use msn_http_driver::{Client, Detached, Driver, Runtime};
//!
//! async fn hello<R: Runtime>(
//!     runtime: R,
//!     spawn: impl FnOnce(Driver),
//! ) -> Result<(), Box<dyn std::error::Error>> {
//!     let config = ClientConfig::new(Endpoint::parse("gateway.messenger.hotmail.com", 80)?);
//!     let target = Target::notification("messenger.hotmail.com");
//!     let (mut client, driver) = Client::<Detached>::open_with(runtime, config, target)?;
//!     spawn(driver);
//!     client.send(b"VER 1 MSNP7 MSNP6 MSNP5 CVR0\r\n").await?;
//!     let ver = client.recv().await?;
//!     assert_eq!(ver.name(), "VER");
//!     let end = client.close().await;
//!     assert!(end.is_clean(), "{end}");
//!     Ok(())
//! }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The `tracing` target of every event and span the adapters emit (`RUST_LOG=msn_http=debug`).
pub const TRACING_TARGET: &str = "msn_http";

pub mod api;
#[cfg(feature = "self-made-certs")]
pub mod certs;
pub mod client;
mod driver;
pub mod events;
pub mod gateway;
pub mod io_traits;
pub mod launch;
mod open;
pub mod runtime;
mod secure;
mod shared;
pub mod stream;

pub use client::{Client, ClientReceiver, ClientSender, MAX_UNREAD_BYTES};
pub use driver::Driver;
pub use events::{ClientEvent, Notice, RecvError, SessionEnd};
pub use launch::{Detached, Spawn, Spawned};
pub use msn_http_core;
pub use open::OpenError;
pub use runtime::Runtime;
pub use secure::TlsSetupError;
pub use stream::{ByteReader, ByteStream, ByteWriter, DEFAULT_PING_ANSWER, StreamError};
