//! The async-io adapter against the real gateway server (`msn_http_tokio::GatewayServer`, on
//! a tokio runtime of its own thread) in front of a scripted TCP MSNP server, on async-std and
//! on smol: login, a server push, and a clean close, with every byte accounted for.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use futures_lite::future;
use msn_http_async_std::Client;
use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, CloseReason, PollPolicy, Target};
use msn_http_core::gateway::{BackendAllowlist, GatewayConfig};
use msn_http_tokio::GatewayServer;

/// Real time after which a hung test fails instead of hanging.
const HANG_LIMIT: Duration = Duration::from_secs(30);

/// A scripted MSNP server: answers `VER` and `CHG`, pushes a presence change after `CHG`,
/// hangs up after `OUT`; records every line it received.
fn start_backend() -> (SocketAddr, Backend) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&received);
    let (done_tx, done) = mpsc::channel();
    thread::spawn(move || {
        // One session per test run; further connections would be a bug the asserts catch.
        if let Ok((stream, _)) = listener.accept() {
            serve(stream, &log);
        }
        let _ = done_tx.send(());
    });
    (addr, Backend { received, done })
}

/// What the scripted server received, and word of its session's end.
struct Backend {
    received: Arc<Mutex<Vec<String>>>,
    done: mpsc::Receiver<()>,
}

fn serve(stream: TcpStream, log: &Mutex<Vec<String>>) {
    let mut writer = stream.try_clone().unwrap();
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        log.lock().unwrap().push(line.clone());
        let trid = line.split(' ').nth(1).unwrap_or("0").to_owned();
        let reply = match line.split(' ').next() {
            Some("VER") => format!("VER {trid} MSNP8 CVR0\r\n"),
            Some("CHG") => format!("CHG {trid} NLN 0\r\nNLN NLN bob@example.com Bob 0\r\n"),
            Some("OUT") => return,
            _ => format!("500 {trid}\r\n"),
        };
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// Runs the gateway server on its own thread until the returned sender is dropped.
fn start_gateway(backend: SocketAddr) -> (SocketAddr, mpsc::Sender<()>) {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let gw = listener.local_addr().unwrap();
            let route = Endpoint::parse(&backend.to_string(), 1863).unwrap();
            let backends = BackendAllowlist::new().route("messenger.test", None, route);
            let config = GatewayConfig::new(gw.to_string(), [7; 32]).with_backends(backends);
            let handle = GatewayServer::from_listener(listener, config).unwrap().spawn();
            addr_tx.send(gw).unwrap();
            // Until the test is done (the sender dropped), then shut down gracefully.
            let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
            handle.shutdown().await.unwrap();
        });
    });
    (addr_rx.recv_timeout(HANG_LIMIT).unwrap(), stop_tx)
}

fn config(gateway: SocketAddr) -> ClientConfig {
    let mut config =
        ClientConfig::new(Endpoint::new(gateway.ip().to_string(), gateway.port()).unwrap());
    // Quick polls so the pushed line does not wait for the official 2 s.
    config.poll_policy =
        PollPolicy::Adaptive { min: Duration::from_millis(20), max: Duration::from_millis(200) };
    config
}

/// The scenario, on whatever executor spawned the driver.
async fn scenario(mut client: Client) -> Vec<String> {
    client.send(b"VER 1 MSNP8 CVR0\r\n").await.unwrap();
    let mut got = Vec::new();
    got.push(client.recv().await.expect("VER reply").as_bytes().to_vec());
    client.send(b"CHG 2 NLN 0\r\n").await.unwrap();
    got.push(client.recv().await.expect("CHG reply").as_bytes().to_vec());
    got.push(client.recv().await.expect("pushed NLN").as_bytes().to_vec());
    let end = client.close().await;
    assert_eq!(end.reason, CloseReason::ServerClosed, "{end:?}");
    assert!(end.unsent.is_empty(), "{end:?}");
    got.into_iter().map(|b| String::from_utf8(b).unwrap()).collect()
}

fn expected_session(got: &[String], backend: &Backend) {
    assert_eq!(
        got,
        ["VER 1 MSNP8 CVR0\r\n", "CHG 2 NLN 0\r\n", "NLN NLN bob@example.com Bob 0\r\n"]
    );
    // The gateway answers `Session=close` as soon as it sees `OUT`; the server may read it a
    // moment later.
    backend.done.recv_timeout(HANG_LIMIT).expect("the server's session ended");
    assert_eq!(*backend.received.lock().unwrap(), ["VER 1 MSNP8 CVR0", "CHG 2 NLN 0", "OUT"]);
}

#[test]
fn a_session_through_the_real_gateway_on_async_std() {
    let (backend_addr, backend) = start_backend();
    let (gateway, _stop) = start_gateway(backend_addr);
    let (client, driver) =
        Client::open(config(gateway), Target::notification("messenger.test")).unwrap();
    let got = async_std::task::block_on(async {
        let driver = async_std::task::spawn(driver);
        let got = future::or(scenario(client), async {
            async_io::Timer::after(HANG_LIMIT).await;
            panic!("the session hung");
        })
        .await;
        driver.await;
        got
    });
    expected_session(&got, &backend);
}

#[test]
fn a_session_through_the_real_gateway_on_smol() {
    let (backend_addr, backend) = start_backend();
    let (gateway, _stop) = start_gateway(backend_addr);
    let (client, driver) =
        Client::open(config(gateway), Target::notification("messenger.test")).unwrap();
    let executor = smol::Executor::new();
    let got = smol::block_on(executor.run(async {
        let driver = executor.spawn(driver);
        let got = future::or(scenario(client), async {
            async_io::Timer::after(HANG_LIMIT).await;
            panic!("the session hung");
        })
        .await;
        driver.await;
        got
    }));
    expected_session(&got, &backend);
}
