//! The smol echo bot runs against the built-in MSNP server behind the gateway server (both on
//! a tokio runtime, loopback, bounded), so it never rots: msn-http-tokio's byte-stream example
//! talks to it and gets its own words back.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

#[path = "../../msn-http-tokio/tests/support/builtin_gateway.rs"]
mod builtin_gateway;

#[path = "../../msn-http-tokio/examples/byte_stream.rs"]
#[allow(dead_code)] // its `main`
mod byte_stream;
#[path = "../examples/smol_echo_bot.rs"]
#[allow(dead_code)] // its `main`
mod echo_bot;

/// Real time after which a hung example fails the test instead of hanging it.
const HANG_LIMIT: Duration = Duration::from_secs(30);

#[test]
fn the_smol_echo_bot_answers_a_byte_stream_client_with_its_own_words() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let builtin_gateway::BuiltinGateway { url, gateway, _server } =
            builtin_gateway::start().await;

        let (bot_done, bot_result) = mpsc::channel();
        let bot_url = url.clone();
        thread::spawn(move || {
            let result = smol::block_on(echo_bot::run(&bot_url, "bob@example.com", "bobpass", 1));
            let _ = bot_done.send(result.map_err(|e| e.to_string()));
        });
        let answer = tokio::time::timeout(
            HANG_LIMIT,
            byte_stream::say(&url, "alice@example.com", "alicepass", "bob@example.com", "Hi, smol"),
        )
        .await
        .expect("the byte-stream client hung")
        .unwrap();
        assert_eq!(answer, "Hi, smol");
        // One message echoed: the bot signs out by itself.
        let bot = tokio::task::spawn_blocking(move || bot_result.recv_timeout(HANG_LIMIT));
        assert_eq!(bot.await.unwrap().expect("the bot hung"), Ok(()));
        gateway.shutdown().await.unwrap();
    });
}
