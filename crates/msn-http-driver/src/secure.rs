//! The connection to an `https://` gateway: a `CONNECT` tunnel through a proxy when the core
//! asks for one, then a rustls client session over the runtime's TCP stream. rustls is
//! sans-IO, so this works over any [`Runtime`]; the core decides everything, this module only
//! moves bytes and names what failed.

use std::io::{self, Read, Write};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use futures_lite::future::or;
use msn_http_core::Endpoint;
use msn_http_core::client::{TlsRoots, Transmit};
use msn_http_core::error::{TlsError, TlsErrorKind, TunnelError};
use msn_http_core::wire::{TunnelDecoder, encode_connect};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use crate::runtime::Runtime;

/// Ciphertext read from the socket at a time: below rustls's limit on plaintext waiting to be
/// read, so a read never overfills it.
const TLS_READ_BYTES: usize = 8 * 1024;
/// The longest head a proxy's answer to `CONNECT` may have.
const MAX_TUNNEL_HEAD_BYTES: usize = 16 * 1024;

/// Where a connection goes and how: it is reused only for a request that wants the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) destination: Endpoint,
    tunnel: Option<(Endpoint, Option<(String, String)>)>,
    tls_server_name: Option<String>,
}

impl Route {
    /// What `transmit` asks for.
    pub(crate) fn of(transmit: &Transmit<'_>) -> Self {
        Self {
            destination: transmit.destination.clone(),
            tunnel: transmit.tunnel.map(|tunnel| {
                let credentials = tunnel.credentials;
                (tunnel.to.clone(), credentials.map(|(u, p)| (u.to_owned(), p.to_owned())))
            }),
            tls_server_name: transmit.tls_server_name.map(str::to_owned),
        }
    }

    /// A plain TCP connection to `destination`.
    pub(crate) fn plain(destination: Endpoint) -> Self {
        Self { destination, tunnel: None, tls_server_name: None }
    }

    /// Whether a plain connection to the destination must first be tunnelled or secured.
    pub(crate) fn needs_setup(&self) -> bool {
        self.tunnel.is_some() || self.tls_server_name.is_some()
    }
}

/// The TLS settings of a session whose gateway is `https://`.
#[derive(Clone, Debug)]
pub(crate) struct TlsClient(Arc<ClientConfig>);

/// Why the TLS settings of a session could not be made (the TLS library's words kept as
/// text, so the error compares and clones like the others of [`OpenError`](crate::OpenError)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// An extra CA certificate is not valid PEM.
    Pem(String),
    /// A CA certificate was refused as a trust anchor.
    Certificate(String),
    /// No certificate to trust: the platform's store is empty (or not used) and no extra one
    /// was given.
    NoRoots,
}

impl std::fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pem(e) => write!(f, "an extra CA certificate is not valid PEM: {e}"),
            Self::Certificate(e) => write!(f, "a CA certificate cannot be trusted: {e}"),
            Self::NoRoots => f.write_str(
                "no CA certificate to trust: the platform's store is empty and none was given",
            ),
        }
    }
}

impl std::error::Error for TlsSetupError {}

/// The platform's trusted roots, loaded once per process (certificates it cannot parse are
/// skipped, as browsers do).
fn platform_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

impl TlsClient {
    /// A client configuration trusting `roots`, offering ALPN `http/1.1`.
    pub(crate) fn new(roots: &TlsRoots) -> Result<Self, TlsSetupError> {
        let mut store = RootCertStore::empty();
        if roots.platform {
            store.add_parsable_certificates(platform_roots().iter().cloned());
        }
        for cert in CertificateDer::pem_slice_iter(&roots.extra_pem) {
            let cert = cert.map_err(|e| TlsSetupError::Pem(e.to_string()))?;
            store.add(cert).map_err(|e| TlsSetupError::Certificate(e.to_string()))?;
        }
        if store.is_empty() {
            return Err(TlsSetupError::NoRoots);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::Certificate(e.to_string()))?
            .with_root_certificates(store)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self(Arc::new(config)))
    }
}

/// A connection: plain TCP, or a TLS session over it.
pub(crate) enum Link<S> {
    Tcp(S),
    Tls(Box<TlsLink<S>>),
}

/// A TLS client session and its TCP stream.
pub(crate) struct TlsLink<S> {
    tcp: S,
    session: ClientConnection,
    /// Ciphertext read but not yet taken by the session.
    unread: Vec<u8>,
    /// Records to write, reused.
    records: Vec<u8>,
}

/// Why a connection could not be set up for its route.
pub(crate) enum SetupFailure {
    /// The socket failed or closed (before the proxy answered, say).
    Io(io::Error),
    Tunnel(TunnelError),
    Tls(TlsError),
}

/// How a TLS failure reads to the core.
fn tls_error(host: &str, error: &rustls::Error) -> TlsError {
    use rustls::CertificateError as C;
    let kind = match error {
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => TlsErrorKind::NameMismatch,
        rustls::Error::InvalidCertificate(_) => TlsErrorKind::BadCertificate,
        _ => TlsErrorKind::Handshake,
    };
    TlsError { kind, host: host.to_owned(), detail: error.to_string() }
}

/// Runs `work` until `deadline`; `None` when the deadline came first.
async fn until<R: Runtime, T>(
    rt: &R,
    deadline: Option<Instant>,
    work: impl Future<Output = T>,
) -> Option<T> {
    match deadline {
        Some(at) => {
            or(async { Some(work.await) }, async {
                rt.sleep_until(at).await;
                None
            })
            .await
        }
        None => Some(work.await),
    }
}

/// Opens the tunnel and the TLS session `route` asks for over the plain connection `tcp`,
/// giving up at `deadline`.
pub(crate) async fn set_up<R: Runtime>(
    rt: &R,
    mut tcp: R::Stream,
    route: &Route,
    tls: Option<&TlsClient>,
    deadline: Option<Instant>,
) -> Result<Link<R::Stream>, SetupFailure> {
    let mut early = Vec::new();
    if let Some((to, credentials)) = &route.tunnel {
        let credentials = credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
        let work = tunnel(rt, &mut tcp, to, credentials, &mut early);
        match until(rt, deadline, work).await {
            Some(result) => result?,
            None => return Err(SetupFailure::Io(io::ErrorKind::TimedOut.into())),
        }
    }
    let Some(name) = &route.tls_server_name else {
        return Ok(Link::Tcp(tcp));
    };
    let Some(tls) = tls else {
        let detail = "the session has no TLS settings".to_owned();
        let kind = TlsErrorKind::Handshake;
        return Err(SetupFailure::Tls(TlsError { kind, host: name.clone(), detail }));
    };
    let server_name = ServerName::try_from(name.clone()).map_err(|e| {
        let detail = e.to_string();
        SetupFailure::Tls(TlsError { kind: TlsErrorKind::NameMismatch, host: name.clone(), detail })
    })?;
    let session = ClientConnection::new(Arc::clone(&tls.0), server_name)
        .map_err(|e| SetupFailure::Tls(tls_error(name, &e)))?;
    let mut link = TlsLink { tcp, session, unread: early, records: Vec::new() };
    match until(rt, deadline, link.handshake(rt, name)).await {
        Some(result) => result?,
        None => {
            let kind = TlsErrorKind::HandshakeTimeout;
            let detail = "no answer within the request timeout".to_owned();
            return Err(SetupFailure::Tls(TlsError { kind, host: name.clone(), detail }));
        }
    }
    Ok(Link::Tls(Box::new(link)))
}

/// Asks the proxy on `tcp` for a tunnel to `to`; bytes after its answer go to `early`.
async fn tunnel<R: Runtime>(
    rt: &R,
    tcp: &mut R::Stream,
    to: &Endpoint,
    credentials: Option<(&str, &str)>,
    early: &mut Vec<u8>,
) -> Result<(), SetupFailure> {
    let mut request = Vec::new();
    encode_connect(&mut request, to, credentials)
        .map_err(|e| SetupFailure::Io(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    rt.write_all(tcp, &request).await.map_err(SetupFailure::Io)?;
    let mut answer = TunnelDecoder::new(MAX_TUNNEL_HEAD_BYTES, credentials.is_some());
    let mut buf = [0u8; 1024];
    loop {
        let n = rt.read(tcp, &mut buf).await.map_err(SetupFailure::Io)?;
        if n == 0 {
            return Err(SetupFailure::Tunnel(answer.decode_eof()));
        }
        let mut input = &buf[..n];
        if answer.decode(&mut input).map_err(SetupFailure::Tunnel)? {
            early.extend_from_slice(input);
            return Ok(());
        }
    }
}

impl<S: Send> TlsLink<S> {
    /// Completes the handshake.
    async fn handshake<R: Runtime<Stream = S>>(
        &mut self,
        rt: &R,
        name: &str,
    ) -> Result<(), SetupFailure> {
        while self.session.is_handshaking() {
            if self.session.wants_write() {
                self.flush(rt).await.map_err(SetupFailure::Io)?;
                continue;
            }
            match self.fill(rt).await {
                Ok(true) => {}
                Ok(false) => {
                    let detail = "the connection closed during the handshake".to_owned();
                    let kind = TlsErrorKind::Handshake;
                    return Err(SetupFailure::Tls(TlsError { kind, host: name.into(), detail }));
                }
                Err(Failure::Io(e)) => return Err(SetupFailure::Io(e)),
                Err(Failure::Tls(e)) => {
                    // Tell the server why (the alert), if it still listens.
                    let _ = self.flush(rt).await;
                    return Err(SetupFailure::Tls(tls_error(name, &e)));
                }
            }
        }
        // The client's Finished (and anything else queued).
        self.flush(rt).await.map_err(SetupFailure::Io)
    }

    /// Writes the records the session has queued.
    async fn flush<R: Runtime<Stream = S>>(&mut self, rt: &R) -> io::Result<()> {
        self.records.clear();
        while self.session.wants_write() {
            self.session.write_tls(&mut self.records)?;
        }
        if !self.records.is_empty() {
            rt.write_all(&mut self.tcp, &self.records).await?;
        }
        Ok(())
    }

    /// Feeds the session ciphertext: what is waiting, or one read of the socket. `false` at
    /// the end of the stream.
    async fn fill<R: Runtime<Stream = S>>(&mut self, rt: &R) -> Result<bool, Failure> {
        if self.unread.is_empty() {
            let mut buf = [0u8; TLS_READ_BYTES];
            let n = rt.read(&mut self.tcp, &mut buf).await.map_err(Failure::Io)?;
            if n == 0 {
                return Ok(false);
            }
            self.unread.extend_from_slice(&buf[..n]);
        }
        let mut input = &self.unread[..];
        let taken = self.session.read_tls(&mut input).map_err(Failure::Io)?;
        self.unread.drain(..taken);
        self.session.process_new_packets().map_err(Failure::Tls)?;
        Ok(true)
    }
}

/// Reads the plaintext a TLS session (client or server) holds: `None` when it holds none yet,
/// `Some(0)` at the end of the stream.
pub(crate) fn read_plaintext(
    mut reader: rustls::Reader<'_>,
    buf: &mut [u8],
) -> io::Result<Option<usize>> {
    match reader.read(buf) {
        Ok(n) => Ok(Some(n)),
        // Closed without close_notify: the HTTP framing tells whether anything was cut short,
        // as over plain TCP.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Some(0)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// What a TLS read met.
enum Failure {
    Io(io::Error),
    Tls(rustls::Error),
}

impl<S: Send> Link<S> {
    /// Writes all of `bytes` (one request).
    pub(crate) async fn write_all<R: Runtime<Stream = S>>(
        &mut self,
        rt: &R,
        bytes: &[u8],
    ) -> io::Result<()> {
        match self {
            Self::Tcp(tcp) => rt.write_all(tcp, bytes).await,
            Self::Tls(link) => {
                link.session.writer().write_all(bytes)?;
                link.flush(rt).await
            }
        }
    }

    /// Reads what is available into `buf`: the number of bytes, `0` at the end of the stream.
    /// Cancel-safe: a dropped read has taken nothing from the session.
    pub(crate) async fn read<R: Runtime<Stream = S>>(
        &mut self,
        rt: &R,
        buf: &mut [u8],
    ) -> io::Result<usize> {
        let link = match self {
            Self::Tcp(tcp) => return rt.read(tcp, buf).await,
            Self::Tls(link) => link,
        };
        loop {
            if let Some(n) = read_plaintext(link.session.reader(), buf)? {
                return Ok(n);
            }
            match link.fill(rt).await {
                Ok(true) => {}
                Ok(false) => return Ok(0),
                Err(Failure::Io(e)) => return Err(e),
                Err(Failure::Tls(e)) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            // Records the session must answer (a key update, say) go out with the next write.
        }
    }
}
