//! The byte-stream face: a [`ClientStream`] reads and writes the MSNP byte stream like a
//! `TcpStream` to the MSNP server would, through the HTTP gateway.

pub use msn_http_driver::StreamError;
use msn_http_driver::{ByteReader, ByteStream, ByteWriter, Spawned};

use crate::runtime::Tokio;

/// An MSNP connection through the HTTP gateway, as a byte stream: implements tokio's
/// `AsyncRead` and `AsyncWrite`, so an MSNP client written against a `TcpStream` switches
/// to the gateway by swapping the stream type. Its driver is spawned on the current tokio
/// runtime by [`open`](ByteStream::open) and [`connect`](ByteStream::connect).
///
/// `poll_shutdown` closes the session cleanly (`OUT`) and completes when it has ended; bytes
/// that arrived meanwhile stay readable. [`into_split`](ByteStream::into_split) gives owned
/// halves for two tasks (as `TcpStream::into_split`): shutting the writing half down queues
/// `OUT` and returns at once; the reading half then reads to the end. Dropping the stream (or
/// both halves) without a shutdown aborts the session. See [`ByteStream`] for the rest.
pub type ClientStream = ByteStream<Spawned<Tokio>>;

/// The reading half of a [`ClientStream`], from [`into_split`](ByteStream::into_split).
pub type OwnedReadHalf = ByteReader;

/// The writing half of a [`ClientStream`], from [`into_split`](ByteStream::into_split).
pub type OwnedWriteHalf = ByteWriter;
