//! The byte-stream face: an MSNP client written against a `TcpStream` uses a `ClientStream`
//! the same way, here through a fake gateway that chunks its answers.

mod support;

use std::io::ErrorKind;
use std::time::Duration;

use msn_http_core::client::{CloseReason, Recovery, RequestKind, Target, UnconfirmedPolicy};
use msn_http_core::error::{RemoteError, SessionError};
use msn_http_tokio::{ClientStream, Notice, StreamError};
use support::{Fault, Gateway, Script, config, run, text};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// What an MSNP client over TCP would do, generic over the stream type.
async fn msnp_exchange<S>(stream: &mut BufReader<S>) -> std::io::Result<Vec<String>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
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

#[tokio::test(start_paused = true)]
async fn reads_and_writes_like_a_tcp_stream() {
    run(async {
        let gw = Gateway::start(Script { chunked: Some(3), ..Script::default() }).await;
        let stream = ClientStream::open(config(&gw), Target::notification("127.0.0.1")).unwrap();
        let mut stream = BufReader::new(stream);
        let lines = msnp_exchange(&mut stream).await.unwrap();
        assert_eq!(lines, ["VER 1 MSNP8 CVR0\r\n", "MSG 2 N 5\r\n", "hello"]);

        // PNG never goes on the wire: the stream answers it, as a TCP server would.
        stream.write_all(b"PNG\r\n").await.unwrap();
        let mut answer = String::new();
        stream.read_line(&mut answer).await.unwrap();
        assert_eq!(answer, "QNG 50\r\n");

        // Server-initiated bytes arrive with a poll.
        gw.push(b"ILN 0 NLN bob@example.com Bob\r\n");
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        assert_eq!(line, "ILN 0 NLN bob@example.com Bob\r\n");

        // Shutdown closes the session (OUT); what arrived meanwhile stays readable, then EOF.
        stream.shutdown().await.unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        assert_eq!(text(&rest), "OUT\r\n");
        let end = stream.get_ref().end().expect("ended");
        assert_eq!(end.reason, CloseReason::ServerClosed);
        assert!(end.unsent.is_empty());
        let err = stream.write_all(b"CHG 3 NLN 0\r\n").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe);

        assert_eq!(text(&gw.received()), "VER 1 MSNP8 CVR0\r\nMSG 2 N 5\r\nhelloOUT\r\n");
        let notices = stream.get_mut().take_notices();
        assert_eq!(notices, [Notice::Established { session_id: "954547325.1".to_owned() }]);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_uncertain_delivery_under_the_ask_policy_ends_the_stream_with_a_typed_error() {
    run(async {
        let gw = Gateway::start(Script::default().fault(1, Fault::Status(500))).await;
        let config = config(&gw);
        assert_eq!(config.unconfirmed, UnconfirmedPolicy::Ask);
        let stream = ClientStream::open(config, Target::notification("127.0.0.1")).unwrap();
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
        let requests = gw.request_count();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(gw.request_count(), requests, "the session is over");
        assert_eq!(text(&gw.received()), "VER 1 MSNP8 CVR0\r\n");
    })
    .await;
}

/// `into_split`, as with a `TcpStream`: one task writes, another reads; shutting the writing
/// half down sends `OUT`, and the reading half reads to a clean end of stream.
#[tokio::test(start_paused = true)]
async fn owned_halves_read_and_write_from_two_tasks() {
    run(async {
        let gw = Gateway::start(Script::default()).await;
        let stream = ClientStream::open(config(&gw), Target::notification("127.0.0.1")).unwrap();
        let (reader, mut writer) = stream.into_split();
        let reading = tokio::spawn(async move {
            let mut reader = BufReader::new(reader);
            let mut all = String::new();
            reader.read_to_string(&mut all).await.map(|_| (all, reader.into_inner()))
        });
        for n in 1..=20 {
            writer.write_all(format!("CHG {n} NLN 0\r\n").as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        writer.shutdown().await.unwrap();
        let (all, reader) = reading.await.unwrap().expect("a clean end of stream");
        let sent: String = (1..=20).map(|n| format!("CHG {n} NLN 0\r\n")).collect();
        assert_eq!(all, format!("{sent}OUT\r\n"));
        assert!(reader.end().expect("ended").is_clean());
        assert_eq!(text(&gw.received()), format!("{sent}OUT\r\n"));
        let err = writer.write_all(b"CHG 21 NLN 0\r\n").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    })
    .await;
}
