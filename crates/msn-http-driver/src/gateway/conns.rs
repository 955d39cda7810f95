//! The driver's state of each socket: what waits to be written, kept, or closed.

use std::sync::Arc;

use super::socket::Socket;

/// A client connection the core knows.
#[derive(Debug)]
pub(super) struct ClientConn<S> {
    pub(super) socket: Arc<Socket<S>>,
    /// Answer bytes the socket did not take yet.
    pub(super) pending: Vec<u8>,
    /// Its watcher waits for readability, or a `Readable` notice is on its way.
    pub(super) armed: bool,
    /// The core forgot the connection: close it once `pending` is written.
    pub(super) closing: bool,
}

/// A backend connection, made or being made.
#[derive(Debug)]
pub(super) struct BackendConn<S> {
    /// `None` while connecting.
    pub(super) socket: Option<Arc<Socket<S>>>,
    /// MSNP bytes for the backend that the socket did not take yet.
    pub(super) pending: Vec<u8>,
    /// Bytes read that the core did not take (its queue was full), offered again on resume.
    pub(super) kept: Vec<u8>,
    pub(super) armed: bool,
    pub(super) paused: bool,
    /// The backend closed (or broke); the core was told.
    pub(super) eof: bool,
    /// The core said `CloseBackend`: close once `pending` is written.
    pub(super) closing: bool,
}

impl<S> Default for BackendConn<S> {
    fn default() -> Self {
        Self {
            socket: None,
            pending: Vec::new(),
            kept: Vec::new(),
            armed: false,
            paused: false,
            eof: false,
            closing: false,
        }
    }
}
