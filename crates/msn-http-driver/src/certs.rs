//! Certificates made on the spot (feature `self-made-certs`): a throwaway CA and the server
//! certificates it signs, for demos and tests that serve HTTPS without files that expire.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

/// A CA made in this process, never written anywhere: trust it only for what it signs here.
///
/// ```
/// use msn_http_driver::certs::SelfMadeCa;
///
/// let ca = SelfMadeCa::new()?;
/// let cert = ca.issue(&["localhost", "127.0.0.1"])?;
/// assert!(cert.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
/// # Ok::<(), msn_http_driver::certs::CertError>(())
/// ```
pub struct SelfMadeCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's certificate, PEM: what clients trust.
    pub cert_pem: String,
}

impl fmt::Debug for SelfMadeCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfMadeCa").finish_non_exhaustive()
    }
}

/// A server certificate and its key, both PEM.
#[derive(Clone, Debug)]
pub struct SelfMadeCert {
    /// The leaf, signed by its [`SelfMadeCa`].
    pub cert_pem: String,
    /// The leaf's private key (PKCS #8).
    pub key_pem: String,
}

/// Why a certificate could not be made.
#[derive(Debug)]
pub struct CertError(rcgen::Error);

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot make a certificate: {}", self.0)
    }
}

impl std::error::Error for CertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl SelfMadeCa {
    /// A fresh CA, with a name of its own (another one made here is a stranger to it, not a
    /// forger).
    pub fn new() -> Result<Self, CertError> {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let key = KeyPair::generate().map_err(CertError)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(CertError)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let serial = MADE.fetch_add(1, Ordering::Relaxed);
        let name = format!("msn-http self-made CA {} {serial}", std::process::id());
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).map_err(CertError)?;
        Ok(Self { issuer: Issuer::new(params, key), cert_pem: cert.pem() })
    }

    /// A certificate for `names` (DNS names, or IP addresses, which become IP SANs).
    pub fn issue(&self, names: &[&str]) -> Result<SelfMadeCert, CertError> {
        let key = KeyPair::generate().map_err(CertError)?;
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let params = CertificateParams::new(names).map_err(CertError)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(CertError)?;
        Ok(SelfMadeCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// A rustls client configuration that trusts this CA alone (ALPN `http/1.1`).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(
            CertificateDer::pem_slice_iter(self.cert_pem.as_bytes()).filter_map(Result::ok),
        );
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}
