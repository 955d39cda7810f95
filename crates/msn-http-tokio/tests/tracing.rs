//! What a session writes to `tracing`: its span, and the fallback from an unreachable `GW-IP`
//! host, told both by the driver when connecting fails and when the notice is taken, all under
//! the documented target `msn_http` (which a user's filter names).

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use msn_http_core::client::Target;
use msn_http_tokio::Client;
use support::{Gateway, GwIp, Script, config, run};
use tokio::net::TcpListener;

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn the_session_span_and_the_gateway_fallback_are_traced() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn,msn_http=debug"))
        .finish();
    // The runtime of this test runs every task on this thread.
    let _default = tracing::subscriber::set_default(subscriber);

    let (gateway, dead) = run(async {
        let gw = Gateway::start(Script::default()).await;
        let dead = TcpListener::bind("127.0.0.3:0").await.unwrap().local_addr().unwrap();
        gw.lock().script.gw_ip = GwIp::Fixed(dead.to_string());
        let mut client = Client::open(config(&gw), Target::notification("127.0.0.1")).unwrap();
        client.send(b"VER 1 MSNP8 CVR0\r\n").await.unwrap();
        client.send(b"CHG 2 NLN 0\r\n").await.unwrap();
        for want in ["VER", "CHG"] {
            assert_eq!(client.recv().await.unwrap().name(), want);
        }
        let end = client.close().await;
        assert!(end.is_clean(), "{end:?}");
        (gw.addr(), dead)
    })
    .await;

    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let find = |needle: &str| {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in the log:\n{text}"))
    };
    let connect_failed = find("connect failed");
    assert!(connect_failed.contains("WARN"), "{connect_failed}");
    assert!(connect_failed.contains(&dead.to_string()), "{connect_failed}");
    // The notice, when taken out of the session.
    let fallback = find("msn_http: not a working gateway; falling back to the configured one");
    assert!(fallback.contains("WARN"), "{fallback}");
    assert!(
        fallback.contains(&format!("unreachable={dead}"))
            && fallback.contains(&format!("to={gateway}")),
        "{fallback}"
    );
    find("gateway moved");
    find("session closed");
    // Every line of the session is inside its span, with the target it opened.
    for needle in ["connect failed", "gateway moved", "session closed", "driver started"] {
        let line = find(needle);
        assert!(line.contains("msn_http_session{server=\"NS\" ip=127.0.0.1}:"), "{line}");
    }
}
