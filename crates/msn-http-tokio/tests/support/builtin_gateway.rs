//! The built-in MSNP server behind the gateway server on loopback, as the examples' tests
//! (of both adapters) run them.

use std::net::Ipv4Addr;

use msn_http_core::gateway::GatewayConfig;
use msn_http_server::BuiltinServer;
use msn_http_tokio::{GatewayHandle, GatewayServer};

/// The running pair; the server stops when this is dropped.
pub(crate) struct BuiltinGateway {
    /// The gateway's URL, as a client is configured with it.
    pub(crate) url: String,
    pub(crate) gateway: GatewayHandle,
    pub(crate) _server: BuiltinServer,
}

/// Starts both on the current tokio runtime.
pub(crate) async fn start() -> BuiltinGateway {
    let server = BuiltinServer::start(Ipv4Addr::LOCALHOST.into()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = GatewayConfig::new(addr.to_string(), [7; 32]).with_backends(server.backends());
    let gateway = GatewayServer::from_listener(listener, config).unwrap().spawn();
    BuiltinGateway { url: format!("http://{addr}"), gateway, _server: server }
}
