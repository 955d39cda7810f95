//! Sequential round trips over loopback against one canned-response gateway, side by side:
//! our tokio adapter, our async-std adapter on smol, a hyper 1.x client posting the same
//! requests, and raw TCP ping-pong of the same byte counts (the floor).
//!
//! Run it pinned to one core (`cargo xtask bench` does: `taskset -c 0`): on a virtual machine
//! an idle CPU takes tens of microseconds to wake, more than a whole round trip's work, and
//! unpinned figures then measure that.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, Target};

/// The command each round trip sends, and the reply the gateway's server returns.
const COMMAND: &[u8] = b"CHG 5 NLN 1073741824\r\n";
const REPLY: &[u8] = b"CHG 5 NLN 1073741824\r\n";

/// The canned gateway response (same length every time: the SessionID never changes).
fn canned_response() -> Vec<u8> {
    let mut wire = format!(
        "HTTP/1.1 200 OK\r\nX-MSN-Messenger: SessionID=954547325.13160; GW-IP=127.0.0.1\r\nContent-Type: application/x-msn-messenger\r\nContent-Length: {}\r\n\r\n",
        REPLY.len()
    )
    .into_bytes();
    wire.extend_from_slice(REPLY);
    wire
}

/// A gateway that answers every request on every connection with the canned response: one
/// blocking thread per connection, so it costs the same for every client measured.
fn spawn_canned_gateway() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("address");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream));
        }
    });
    addr
}

fn serve(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let response = canned_response();
    let mut buf = vec![0u8; 64 * 1024];
    let mut filled = 0;
    loop {
        // A request is complete at the end of its head plus Content-Length bytes.
        while let Some(len) = request_len(&buf[..filled]) {
            if stream.write_all(&response).is_err() {
                return;
            }
            buf.copy_within(len..filled, 0);
            filled -= len;
        }
        match stream.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
    }
}

fn request_len(buf: &[u8]) -> Option<usize> {
    let head = memchr::memmem::find(buf, b"\r\n\r\n")? + 4;
    let text = std::str::from_utf8(&buf[..head]).ok()?;
    let body: usize = text
        .lines()
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    (buf.len() >= head + body).then_some(head + body)
}

fn config(addr: SocketAddr) -> ClientConfig {
    let mut config = ClientConfig::new(Endpoint::new(addr.ip().to_string(), addr.port()).unwrap());
    // Sequential round trips: no idle poll falls between them.
    config.poll_policy =
        msn_http_core::client::PollPolicy::Official { interval: Duration::from_secs(3600) };
    config
}

/// One round trip of our request bytes, for hyper and the raw floor: what the tokio adapter
/// writes for a send.
fn our_request_bytes(addr: SocketAddr) -> Vec<u8> {
    use msn_http_core::wire::{HeaderSet, RequestEncoder, RequestLine, TargetForm};
    let encoder =
        RequestEncoder::new("/gateway/gateway.dll", &HeaderSet::official(), None).unwrap();
    let gateway = Endpoint::new(addr.ip().to_string(), addr.port()).unwrap();
    let mut out = Vec::new();
    let line = RequestLine::Send { session_id: "954547325.13160" };
    encoder.encode(&mut out, &gateway, TargetForm::Origin, line, COMMAND);
    out
}

fn round_trips(c: &mut Criterion) {
    let addr = spawn_canned_gateway();
    let mut group = c.benchmark_group("loopback/round-trip");
    group.throughput(criterion::Throughput::Elements(1));

    // Every tokio client runs its loop as a spawned task, as an application would: wake-ups
    // between tasks stay inside the runtime (waking `block_on`'s own future from a task
    // costs a system call on a current-thread runtime).
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    group.bench_function("msn-http-tokio", |b| {
        let client = rt.block_on(async {
            let mut client =
                msn_http_tokio::Client::open(config(addr), Target::notification("127.0.0.1"))
                    .unwrap();
            client.send(COMMAND).await.unwrap();
            client.recv().await.expect("the open request's reply");
            client
        });
        let mut slot = Some(client);
        b.iter_custom(|iters| {
            let mut client = slot.take().expect("client");
            let (client, elapsed) = rt.block_on(async move {
                tokio::spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        client.send(COMMAND).await.unwrap();
                        client.recv().await.expect("reply");
                    }
                    (client, start.elapsed())
                })
                .await
                .unwrap()
            });
            slot = Some(client);
            elapsed
        });
    });

    group.bench_function("msn-http-async-std", |b| {
        let executor = smol::Executor::new();
        let (mut client, driver) =
            msn_http_async_std::Client::open(config(addr), Target::notification("127.0.0.1"))
                .unwrap();
        executor.spawn(driver).detach();
        smol::block_on(executor.run(async {
            client.send(COMMAND).await.unwrap();
            client.recv().await.expect("the open request's reply");
        }));
        b.iter_custom(|iters| {
            smol::block_on(executor.run(async {
                let start = Instant::now();
                for _ in 0..iters {
                    client.send(COMMAND).await.unwrap();
                    client.recv().await.expect("reply");
                }
                start.elapsed()
            }))
        });
    });

    group.bench_function("hyper", |b| {
        let sender = rt.block_on(async {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let io = hyper_util::rt::TokioIo::new(stream);
            let (sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(connection);
            sender
        });
        let host = format!("{addr}");
        let mut slot = Some(sender);
        b.iter_custom(|iters| {
            let mut sender = slot.take().expect("sender");
            let host = host.clone();
            let (sender, elapsed) = rt.block_on(async move {
                tokio::spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let request =
                            hyper::Request::post("/gateway/gateway.dll?SessionID=954547325.13160")
                                .header("Accept", "*/*")
                                .header("Accept-Language", "en-us")
                                .header("User-Agent", "MSMSGS")
                                .header("Host", &host)
                                .header("Proxy-Connection", "Keep-Alive")
                                .header("Connection", "Keep-Alive")
                                .header("Pragma", "no-cache")
                                .header("Content-Type", "application/x-msn-messenger")
                                .body(Full::new(Bytes::from_static(COMMAND)))
                                .unwrap();
                        let response = sender.send_request(request).await.unwrap();
                        let messenger = response.headers().get("x-msn-messenger").is_some();
                        let body = response.into_body().collect().await.unwrap().to_bytes();
                        assert!(messenger && body.as_ref() == REPLY);
                    }
                    (sender, start.elapsed())
                })
                .await
                .unwrap()
            });
            slot = Some(sender);
            elapsed
        });
    });

    group.bench_function("raw-tcp", |b| {
        let request = our_request_bytes(addr);
        let response_len = canned_response().len();
        let stream = rt.block_on(async {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            stream
        });
        let mut slot = Some((stream, vec![0u8; 4096]));
        b.iter_custom(|iters| {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut stream, mut buf) = slot.take().expect("stream");
            let request = request.clone();
            let (state, elapsed) = rt.block_on(async move {
                tokio::spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        stream.write_all(&request).await.unwrap();
                        let mut got = 0;
                        while got < response_len {
                            got += stream.read(&mut buf[got..]).await.unwrap();
                        }
                    }
                    ((stream, buf), start.elapsed())
                })
                .await
                .unwrap()
            });
            slot = Some(state);
            elapsed
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = round_trips
}
criterion_main!(benches);
