//! Where a request goes: what its head asks for (read before anything changes), a new session
//! for an open, or the session its ID names.

use crate::Endpoint;
use crate::wire::{GatewayQuery, Method, QueryAction, RequestHead, ServerKind};

use super::config::{GatewayConfig, MsnpPorts};
use super::connection::{Reply, Sink};
use super::drive::{Action, ConnectionId};
use super::ids::parse_session_id;
use super::machine::Gateway;
use super::refusal::Refusal;
use super::session::{ReqState, Request, Session};

/// What a request head asks for, read before anything is changed.
pub(super) enum Route {
    /// Answer and close at once: the body cannot be read.
    Fail(Refusal),
    /// Read the body, then answer.
    Then(Reply),
    Open {
        /// The backend `IP=` names, with the port of its kind when it names none.
        ip: Option<Endpoint>,
        server: ServerKind,
    },
    Existing {
        id: Option<(u64, u32)>,
        lifespan: Option<u32>,
    },
}

/// Reads what a request head asks for, without changing anything.
pub(super) fn classify(head: &RequestHead, config: &GatewayConfig) -> Route {
    let method = head.method();
    if method == Method::Other {
        return Route::Then(Reply::Refused(Refusal::MethodNotAllowed));
    }
    let Some(path) = head.path() else {
        return Route::Then(Reply::Refused(Refusal::BadTarget));
    };
    if method == Method::Options && path == "*" {
        return Route::Then(Reply::Preflight);
    }
    if !path.eq_ignore_ascii_case(&config.gateway_path) {
        return Route::Then(Reply::Refused(Refusal::NotFound));
    }
    if method == Method::Options {
        return Route::Then(Reply::Preflight);
    }
    if !head.length_given() {
        return Route::Fail(Refusal::LengthRequired);
    }
    let Ok(query) = head.query() else {
        return Route::Then(Reply::Refused(Refusal::BadQuery));
    };
    route_query(query, config.msnp_ports)
}

fn route_query(query: &GatewayQuery, ports: MsnpPorts) -> Route {
    match (query.action(), query.session_id()) {
        // A poll names its session: without one it is no open.
        (Some(QueryAction::Poll), None) => Route::Then(Reply::Refused(Refusal::PollWithoutSession)),
        (Some(QueryAction::Open), _) | (_, None) => match query.ip() {
            None => Route::Then(Reply::Refused(Refusal::OpenWithoutIp)),
            Some(ip) => {
                // A port-less `IP=` means the MSNP port of the kind opened (clients strip it).
                let server = query.server().unwrap_or(ServerKind::Notification);
                let ip = Endpoint::parse(ip, ports.of(server)).ok();
                Route::Open { ip, server }
            }
        },
        (_, Some(id)) => Route::Existing { id: parse_session_id(id), lifespan: query.lifespan() },
    }
}

impl Gateway {
    /// Opens a session for the request on `conn`, if the limits and the allowlist let it.
    pub(super) fn open_session(
        &mut self,
        conn: ConnectionId,
        ip: Option<Endpoint>,
        server: ServerKind,
    ) -> Result<Sink, Refusal> {
        let config = &self.settings.config;
        if self.sessions.len() >= config.max_sessions {
            return Err(Refusal::TooManySessions);
        }
        let requested = ip.ok_or(Refusal::BadBackendAddress)?;
        let Some(endpoint) = config.backends.resolve(&requested, server, config.msnp_ports) else {
            self.stats.refused_backends += 1;
            return Err(Refusal::BackendNotAllowed);
        };
        let stable = loop {
            let candidate = self.ids.stable();
            if !self.sessions.has_stable(candidate) {
                break candidate;
            }
        };
        let key = self.sessions.insert(Session::new(stable, conn, self.now));
        self.stats.sessions_opened += 1;
        self.actions.push_back(Action::Connect { backend: key, endpoint, server });
        Ok(Sink::Session(key))
    }

    /// Gives a request to the session its ID names.
    pub(super) fn attach(
        &mut self,
        conn: ConnectionId,
        id: Option<(u64, u32)>,
        lifespan: Option<u32>,
    ) -> Result<Sink, Refusal> {
        let found = id.and_then(|(stable, suffix)| self.sessions.find(stable, suffix));
        let Some(key) = found else {
            self.stats.unknown_session_ids += 1;
            return Err(Refusal::UnknownSession);
        };
        let Some(s) = self.sessions.get_mut(key) else {
            return Err(Refusal::UnknownSession);
        };
        if let Some(request) = s.request {
            s.closing = true;
            self.stats.concurrent_requests += 1;
            if let ReqState::Held { .. } = request.state {
                self.answer(key);
            }
            return Err(Refusal::ConcurrentRequest);
        }
        s.request = Some(Request::new(conn, lifespan));
        Ok(Sink::Session(key))
    }
}
