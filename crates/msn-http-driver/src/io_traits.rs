//! The runtimes' I/O traits over [`ByteStream`] and its halves, so that each adapter names
//! the same types: tokio's `AsyncRead`/`AsyncWrite` (feature `tokio`) and `futures-io`'s
//! (feature `futures-io`, the traits of async-std and smol). Flushing returns at once, as a
//! `TcpStream`'s does; shutting down (`poll_shutdown`, `poll_close`) closes the session
//! cleanly: on the whole stream once it has ended, on the writing half at once.

#[cfg(any(feature = "tokio", feature = "futures-io"))]
use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

#[cfg(any(feature = "tokio", feature = "futures-io"))]
use crate::stream::{ByteReader, ByteStream, ByteWriter};

/// Implements a runtime's read trait for each `[generics] type`: `poll_read` takes `$buf`
/// and runs `$body` with `$this` (the stream) and `$cx`.
#[cfg(any(feature = "tokio", feature = "futures-io"))]
macro_rules! read_impl {
    ($read:path, $buf:ident: $buf_ty:ty => $out:ty, |$this:ident, $cx:ident| $body:block,
     $([$($generics:tt)*] $ty:ty),+) => {
        $(impl<$($generics)*> $read for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                $cx: &mut Context<'_>,
                $buf: $buf_ty,
            ) -> Poll<io::Result<$out>> {
                let $this = self.get_mut();
                $body
            }
        })+
    };
}

/// Implements a runtime's write trait (`$shutdown` names its shutdown method) for each
/// `[generics] type`.
#[cfg(any(feature = "tokio", feature = "futures-io"))]
macro_rules! write_impl {
    ($write:path, $shutdown:ident, $([$($generics:tt)*] $ty:ty),+) => {
        $(impl<$($generics)*> $write for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                data: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.get_mut().poll_write(cx, data)
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn $shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.get_mut().poll_shutdown(cx)
            }
        })+
    };
}

#[cfg(feature = "tokio")]
read_impl!(tokio::io::AsyncRead, buf: &mut tokio::io::ReadBuf<'_> => (), |this, cx| {
    let n = std::task::ready!(this.poll_read(cx, buf.initialize_unfilled()))?;
    buf.advance(n);
    Poll::Ready(Ok(()))
}, [L] ByteStream<L>, [] ByteReader);

#[cfg(feature = "tokio")]
write_impl!(tokio::io::AsyncWrite, poll_shutdown, [L] ByteStream<L>, [] ByteWriter);

#[cfg(feature = "futures-io")]
read_impl!(futures_io::AsyncRead, buf: &mut [u8] => usize, |this, cx| {
    this.poll_read(cx, buf)
}, [L] ByteStream<L>, [] ByteReader);

#[cfg(feature = "futures-io")]
write_impl!(futures_io::AsyncWrite, poll_close, [L] ByteStream<L>, [] ByteWriter);
