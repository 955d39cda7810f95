//! The byte-stream face: an MSNP client written against a `TcpStream` (here a routine generic
//! over `futures_io::AsyncRead + AsyncWrite`) uses a `ClientStream` the same way, on
//! async-std and on smol.

mod support;

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use async_io::Async;
use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::future::poll_once;
use futures_lite::io::BufReader;
use futures_lite::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use msn_http_async_std::{ClientStream, Notice, StreamError};
use msn_http_core::client::{CloseReason, Recovery, RequestKind, UnconfirmedPolicy};
use msn_http_core::error::{RemoteError, SessionError};
use support::{Clock, Exec, Fault, Gateway, POLL, Script, Virtual, config, ns, text};

/// What an MSNP client over TCP would do, generic over the stream type.
async fn msnp_exchange<S>(stream: &mut BufReader<S>) -> std::io::Result<Vec<String>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut lines = Vec::new();
    stream.write_all(b"VER 1 MSNP8 CVR0\r\n").await?;
    stream.flush().await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    lines.push(std::mem::take(&mut line));
    // A payload command, written in two pieces cut inside the payload.
    stream.write_all(b"MSG 2 N 5\r\nhe").await?;
    stream.write_all(b"llo").await?;
    stream.read_line(&mut line).await?;
    lines.push(std::mem::take(&mut line));
    let mut payload = [0u8; 5];
    stream.read_exact(&mut payload).await?;
    lines.push(text(&payload));
    Ok(lines)
}

const EXCHANGED: [&str; 3] = ["VER 1 MSNP8 CVR0\r\n", "MSG 2 N 5\r\n", "hello"];

crate::on_both!(
    reads_and_writes_like_a_tcp_stream,
    the_same_routine_runs_over_a_tcp_stream_and_over_the_gateway,
    an_uncertain_delivery_under_the_ask_policy_ends_the_stream_with_a_typed_error,
    owned_halves_read_and_write_from_two_tasks,
);

/// `into_split`: one task writes, another reads; closing the writing half sends `OUT`, and
/// the reading half reads to a clean end of stream.
async fn owned_halves_read_and_write_from_two_tasks(exec: Exec) {
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script::default());
    let (stream, driver) =
        ClientStream::open_with(Virtual::new(&clock), config(&gw), ns()).unwrap();
    let driver = exec.spawn(driver);
    let (reader, mut writer) = stream.into_split();
    let reading = exec.spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut all = String::new();
        let read = reader.read_to_string(&mut all).await.map(|_| all);
        (read, reader.into_inner())
    });
    let sent: String = (1..=20).map(|n| format!("CHG {n} NLN 0\r\n")).collect();
    for line in sent.split_inclusive("\r\n") {
        writer.write_all(line.as_bytes()).await.unwrap();
    }
    writer.close().await.unwrap();
    // Every answer comes at once: no timer has to fire, so the clock stays put.
    let (all, reader) = reading.await;
    assert_eq!(all.expect("a clean end of stream"), format!("{sent}OUT\r\n"));
    assert!(reader.end().expect("ended").is_clean());
    driver.await;
    assert_eq!(text(&gw.received()), format!("{sent}OUT\r\n"));
    let err = writer.write_all(b"CHG 21 NLN 0\r\n").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
}

async fn reads_and_writes_like_a_tcp_stream(exec: Exec) {
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script { chunked: Some(3), ..Script::default() });
    let (stream, driver) =
        ClientStream::open_with(Virtual::new(&clock), config(&gw), ns()).unwrap();
    let driver = exec.spawn(driver);
    let mut stream = BufReader::new(stream);
    assert_eq!(msnp_exchange(&mut stream).await.unwrap(), EXCHANGED);

    // PNG never goes on the wire: the stream answers it, as a TCP server would.
    stream.write_all(b"PNG\r\n").await.unwrap();
    let mut answer = String::new();
    stream.read_line(&mut answer).await.unwrap();
    assert_eq!(answer, "QNG 50\r\n");

    // Server-initiated bytes arrive with a poll; a read waits for them.
    gw.push(b"ILN 0 NLN bob@example.com Bob\r\n");
    let mut line = String::new();
    {
        let mut reading = std::pin::pin!(stream.read_line(&mut line));
        assert!(poll_once(reading.as_mut()).await.is_none(), "nothing yet");
        clock.advance(POLL);
        reading.await.unwrap();
    }
    assert_eq!(line, "ILN 0 NLN bob@example.com Bob\r\n");

    // Close ends the session (OUT); what arrived meanwhile stays readable, then EOF.
    stream.close().await.unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert_eq!(text(&rest), "OUT\r\n");
    let end = stream.get_ref().end().expect("ended");
    assert_eq!(end.reason, CloseReason::ServerClosed);
    assert!(end.unsent.is_empty());
    let err = stream.write_all(b"CHG 3 NLN 0\r\n").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    driver.await;

    assert_eq!(text(&gw.received()), "VER 1 MSNP8 CVR0\r\nMSG 2 N 5\r\nhelloOUT\r\n");
    let notices = stream.get_mut().take_notices();
    assert_eq!(notices, [Notice::Established { session_id: "954547325.1".to_owned() }]);
}

/// A plain MSNP "server" over TCP that echoes what it reads, for one connection.
fn tcp_echo_server(exec: &Exec) -> SocketAddr {
    let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
    let addr = listener.get_ref().local_addr().unwrap();
    drop(exec.spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut buf = [0u8; 1024];
        for _ in 0..1_000 {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if socket.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    }));
    addr
}

async fn the_same_routine_runs_over_a_tcp_stream_and_over_the_gateway(exec: Exec) {
    // Straight to an MSNP server over TCP...
    let tcp = Async::<TcpStream>::connect(tcp_echo_server(&exec)).await.unwrap();
    let mut tcp = BufReader::new(tcp);
    assert_eq!(msnp_exchange(&mut tcp).await.unwrap(), EXCHANGED);

    // ... and through the gateway, by swapping the stream type (on the system clock).
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script::default());
    let (stream, driver) = ClientStream::open(config(&gw), ns()).unwrap();
    let driver = exec.spawn(driver);
    let mut stream = BufReader::new(stream);
    assert_eq!(msnp_exchange(&mut stream).await.unwrap(), EXCHANGED);
    stream.close().await.unwrap();
    driver.await;
    assert_eq!(stream.get_ref().end().map(|e| e.reason.clone()), Some(CloseReason::ServerClosed));
    let received = text(&gw.received());
    assert!(
        received.starts_with("VER 1 MSNP8 CVR0\r\nMSG 2 N 5\r\nhello")
            && received.ends_with("OUT\r\n"),
        "{received}"
    );
}

async fn an_uncertain_delivery_under_the_ask_policy_ends_the_stream_with_a_typed_error(exec: Exec) {
    let clock = Clock::new();
    let gw = Gateway::start(&exec, &clock, Script::default().fault(1, Fault::Status(500)));
    let config = config(&gw);
    assert_eq!(config.unconfirmed, UnconfirmedPolicy::Ask);
    let (stream, driver) = ClientStream::open_with(Virtual::new(&clock), config, ns()).unwrap();
    let driver = exec.spawn(driver);
    let mut stream = BufReader::new(stream);
    stream.write_all(b"VER 1 MSNP8 CVR0\r\n").await.unwrap();
    let mut line = String::new();
    stream.read_line(&mut line).await.unwrap();
    assert_eq!(line, "VER 1 MSNP8 CVR0\r\n");
    stream.write_all(b"CHG 2 NLN 0\r\n").await.unwrap();
    line.clear();
    let err = stream.read_line(&mut line).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted);
    let typed = err.get_ref().and_then(|e| e.downcast_ref::<StreamError>());
    let error = SessionError::Remote(RemoteError::ServerError(500));
    let want = StreamError::DeliveryUncertain { kind: RequestKind::Send, error: error.clone() };
    assert_eq!(typed, Some(&want));
    let end = stream.get_ref().end().expect("ended");
    assert_eq!(end.reason, CloseReason::Aborted);
    assert_eq!(text(&end.unsent), "CHG 2 NLN 0\r\n");
    assert_eq!(
        stream.get_mut().take_notices()[1..],
        [Notice::RequestFailed {
            kind: RequestKind::Send,
            error,
            recovery: Recovery::AwaitingDecision,
        }]
    );
    // The session is over: its driver has stopped, whatever the clock does.
    clock.advance(Duration::from_secs(5));
    driver.await;
    assert_eq!(gw.request_count(), 2, "nothing after the failure");
    assert_eq!(text(&gw.received()), "VER 1 MSNP8 CVR0\r\n");
}
