//! The gateway server with TLS on its listener, on async-io, over real loopback sockets, on
//! async-std's executor and on smol's: a session through HTTPS checked by name and by IP, and
//! the failures a client meets — a CA it does not trust, a name the certificate does not hold,
//! plain HTTP on the TLS port.

use msn_http_async_std::gateway::{GatewayHandle, GatewayServer, Task, TlsConfig};
use msn_http_core::Endpoint;
use msn_http_core::gateway::{BackendAllowlist, GatewayConfig};
use msn_http_testkit::tls::{TestCa, scenarios};

/// A TLS gateway whose NS sessions reach an echo backend, its tasks run by `spawner`.
fn tls_gateway(ca: &TestCa, spawner: impl Fn(Task) + Send + Sync + 'static) -> GatewayHandle {
    let cert = ca.issue(&[scenarios::NAME, "127.0.0.1"]);
    let tls = TlsConfig::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    let backend = Endpoint::parse(&scenarios::echo_backend(8).to_string(), 1863).unwrap();
    let backends = BackendAllowlist::new().route(scenarios::BACKEND_HOST, None, backend);
    let config = GatewayConfig::new("127.0.0.1", [7; 32]).with_backends(backends);
    let server = smol::block_on(GatewayServer::bind("127.0.0.1:0", config)).unwrap();
    server.with_tls(tls).spawn(spawner)
}

/// Every scenario against one server: a session by name and by IP, then the three refusals,
/// then a session again (the server serves on).
fn every_scenario(spawner: impl Fn(Task) + Send + Sync + 'static) {
    let ca = TestCa::new();
    let gateway = tls_gateway(&ca, spawner);
    let addr = gateway.local_addr();
    scenarios::a_session_over_https(addr, &ca, scenarios::NAME);
    scenarios::a_session_over_https(addr, &ca, "127.0.0.1");
    scenarios::the_gateway_refuses_wrong_trust_wrong_names_and_plain_http(addr, &ca);
    scenarios::a_session_over_https(addr, &ca, scenarios::NAME);
    let stats = smol::block_on(gateway.shutdown()).unwrap();
    assert_eq!(stats.core.sessions_opened, 3);
}

#[test]
fn https_on_async_std() {
    every_scenario(|task| {
        async_std::task::spawn(task);
    });
}

#[test]
fn https_on_smol() {
    every_scenario(|task| smol::spawn(task).detach());
}
