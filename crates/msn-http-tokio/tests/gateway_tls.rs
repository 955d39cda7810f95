//! HTTPS on tokio, over real loopback sockets: our gateway with TLS on its listener (a session
//! checked by name and by IP; a CA the client does not trust, a name the certificate does not
//! hold, plain HTTP on the TLS port), and our client to it (a session, and each TLS failure
//! as its typed error: a wrong CA, a name mismatch, a handshake that stalls; through CONNECT
//! proxies; the byte stream face).

use msn_http_core::Endpoint;
use msn_http_core::gateway::{BackendAllowlist, GatewayConfig};
use std::time::Duration;

use msn_http_core::client::Target;
use msn_http_core::error::TlsErrorKind;
use msn_http_testkit::tls::{TestCa, client, scenarios};
use msn_http_tokio::gateway::{GatewayHandle, GatewayServer, TlsConfig};
use msn_http_tokio::{Client, ClientStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TLS gateway whose NS sessions reach an echo backend, on `rt`.
fn tls_gateway(rt: &tokio::runtime::Runtime, ca: &TestCa) -> GatewayHandle {
    tls_gateway_for(rt, ca, &[scenarios::NAME, "127.0.0.1"])
}

/// The same with a certificate for `names`.
fn tls_gateway_for(rt: &tokio::runtime::Runtime, ca: &TestCa, names: &[&str]) -> GatewayHandle {
    let cert = ca.issue(names);
    let tls = TlsConfig::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    let backend = Endpoint::parse(&scenarios::echo_backend(8).to_string(), 1863).unwrap();
    let backends = BackendAllowlist::new().route(scenarios::BACKEND_HOST, None, backend);
    let config = GatewayConfig::new("127.0.0.1", [7; 32]).with_backends(backends);
    let _entered = rt.enter();
    let server = rt.block_on(GatewayServer::bind("127.0.0.1:0", config)).unwrap();
    server.with_tls(tls).spawn()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn our_gateway_serves_https_checked_by_name_and_by_ip_and_refuses_what_is_not() {
    let rt = runtime();
    let ca = TestCa::new();
    let gateway = tls_gateway(&rt, &ca);
    let addr = gateway.local_addr();
    scenarios::a_session_over_https(addr, &ca, scenarios::NAME);
    scenarios::a_session_over_https(addr, &ca, "127.0.0.1");
    scenarios::the_gateway_refuses_wrong_trust_wrong_names_and_plain_http(addr, &ca);
    // The server serves on after the refusals.
    scenarios::a_session_over_https(addr, &ca, scenarios::NAME);
    let stats = rt.block_on(gateway.shutdown()).unwrap();
    assert_eq!(stats.core.sessions_opened, 3);
}

/// Opens a client session to the echo backend with `config`.
async fn open(config: msn_http_core::client::ClientConfig) -> Client {
    Client::connect_with(config, Target::notification(scenarios::BACKEND_HOST)).await.unwrap()
}

#[test]
fn our_client_runs_a_session_over_https_and_names_each_tls_failure() {
    let rt = runtime();
    let ca = TestCa::new();
    let gateway = tls_gateway(&rt, &ca);
    let addr = gateway.local_addr();
    let wait = Duration::from_secs(10);
    rt.block_on(async {
        client::echo_over_https(open(client::https_config(addr, "localhost", &ca, wait)).await)
            .await;
        client::echo_over_https(open(client::https_config(addr, "127.0.0.1", &ca, wait)).await)
            .await;
        let stranger = TestCa::new();
        let error = client::tls_failure(
            open(client::https_config(addr, "localhost", &stranger, wait)).await,
        )
        .await;
        assert_eq!((error.kind, error.host.as_str()), (TlsErrorKind::BadCertificate, "localhost"));
        assert!(error.to_string().contains("its certificate is not trusted"), "{error}");
    });
    // A certificate for another name only.
    let other = tls_gateway_for(&rt, &ca, &["other.example"]);
    let other_addr = other.local_addr();
    let stalled = client::silent_listener(Duration::from_secs(3));
    rt.block_on(async {
        let config = client::https_config(other_addr, "127.0.0.1", &ca, wait);
        let error = client::tls_failure(open(config).await).await;
        assert_eq!((error.kind, error.host.as_str()), (TlsErrorKind::NameMismatch, "127.0.0.1"));
        let config = client::https_config(stalled, "localhost", &ca, Duration::from_millis(300));
        let error = client::tls_failure(open(config).await).await;
        assert_eq!(error.kind, TlsErrorKind::HandshakeTimeout);
    });
    rt.block_on(client::through_connect_proxies(addr, &ca, open));
    // The byte stream face, over HTTPS like over HTTP.
    rt.block_on(async {
        let config = client::https_config(addr, "localhost", &ca, wait);
        let target = Target::notification(scenarios::BACKEND_HOST);
        let mut stream = ClientStream::connect_with(config, target).await.unwrap();
        stream.write_all(b"VER 1 MSNP8 CVR0\r\n").await.unwrap();
        let mut echoed = [0u8; 18];
        stream.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"VER 1 MSNP8 CVR0\r\n");
        stream.shutdown().await.unwrap();
    });
    let stats = rt.block_on(gateway.shutdown()).unwrap();
    assert_eq!(stats.core.sessions_opened, 5, "the refused handshakes and tunnels opened none");
    rt.block_on(other.shutdown()).unwrap();
}
