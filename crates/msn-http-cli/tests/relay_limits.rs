//! `msn-http relay` against hostile peers. An MSNP server (behind `msn-http gateway`) that
//! answers `XFR` with many distinct and invalid switchboard addresses: the relay's listeners
//! and file descriptors stay bounded and are released when the client leaves, invalid
//! addresses cost no listener, and the warnings about them are rate-limited. Clients that
//! connect and never log in: they lose their slot at the login timeout.

mod support;

use std::net::TcpStream;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use support::{
    Msnp, Running, arg, builtin_gateway, eventually, gateway, login, relay, scripted_backend, text,
};

/// An address that is no `host:port` at all, a distinct one for every `t`: a host with `!`,
/// a port past 65535, a `%00`, 300 characters.
fn invalid_address(t: usize) -> String {
    match t % 4 {
        0 => format!("no_such_host_{t}!!"),
        1 => format!("127.0.0.1:{}", 99_999 + t),
        2 => format!("%00{t}"),
        _ => format!("{t}{}", "a".repeat(300)),
    }
}

/// The hostile server: `XFR t SB` is answered with a new switchboard address for every `t`
/// below 2000, an invalid one from 2000 on, and with an `RNG` to a new address from 3000 on.
fn hostile(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    match words.as_slice() {
        ["VER", trid, ..] => format!("VER {trid} MSNP7\r\n"),
        ["XFR", trid, "SB"] => match trid.parse::<usize>().unwrap_or(0) {
            t @ 3000.. => {
                format!("RNG {t} 127.0.0.1:{} CKI c{t} bob@example.com Bob\r\n", 30_000 + t)
            }
            t @ 2000.. => format!("XFR {t} SB {} CKI c{t}\r\n", invalid_address(t)),
            t => format!("XFR {t} SB {} CKI c{t}\r\n", real_sb(t)),
        },
        _ => String::new(),
    }
}

/// The switchboard address the hostile server gives for `XFR t SB`, `t` below 2000.
fn real_sb(t: usize) -> String {
    format!("127.0.0.1:{}", 20_000 + t)
}

/// Fds the relay may open beyond those counted: its HTTP connection to the gateway can be
/// replaced between requests.
const SLACK: usize = 2;

/// A hostile server behind a gateway, and a relay with `flags` in front: (gateway, relay,
/// the relay's client address). The relay's stderr is kept.
fn hostile_relay(flags: &[&str]) -> (Running, Running, String) {
    let backend = scripted_backend(hostile);
    let route = format!("messenger.hotmail.com={backend}");
    let (gateway, url) = gateway(&["--backend", &route, "--reply-wait", "100ms"]);
    let (relay, listen) = relay(&url, flags, true);
    (gateway, relay, listen)
}

/// Sends `XFR t SB` for every `t` and returns the addresses in the answers, in order.
fn xfr_all(client: &mut Msnp, trids: impl IntoIterator<Item = usize> + Clone) -> Vec<String> {
    let mut batch = String::new();
    for t in trids.clone() {
        batch.push_str(&format!("XFR {t} SB\r\n"));
    }
    client.send(batch.as_bytes());
    trids
        .into_iter()
        .map(|t| {
            let answer = client.expect("the answer", |c| arg(c, 0) == t.to_string());
            let at = if answer.name() == "RNG" { 1 } else { 2 };
            arg(&answer, at)
        })
        .collect()
}

fn logged_in(listen: &str) -> Msnp {
    let mut client = Msnp::connect("client", listen);
    client.line("VER 1 MSNP7 CVR0");
    client.expect("VER", |c| text(c) == "VER 1 MSNP7");
    client
}

#[test]
#[allow(clippy::print_stderr)] // the fd figures, for the record
fn hostile_switchboard_addresses_cost_bounded_listeners_released_when_the_client_leaves() {
    let per_connection = 8;
    let (_gateway, relay, listen) = hostile_relay(&[
        "--listeners-per-connection",
        &per_connection.to_string(),
        "--listener-linger",
        "200ms",
    ]);
    let started = Instant::now();
    let idle = relay.open_fds();
    let mut client = logged_in(&listen);
    let connected = relay.open_fds();

    // Invalid addresses pass unchanged, and no listener is opened for them.
    let got = xfr_all(&mut client, 2000..2200);
    for (i, address) in got.iter().enumerate() {
        assert_eq!(*address, invalid_address(2000 + i), "passed on unchanged");
    }
    let after_invalid = relay.open_fds();
    assert!(
        after_invalid <= connected + SLACK,
        "{after_invalid} fds after 200 invalid addresses, {connected} before"
    );

    // 1000 distinct switchboards, and a few invitations: each rewritten, the listeners held
    // only for the latest few.
    let got = xfr_all(&mut client, (1..=1000).chain(3000..3004));
    for (i, address) in got[..1000].iter().enumerate() {
        assert!(address.starts_with("127.0.0.1:") && *address != real_sb(i + 1), "{address}");
    }
    let busy = relay.open_fds();
    eprintln!(
        "relay fds: idle {idle}, client connected {connected}, after 1000 distinct XFR addresses {busy}"
    );
    assert!(busy <= connected + per_connection + SLACK, "{busy} fds after 1000 distinct addresses");
    let newest = got.last().expect("answers");
    assert!(TcpStream::connect(newest).is_ok(), "the newest relay listener {newest} accepts");
    // (Unless a newer listener got the oldest one's port again.)
    let open = &got[got.len() - per_connection..];
    if !open.contains(&got[0]) {
        assert!(TcpStream::connect(&got[0]).is_err(), "the oldest listener {} is open", got[0]);
    }

    drop(client);
    let released = eventually(Duration::from_secs(10), || {
        let fds = relay.open_fds();
        (fds <= idle).then_some(fds)
    });
    let left = relay.open_fds();
    eprintln!("relay fds after the client left: {left}");
    assert!(released.is_some(), "{left} fds after the client left, {idle} before it came");
    assert_rate_limited(relay, started);
}

#[test]
fn the_listener_cap_is_shared_and_freed_when_connections_end() {
    let (_gateway, relay, listen) =
        hostile_relay(&["--max-listeners", "4", "--listener-linger", "100ms"]);
    let started = Instant::now();
    let mut first = logged_in(&listen);
    let got = xfr_all(&mut first, [1, 2, 3, 4, 5, 6, 1]);
    let real: Vec<String> = (1..=6).map(real_sb).collect();
    for i in 0..4 {
        assert_ne!(got[i], real[i], "rewritten while under the cap");
    }
    assert_eq!(got[4..6], real[4..6], "past the cap, addresses pass unchanged");
    assert_eq!(got[6], got[0], "one listener per address");

    // Another connection given the same address shares its listener; once the first
    // connection leaves, the cap has room again.
    let mut second = logged_in(&listen);
    assert_eq!(xfr_all(&mut second, [2]), [got[1].clone()]);
    drop(first);
    let rewritten = eventually(Duration::from_secs(10), || {
        let got = xfr_all(&mut second, [7]);
        (got[0] != real_sb(7)).then_some(got)
    });
    let rewritten = rewritten.expect("the cap had room again");
    assert!(TcpStream::connect(&got[1]).is_ok(), "still held by the second connection");
    if rewritten[0] != got[0] {
        assert!(TcpStream::connect(&got[0]).is_err(), "released with the first connection");
    }
    assert_rate_limited(relay, started);
}

/// The relay warned about unrelayable addresses, at most once per 10 s since `started`.
fn assert_rate_limited(relay: Running, started: Instant) {
    let allowed = 1 + started.elapsed().as_secs() / 10;
    let warned: Vec<String> =
        relay.stop_for_stderr().into_iter().filter(|l| l.contains("cannot relay")).collect();
    assert!(!warned.is_empty() && warned.len() as u64 <= allowed, "{allowed} allowed: {warned:#?}");
}

#[test]
fn a_client_that_left_after_xfr_ns_still_reaches_the_new_server() {
    // The server refers every login to itself, as a dispatch server refers to an NS.
    let own_addr = Arc::new(OnceLock::<String>::new());
    let referral = Arc::clone(&own_addr);
    let backend = scripted_backend(move |line| {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["VER", trid, ..] => format!("VER {trid} MSNP7\r\n"),
            ["USR", trid, "MD5", "I", _] => {
                let ns = referral.get().expect("the address is known");
                format!("XFR {trid} NS {ns} 0 {ns}\r\n")
            }
            _ => String::new(),
        }
    });
    own_addr.set(backend.clone()).expect("set once");
    let route = format!("messenger.hotmail.com={backend}");
    let (_gateway, url) = gateway(&["--backend", &route, "--allow", &backend]);
    let (_relay, listen) = relay(&url, &[], false);

    let mut dispatch = logged_in(&listen);
    dispatch.line("USR 2 MD5 I alice@example.com");
    let xfr = dispatch.expect("XFR NS", |c| text(c).starts_with("XFR 2 NS "));
    let ns = arg(&xfr, 2);
    assert_ne!(ns, backend, "rewritten to a relay listener");
    // The client leaves the dispatch server, and only then connects to the NS.
    dispatch.line("OUT");
    assert!(dispatch.closed(), "the dispatch connection ends");
    std::thread::sleep(Duration::from_millis(300));
    let mut client = Msnp::connect("client NS", &ns);
    client.line("VER 5 MSNP7 CVR0");
    client.expect("VER from the NS", |c| text(c) == "VER 5 MSNP7");
}

#[test]
fn idle_connections_lose_their_slot_at_the_login_timeout() {
    let (_gateway, url, _) = builtin_gateway(&[]);
    let (_relay, listen) =
        relay(&url, &["--max-connections", "4", "--login-timeout", "500ms"], false);

    // Four clients that never log in hold every slot: one more is turned away at once.
    let mut idle: Vec<Msnp> = (0..4).map(|_| Msnp::connect("idle", &listen)).collect();
    idle[3].line("VER 1 MSNP7 CVR0");
    idle[3].expect("VER", |c| text(c) == "VER 1 MSNP7");
    let mut turned_away = Msnp::connect("turned away", &listen);
    assert!(turned_away.closed(), "no slot left");

    // At the login timeout the relay closes them, even the one that began a login.
    let started = Instant::now();
    for client in &mut idle {
        assert!(client.closed(), "an idle client kept its slot");
    }
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(10), "closed after {waited:?}");

    // A client that logs in keeps its connection past the timeout.
    let mut alice = Msnp::connect("alice", &listen);
    login(&mut alice, "alice@example.com", "alicepass");
    std::thread::sleep(Duration::from_secs(1));
    alice.line("XFR 6 SB");
    alice.expect("XFR", |c| text(c).starts_with("XFR 6 SB "));
}
