//! Loopback partners for the hostile-network tests: a seeded RNG, waiting helpers, a
//! scripted MSNP backend, a raw HTTP connection, a fault-injecting TCP proxy and a malicious
//! gateway. Every server here stops by itself: loops are bounded and tasks end with their
//! guards.
#![allow(dead_code, unreachable_pub)]

pub mod backend;
pub mod evil;
pub mod http;
pub mod proxy;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use msn_http_core::Endpoint;
use msn_http_core::gateway::{BackendAllowlist, GatewayConfig};
use msn_http_tokio::gateway::{GatewayHandle, GatewayServer, ServerOptions, ServerStats};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The `IP=` every test session opens; the gateway routes it to the test's backend.
pub const BACKEND_NAME: &str = "messenger.test";
/// The open request's query for [`BACKEND_NAME`].
pub const OPEN_NS: &str = "Action=open&Server=NS&IP=messenger.test";
/// The first command of every session, and the backend's answer to it.
pub const VER: &[u8] = b"VER 1 MSNP8 CVR0\r\n";

/// Aborts a task when dropped, so no server outlives its test.
pub struct Abort(pub JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// SplitMix64: small, seedable, and the same on every platform.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }

    /// ASCII filler (letters, digits, spaces and the odd CRLF: MSNP payloads are byte-exact).
    pub fn filler(&mut self, len: usize) -> Vec<u8> {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789 \r\n";
        (0..len).map(|_| ALPHABET[(self.next_u64() % ALPHABET.len() as u64) as usize]).collect()
    }
}

/// Prints the seed of a randomised run (shown when the test fails).
#[allow(clippy::print_stderr)]
pub fn announce(what: &str, seed: u64) {
    eprintln!("{what}: seed {seed:#x}");
}

/// Waits until `ready` holds, looking every millisecond (of whichever clock runs) for at most
/// `within`; panics naming `what` otherwise.
pub async fn until(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let step = Duration::from_millis(1);
    let looks = within.as_millis() as usize + 1;
    for _ in 0..looks {
        if ready() {
            return;
        }
        tokio::time::sleep(step).await;
    }
    assert!(ready(), "gave up waiting for {what}");
}

/// On tokio's paused clock, keeps every jump of the clock at most 1 ms: a peer in the same
/// runtime that answers at once does so within a few fake milliseconds, long before any
/// deadline. Nothing sleeps for real. Stops after `limit` of fake time, or when dropped.
pub fn ticker(limit: Duration) -> Abort {
    let ticks = limit.as_millis() as usize;
    Abort(tokio::spawn(async move {
        for _ in 0..ticks {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }))
}

/// Runs `body` with a [`ticker`], failing after `limit` of fake time instead of hanging.
pub async fn with_ticker<F: Future>(limit: Duration, body: F) -> F::Output {
    let _ticker = ticker(limit + Duration::from_secs(1));
    tokio::time::timeout(limit, body).await.expect("the test ran past its fake-time limit")
}

/// The endpoint of a loopback address.
pub fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint::parse(&addr.to_string(), 80).expect("a loopback endpoint")
}

/// A gateway server in front of `backend`.
pub struct Gw {
    pub handle: GatewayHandle,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Gw {
    /// Starts a gateway in front of `backend` announcing itself as `GW-IP`, after `tweak`.
    pub async fn start(
        backend: SocketAddr,
        tweak: impl FnOnce(&mut GatewayConfig, &mut ServerOptions),
    ) -> Gw {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the gateway");
        let gw_ip = listener.local_addr().expect("gateway address").to_string();
        Self::from_listener(listener, gw_ip, backend, tweak)
    }

    /// Starts a gateway on `listener` that announces `gw_ip` (a proxy in front of it, say).
    pub fn from_listener(
        listener: TcpListener,
        gw_ip: String,
        backend: SocketAddr,
        tweak: impl FnOnce(&mut GatewayConfig, &mut ServerOptions),
    ) -> Gw {
        let addr = listener.local_addr().expect("gateway address");
        let route = endpoint(backend);
        let backends = BackendAllowlist::new().route(BACKEND_NAME, None, route);
        let mut config = GatewayConfig::new(gw_ip, [0x5a; 32]).with_backends(backends);
        let mut options = ServerOptions::default();
        tweak(&mut config, &mut options);
        let server = GatewayServer::from_listener(listener, config)
            .expect("a valid gateway configuration")
            .with_options(options);
        Gw { handle: server.spawn(), addr }
    }

    pub fn stats(&self) -> ServerStats {
        self.handle.stats()
    }

    pub fn addr_string(&self) -> String {
        self.addr.to_string()
    }

    /// Shuts the server down and returns its final counters.
    pub async fn stop(self) -> ServerStats {
        self.handle.shutdown().await.expect("the gateway task ended cleanly")
    }
}
