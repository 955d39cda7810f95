//! TLS on the gateway's listener: a rustls server session over each accepted stream, driven by
//! the same non-blocking reads and writes as a plain socket, so it runs on every runtime.
//!
//! The driver reads and writes plaintext through [`GatewayStream`] as before. What TLS adds
//! underneath: a read may need the handshake answered first, and records may be left to write
//! when the socket is full. Those records are written by whoever waits on the stream next
//! (its watcher, in [`ready`](GatewayStream::ready)), and a shutdown of the writing side waits
//! until they are out, so an answer is never cut short by the encryption layer.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use rustls::ServerConnection;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::runtime::{GatewayRuntime, GatewayStream, Interest};
use crate::secure::read_plaintext;

/// Plaintext bytes the TLS layer accepts for writing beyond what the socket took: about one
/// answer's worth; more waits in the driver's own queue, so backpressure stays exact.
const MAX_BUFFERED_PLAINTEXT: usize = 64 * 1024;

/// The certificate and key the gateway's listener presents (ALPN `http/1.1`).
///
/// ```
/// use msn_http_driver::gateway::{TlsConfig, TlsConfigError};
///
/// let err = TlsConfig::from_pem(b"not a certificate", b"").unwrap_err();
/// assert!(matches!(err, TlsConfigError::NoCertificate));
/// ```
#[derive(Clone)]
pub struct TlsConfig(Arc<rustls::ServerConfig>);

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsConfig { .. }")
    }
}

/// Why a certificate or key could not be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The certificate PEM holds no `CERTIFICATE` section.
    NoCertificate,
    /// The key PEM holds no private key (PKCS #8, PKCS #1 or SEC1).
    NoKey,
    /// A PEM section is malformed.
    Pem(rustls_pki_types::pem::Error),
    /// rustls refused the certificate or the key (a key that does not match, say).
    Rejected(rustls::Error),
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Self::NoCertificate => f.write_str("no certificate found in the PEM"),
            Self::NoKey => f.write_str("no private key found in the PEM"),
            Self::Pem(e) => write!(f, "malformed PEM: {e}"),
            Self::Rejected(e) => write!(f, "the certificate or key is not usable: {e}"),
        }
    }
}

impl std::error::Error for TlsConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::Pem(e) => Some(e),
            Self::Rejected(e) => Some(e),
            Self::NoCertificate | Self::NoKey => None,
        }
    }
}

impl TlsConfig {
    /// The certificate chain (`cert_pem`, leaf first) and its private key (`key_pem`).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsConfigError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(TlsConfigError::Pem)?;
        if chain.is_empty() {
            return Err(TlsConfigError::NoCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => TlsConfigError::NoKey,
            e => TlsConfigError::Pem(e),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
            .map_err(TlsConfigError::Rejected)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self(Arc::new(config)))
    }

    /// [`from_pem`](Self::from_pem) with the contents of two files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsConfigError> {
        let read = |path: &Path| {
            std::fs::read(path)
                .map_err(|source| TlsConfigError::Read { path: path.to_owned(), source })
        };
        Self::from_pem(&read(cert)?, &read(key)?)
    }

    /// A rustls configuration made elsewhere (its ALPN list is used as it is).
    pub fn from_rustls(config: Arc<rustls::ServerConfig>) -> Self {
        Self(config)
    }
}

/// A runtime whose accepted streams speak TLS when configured; backend connections stay
/// plain TCP.
#[derive(Clone, Debug)]
pub(super) struct TlsRuntime<R> {
    runtime: R,
    tls: Option<TlsConfig>,
}

impl<R: GatewayRuntime> TlsRuntime<R> {
    pub(super) fn new(runtime: R, tls: Option<TlsConfig>) -> Self {
        Self { runtime, tls }
    }
}

impl<R: GatewayRuntime> GatewayRuntime for TlsRuntime<R> {
    type Listener = R::Listener;
    type Stream = MaybeTls<R::Stream>;

    fn now(&self) -> Instant {
        self.runtime.now()
    }

    async fn accept(
        &self,
        listener: &Self::Listener,
    ) -> io::Result<(Self::Stream, std::net::SocketAddr)> {
        let (stream, peer) = self.runtime.accept(listener).await?;
        let tls = match &self.tls {
            Some(config) => Some(Mutex::new(TlsState::new(config)?)),
            None => None,
        };
        Ok((MaybeTls { inner: stream, tls }, peer))
    }

    async fn connect(&self, host: &str, port: u16) -> io::Result<Self::Stream> {
        let inner = self.runtime.connect(host, port).await?;
        Ok(MaybeTls { inner, tls: None })
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send {
        self.runtime.sleep_until(deadline)
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.runtime.spawn(task)
    }
}

/// A stream that is plain, or carries one TLS server session.
#[derive(Debug)]
pub(super) struct MaybeTls<S> {
    inner: S,
    tls: Option<Mutex<TlsState>>,
}

/// One TLS session and what the stream still owes its peer.
struct TlsState {
    session: ServerConnection,
    /// The peer's end of the stream was read (the session then reports its close).
    eof: bool,
    /// The driver shut the writing side down while records were still waiting: the socket's
    /// own shutdown follows once they are out.
    shutdown_pending: bool,
}

impl fmt::Debug for TlsState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsState")
            .field("handshaking", &self.session.is_handshaking())
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl TlsState {
    fn new(config: &TlsConfig) -> io::Result<Self> {
        let mut session = ServerConnection::new(config.0.clone()).map_err(io::Error::other)?;
        session.set_buffer_limit(Some(MAX_BUFFERED_PLAINTEXT));
        Ok(Self { session, eof: false, shutdown_pending: false })
    }

    /// Writes waiting records without waiting; `true` once none is left.
    fn write_records<S: GatewayStream>(&mut self, inner: &S) -> io::Result<bool> {
        while self.session.wants_write() {
            match self.session.write_tls(&mut NonBlocking(inner)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Whether a read would return at once: plaintext (or the peer's close) is waiting.
    fn readable(&mut self) -> bool {
        match self.session.process_new_packets() {
            Ok(state) => state.plaintext_bytes_to_read() > 0 || state.peer_has_closed(),
            Err(_) => true,
        }
    }
}

/// The inner stream as `Read`/`Write` for rustls, without waiting.
struct NonBlocking<'a, S>(&'a S);

impl<S: GatewayStream> Read for NonBlocking<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl<S: GatewayStream> Write for NonBlocking<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S> MaybeTls<S> {
    fn lock(tls: &Mutex<TlsState>) -> MutexGuard<'_, TlsState> {
        tls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S: GatewayStream> GatewayStream for MaybeTls<S> {
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            return self.inner.try_read(buf);
        };
        let mut state = Self::lock(tls);
        loop {
            if let Some(n) = read_plaintext(state.session.reader(), buf)? {
                return Ok(n);
            }
            if state.eof {
                return Ok(0);
            }
            match state.session.read_tls(&mut NonBlocking(&self.inner)) {
                Ok(0) => state.eof = true,
                Ok(_) => {}
                Err(e) => return Err(e),
            }
            let processed = state.session.process_new_packets();
            // The handshake's answers, or the alert that explains a failure; what the socket
            // does not take now goes out from `ready`.
            let written = state.write_records(&self.inner);
            if let Err(e) = processed {
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            written?;
        }
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            return self.inner.try_write(buf);
        };
        let mut state = Self::lock(tls);
        // Records first: while some wait, the socket is full.
        if !state.write_records(&self.inner)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let taken = state.session.writer().write(buf)?;
        if taken == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        state.write_records(&self.inner)?;
        Ok(taken)
    }

    async fn ready(&self, interest: Interest) -> io::Result<Interest> {
        let Some(tls) = &self.tls else {
            return self.inner.ready(interest).await;
        };
        loop {
            let records_waiting = {
                let mut state = Self::lock(tls);
                if interest.read && state.readable() {
                    return Ok(Interest { read: true, write: false });
                }
                state.session.wants_write()
            };
            let waiting =
                Interest { read: interest.read, write: interest.write || records_waiting };
            let found = self.inner.ready(waiting).await?;
            if found.write && records_waiting {
                let mut state = Self::lock(tls);
                match state.write_records(&self.inner) {
                    Ok(true) if state.shutdown_pending => {
                        state.shutdown_pending = false;
                        self.inner.shutdown_write();
                    }
                    Ok(_) => {}
                    // The driver's next read or write meets the error too.
                    Err(_) => return Ok(interest),
                }
            }
            let reported = Interest { read: found.read, write: found.write && interest.write };
            if (reported.read && interest.read) || reported.write {
                return Ok(reported);
            }
        }
    }

    fn shutdown_write(&self) {
        let Some(tls) = &self.tls else {
            return self.inner.shutdown_write();
        };
        let mut state = Self::lock(tls);
        state.session.send_close_notify();
        match state.write_records(&self.inner) {
            Ok(false) => state.shutdown_pending = true,
            Ok(true) | Err(_) => self.inner.shutdown_write(),
        }
    }

    fn abort(&self) {
        self.inner.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use futures_lite::future::block_on;
    use msn_http_testkit::tls::TestCa;
    use rustls::ClientConnection;

    use super::*;

    /// A socket in memory whose sending side takes only the room the test gives it, as a full
    /// send buffer does; always ready (spurious readiness is allowed).
    #[derive(Debug, Default)]
    struct Pipe {
        inbound: Mutex<VecDeque<u8>>,
        outbound: Mutex<Vec<u8>>,
        room: AtomicUsize,
        shut: AtomicBool,
    }

    impl GatewayStream for Pipe {
        fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
            let mut inbound = self.inbound.lock().unwrap();
            if inbound.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(inbound.len());
            for (slot, byte) in buf.iter_mut().zip(inbound.drain(..n)) {
                *slot = byte;
            }
            Ok(n)
        }

        fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
            assert!(!self.shut.load(Ordering::SeqCst), "no write after the shutdown");
            let n = buf.len().min(self.room.load(Ordering::SeqCst));
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.room.fetch_sub(n, Ordering::SeqCst);
            self.outbound.lock().unwrap().extend_from_slice(&buf[..n]);
            Ok(n)
        }

        async fn ready(&self, interest: Interest) -> io::Result<Interest> {
            Ok(interest)
        }

        fn shutdown_write(&self) {
            self.shut.store(true, Ordering::SeqCst);
        }

        fn abort(&self) {}
    }

    /// A TLS server stream over a [`Pipe`], and a client session that trusts its certificate.
    fn pair() -> (MaybeTls<Pipe>, ClientConnection) {
        let ca = TestCa::new();
        let cert = ca.issue(&["localhost"]);
        let config = TlsConfig::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes());
        let state = TlsState::new(&config.unwrap()).unwrap();
        let server = MaybeTls { inner: Pipe::default(), tls: Some(Mutex::new(state)) };
        let name = "localhost".try_into().unwrap();
        (server, ClientConnection::new(ca.client_config(), name).unwrap())
    }

    /// Moves the client's records to the server's socket, and what the server's socket sent to
    /// the client; returns the plaintext the client has now.
    fn exchange(server: &MaybeTls<Pipe>, client: &mut ClientConnection) -> Vec<u8> {
        let mut records = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut records).unwrap();
        }
        server.inner.inbound.lock().unwrap().extend(records);
        let sent = std::mem::take(&mut *server.inner.outbound.lock().unwrap());
        let mut sent = &sent[..];
        while !sent.is_empty() {
            client.read_tls(&mut sent).unwrap();
            client.process_new_packets().unwrap();
        }
        let mut plaintext = Vec::new();
        match client.reader().read_to_end(&mut plaintext) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}"),
        }
        plaintext
    }

    /// Gives the socket `room` bytes and lets a watcher wait once, as the driver's does.
    fn watcher_waits(server: &MaybeTls<Pipe>, room: usize) {
        server.inner.room.store(room, Ordering::SeqCst);
        let found = block_on(server.ready(Interest { read: true, write: false })).unwrap();
        assert!(found.read);
    }

    #[test]
    fn records_a_full_socket_did_not_take_go_out_when_the_watcher_waits() {
        let (server, mut client) = pair();
        let mut buf = [0u8; 1024];
        // The handshake, through a socket that takes 100 bytes at a time.
        for _ in 0..500 {
            if !client.is_handshaking() && exchange(&server, &mut client).is_empty() {
                break;
            }
            match server.try_read(&mut buf) {
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
                Ok(n) => panic!("{n} bytes of plaintext before any was sent"),
            }
            watcher_waits(&server, 100);
            exchange(&server, &mut client);
        }
        assert!(!client.is_handshaking(), "the handshake completes");

        client.writer().write_all(b"POST /gateway/gateway.dll HTTP/1.1\r\n").unwrap();
        exchange(&server, &mut client);
        let n = server.try_read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"POST /gateway/gateway.dll HTTP/1.1\r\n");

        // A 50 000-byte answer: taken whole, though the socket takes 1 000 bytes of it now.
        let answer: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        server.inner.room.store(1000, Ordering::SeqCst);
        assert_eq!(server.try_write(&answer).unwrap(), answer.len());
        // While records wait, the socket counts as full.
        let more = server.try_write(b"more").unwrap_err();
        assert_eq!(more.kind(), io::ErrorKind::WouldBlock);
        let mut received = exchange(&server, &mut client);
        for _ in 0..100 {
            if received.len() == answer.len() {
                break;
            }
            watcher_waits(&server, 4096);
            received.extend(exchange(&server, &mut client));
        }
        assert_eq!(received, answer, "the whole answer arrives, in order");

        // A last answer and the shutdown, on a full socket: the shutdown waits for the records.
        server.inner.room.store(0, Ordering::SeqCst);
        assert_eq!(server.try_write(b"last").unwrap(), 4);
        server.shutdown_write();
        assert!(!server.inner.shut.load(Ordering::SeqCst), "not before the records are out");
        watcher_waits(&server, 1 << 20);
        assert!(server.inner.shut.load(Ordering::SeqCst), "once they are");
        assert_eq!(exchange(&server, &mut client), b"last");
        assert!(client.process_new_packets().unwrap().peer_has_closed(), "close_notify sent");
    }

    #[test]
    fn a_client_that_is_no_tls_client_gets_an_error_not_plaintext() {
        let (server, _) = pair();
        server.inner.room.store(1 << 20, Ordering::SeqCst);
        server.inner.inbound.lock().unwrap().extend(b"POST /gateway/gateway.dll HTTP/1.1\r\n\r\n");
        let error = server.try_read(&mut [0u8; 1024]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let rustls_error = error.into_inner().unwrap().downcast::<rustls::Error>().unwrap();
        assert!(matches!(*rustls_error, rustls::Error::InvalidMessage(_)), "{rustls_error:?}");
        // The alert that says why went out, and nothing else.
        let sent = server.inner.outbound.lock().unwrap().clone();
        assert_eq!(sent.first(), Some(&0x15), "a TLS alert record: {sent:?}");
    }
}
