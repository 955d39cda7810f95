//! The gateway's side of the world, and the model of how each request ends: from what the
//! gateway wrote and what the driver delivered, the event the session must report.

use std::io;

use msn_http_core::Endpoint;
use msn_http_core::client::{CloseReason, Recovery, RequestKind, UnconfirmedPolicy};
use msn_http_core::error::{NetworkError, RemoteError, SessionError};

use super::world::{Cause, Expect, Flight, Outcome, Reply, World};
use super::{Answer, AnswerKind, owned, proxy_endpoint, server_command};

fn endpoint(host: &str, port: u16) -> Endpoint {
    Endpoint::new(host, port).unwrap_or_else(|_| unreachable!("a valid host"))
}

impl World {
    // The gateway.

    pub(super) fn respond(&mut self, a: Answer) {
        let Some(flight) = self.flight.as_ref() else {
            return;
        };
        if flight.reply.is_some() || self.closed {
            return;
        }
        let mut wire = Vec::new();
        if a.interim {
            wire.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let final_start = wire.len();
        let close_delimited = a.framing % 4 == 3;
        let version = if close_delimited { "1.0" } else { "1.1" };
        let ok = matches!(a.kind, AnswerKind::Ok | AnswerKind::OkClose);
        let (status, outcome) = match a.kind {
            AnswerKind::Ok => (200, Outcome::Success { close: false }),
            AnswerKind::OkClose => (200, Outcome::Success { close: true }),
            AnswerKind::Rejected => (400, Outcome::Rejected),
            AnswerKind::ServerError => {
                let status = [500, 502, 503][usize::from(a.id % 3)];
                (status, Outcome::ServerError(status))
            }
            AnswerKind::ProxyAuth => {
                (407, Outcome::Fatal(RemoteError::ProxyAuthenticationRequired))
            }
            AnswerKind::Redirect => (302, Outcome::Fatal(RemoteError::UnexpectedStatus(302))),
            AnswerKind::NoHeader => (200, Outcome::Fatal(RemoteError::MissingMessengerHeader)),
        };
        wire.extend_from_slice(format!("HTTP/{version} {status} Whatever\r\n").as_bytes());
        self.id_counter += 1;
        let id = match a.id % 4 {
            0 => format!("954547325.{}", self.id_counter),
            1 => "ee242912-db5a-4b93-bc49-d615b0fa7965".to_owned(),
            2 => format!("a%26b={}", self.id_counter),
            _ => format!("{}", self.id_counter),
        };
        let mut named = Vec::new();
        if ok {
            named.extend(match a.gw % 6 {
                2 => Some(endpoint("gw.test", 80)),
                3 => Some(endpoint("gw2.test", 80)),
                4 => Some(endpoint("gw3.test", 81)),
                _ => None,
            });
            let gw = match a.gw % 6 {
                0 => String::new(),
                1 => "; GW-IP=".to_owned(),
                2 => "; GW-IP=gw.test".to_owned(),
                3 => "; GW-IP=gw2.test".to_owned(),
                4 => "; GW-IP=gw3.test:81".to_owned(),
                _ => "; GW-IP=bad host".to_owned(),
            };
            let close = if a.kind == AnswerKind::OkClose { "; Session=close" } else { "" };
            wire.extend_from_slice(
                format!("X-MSN-Messenger: SessionID={id}{gw}{close}\r\n").as_bytes(),
            );
            if a.gw & 0x80 != 0 {
                wire.extend_from_slice(b"X-MSN-Host: gw4.test\r\n");
                named.push(endpoint("gw4.test", 80));
            }
        }
        if a.close {
            wire.extend_from_slice(b"Connection: close\r\n");
        }
        let sent_before = self.sent;
        let body = if ok {
            for _ in 0..a.new_commands % 4 {
                let command = server_command(self.server_commands.len());
                self.outbox.extend_from_slice(&command);
                self.server_commands.push(command);
            }
            let available = self.outbox.len() - self.sent;
            let max = usize::try_from(self.p.max_body_bytes).unwrap_or(usize::MAX);
            let n = usize::from(a.take).min(available).min(max);
            self.sent += n;
            self.outbox[sent_before..self.sent].to_vec()
        } else {
            b"err".to_vec()
        };
        match a.framing % 4 {
            0 | 1 => {
                wire.extend_from_slice(
                    format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                );
            }
            2 => wire.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n"),
            _ => wire.extend_from_slice(b"\r\n"),
        }
        let body_start = wire.len();
        if a.framing % 4 == 2 {
            crate::write_chunked(&mut wire, &body, 1 + usize::from(a.framing >> 2));
        } else {
            wire.extend_from_slice(&body);
        }
        let keep_alive = !a.close && !close_delimited;
        let reply = Reply {
            final_start,
            body_start,
            outcome,
            close_delimited,
            keep_alive,
            server_bytes: sent_before..self.sent,
            id,
            named,
            names_bad_host: ok && a.gw % 6 == 5,
        };
        self.wire = wire;
        if let Some(f) = self.flight.as_mut() {
            f.reply = Some(reply);
        }
    }

    pub(super) fn deliver(&mut self, n: usize) {
        let Some(f) = self.flight.as_mut() else {
            return;
        };
        let from = f.delivered.min(self.wire.len());
        let to = from.saturating_add(n).min(self.wire.len());
        if from == to {
            return;
        }
        f.delivered = to;
        let head_arrives = f.reply.as_ref().filter(|r| from < r.body_start && r.body_start <= to);
        if let Some(r) = head_arrives.filter(|_| !f.tainted) {
            if matches!(r.outcome, Outcome::Success { .. }) {
                self.first_id.get_or_insert_with(|| r.id.clone());
                self.named.extend(r.named.iter().cloned());
                self.bad_host_named |= r.names_bad_host;
            }
        }
        let bytes = self.wire[from..to].to_vec();
        self.session.handle_input(self.now, &bytes);
    }

    pub(super) fn eof_cause(&self) -> Cause {
        match &self.flight {
            // EOF ends a close-delimited body wherever it is: a cut one is not detectable.
            Some(Flight { reply: Some(r), delivered, .. })
                if r.close_delimited && *delivered >= r.body_start =>
            {
                Cause::EofComplete
            }
            _ => Cause::Eof,
        }
    }

    // How a request ends.

    pub(super) fn close_with(&mut self, reason: CloseReason) {
        if !self.closed {
            self.closed = true;
            self.expected.push_back(Expect::Closed(reason));
        }
    }

    /// A failure that leaves open whether the gateway got the commands: retry, ask or drop.
    fn fail(&mut self, f: &Flight, error: SessionError) {
        self.failures += 1;
        if self.failures > self.p.max_consecutive_failures {
            let last = Box::new(error);
            let error = NetworkError::TooManyFailures { failures: self.failures, last };
            return self.close_with(CloseReason::Failed(error.into()));
        }
        let recovery = match (f.kind, self.p.unconfirmed) {
            (RequestKind::Poll, _) | (_, UnconfirmedPolicy::Resend) => Recovery::Resending,
            (_, UnconfirmedPolicy::Discard) => {
                self.confirmed += f.len;
                Recovery::Discarded { bytes: f.len }
            }
            (_, UnconfirmedPolicy::Ask) => {
                self.awaiting = Some(f.len);
                Recovery::AwaitingDecision
            }
        };
        self.expected.push_back(Expect::Failed { kind: f.kind, error, recovery });
        if matches!(recovery, Recovery::Discarded { .. })
            && self.close_end.is_some_and(|end| self.confirmed >= end)
        {
            self.close_with(CloseReason::Aborted);
        }
    }

    fn succeed(&mut self, f: &Flight, r: &Reply) {
        self.confirmed += f.len;
        self.failures = 0;
        self.opened = true;
        self.answered_at = f.gateway.clone();
        self.first_after_success = None;
        self.latest_id = Some(r.id.clone());
        let mut body = r.server_bytes.len();
        if r.close_delimited {
            // Only what arrived before EOF; the gateway model wrote no more.
            body = body.min(f.delivered.saturating_sub(r.body_start));
            self.sent = r.server_bytes.start + body;
        }
        self.pushed += body as u64;
        if !r.keep_alive {
            self.must_fresh = true;
        }
        if r.outcome == (Outcome::Success { close: true }) {
            self.close_with(CloseReason::ServerClosed);
        } else if self.close_end.is_some_and(|end| self.confirmed >= end) {
            self.close_with(CloseReason::LocalClose);
        }
    }

    /// After an operation: if the request in flight ended, predict (or learn) how.
    pub(super) fn settle_flight(&mut self, cause: Option<Cause>) {
        let Some(f) = self.flight.clone() else {
            return;
        };
        if self.closed {
            // Aborted by the caller.
            self.flight = None;
            return;
        }
        let ended = self.session.in_flight().is_none();
        if f.tainted {
            if ended {
                self.flight = None;
                self.wire.clear();
                self.resync(&f);
            }
            return;
        }
        let delivered = f.delivered;
        match cause {
            None => assert!(!ended, "a request ended by itself"),
            Some(Cause::ConnectFailed) => {
                assert!(ended, "a failed connect left the request in flight");
                self.flight = None;
                let address = if self.p.proxy {
                    proxy_endpoint()
                } else {
                    self.gateway_at_last_request.clone()
                };
                let error = SessionError::from(NetworkError::ConnectFailed {
                    kind: io::ErrorKind::ConnectionRefused,
                    address,
                });
                if !self.opened {
                    // Nothing was ever reachable: the session fails at once.
                    self.close_with(CloseReason::Failed(error));
                    return;
                }
                self.failures += 1;
                if self.failures > self.p.max_consecutive_failures {
                    let last = Box::new(error);
                    let error = NetworkError::TooManyFailures { failures: self.failures, last };
                    self.close_with(CloseReason::Failed(error.into()));
                } else {
                    self.expected.push_back(Expect::Failed {
                        kind: f.kind,
                        error,
                        recovery: Recovery::Resending,
                    });
                }
            }
            Some(Cause::Delivered | Cause::EofComplete) => {
                let due = f.reply.as_ref().is_some_and(|r| match r.outcome {
                    Outcome::Fatal(_) => delivered >= r.body_start,
                    _ if r.close_delimited => cause == Some(Cause::EofComplete),
                    _ => delivered == self.wire.len(),
                });
                assert_eq!(
                    ended,
                    due,
                    "request ended at the wrong byte ({delivered} of {})",
                    self.wire.len()
                );
                if let (true, Some(r)) = (ended, f.reply.as_ref()) {
                    self.flight = None;
                    self.end_with_reply(&f, r);
                }
            }
            Some(Cause::Eof | Cause::Timeout) => {
                let timed_out = cause == Some(Cause::Timeout);
                if timed_out {
                    assert_eq!(ended, self.now >= f.deadline, "deadline not kept");
                } else {
                    assert!(ended, "EOF left the request in flight");
                }
                if !ended {
                    return;
                }
                self.flight = None;
                self.wire.clear();
                self.must_fresh = true;
                let reply = f.reply.as_ref();
                let started = reply.is_some_and(|r| delivered > 0 && delivered != r.final_start);
                let error: SessionError = if timed_out {
                    NetworkError::Timeout { response_started: started }.into()
                } else {
                    NetworkError::ConnectionClosed { response_started: started }.into()
                };
                // A 400 or 5xx head says no MSNP bytes came with it.
                let harmless = reply.is_some_and(|r| {
                    delivered >= r.body_start
                        && matches!(r.outcome, Outcome::Rejected | Outcome::ServerError(_))
                });
                if let Some(r) = reply.filter(|_| !started) {
                    // Nothing of the answer arrived: the gateway keeps what it would have sent.
                    self.sent = r.server_bytes.start;
                }
                // A 400 head ends the session however its body ends.
                let rejected = reply.is_some_and(|r| {
                    delivered >= r.body_start && matches!(r.outcome, Outcome::Rejected)
                });
                if rejected {
                    self.close_with(CloseReason::SessionRejected);
                } else if started && !harmless {
                    self.close_with(CloseReason::Failed(error));
                } else {
                    self.fail(&f, error);
                }
            }
        }
    }

    /// The whole answer arrived (or its head, for answers that end the session).
    fn end_with_reply(&mut self, f: &Flight, r: &Reply) {
        match r.outcome {
            Outcome::Success { .. } => self.succeed(f, r),
            Outcome::Rejected => self.close_with(CloseReason::SessionRejected),
            Outcome::ServerError(status) => {
                if !r.keep_alive {
                    self.must_fresh = true;
                }
                self.fail(f, RemoteError::ServerError(status).into());
            }
            // A moved-to host that never answered is taken for no gateway: the request fails
            // there (and goes to the configured gateway unless through a proxy).
            // (A 407 is the proxy's answer, not the host's: it ends the session anywhere.)
            Outcome::Fatal(e) if f.unproven && e != RemoteError::ProxyAuthenticationRequired => {
                self.fail(f, e.into())
            }
            Outcome::Fatal(e) => self.close_with(CloseReason::Failed(e.into())),
        }
    }

    /// A request whose answer held hostile bytes ended: learn from the events how.
    fn resync(&mut self, f: &Flight) {
        self.inbound_tainted = true;
        self.must_fresh = false;
        self.expected.push_back(Expect::Any(f.kind));
        self.learned_len = Some(f.len);
        while let Some(event) = self.session.poll_event() {
            let event = owned(event);
            self.on_event(event);
        }
        let unreported = self.expected.iter().any(|e| matches!(e, Expect::Any(_)));
        self.expected.retain(|e| !matches!(e, Expect::Any(_)));
        self.learned_len = None;
        if unreported && !self.closed {
            // No failure reported: the answer was taken as a success.
            assert!(!self.session.is_closed());
            self.confirmed += f.len;
            self.failures = 0;
            self.opened = true;
            self.answered_at = f.gateway.clone();
            self.first_after_success = None;
            self.latest_id = self.session.session_id().map(str::to_owned);
        }
    }
}
