//! TLS test partners: certificates made on the spot by a throwaway CA (nothing checked in
//! that expires), and a blocking rustls client that trusts exactly that CA.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use msn_http_driver::certs::{SelfMadeCa, SelfMadeCert};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// A CA made for one test, and what it signs.
pub struct TestCa {
    ca: SelfMadeCa,
    /// The CA's certificate, to trust.
    pub cert_pem: String,
}

/// A server certificate (leaf) with its key, both PEM.
pub type TestCert = SelfMadeCert;

impl TestCa {
    /// A fresh CA (a stranger to every other one).
    pub fn new() -> Self {
        let ca = SelfMadeCa::new().expect("a CA can be made");
        Self { cert_pem: ca.cert_pem.clone(), ca }
    }

    /// A certificate for `names` (DNS names, or IP addresses, which become IP SANs).
    pub fn issue(&self, names: &[&str]) -> TestCert {
        self.ca.issue(names).expect("the CA signs")
    }

    /// A client configuration that trusts this CA alone (ALPN `http/1.1`).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.ca.client_config()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// A blocking TLS client stream.
pub type TlsClient = StreamOwned<ClientConnection, TcpStream>;

/// Connects to `addr` and completes a handshake checking the certificate against `name` with
/// `config`; every read and write afterwards waits at most `timeout`.
pub fn connect_tls(
    addr: SocketAddr,
    name: &str,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> io::Result<TlsClient> {
    let tcp = TcpStream::connect_timeout(&addr, timeout)?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(name.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let session = ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut stream = StreamOwned::new(session, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// Scenarios against a gateway server listening with TLS, run from blocking threads, so each
/// runtime's tests start the server their way and call these.
pub mod scenarios {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::thread;
    use std::time::Duration;

    use super::{TestCa, connect_tls};
    use crate::{Answers, assert_rotated, gateway_post, session_id};

    /// How long any read or write of a scenario may wait.
    pub const WAIT: Duration = Duration::from_secs(10);
    /// The name the server's certificate is for (with the IP `127.0.0.1`).
    pub const NAME: &str = "localhost";
    /// What the sessions of [`a_session_over_https`] open (`IP=`), routed to the echo backend.
    pub const BACKEND_HOST: &str = "messenger.test";

    /// An MSNP backend that echoes what each connection sends, for at most `connections`
    /// connections, on its own threads. Returns its address.
    pub fn echo_backend(connections: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        thread::spawn(move || {
            for stream in listener.incoming().take(connections) {
                let Ok(mut stream) = stream else { return };
                thread::spawn(move || {
                    stream.set_read_timeout(Some(WAIT)).expect("a timeout");
                    let mut buf = [0u8; 4096];
                    for _ in 0..crate::MAX_READS_PER_MESSAGE {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if stream.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    /// Reads one whole answer off `stream`.
    fn answer(stream: &mut impl Read, answers: &mut Answers) -> String {
        for _ in 0..crate::MAX_READS_PER_MESSAGE {
            if let Some(answer) = answers.next_answer() {
                return answer;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).expect("reading an answer");
            assert!(n > 0, "connection closed before a whole answer");
            answers.extend(&chunk[..n]);
        }
        panic!("no whole answer");
    }

    /// A session opened, echoed and polled over one TLS connection (ALPN `http/1.1`), checked
    /// against `name` (a DNS name or the IP literal), to the [`echo_backend`].
    pub fn a_session_over_https(gateway: SocketAddr, ca: &TestCa, name: &str) {
        let ver = "VER 1 MSNP8 CVR0\r\n";
        a_command_over_https(gateway, ca, name, BACKEND_HOST, ver, ver);
    }

    /// Opens a session to `ip` over one TLS connection checked against `name`, sending
    /// `command`, and polls until the backend's answers add up to `reply`.
    pub fn a_command_over_https(
        gateway: SocketAddr,
        ca: &TestCa,
        name: &str,
        ip: &str,
        command: &str,
        reply: &str,
    ) {
        let mut tls = connect_tls(gateway, name, ca.client_config(), WAIT).expect("handshake");
        assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        let open = format!("Action=open&Server=NS&IP={ip}");
        tls.write_all(&gateway_post(name, &open, command)).expect("open");
        let mut answers = Answers::default();
        let opened = answer(&mut tls, &mut answers);
        assert!(opened.starts_with("HTTP/1.1 200 OK\r\n"), "{opened}");
        // The reply may come with the open's answer or with a later poll's.
        let mut replied = opened.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        let mut id = session_id(&opened);
        for _ in 0..50 {
            if replied.len() >= reply.len() {
                break;
            }
            let poll = format!("Action=poll&SessionID={id}");
            tls.write_all(&gateway_post(name, &poll, "")).expect("poll");
            let polled = answer(&mut tls, &mut answers);
            assert!(polled.starts_with("HTTP/1.1 200 OK\r\n"), "{polled}");
            let next = session_id(&polled);
            assert_rotated(&id, &next);
            id = next;
            replied.push_str(polled.split("\r\n\r\n").nth(1).unwrap_or_default());
            thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(replied, reply, "the backend's reply comes back through TLS");
    }

    /// The handshake error a client gets from `gateway` when it checks the certificate against
    /// `name` with `ca` (a certificate it does not trust, or a name it does not hold).
    pub fn handshake_error(gateway: SocketAddr, ca: &TestCa, name: &str) -> rustls::Error {
        let error =
            connect_tls(gateway, name, ca.client_config(), WAIT).expect_err("the handshake fails");
        let inner = error.into_inner().expect("a TLS error inside the I/O error");
        *inner.downcast::<rustls::Error>().expect("a rustls error")
    }

    /// The three refusals a TLS gateway makes, each checked: a client that trusts another
    /// CA, one that expects another name, one that speaks plain HTTP.
    pub fn the_gateway_refuses_wrong_trust_wrong_names_and_plain_http(
        gateway: SocketAddr,
        ca: &TestCa,
    ) {
        assert_eq!(
            handshake_error(gateway, &TestCa::new(), NAME),
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        );
        let wrong_name = handshake_error(gateway, ca, "gateway.example.net");
        assert!(
            matches!(
                wrong_name,
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForNameContext { .. }
                )
            ),
            "{wrong_name:?}"
        );
        plain_http_gets_no_http_answer(gateway);
    }

    /// A client that speaks plain HTTP to the TLS port gets no HTTP answer, and the
    /// connection ends.
    pub fn plain_http_gets_no_http_answer(gateway: SocketAddr) {
        let mut tcp = TcpStream::connect_timeout(&gateway, WAIT).expect("connect");
        tcp.set_read_timeout(Some(WAIT)).expect("a timeout");
        let open = format!("Action=open&Server=NS&IP={BACKEND_HOST}");
        tcp.write_all(&gateway_post(NAME, &open, "VER 1 MSNP8 CVR0\r\n")).expect("write");
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        for _ in 0..crate::MAX_READS_PER_MESSAGE {
            match tcp.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                // A reset ends it too.
                Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("the gateway neither answered nor closed: {e}"),
            }
        }
        assert!(!got.starts_with(b"HTTP/"), "no HTTP over the TLS port: {got:?}");
    }
}

/// The library's client against a TLS gateway: settings, the exchange, and the typed failure.
pub mod client {
    use std::net::{SocketAddr, TcpListener};
    use std::thread;
    use std::time::Duration;

    use msn_http_core::Endpoint;
    use msn_http_core::client::{ClientConfig, CloseReason, Proxy, TlsRoots};
    use msn_http_core::error::{RemoteError, SessionError, TlsError, TunnelError};
    use msn_http_driver::{Client, RecvError};

    use super::TestCa;
    use super::proxy::{Behaviour, ConnectProxy};
    use super::scenarios::WAIT;

    /// Settings for the `https://` gateway at `gateway`, named `host` in the URL, trusting
    /// `ca` alone, with requests that give up after `timeout`.
    pub fn https_config(
        gateway: SocketAddr,
        host: &str,
        ca: &TestCa,
        timeout: Duration,
    ) -> ClientConfig {
        let url = format!("https://{host}:{}", gateway.port());
        let mut config = ClientConfig::from_url(&url).expect("a valid URL");
        let mut roots = TlsRoots::default().with_extra_pem(ca.cert_pem.clone().into_bytes());
        roots.platform = false;
        config.tls_roots = roots;
        config.request_timeout = timeout;
        config
    }

    /// Sends `VER` to the echo backend and receives it back, then closes cleanly.
    pub async fn echo_over_https<L>(mut client: Client<L>) {
        client.send(b"VER 1 MSNP8 CVR0\r\n").await.expect("queued");
        let echoed = client.recv().await.expect("the echo");
        assert_eq!(echoed.to_string(), "VER 1 MSNP8 CVR0");
        let end = client.close().await;
        assert!(end.is_clean(), "{:?}", end.reason);
    }

    /// Sends `VER` and returns the error the session ended with.
    pub async fn failure<L>(mut client: Client<L>) -> SessionError {
        client.send(b"VER 1 MSNP8 CVR0\r\n").await.expect("queued");
        match client.recv().await {
            Err(RecvError::Ended(end)) => match end.reason {
                CloseReason::Failed(error) => error,
                other => panic!("ended for another reason: {other}"),
            },
            other => panic!("the session did not end: {other:?}"),
        }
    }

    /// Sends `VER` and returns the TLS error the session ended with.
    pub async fn tls_failure<L>(client: Client<L>) -> TlsError {
        match failure(client).await {
            SessionError::Tls(error) => error,
            other => panic!("ended for another reason: {other}"),
        }
    }

    /// Sessions through `CONNECT` proxies to the TLS `gateway` (certificate for `localhost`
    /// by `ca`), each opened with `open`: a tunnel without and with credentials, and the
    /// refusals (credentials missing, a `403`) as their typed errors.
    pub async fn through_connect_proxies<L, F, Fut>(gateway: SocketAddr, ca: &TestCa, open: F)
    where
        F: Fn(ClientConfig) -> Fut,
        Fut: Future<Output = Client<L>>,
    {
        let via = |proxy: &ConnectProxy, credentials: Option<(&str, &str)>| {
            let mut config = https_config(gateway, "localhost", ca, WAIT);
            config.proxy = Some(Proxy {
                endpoint: Endpoint::parse(&proxy.addr.to_string(), 80).expect("loopback"),
                credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
            });
            config
        };
        let tunnel_to = |host: &str| {
            format!("CONNECT {host}:{0} HTTP/1.1\r\nHost: {host}:{0}\r\n", gateway.port())
        };
        let connect = tunnel_to("localhost");
        let open_proxy = ConnectProxy::start(Behaviour::Tunnel(None), 4);
        echo_over_https(open(via(&open_proxy, None)).await).await;
        // The gateway announces `GW-IP=127.0.0.1`: the session moves there, through a second
        // tunnel, and TLS checks that host by its own name (an IP, in the certificate too).
        let second = format!("{}\r\n", tunnel_to("127.0.0.1"));
        assert_eq!(open_proxy.heads(), [format!("{connect}\r\n"), second]);

        // `me:secret`, as Basic credentials.
        let guarded = ConnectProxy::start(Behaviour::Tunnel(Some("bWU6c2VjcmV0")), 4);
        echo_over_https(open(via(&guarded, Some(("me", "secret")))).await).await;
        let auth = "Proxy-Authorization: Basic bWU6c2VjcmV0\r\n";
        assert_eq!(guarded.heads()[0], format!("{connect}{auth}\r\n"));
        let refused = failure(open(via(&guarded, None)).await).await;
        let want = TunnelError::ProxyAuthentication { credentials_sent: false };
        assert_eq!(refused, SessionError::Remote(RemoteError::Tunnel(want)));
        let refused = failure(open(via(&guarded, Some(("me", "wrong")))).await).await;
        let want = TunnelError::ProxyAuthentication { credentials_sent: true };
        assert_eq!(refused, SessionError::Remote(RemoteError::Tunnel(want)));

        let forbidding = ConnectProxy::start(Behaviour::Refuse(403), 4);
        let refused = failure(open(via(&forbidding, None)).await).await;
        let want = TunnelError::Refused { status: 403 };
        assert_eq!(refused, SessionError::Remote(RemoteError::Tunnel(want)));
        assert_eq!(refused.to_string(), "the proxy refused the tunnel: HTTP 403");
    }

    /// A listener that accepts connections and never says a word (a stalled TLS server),
    /// holding each for `hold`.
    pub fn silent_listener(hold: Duration) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        thread::spawn(move || {
            for stream in listener.incoming().take(4) {
                let Ok(stream) = stream else { return };
                thread::spawn(move || {
                    thread::sleep(hold);
                    drop(stream);
                });
            }
        });
        addr
    }
}

/// An HTTP proxy that answers `CONNECT` (opening a tunnel, asking for credentials, or
/// refusing), on blocking threads, for the client's tunnel tests.
pub mod proxy {
    use std::io::{self, Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};
    use std::thread;

    use super::scenarios::WAIT;

    /// What the proxy does with a `CONNECT`.
    #[derive(Clone, Copy, Debug)]
    pub enum Behaviour {
        /// Opens the tunnel; with `Some(basic)`, only for `Proxy-Authorization: Basic {basic}`
        /// (else `407`).
        Tunnel(Option<&'static str>),
        /// Answers with this status and closes.
        Refuse(u16),
    }

    /// A proxy on loopback, and the heads of the requests it got.
    pub struct ConnectProxy {
        /// Where it listens.
        pub addr: SocketAddr,
        heads: Arc<Mutex<Vec<String>>>,
    }

    impl ConnectProxy {
        /// Starts one, for at most `connections` connections.
        pub fn start(behaviour: Behaviour, connections: usize) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
            let addr = listener.local_addr().expect("its address");
            let heads = Arc::new(Mutex::new(Vec::new()));
            let seen = Arc::clone(&heads);
            thread::spawn(move || {
                for stream in listener.incoming().take(connections) {
                    let Ok(stream) = stream else { return };
                    let seen = Arc::clone(&seen);
                    thread::spawn(move || {
                        let _ = serve(stream, behaviour, &seen);
                    });
                }
            });
            Self { addr, heads }
        }

        /// The heads received so far, as text.
        pub fn heads(&self) -> Vec<String> {
            self.heads.lock().expect("not poisoned").clone()
        }
    }

    fn serve(
        mut client: TcpStream,
        behaviour: Behaviour,
        seen: &Mutex<Vec<String>>,
    ) -> io::Result<()> {
        client.set_read_timeout(Some(WAIT))?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 16 * 1024 || client.read(&mut byte)? == 0 {
                return Ok(());
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        seen.lock().expect("not poisoned").push(head.clone());
        let refuse = |client: &mut TcpStream, status: u16| {
            let answer = format!("HTTP/1.1 {status} No\r\nContent-Length: 0\r\n\r\n");
            client.write_all(answer.as_bytes())
        };
        let authority = head
            .strip_prefix("CONNECT ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_default()
            .to_owned();
        match behaviour {
            Behaviour::Refuse(status) => return refuse(&mut client, status),
            Behaviour::Tunnel(Some(basic))
                if !head.contains(&format!("\r\nProxy-Authorization: Basic {basic}\r\n")) =>
            {
                return refuse(&mut client, 407);
            }
            Behaviour::Tunnel(_) if authority.is_empty() => return refuse(&mut client, 405),
            Behaviour::Tunnel(_) => {}
        }
        let Ok(upstream) = TcpStream::connect(&authority) else {
            return refuse(&mut client, 502);
        };
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        client.set_read_timeout(None)?;
        let (mut up_read, mut client_write) = (upstream.try_clone()?, client.try_clone()?);
        let down = thread::spawn(move || {
            let _ = io::copy(&mut up_read, &mut client_write);
            let _ = client_write.shutdown(Shutdown::Write);
        });
        let mut up_write = upstream;
        let _ = io::copy(&mut client, &mut up_write);
        let _ = up_write.shutdown(Shutdown::Write);
        let _ = down.join();
        Ok(())
    }
}
