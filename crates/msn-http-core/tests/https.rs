//! `https://` gateways in the client session: what each transmit asks of the driver (TLS and
//! the name to check, a `CONNECT` tunnel through a proxy), the requests inside the tunnel, a
//! `GW-IP` move to a second TLS host, and what refused tunnels and failed handshakes do.

mod support;

use msn_http_core::client::{ClientConfig, CloseReason, Connection, Proxy, RequestKind, Tunnel};
use msn_http_core::error::{RemoteError, SessionError, TlsError, TlsErrorKind, TunnelError};
use msn_http_core::{Endpoint, Scheme};
use support::{Ev, Harness, Request, ok};

/// What one transmit asked for: destination, tunnel (to, credentials), TLS name, request.
#[derive(Debug, PartialEq)]
struct Asked {
    destination: String,
    tunnel: Option<(String, Option<(String, String)>)>,
    tls_server_name: Option<String>,
    connection: Connection,
    request: Request,
}

fn next(h: &mut Harness) -> Asked {
    h.out.clear();
    let t = h.session.poll_transmit(h.now, &mut h.out).expect("a request is due");
    let tunnel = t.tunnel.map(|Tunnel { to, credentials }| {
        (to.to_string(), credentials.map(|(u, p)| (u.to_owned(), p.to_owned())))
    });
    Asked {
        destination: t.destination.to_string(),
        tunnel,
        tls_server_name: t.tls_server_name.map(str::to_owned),
        connection: t.connection,
        request: Request::parse(&h.out),
    }
}

fn https(url: &str) -> ClientConfig {
    let config = ClientConfig::from_url(url).unwrap();
    assert_eq!(config.scheme, Scheme::Https);
    config
}

fn through_proxy(mut config: ClientConfig, credentials: Option<(&str, &str)>) -> ClientConfig {
    config.proxy = Some(Proxy {
        endpoint: Endpoint::parse("proxy.test:3128", 80).unwrap(),
        credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
    });
    config
}

fn opened(h: &mut Harness) -> Asked {
    h.session.send(b"VER 1 MSNP8 CVR0\r\n").unwrap();
    next(h)
}

#[test]
fn an_https_gateway_is_reached_with_tls_checked_against_its_host() {
    let mut h = Harness::ns(https("https://gw.test"));
    let open = opened(&mut h);
    assert_eq!(open.destination, "gw.test:443");
    assert_eq!((open.tunnel, open.tls_server_name.as_deref()), (None, Some("gw.test")));
    assert_eq!(open.request.target, "/gateway/gateway.dll?Action=open&Server=NS&IP=messenger.test");
    // The scheme's port is left out of Host, as browsers and the official client do.
    assert_eq!(open.request.header("Host"), Some("gw.test"));
    let mut on_8443 = Harness::ns(https("https://10.0.0.7:8443/gw/gateway.dll"));
    let open = opened(&mut on_8443);
    assert_eq!(open.tls_server_name.as_deref(), Some("10.0.0.7"), "an IP is checked as an IP");
    assert_eq!(open.request.header("Host"), Some("10.0.0.7:8443"));
}

#[test]
fn through_a_proxy_the_tunnel_carries_the_credentials_and_requests_are_origin_form() {
    let config = through_proxy(https("https://gw.test"), Some(("me", "secret")));
    let mut h = Harness::ns(config);
    let open = opened(&mut h);
    assert_eq!(open.destination, "proxy.test:3128");
    let credentials = Some(("me".to_owned(), "secret".to_owned()));
    assert_eq!(open.tunnel, Some(("gw.test:443".to_owned(), credentials)));
    assert_eq!(open.tls_server_name.as_deref(), Some("gw.test"));
    assert!(open.request.target.starts_with("/gateway/gateway.dll?"), "{}", open.request.target);
    // Inside TLS the proxy cannot read them, and the gateway must not see them.
    assert_eq!(open.request.header("Proxy-Authorization"), None);

    // Plain http:// through the same proxy keeps the absolute form with the credentials.
    let plain = through_proxy(ClientConfig::from_url("http://gw.test").unwrap(), Some(("me", "s")));
    let mut h = Harness::ns(plain);
    let open = opened(&mut h);
    assert_eq!((open.tunnel, open.tls_server_name), (None, None));
    assert!(open.request.target.starts_with("http://gw.test/gateway/gateway.dll?"));
    assert_eq!(open.request.header("Proxy-Authorization"), Some("Basic bWU6cw=="));
}

#[test]
fn a_gw_ip_move_checks_the_second_host_by_its_own_name() {
    for proxied in [false, true] {
        let config = https("https://gw.test");
        let config = if proxied { through_proxy(config, None) } else { config };
        let mut h = Harness::ns(config);
        opened(&mut h);
        h.feed(&ok("SessionID=1.1; GW-IP=gw2.test", b"VER 1 MSNP8\r\n"));
        h.session.send(b"CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 6.0.0602 MSMSGS a@b.c\r\n").unwrap();
        let send = next(&mut h);
        assert_eq!(send.request.kind(), RequestKind::Send);
        assert_eq!(send.tls_server_name.as_deref(), Some("gw2.test"), "proxied: {proxied}");
        assert_eq!(send.connection, Connection::Fresh, "a new host, a new connection");
        match proxied {
            true => assert_eq!(send.tunnel, Some(("gw2.test:443".to_owned(), None))),
            false => assert_eq!(send.destination, "gw2.test:443"),
        }
        assert_eq!(send.request.header("Host"), Some("gw2.test"));
    }
}

/// The session's end, after the events are drained.
fn closed(h: &mut Harness) -> Option<SessionError> {
    h.drain();
    h.take_events().into_iter().find_map(|event| match event {
        Ev::Closed(closed) => match closed.reason {
            CloseReason::Failed(error) => Some(error),
            _ => None,
        },
        _ => None,
    })
}

#[test]
fn failed_handshakes_end_the_session_and_are_never_retried() {
    let error = TlsError {
        kind: TlsErrorKind::BadCertificate,
        host: "gw.test".into(),
        detail: "invalid peer certificate: UnknownIssuer".into(),
    };
    // At the first request and after the session is open alike.
    let mut h = Harness::ns(https("https://gw.test"));
    opened(&mut h);
    h.session.handle_tls_failed(h.now, error.clone());
    assert_eq!(closed(&mut h), Some(SessionError::Tls(error.clone())));
    let mut h = Harness::ns(https("https://gw.test"));
    opened(&mut h);
    h.feed(&ok("SessionID=1.1; GW-IP=gw.test", b"VER 1 MSNP8\r\n"));
    h.session.send(b"INF 2\r\n").unwrap();
    next(&mut h);
    h.session.handle_tls_failed(h.now, error.clone());
    assert_eq!(closed(&mut h), Some(SessionError::Tls(error.clone())));
    assert!(h.session.poll_transmit(h.now, &mut Vec::new()).is_none(), "no retry");
    assert_eq!(
        error.to_string(),
        "TLS with gw.test failed: its certificate is not trusted \
         (invalid peer certificate: UnknownIssuer)"
    );
}

#[test]
fn a_proxy_refusal_ends_the_session_unless_the_proxy_could_not_reach_the_gateway() {
    let config = || through_proxy(https("https://gw.test"), None);
    for refusal in [
        TunnelError::ProxyAuthentication { credentials_sent: false },
        TunnelError::Refused { status: 403 },
    ] {
        let mut h = Harness::ns(config());
        opened(&mut h);
        h.feed(&ok("SessionID=1.1; GW-IP=gw.test", b"VER 1 MSNP8\r\n"));
        h.session.send(b"INF 2\r\n").unwrap();
        next(&mut h);
        h.session.handle_tunnel_failed(h.now, refusal);
        assert_eq!(closed(&mut h), Some(RemoteError::Tunnel(refusal).into()), "{refusal:?}");
    }
    // A 502 from the proxy is a failed connect: retried once the session is open.
    let mut h = Harness::ns(config());
    opened(&mut h);
    h.feed(&ok("SessionID=1.1; GW-IP=gw.test", b"VER 1 MSNP8\r\n"));
    h.session.send(b"INF 2\r\n").unwrap();
    let first = next(&mut h);
    h.session.handle_tunnel_failed(h.now, TunnelError::Refused { status: 502 });
    assert_eq!(closed(&mut h), None);
    let retried = next(&mut h);
    assert_eq!((retried.request.body, retried.connection), (first.request.body, Connection::Fresh));
    // ... and ends an opening session at once, like a connect that fails.
    let mut h = Harness::ns(config());
    opened(&mut h);
    h.session.handle_tunnel_failed(h.now, TunnelError::Closed);
    assert_eq!(closed(&mut h), Some(RemoteError::Tunnel(TunnelError::Closed).into()));
}
