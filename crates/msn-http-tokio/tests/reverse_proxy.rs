//! Our client through a real TLS-terminating reverse proxy (nginx, from the distribution's
//! packages: `bash .ci/run` installs it) in front of our plain gateway: the proxy's TLS is
//! checked, the `X-MSN-Messenger` header passes through, and `GW-IP` names the proxy (the
//! gateway's `--public-host`), so every request stays on HTTPS.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use msn_http_core::Endpoint;
use msn_http_core::client::Target;
use msn_http_core::gateway::{BackendAllowlist, GatewayConfig};
use msn_http_testkit::tls::{TestCa, client, scenarios};
use msn_http_tokio::Client;
use msn_http_tokio::gateway::GatewayServer;

/// Where the distribution puts nginx.
const NGINX: &str = "/usr/sbin/nginx";

/// nginx running with a configuration of the test's, stopped when dropped.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free loopback port (bound and released; the test's own processes are the only others).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Nginx {
    /// nginx on `port` with TLS (`cert_pem`, `key_pem`) in front of `upstream`, unbuffered
    /// so held polls are not held up.
    fn start(port: u16, upstream: SocketAddr, cert_pem: &str, key_pem: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("msn-http-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = |name: &str| dir.join(name).display().to_string();
        std::fs::write(path("cert.pem"), cert_pem).unwrap();
        std::fs::write(path("key.pem"), key_pem).unwrap();
        let temp: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .iter()
            .map(|kind| format!("  {kind}_temp_path {};\n", path(kind)))
            .collect();
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {pid};\n\
             error_log {log} warn;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n{temp}\
               server {{\n    listen 127.0.0.1:{port} ssl;\n\
                 ssl_certificate {cert};\n    ssl_certificate_key {key};\n\
                 location / {{\n      proxy_pass http://{upstream};\n\
                   proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
                   proxy_set_header Host $host;\n      proxy_buffering off;\n\
                   proxy_request_buffering off;\n    }}\n  }}\n}}\n",
            pid = path("nginx.pid"),
            log = path("error.log"),
            cert = path("cert.pem"),
            key = path("key.pem"),
        );
        std::fs::write(path("nginx.conf"), config).unwrap();
        let child = Command::new(NGINX)
            .args(["-p", &dir.display().to_string(), "-c", &path("nginx.conf")])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts");
        let nginx = Self { child, dir };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }
}

#[test]
fn our_client_reaches_our_gateway_through_nginx_terminating_tls() {
    if !Path::new(NGINX).exists() {
        // `bash .ci/run` installs nginx and requires this test to run for real.
        let required = std::env::var_os("MSN_HTTP_REQUIRE_NGINX").is_some();
        assert!(!required, "{NGINX} is not installed, and MSN_HTTP_REQUIRE_NGINX is set");
        #[allow(clippy::print_stderr)] // a skip must be seen
        {
            eprintln!("SKIPPED: {NGINX} is not installed (apt-get install nginx-light)");
        }
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let rt = rt.unwrap();
    let ca = TestCa::new();
    let cert = ca.issue(&["localhost"]);
    let port = free_port();
    // GW-IP names the proxy, as `msn-http gateway --public-host` does behind one.
    let backend = Endpoint::parse(&scenarios::echo_backend(4).to_string(), 1863).unwrap();
    let backends = BackendAllowlist::new().route(scenarios::BACKEND_HOST, None, backend);
    let config = GatewayConfig::new(format!("localhost:{port}"), [9; 32]).with_backends(backends);
    let gateway = {
        let _entered = rt.enter();
        rt.block_on(GatewayServer::bind("127.0.0.1:0", config)).unwrap().spawn()
    };
    let _nginx = Nginx::start(port, gateway.local_addr(), &cert.cert_pem, &cert.key_pem);
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();
    rt.block_on(async {
        let config = client::https_config(proxy, "localhost", &ca, Duration::from_secs(10));
        let target = Target::notification(scenarios::BACKEND_HOST);
        let session = Client::connect_with(config, target).await.unwrap();
        client::echo_over_https(session).await;
    });
    let stats = rt.block_on(gateway.shutdown()).unwrap();
    assert_eq!(stats.core.sessions_opened, 1);
    assert!(stats.core.requests >= 2, "open, then polls and the logout: {stats:?}");
}
