//! The gateway server with TLS on its listener, on tokio, over real loopback sockets: a
//! session through HTTPS checked by name and by IP, and the failures a client meets — a CA it
//! does not trust, a name the certificate does not hold, plain HTTP on the TLS port.

use msn_http_core::Endpoint;
use msn_http_core::gateway::{BackendAllowlist, GatewayConfig};
use msn_http_testkit::tls::{TestCa, scenarios};
use msn_http_tokio::gateway::{GatewayHandle, GatewayServer, TlsConfig};

/// A TLS gateway whose NS sessions reach an echo backend, on `rt`.
fn tls_gateway(rt: &tokio::runtime::Runtime, ca: &TestCa) -> GatewayHandle {
    let cert = ca.issue(&[scenarios::NAME, "127.0.0.1"]);
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
fn a_session_runs_over_https_checked_by_name_and_by_ip() {
    let rt = runtime();
    let ca = TestCa::new();
    let gateway = tls_gateway(&rt, &ca);
    scenarios::a_session_over_https(gateway.local_addr(), &ca, scenarios::NAME);
    scenarios::a_session_over_https(gateway.local_addr(), &ca, "127.0.0.1");
    let stats = rt.block_on(gateway.shutdown()).unwrap();
    assert_eq!(stats.core.sessions_opened, 2);
}

#[test]
fn a_wrong_ca_a_wrong_name_and_plain_http_are_refused() {
    let rt = runtime();
    let ca = TestCa::new();
    let gateway = tls_gateway(&rt, &ca);
    let addr = gateway.local_addr();
    scenarios::the_gateway_refuses_wrong_trust_wrong_names_and_plain_http(addr, &ca);
    // The server serves on after all three.
    scenarios::a_session_over_https(addr, &ca, scenarios::NAME);
    let stats = rt.block_on(gateway.shutdown()).unwrap();
    assert_eq!(stats.core.sessions_opened, 1);
}
