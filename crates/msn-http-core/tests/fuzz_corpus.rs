//! Replays the checked-in fuzz corpus (`tests/corpus/<target>/`) through the same harness
//! functions the cargo-fuzz targets call, on stable; every crash the fuzzers found is also a
//! named test here.
// Tests live in a process of their own: they may read a clock for an origin and read files.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use msn_http_core::error::{HeadFault, HttpError};
use msn_http_core::fuzzing::{Harness, TARGETS};
use msn_http_core::gateway::{
    Action, BackendAllowlist, ConnectionId, Gateway, GatewayConfig, Transmit,
};
use msn_http_core::wire::{HttpLimits, ResponseDecoder, ResponseStep};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(target)
}

fn harness(target: &str) -> Harness {
    TARGETS.iter().find(|(name, _)| *name == target).map(|(_, h)| *h).expect("a known target")
}

/// Runs one corpus file, naming it if the harness panics.
fn replay(target: &str, file: &str) {
    let path = corpus_dir(target).join(file);
    let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    harness(target).run(&data, Instant::now());
}

#[test]
fn every_corpus_file_passes_its_harness() {
    let mut replayed = 0;
    for (target, harness) in TARGETS {
        let dir = corpus_dir(target);
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for {target}");
        for path in files {
            let data = fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| harness.run(&data, Instant::now()));
            assert!(outcome.is_ok(), "{target}: {} fails", path.display());
            replayed += 1;
        }
    }
    assert!(replayed >= TARGETS.len(), "replayed {replayed} files");
}

#[test]
fn every_target_has_a_corpus_and_a_fuzz_target() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    for (target, _) in TARGETS {
        assert!(corpus_dir(target).is_dir(), "no corpus directory for {target}");
        assert!(fuzz.join(format!("{target}.rs")).is_file(), "no fuzz target for {target}");
    }
}

// Regressions: inputs that crashed a harness while it was written, each kept in the corpus.
// None was a bug in the core; each taught the harness what the documented contract allows.

#[test]
fn seeds_from_the_protocol_fixtures_still_pass() {
    replay("response_decoder", "fixture-ns-open-response");
    replay("request_decoder", "fixture-ns-open-request");
    replay("session_split", "fixture-revival-response-eof");
}

/// What the harnesses accept as the one difference between whole and cut input: a bad byte in
/// a head that arrives in pieces is found when its line ends (partial heads are parsed again
/// only on a newline), so a stream that stops first reports no error yet.
#[test]
fn a_bad_byte_in_a_partial_head_shows_when_its_line_ends() {
    let wire = b"HTTP/1.1 200 OK\r\nA\x00b: c";
    let mut whole = ResponseDecoder::new(HttpLimits::default());
    let err = whole.decode(&mut &wire[..]);
    assert_eq!(err, Err(HttpError::MalformedHead(HeadFault::HeaderName)));
    let mut cut = ResponseDecoder::new(HttpLimits::default());
    for byte in wire.chunks(1) {
        assert_eq!(cut.decode(&mut &byte[..]), Ok(ResponseStep::NeedMore));
    }
    let mut line_end: &[u8] = b"\r\n";
    assert_eq!(cut.decode(&mut line_end), err, "found once the line ends");
    replay("response_decoder", "head-lag");
    replay("session_split", "head-lag-eof");
}

/// `HTTP/1.1 083 Odd`: httparse takes any three digits; the head is a final one, not interim.
#[test]
fn a_status_below_100_is_a_final_head() {
    replay("response_decoder", "crash-status-083");
}

/// The gateway answers a request refused at its head (`417`, `413`, ...) before its body
/// arrives; only a `200` waits for the whole request.
#[test]
fn errors_are_answered_as_soon_as_the_head_is_read() {
    replay("gateway", "crash-early-error-answer");
}

/// Found by the `gateway` target, a bug in the core: a connection holding a complete open
/// request that was refused with `503` (its pipelined bytes tipped the head budget) left its
/// session waiting forever for that dead connection, so the session and its backend never
/// ended. `fail_request` now gives the session's request up, as an EOF does.
#[test]
fn a_503_for_pipelined_bytes_releases_the_held_session() {
    replay("gateway", "crash-session-outlives");

    let start = Instant::now();
    let mut config = GatewayConfig::new("gw.test", [1; 32])
        .with_backends(BackendAllowlist::new().allow("ns.test", None));
    config.http_limits = HttpLimits { max_head_bytes: 128, max_body_bytes: 1024 };
    config.max_buffered_head_bytes = 160;
    let mut gw = Gateway::new(config, start).unwrap();
    let (slow, pipelining) = (ConnectionId(1), ConnectionId(2));
    gw.handle_accept(start, slow).unwrap();
    gw.handle_accept(start, pipelining).unwrap();
    // 100 bytes of a head that never ends count against the budget...
    gw.handle_client_input(start, slow, &[b'P'; 100]);
    // ...so an open request followed by 100 pipelined bytes tips it.
    let mut input =
        b"POST /gateway/gateway.dll?Action=open&IP=ns.test HTTP/1.1\r\nHost: g\r\nContent-Length: 0\r\n\r\n"
            .to_vec();
    input.extend_from_slice(&[b'x'; 100]);
    gw.handle_client_input(start, pipelining, &input);
    let mut out = Vec::new();
    let answer = gw.poll_transmit(start, &mut out);
    assert!(
        matches!(answer, Some(Transmit::Client { connection, close: true, .. }) if connection == pipelining)
    );
    assert!(out.starts_with(b"HTTP/1.1 503 "), "{}", String::from_utf8_lossy(&out));
    let mut actions = Vec::new();
    while let Some(action) = gw.poll_action() {
        actions.push(action);
    }
    let Some(Action::Connect { backend, .. }) = actions.first().cloned() else {
        panic!("no Connect: {actions:?}");
    };
    gw.handle_backend_connected(start, backend);
    let mut now = start;
    while let Some(at) = gw.poll_timeout() {
        now = now.max(at);
        gw.handle_timeout(now);
        while gw.poll_transmit(now, &mut Vec::new()).is_some() {}
        while let Some(action) = gw.poll_action() {
            actions.push(action);
        }
    }
    assert_eq!(gw.session_count(), 0, "the session outlived every timeout");
    let closes = actions.iter().filter(|a| **a == Action::CloseBackend(backend)).count();
    assert_eq!(closes, 1, "one CloseBackend for the Connect: {actions:?}");
}

/// `close()` before any response closes at once, and a closed session awaits no decision.
#[test]
fn closing_an_unopened_session_clears_the_pending_decision() {
    replay("client_session", "crash-awaiting");
}

/// A request fed hostile bytes may still end in a success that confirms its commands before
/// `Session=close`.
#[test]
fn a_tainted_answer_may_confirm_before_closing() {
    replay("client_session", "crash-unsent");
}

/// Unframable server bytes may end the session right after a tainted request was confirmed.
#[test]
fn an_msnp_error_after_a_tainted_success_keeps_the_count() {
    replay("client_session", "crash-unsent-2");
}

/// A poll whose answer is still arriving when the caller stops holds body bytes already
/// counted as received.
#[test]
fn an_answer_in_progress_is_counted_once_it_is_whole() {
    replay("client_session", "crash-final-inbound");
}

/// Under `Discard`, dropping the request that carried `OUT` ends the session as `Aborted`.
#[test]
fn discarding_out_aborts() {
    replay("client_session", "crash-abort");
}

/// Bytes after a close-delimited answer are body bytes until EOF.
#[test]
fn bytes_after_a_close_delimited_answer_are_body() {
    replay("client_session", "crash-inbound");
}

/// A command sent in pieces keeps its order when one piece is refused for a full queue.
#[test]
fn refused_pieces_are_sent_again_in_order() {
    replay("client_session", "crash-refused");
}
