//! The byte-stream face: a [`ClientStream`] reads and writes the MSNP byte stream like a
//! `TcpStream` to the MSNP server would, through the HTTP gateway.

pub use msn_http_driver::StreamError;
use msn_http_driver::{ByteReader, ByteStream, ByteWriter, Detached};

use crate::AsyncIo;

/// An MSNP connection through the HTTP gateway, as a byte stream: implements `futures-io`'s
/// `AsyncRead` and `AsyncWrite` (the traits of async-std and smol), so an MSNP client
/// written against a `TcpStream` switches to the gateway by swapping the stream type. Spawn
/// the [`Driver`](crate::Driver) its constructors return, as with [`Client`](crate::Client).
///
/// `poll_close` closes the session cleanly (`OUT`) and completes when it has ended; bytes
/// that arrived meanwhile stay readable. [`into_split`](ByteStream::into_split) gives owned
/// halves for two tasks: closing the writing half queues `OUT` and returns at once; the
/// reading half then reads to the end. Dropping the stream (or both halves) without a close
/// aborts the session. See [`ByteStream`] for the rest.
pub type ClientStream = ByteStream<Detached<AsyncIo>>;

/// The reading half of a [`ClientStream`], from [`into_split`](ByteStream::into_split).
pub type OwnedReadHalf = ByteReader;

/// The writing half of a [`ClientStream`], from [`into_split`](ByteStream::into_split).
pub type OwnedWriteHalf = ByteWriter;
