//! `msn-http relay` on loopback: raw TCP MSNP clients log in through the relay, get `XFR SB`
//! and `RNG` addresses that point at relay listeners, and chat on the switchboard through
//! them, all via `msn-http gateway --builtin`.

mod support;

use support::{Msnp, arg, builtin_gateway, login, relay, text};

#[test]
fn tcp_clients_chat_through_the_relay() {
    let (_gateway, url, real_sb) = builtin_gateway(&[]);
    let (_relay, listen) = relay(&url, &[], false);

    let mut alice = Msnp::connect("alice", &listen);
    login(&mut alice, "alice@example.com", "alicepass");
    let mut bob = Msnp::connect("bob", &listen);
    login(&mut bob, "bob@example.com", "bobpass");
    alice.expect("bob online", |c| text(c) == "NLN NLN bob@example.com Bob");

    // PNG never reaches the gateway: the relay answers it.
    alice.line("PNG");
    alice.expect("QNG", |c| text(c) == "QNG 50");

    alice.line("XFR 6 SB");
    let xfr = alice.expect("XFR", |c| text(c).starts_with("XFR 6 SB "));
    let sb = arg(&xfr, 2);
    assert!(sb.starts_with("127.0.0.1:"), "{sb}");
    assert_ne!(sb, real_sb, "the switchboard address is rewritten to a relay listener");
    assert_ne!(sb, listen);

    let mut alice_sb = Msnp::connect("alice SB", &sb);
    alice_sb.line(&format!("USR 1 alice@example.com {}", arg(&xfr, 4)));
    alice_sb.expect("USR OK", |c| text(c) == "USR 1 OK alice@example.com Alice");
    alice_sb.line("CAL 2 bob@example.com");
    alice_sb.expect("CAL RINGING", |c| text(c).starts_with("CAL 2 RINGING "));

    let rng = bob.expect("RNG", |c| c.name() == "RNG");
    assert_eq!(arg(&rng, 1), sb, "the invitation points at the same relay listener");
    let mut bob_sb = Msnp::connect("bob SB", &arg(&rng, 1));
    bob_sb.line(&format!("ANS 1 bob@example.com {} {}", arg(&rng, 3), arg(&rng, 0)));
    bob_sb.expect("IRO", |c| text(c) == "IRO 1 1 1 alice@example.com Alice");
    bob_sb.expect("ANS OK", |c| text(c) == "ANS 1 OK");
    alice_sb.expect("JOI", |c| text(c) == "JOI bob@example.com Bob");

    // Payloads pass byte for byte, CRLFs included.
    let hello = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhello\r\nbob";
    let mut msg = format!("MSG 3 A {}\r\n", hello.len()).into_bytes();
    msg.extend_from_slice(hello);
    alice_sb.send(&msg);
    alice_sb.expect("ACK", |c| text(c) == "ACK 3");
    let got = bob_sb.expect("MSG", |c| c.name() == "MSG");
    assert_eq!(text(&got), format!("MSG alice@example.com Alice {}", hello.len()));
    assert_eq!(got.as_command().payload(), Some(&hello[..]));

    bob_sb.send(b"MSG 2 N 3\r\nhi!");
    let back = alice_sb.expect("MSG", |c| c.name() == "MSG");
    assert_eq!(back.as_command().payload(), Some(&b"hi!"[..]));

    bob_sb.line("OUT");
    assert!(bob_sb.closed(), "bob's switchboard connection ends after OUT");
    alice_sb.expect("BYE", |c| text(c) == "BYE bob@example.com");
    bob.line("OUT");
    assert!(bob.closed(), "bob's NS connection ends after OUT");
    alice.expect("FLN", |c| text(c) == "FLN bob@example.com");
    alice_sb.line("OUT");
    alice.line("OUT");
    assert!(alice_sb.closed() && alice.closed());
}
