//! Reading a response: its head (status, `X-MSN-Messenger`, the next gateway), its body into
//! the received stream (watched for the server's `OUT`), and what its end decides.

use super::*;

impl Session {
    /// Feeds bytes read from the connection.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        self.read_input(now, bytes);
        if self.unanswered_pings > 0 {
            self.answer_pings();
        }
    }

    pub(super) fn read_input(&mut self, now: Instant, bytes: &[u8]) {
        self.now = now;
        if self.phase == Phase::Closed {
            return;
        }
        let mut input = bytes;
        loop {
            if self.request.in_flight().is_none() {
                if !input.is_empty() && !self.condemned_input {
                    self.unsolicited(input.len());
                }
                return;
            }
            match self.decoder.decode(&mut input) {
                Err(e) => return self.bad_response(now, SessionError::from(e)),
                Ok(ResponseStep::NeedMore) => return,
                Ok(ResponseStep::Head) => {
                    self.on_head(now);
                    if self.phase == Phase::Closed {
                        return;
                    }
                }
                Ok(ResponseStep::Body(data)) => {
                    if let Some(Disposition::Success { .. }) = self.disposition {
                        self.inbound.push(data);
                        self.stats.msnp_bytes_received += data.len() as u64;
                        self.watch_for_out();
                    }
                }
                Ok(ResponseStep::Complete) => self.on_complete(now),
            }
        }
    }

    /// The response in progress broke the protocol. From a host the session was moved to and
    /// that never answered, before any head: it is not a gateway, and the request fails there
    /// (back to the configured gateway). Otherwise the session ends with the error.
    pub(super) fn bad_response(&mut self, now: Instant, error: SessionError) {
        if self.disposition.is_none() && self.route.unproven() {
            self.fresh_connection = true;
            // What follows on this connection (in this read or later ones) is the rest of the
            // broken answer, not unsolicited data.
            self.condemned_input = true;
            return self.request_failed(now, error, false);
        }
        self.fail(error);
    }

    /// The connection reached end of stream (or broke).
    pub fn handle_eof(&mut self, now: Instant) {
        self.now = now;
        if self.phase == Phase::Closed {
            return;
        }
        self.fresh_connection = true;
        if self.request.in_flight().is_none() {
            return;
        }
        match self.decoder.finish() {
            EofOutcome::Complete => {
                self.on_complete(now);
                self.answer_pings();
            }
            EofOutcome::Truncated { started } => {
                let error = NetworkError::ConnectionClosed { response_started: started };
                self.request_failed(now, error.into(), self.response_data_lost());
            }
        }
    }

    pub(super) fn on_head(&mut self, now: Instant) {
        let status = self.decoder.head().status();
        let disposition = match status {
            200..=299 => match self.read_messenger_header() {
                Ok(disposition) => disposition,
                Err(e) => return self.bad_response(now, e.into()),
            },
            400 => Disposition::Rejected,
            407 => return self.fail(RemoteError::ProxyAuthenticationRequired.into()),
            500..=599 => Disposition::ServerError(status),
            // A redirect or another status no gateway answers: from a moved-to host that
            // never answered, that host is no gateway (see `bad_response`).
            _ => return self.bad_response(now, RemoteError::UnexpectedStatus(status).into()),
        };
        self.disposition = Some(disposition);
    }

    /// Takes the SessionID and the next gateway from a successful response's head.
    pub(super) fn read_messenger_header(&mut self) -> Result<Disposition, RemoteError> {
        let head = self.decoder.head();
        let raw = head.messenger().ok_or(RemoteError::MissingMessengerHeader)?;
        // Revival gateways repeat the same value (a constant SessionID and GW-IP): it would
        // change nothing, so it is not parsed again.
        if head.msn_host().is_none()
            && !self.last_messenger.is_empty()
            && raw == self.last_messenger
        {
            self.route.forget_pending();
            return Ok(Disposition::Success { session_close: false });
        }
        self.last_messenger.clear();
        let header = parse_messenger_header(raw).map_err(RemoteError::MessengerHeader)?;
        if head.msn_host().is_none() && !header.session_close {
            self.last_messenger.extend_from_slice(raw);
        }
        if let Some(id) = header.session_id {
            self.session_id.clear();
            self.session_id.push_str(id);
            if !self.established {
                self.established = true;
                let established = Notice::Established { session_id: id.to_owned() };
                self.events.push_back((self.inbound.end(), Pending::Notice(established)));
            }
        }
        // `X-MSN-Host` takes precedence over `GW-IP`; empty values keep the current host.
        let named =
            match head.msn_host().map(<[u8]>::trim_ascii) {
                Some(host) if !host.is_empty() => Some(std::str::from_utf8(host).map_err(|_| {
                    RemoteError::InvalidGatewayAddress(crate::AddressError::InvalidHost)
                })),
                _ => header.gateway.filter(|gw| !gw.is_empty()).map(Ok),
            };
        let session_close = header.session_close;
        self.route.forget_pending();
        let decided = match named {
            None => Ok(Named::Stay),
            Some(Ok(text)) => self.route.named(text).map_err(RemoteError::InvalidGatewayAddress),
            Some(Err(e)) => Err(e),
        };
        match decided {
            Ok(Named::Stay | Named::Move) => {}
            Ok(Named::Refused(to, reason)) => {
                self.stats.refused_moves += 1;
                self.push_event(Pending::Notice(Notice::MoveRefused { to, reason }));
            }
            Err(e) => {
                // Warn again if it comes again.
                self.last_messenger.clear();
                self.warn(e.into());
            }
        }
        Ok(Disposition::Success { session_close })
    }

    pub(super) fn on_complete(&mut self, now: Instant) {
        let Some(flight) = self.request.take_in_flight() else {
            return;
        };
        if !self.decoder.head().keep_alive() {
            self.fresh_connection = true;
        }
        let carried_data = self.decoder.body_received() > 0;
        match self.disposition.take() {
            Some(Disposition::Success { session_close }) => {
                self.outgoing.confirm(flight.len);
                self.failures = 0;
                let was_poll = flight.kind == RequestKind::Poll;
                if was_poll && !carried_data {
                    self.stats.empty_polls += 1;
                }
                if let Some((from, to)) = self.route.response_complete() {
                    self.fresh_connection = true;
                    self.push_event(Pending::Notice(Notice::GatewayMoved { from, to }));
                }
                if self.phase == Phase::Opening {
                    self.phase = Phase::Open;
                }
                let closed_here =
                    self.close_after.is_some_and(|end| self.outgoing.confirmed() >= end);
                if let Some(reason) = self.server_out().filter(|_| !closed_here) {
                    self.close_session(CloseReason::ServerOut(reason));
                } else if session_close {
                    self.close_session(CloseReason::ServerClosed);
                } else if closed_here {
                    self.close_session(CloseReason::LocalClose);
                } else {
                    let held = self.poll.response(now, flight.sent_at, carried_data, was_poll);
                    if self.poll.lifespan().is_some() && was_poll && !carried_data {
                        self.stats.unheld_polls += u64::from(!self.poll.holding());
                    }
                    if let Some(held) = held {
                        self.push_event(Pending::Notice(Notice::PollsHeld { held }));
                    }
                }
            }
            Some(Disposition::Rejected) => self.close_session(CloseReason::SessionRejected),
            Some(Disposition::ServerError(status)) => {
                self.request = Request::InFlight(flight);
                self.request_failed(now, RemoteError::ServerError(status).into(), false);
            }
            // Every head sets a disposition or ends the session; nothing is left to do.
            None => {}
        }
    }

    /// The server's `OUT`, once it has arrived.
    pub(super) fn server_out(&self) -> Option<OutReason> {
        self.out_watch.found.clone()
    }

    /// Looks at newly received bytes for the server's `OUT`.
    pub(super) fn watch_for_out(&mut self) {
        let watch = &mut self.out_watch;
        if watch.off || watch.found.is_some() {
            return;
        }
        // Back two bytes: an `OUT` may straddle two pieces.
        let from = watch.searched_to.saturating_sub(2);
        watch.suspect |= self.inbound.contains_from(from, b"OUT");
        watch.searched_to = self.inbound.end();
        if !watch.suspect {
            return;
        }
        let mut found = None;
        let framed = self.inbound.scan_whole(watch.framed_to, |_, cmd| {
            if cmd.name() != "OUT" {
                return Visit::Continue;
            }
            found = Some(OutReason::from_argument(cmd.arg_bytes().next()));
            Visit::StopAfter
        });
        match framed {
            Ok(end) => {
                watch.framed_to = end;
                // Everything received is framed and clean: the `OUT` seen was inside a payload.
                watch.suspect = found.is_none() && end < self.inbound.end();
                watch.found = found;
            }
            Err(_) => watch.off = true,
        }
    }

    /// Whether MSNP bytes may have been lost with the response in progress: some of it arrived,
    /// and it was (or may have been) a successful one.
    pub(super) fn response_data_lost(&self) -> bool {
        self.decoder.started()
            && !matches!(
                self.disposition,
                Some(Disposition::Rejected | Disposition::ServerError(_))
            )
    }
}

/// Watches the received stream for the MSNP server's `OUT`, which ends the session: the
/// moment it arrives, not when the caller takes it, so no request follows it.
///
/// Framing every response twice would cost every session; instead a byte search for `OUT`
/// over each new piece flags a suspect, and only then are the whole commands not yet looked at
/// framed to see whether one of them is `OUT`.
#[derive(Clone, Debug, Default)]
pub(super) struct OutWatch {
    /// The stream offset up to which the byte search has looked.
    searched_to: u64,
    /// A byte search found `OUT` in commands not yet framed.
    suspect: bool,
    /// The stream offset up to which whole commands were framed and are not `OUT`.
    framed_to: u64,
    /// The `OUT` found.
    found: Option<OutReason>,
    /// The stream cannot be framed: nothing more is looked at.
    off: bool,
}
