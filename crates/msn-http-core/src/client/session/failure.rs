//! Failed requests and the end of a session: connect failures, timeouts, the resend policy,
//! the retry back-off, the fallback from a host that is no gateway, and closing.

use super::*;

impl Session {
    /// Connecting to the destination of the request in flight failed with `kind`: nothing
    /// reached the gateway.
    ///
    /// On the session's first request this ends the session at once with
    /// [`NetworkError::ConnectFailed`] (nothing was ever reachable; retrying would only delay
    /// the error). Later the request is made again; when the destination was a host a
    /// `GW-IP` moved the session to, the session first falls back to the configured gateway
    /// ([`Notice::GatewayFallback`]).
    pub fn handle_connect_failed(&mut self, now: Instant, kind: io::ErrorKind) {
        let address = self.destination().clone();
        self.connection_failed(now, NetworkError::ConnectFailed { kind, address }.into());
    }

    /// The proxy did not open the tunnel to the `https://` gateway
    /// ([`Transmit::tunnel`]): nothing reached the gateway.
    ///
    /// A proxy that could not reach the gateway (a `5xx`) or closed the connection counts as a
    /// failed connect and is retried like one. Any other refusal — `407` for credentials, a
    /// `403` for a port it does not allow — ends the session with
    /// [`RemoteError::Tunnel`]: asking again gets the same answer.
    pub fn handle_tunnel_failed(&mut self, now: Instant, error: TunnelError) {
        let retried = matches!(error, TunnelError::Closed | TunnelError::Refused { status: 500.. });
        let error = SessionError::from(RemoteError::Tunnel(error));
        match retried {
            true => self.connection_failed(now, error),
            false => {
                self.now = now;
                if self.request.take_in_flight().is_some() {
                    self.fail(error);
                }
            }
        }
    }

    /// The TLS handshake with the `https://` gateway failed ([`Transmit::tls_server_name`]):
    /// ends the session with [`SessionError::Tls`]. Never retried (see [`TlsError`]).
    pub fn handle_tls_failed(&mut self, now: Instant, error: TlsError) {
        self.now = now;
        if self.request.take_in_flight().is_some() {
            self.fail(SessionError::Tls(error));
        }
    }

    /// Nothing of the request in flight reached the gateway, for `error`: the first request
    /// ends the session, a later one is retried (after a fallback from a moved-to host).
    fn connection_failed(&mut self, now: Instant, error: SessionError) {
        self.now = now;
        if self.phase == Phase::Closed {
            return;
        }
        let Some(flight) = self.request.take_in_flight() else {
            return;
        };
        self.decoder.reset();
        self.fresh_connection = true;
        self.stats.failed_requests += 1;
        if self.phase == Phase::Opening {
            return self.fail(error);
        }
        let mut retry_at = now + self.backoff(self.failures + 1);
        if self.settings.proxy.is_none() && self.fall_back() {
            retry_at = now;
        }
        if !self.count_failure(&error) {
            return;
        }
        self.request = Request::Retry { at: retry_at };
        self.push_event(Pending::Notice(Notice::RequestFailed {
            kind: flight.kind,
            error,
            recovery: Recovery::Resending,
        }));
    }

    /// Goes back to the configured gateway if the session was elsewhere; whether it was.
    pub(super) fn fall_back(&mut self) -> bool {
        let Some((unreachable, to)) = self.route.fall_back() else {
            return false;
        };
        self.stats.fallbacks += 1;
        self.fresh_connection = true;
        self.push_event(Pending::Notice(Notice::GatewayFallback { unreachable, to }));
        true
    }

    /// Time passed: fails a request that has waited past its deadline. Other calls are no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.phase == Phase::Closed {
            return;
        }
        if self.request.in_flight().is_some_and(|f| now >= f.deadline) {
            self.fresh_connection = true;
            let error = NetworkError::Timeout { response_started: self.decoder.started() };
            self.request_failed(now, error.into(), self.response_data_lost());
        }
    }

    /// The request in flight failed; retry, ask, or give up as the policy says.
    pub(super) fn request_failed(&mut self, now: Instant, error: SessionError, data_lost: bool) {
        let Some(flight) = self.request.take_in_flight() else {
            return;
        };
        self.decoder.reset();
        // The head already told: a 400 ends the session however its body ends.
        if self.disposition.take() == Some(Disposition::Rejected) {
            return self.close_session(CloseReason::SessionRejected);
        }
        self.route.forget_pending();
        self.stats.failed_requests += 1;
        if let Some(reason) = self.server_out() {
            return self.close_session(CloseReason::ServerOut(reason));
        }
        if data_lost {
            return self.close_session(CloseReason::Failed(error));
        }
        // A host the session moved to that fails before answering anything is not taken for
        // a gateway: the next request goes to the configured one, at once.
        let fell_back = self.route.unproven() && self.settings.proxy.is_none() && self.fall_back();
        if !self.count_failure(&error) {
            return;
        }
        let delay = if fell_back { Duration::ZERO } else { self.backoff(self.failures) };
        self.request = Request::Retry { at: now + delay };
        let recovery = match (flight.kind, self.settings.unconfirmed) {
            (RequestKind::Poll, _) | (_, UnconfirmedPolicy::Resend) => Recovery::Resending,
            (_, UnconfirmedPolicy::Discard) => {
                self.outgoing.confirm(flight.len);
                Recovery::Discarded { bytes: flight.len }
            }
            (_, UnconfirmedPolicy::Ask) => {
                self.awaiting_decision = Some(flight.len);
                Recovery::AwaitingDecision
            }
        };
        self.push_event(Pending::Notice(Notice::RequestFailed {
            kind: flight.kind,
            error,
            recovery,
        }));
        if matches!(recovery, Recovery::Discarded { .. })
            && self.close_after.is_some_and(|end| self.outgoing.confirmed() >= end)
        {
            self.close_session(CloseReason::Aborted);
        }
    }

    /// Counts a failed request; past the limit, closes the session with `last` as the cause
    /// and returns false.
    pub(super) fn count_failure(&mut self, last: &SessionError) -> bool {
        self.failures += 1;
        if self.failures > self.settings.max_consecutive_failures {
            let error = NetworkError::TooManyFailures {
                failures: self.failures,
                last: Box::new(last.clone()),
            };
            self.close_session(CloseReason::Failed(error.into()));
            return false;
        }
        true
    }

    /// The wait before retry number `failures`: none for the first, then doubling.
    pub(super) fn backoff(&self, failures: u32) -> Duration {
        match failures {
            0 | 1 => Duration::ZERO,
            n => self.settings.retry_delay * 2u32.pow((n - 2).min(MAX_BACKOFF_DOUBLINGS)),
        }
    }

    pub(super) fn unsolicited(&mut self, len: usize) {
        self.fresh_connection = true;
        if let Some((
            _,
            Pending::Notice(Notice::Warning(SessionError::Remote(RemoteError::UnsolicitedData {
                len: total,
            }))),
        )) = self.events.back_mut()
        {
            *total = total.saturating_add(len);
            return;
        }
        self.warn(RemoteError::UnsolicitedData { len }.into());
    }

    pub(super) fn warn(&mut self, error: SessionError) {
        if self.events.len() < MAX_PENDING_EVENTS {
            self.push_event(Pending::Notice(Notice::Warning(error)));
        }
    }

    pub(super) fn push_event(&mut self, event: Pending) {
        self.events.push_back((self.inbound.end(), event));
    }

    pub(super) fn fail(&mut self, error: SessionError) {
        self.close_session(CloseReason::Failed(error));
    }

    pub(super) fn on_frame_error(&mut self, error: FrameError) {
        // The rest of the stream cannot be framed: end now, ahead of any command or data
        // still queued, and of warnings about that input (how much came depends on how the
        // reads were cut); the other notices stay, since what they tell (a move) happened.
        self.shut_down();
        self.events.retain(|(_, pending)| {
            matches!(pending, Pending::Notice(notice) if !matches!(notice, Notice::Warning(_)))
        });
        let reason = CloseReason::Failed(RemoteError::Msnp(error).into());
        self.events.push_back((0, Pending::Closed(reason)));
    }

    pub(super) fn close_session(&mut self, reason: CloseReason) {
        if self.phase == Phase::Closed {
            return;
        }
        self.shut_down();
        self.push_event(Pending::Closed(reason));
    }

    pub(super) fn shut_down(&mut self) {
        self.phase = Phase::Closed;
        self.request = Request::Idle;
        self.awaiting_decision = None;
        self.route.forget_pending();
    }
}
