//! The examples run against the built-in MSNP server behind the gateway server (loopback,
//! bounded), so they never rot: the byte-stream client talks to the echo bot and gets its own
//! words back.

use std::time::Duration;

#[path = "support/builtin_gateway.rs"]
mod builtin_gateway;

#[path = "../examples/byte_stream.rs"]
#[allow(dead_code)] // its `main`
mod byte_stream;
#[path = "../examples/echo_bot.rs"]
#[allow(dead_code)] // its `main`
mod echo_bot;

/// Real time after which a hung example fails the test instead of hanging it.
const HANG_LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_byte_stream_client_gets_its_words_back_from_the_echo_bot() {
    let builtin_gateway::BuiltinGateway { url, gateway, _server } = builtin_gateway::start().await;

    let bot_url = url.clone();
    let bot = tokio::spawn(async move {
        echo_bot::run(&bot_url, "bob@example.com", "bobpass", 1).await.map_err(|e| e.to_string())
    });
    let answer = tokio::time::timeout(
        HANG_LIMIT,
        byte_stream::say(&url, "alice@example.com", "alicepass", "bob@example.com", "Hello, bot"),
    )
    .await
    .expect("the byte-stream client hung")
    .unwrap();
    assert_eq!(answer, "Hello, bot");
    // One message echoed: the bot signs out by itself.
    let bot_result = tokio::time::timeout(HANG_LIMIT, bot).await.expect("the bot hung").unwrap();
    assert_eq!(bot_result, Ok(()));
    gateway.shutdown().await.unwrap();
}

#[path = "../../msn-http-core/examples/blocking.rs"]
#[allow(dead_code)] // its `main`
mod blocking;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocking_driver_signs_in_and_reads_the_friendly_name() {
    let builtin_gateway::BuiltinGateway { url, gateway, _server } = builtin_gateway::start().await;

    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let name = blocking::friendly_name(&url, "carol@example.com", "carolpass");
        let _ = done.send(name.map_err(|e| e.to_string()));
    });
    let name = tokio::task::spawn_blocking(move || result.recv_timeout(HANG_LIMIT));
    assert_eq!(name.await.unwrap().expect("the blocking driver hung"), Ok("Carol".to_owned()));
    gateway.shutdown().await.unwrap();
}
