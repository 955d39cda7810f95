//! HTTPS on async-io, over real loopback sockets, on async-std's executor and on smol's: our
//! gateway with TLS on its listener (a session checked by name and by IP; a CA the client does
//! not trust, a name the certificate does not hold, plain HTTP on the TLS port), and our
//! client to it (a session, and each TLS failure as its typed error: a wrong CA, a name
//! mismatch, a handshake that stalls).

use std::sync::Arc;
use std::time::Duration;

use msn_http_async_std::gateway::{GatewayHandle, GatewayServer, Task, TlsConfig};
use msn_http_async_std::{AsyncIo, Client};
use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, Target};
use msn_http_core::error::TlsErrorKind;
use msn_http_core::gateway::{BackendAllowlist, GatewayConfig};
use msn_http_testkit::tls::{TestCa, client, scenarios};

/// Runs the tasks of a server or a session on an executor.
type Spawner = Arc<dyn Fn(Task) + Send + Sync>;

/// A TLS gateway whose NS sessions reach an echo backend, with a certificate for `names`.
fn tls_gateway(ca: &TestCa, names: &[&str], spawner: &Spawner) -> GatewayHandle {
    let cert = ca.issue(names);
    let tls = TlsConfig::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    let backend = Endpoint::parse(&scenarios::echo_backend(8).to_string(), 1863).unwrap();
    let backends = BackendAllowlist::new().route(scenarios::BACKEND_HOST, None, backend);
    let config = GatewayConfig::new("127.0.0.1", [7; 32]).with_backends(backends);
    let server = smol::block_on(GatewayServer::bind("127.0.0.1:0", config)).unwrap();
    let spawner = Arc::clone(spawner);
    server.with_tls(tls).spawn(move |task| spawner(task))
}

/// Opens a client session to the echo backend with `config`, its driver run by `spawner`.
async fn open(config: ClientConfig, spawner: &Spawner) -> Client {
    let target = Target::notification(scenarios::BACKEND_HOST);
    let (client, driver) = Client::connect_with(AsyncIo, config, target).await.unwrap();
    spawner(Box::pin(driver));
    client
}

/// Every scenario against one server: a session by name and by IP, then the three refusals,
/// then a session again (the server serves on).
fn every_scenario(spawner: Spawner) {
    let ca = TestCa::new();
    let gateway = tls_gateway(&ca, &[scenarios::NAME, "127.0.0.1"], &spawner);
    let addr = gateway.local_addr();
    scenarios::a_session_over_https(addr, &ca, scenarios::NAME);
    scenarios::a_session_over_https(addr, &ca, "127.0.0.1");
    scenarios::the_gateway_refuses_wrong_trust_wrong_names_and_plain_http(addr, &ca);
    scenarios::a_session_over_https(addr, &ca, scenarios::NAME);

    // Our client: a session by name and by IP, then each TLS failure as its typed error.
    let wait = Duration::from_secs(10);
    let other = tls_gateway(&ca, &["other.example"], &spawner);
    let stalled = client::silent_listener(Duration::from_secs(3));
    smol::block_on(async {
        for host in ["localhost", "127.0.0.1"] {
            let config = client::https_config(addr, host, &ca, wait);
            client::echo_over_https(open(config, &spawner).await).await;
        }
        let config = client::https_config(addr, "localhost", &TestCa::new(), wait);
        let error = client::tls_failure(open(config, &spawner).await).await;
        assert_eq!((error.kind, error.host.as_str()), (TlsErrorKind::BadCertificate, "localhost"));
        let config = client::https_config(other.local_addr(), "127.0.0.1", &ca, wait);
        let error = client::tls_failure(open(config, &spawner).await).await;
        assert_eq!(error.kind, TlsErrorKind::NameMismatch);
        let config = client::https_config(stalled, "localhost", &ca, Duration::from_millis(300));
        let error = client::tls_failure(open(config, &spawner).await).await;
        assert_eq!(error.kind, TlsErrorKind::HandshakeTimeout);
        client::through_connect_proxies(addr, &ca, |config| open(config, &spawner)).await;
    });
    let stats = smol::block_on(gateway.shutdown()).unwrap();
    assert_eq!(stats.core.sessions_opened, 7);
    smol::block_on(other.shutdown()).unwrap();
}

#[test]
fn https_on_async_std() {
    every_scenario(Arc::new(|task| {
        async_std::task::spawn(task);
    }));
}

#[test]
fn https_on_smol() {
    every_scenario(Arc::new(|task| smol::spawn(task).detach()));
}
