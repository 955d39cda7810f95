//! Opening a session: the core session, the state its handles share with the driver, the
//! driver itself, and the first connection when the caller asked to connect first.

use std::fmt;
use std::sync::Arc;

use msn_http_core::client::{ClientConfig, OutputMode, Session, Target};
use msn_http_core::error::{ConfigError, NetworkError};

use msn_http_core::{Endpoint, Scheme};

use crate::driver::{self, Driver};
use crate::runtime::Runtime;
use crate::secure::{TlsClient, TlsSetupError};
use crate::shared::Shared;

/// Why a session could not be opened.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// The core refused the configuration or the target.
    Config(ConfigError),
    /// There is no runtime to run the session's driver on: `msn-http-tokio` returns it when
    /// called outside a tokio runtime. Adapters that hand the [`Driver`] to the caller never
    /// return it.
    NoRuntime,
    /// `connect` could not connect to the gateway (or proxy).
    Connect(NetworkError),
    /// The TLS settings of an `https://` gateway could not be made (bad extra CA
    /// certificates, or nothing to trust).
    Tls(TlsSetupError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => write!(f, "invalid session configuration: {e}"),
            Self::NoRuntime => f.write_str("no runtime to run the session on"),
            Self::Connect(e) => e.fmt(f),
            Self::Tls(e) => write!(f, "cannot set up TLS: {e}"),
        }
    }
}

impl OpenError {
    /// As an `io::Error`, for the byte stream's `connect`: the kind a `TcpStream` would report
    /// (`ConnectionRefused`...), the error itself inside.
    pub fn into_io(self) -> std::io::Error {
        let kind = match &self {
            Self::Connect(NetworkError::ConnectFailed { kind, .. }) => *kind,
            Self::Connect(_) => std::io::ErrorKind::ConnectionAborted,
            Self::Config(_) | Self::Tls(_) => std::io::ErrorKind::InvalidInput,
            Self::NoRuntime => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, self)
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(e) => Some(e),
            Self::NoRuntime => None,
            Self::Connect(e) => Some(e),
            Self::Tls(e) => Some(e),
        }
    }
}

/// Creates the session, the state its handles share, and the driver that runs it on
/// `runtime` (starting with the connection `first`, if the caller made one).
pub(crate) fn open<R: Runtime>(
    runtime: R,
    mut config: ClientConfig,
    target: Target,
    output: OutputMode,
    handles: usize,
    first: Option<(Endpoint, R::Stream)>,
) -> Result<(Arc<Shared>, Driver), OpenError> {
    config.output = output;
    let span = tracing::info_span!(
        target: crate::TRACING_TARGET,
        "msn_http_session",
        server = target.server.as_str(),
        ip = %target.ip,
    );
    let tls = match config.scheme {
        Scheme::Https => Some(TlsClient::new(&config.tls_roots).map_err(OpenError::Tls)?),
        _ => None,
    };
    let session = Session::new(config, target, runtime.now()).map_err(OpenError::Config)?;
    let shared = Arc::new(Shared::new(session, span, handles, output));
    let driver = Driver::new(runtime, Arc::clone(&shared), first, tls);
    Ok((shared, driver))
}

/// Connects to where `config` sends its first request (the proxy, or the gateway), as
/// `TcpStream::connect` would: the caller learns at once that nothing listens there.
pub(crate) async fn connect_first<R: Runtime>(
    runtime: &R,
    config: &ClientConfig,
) -> Result<(Endpoint, R::Stream), OpenError> {
    let destination = config.proxy.as_ref().map_or(&config.gateway, |p| &p.endpoint).clone();
    let deadline = runtime.now() + config.request_timeout;
    match driver::connect(runtime, &destination, Some(deadline)).await {
        Ok(stream) => Ok((destination, stream)),
        Err(e) => Err(OpenError::Connect(NetworkError::ConnectFailed {
            kind: e.kind(),
            address: destination,
        })),
    }
}
