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

/// Implements a runtime's read trait (`$trait`, with its buffer type and how it fills it)
/// and write trait (`$write`, with its shutdown method) for a reader and a writer type.
#[cfg(any(feature = "tokio", feature = "futures-io"))]
macro_rules! write_impl {
    ($write:path, $shutdown:ident, [$($generics:tt)*] $ty:ty) => {
        impl<$($generics)*> $write for $ty {
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
        }
    };
}

#[cfg(feature = "tokio")]
mod tokio_traits {
    use super::*;
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    macro_rules! read_impl {
        ([$($generics:tt)*] $ty:ty) => {
            impl<$($generics)*> AsyncRead for $ty {
                fn poll_read(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &mut ReadBuf<'_>,
                ) -> Poll<io::Result<()>> {
                    let n = std::task::ready!(
                        self.get_mut().poll_read(cx, buf.initialize_unfilled())
                    )?;
                    buf.advance(n);
                    Poll::Ready(Ok(()))
                }
            }
        };
    }

    read_impl!([L] ByteStream<L>);
    read_impl!([] ByteReader);
    write_impl!(AsyncWrite, poll_shutdown, [L] ByteStream<L>);
    write_impl!(AsyncWrite, poll_shutdown, [] ByteWriter);
}

#[cfg(feature = "futures-io")]
mod futures_io_traits {
    use super::*;
    use futures_io::{AsyncRead, AsyncWrite};

    macro_rules! read_impl {
        ([$($generics:tt)*] $ty:ty) => {
            impl<$($generics)*> AsyncRead for $ty {
                fn poll_read(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &mut [u8],
                ) -> Poll<io::Result<usize>> {
                    self.get_mut().poll_read(cx, buf)
                }
            }
        };
    }

    read_impl!([L] ByteStream<L>);
    read_impl!([] ByteReader);
    write_impl!(AsyncWrite, poll_close, [L] ByteStream<L>);
    write_impl!(AsyncWrite, poll_close, [] ByteWriter);
}
