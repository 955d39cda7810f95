//! `msn-http gateway --tls-cert --tls-key`: HTTPS in front of the built-in MSNP server, with a
//! certificate made by the test, and the mistakes in its flags said before anything listens;
//! `msn-http connect` to it with `--ca-cert`, and without (the certificate is not trusted);
//! `msn-http relay` to it, for a client that only speaks TCP.

mod support;

use std::net::SocketAddr;

use msn_http_testkit::tls::{TestCa, scenarios};
use support::{Msnp, Running, TempFile, login, relay, run, word_after};

#[test]
fn the_gateway_serves_https_with_the_given_certificate() {
    let ca = TestCa::new();
    let cert = ca.issue(&["localhost", "127.0.0.1"]);
    let (cert_file, key_file) = (
        TempFile::new("tls-cert.pem", &cert.cert_pem),
        TempFile::new("tls-key.pem", &cert.key_pem),
    );
    let args = ["gateway", "--listen", "127.0.0.1:0", "--builtin"];
    let mut gateway = Running::start(
        &[&args[..], &["--tls-cert", cert_file.path(), "--tls-key", key_file.path()]].concat(),
    );
    let url = word_after(&gateway.line_with("listening on "), "listening on ");
    let authority = url.strip_prefix("https://").expect("an https:// URL is printed");
    let addr: SocketAddr = authority.trim_end_matches("/gateway/gateway.dll").parse().unwrap();
    let ip = "messenger.hotmail.com";
    scenarios::a_command_over_https(
        addr,
        &ca,
        "127.0.0.1",
        ip,
        "VER 1 MSNP7 CVR0\r\n",
        "VER 1 MSNP7\r\n",
    );
    scenarios::plain_http_gets_no_http_answer(addr);

    // `connect` trusts the test's CA with --ca-cert, and only then.
    let ca_file = TempFile::new("tls-ca.pem", &ca.cert_pem);
    let https = format!("https://localhost:{}", addr.port());
    let expect_ver =
        ["connect", "--gateway", &https, "--policy", "adaptive", "--expect", "VER 1 MSNP7"];
    let connect = |args: &[&str]| {
        assert_cmd::Command::new(support::bin())
            .args(args)
            .write_stdin("VER 1 MSNP7 CVR0\n")
            .timeout(std::time::Duration::from_secs(60))
            .assert()
    };
    let out = connect(&[&expect_ver[..], &["--ca-cert", ca_file.path()]].concat()).success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("<< VER 1 MSNP7"), "{stdout}");
    let out = connect(&expect_ver).failure().code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    // Not trusted by the system's roots (or, on a machine without any, nothing to trust).
    let untrusted = stderr.contains("TLS with localhost failed: its certificate is not trusted")
        || stderr.contains("no CA certificate to trust");
    assert!(untrusted, "{stderr}");

    // A TCP-only client logs in through the relay, over HTTPS.
    let (_relay, listen) = relay(&https, &["--ca-cert", ca_file.path()], false);
    let mut alice = Msnp::connect("alice", &listen);
    login(&mut alice, "alice@example.com", "alicepass");
}

#[test]
fn unusable_certificates_are_refused_before_listening() {
    let missing = std::env::temp_dir().join("msn-http-no-such-cert.pem");
    let missing = missing.to_str().unwrap();
    let out = run(&["gateway", "--builtin", "--tls-cert", missing, "--tls-key", missing])
        .failure()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains(&format!("cannot serve HTTPS: cannot read {missing}: ")), "{err}");

    let not_pem = TempFile::new("not-a-cert.pem", "hello\n");
    let out =
        run(&["gateway", "--builtin", "--tls-cert", not_pem.path(), "--tls-key", not_pem.path()])
            .failure()
            .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("cannot serve HTTPS: no certificate found in the PEM"), "{err}");

    // One without the other is a usage mistake.
    let out = run(&["gateway", "--builtin", "--tls-cert", not_pem.path()]).failure().code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("--tls-key"), "{err}");
}
