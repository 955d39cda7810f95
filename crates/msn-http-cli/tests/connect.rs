//! `msn-http connect` against `msn-http gateway --builtin`: scripts with captures and MD5,
//! failing expectations, and typed payload commands.

mod support;

use support::{TempFile, builtin_gateway, run};

/// The example script of `msn-http connect --help`, as a user would copy it from there.
fn help_example() -> String {
    let assert = run(&["connect", "--help"]).success();
    let help = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    let example = help.split("Example script").nth(1).expect("the help shows an example script");
    let lines: Vec<&str> =
        example.lines().skip(1).take_while(|line| line.starts_with("  ")).map(str::trim).collect();
    assert!(lines.len() >= 8, "the example logs in: {lines:?}");
    lines.join("\n")
}

/// Alice logs in with the help's example, then asks for a switchboard.
fn login_script() -> String {
    format!(
        "timeout 10s\n{}\nsend CHG 5 NLN\nexpect CHG 5 NLN\nsend XFR 6 SB\n\
         expect XFR 6 SB {{sb}} CKI {{cookie}}\nclose\n",
        help_example()
    )
}

#[test]
fn the_help_example_logs_in_and_gets_a_switchboard() {
    let (_gateway, url, sb) = builtin_gateway(&[]);
    let script = TempFile::new("login.msnp", &login_script());
    let assert =
        run(&["connect", "--gateway", &url, "--policy", "adaptive", "--script", script.path()])
            .success();
    let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(out.contains(">> USR 3 MD5 I alice@example.com"), "{out}");
    assert!(out.contains("<< USR 4 OK alice@example.com Alice"), "{out}");
    // The switchboard address is the built-in server's, as the gateway printed it.
    assert!(out.contains(&format!("<< XFR 6 SB {sb} CKI ")), "{out}");
}

#[test]
fn a_failed_expectation_names_the_line_and_what_came() {
    let (_gateway, url, _) = builtin_gateway(&[]);
    let script = TempFile::new(
        "wrong.msnp",
        "send VER 1 MSNP7 CVR0\nexpect VER 1 MSNP7\nsend USR 2 MD5 I alice@example.com\n\
         expect USR 2 MD5 S {salt}\nsend USR 3 MD5 S ${md5:${salt}wrong}\ntimeout 2s\nexpect USR 3 OK *\n",
    );
    let assert =
        run(&["connect", "--gateway", &url, "--policy", "adaptive", "--script", script.path()])
            .failure()
            .code(1);
    let err = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(err.contains("script line 7: no command matching `USR 3 OK *` within 2 s"), "{err}");
    assert!(err.contains("`911 3`"), "the wrong-password answer is shown: {err}");
}

#[test]
fn typed_payload_commands_get_their_length() {
    let (_gateway, url, _) = builtin_gateway(&[]);
    // QRY is a payload command: typed without its length, the payload ends at `.`. The NS
    // answers it with 200 (unknown here); INF afterwards proves the stream stayed in step.
    let input =
        "VER 1 MSNP7 CVR0\nQRY 2 msmsgs@msnmsgr.com\nabcdefghijklmnopqrstuvwxyz012345\n.\nINF 3\n";
    let assert = assert_cmd::Command::new(support::bin())
        .args(["connect", "--gateway", &url, "--policy", "adaptive"])
        .args(["--expect", "VER 1 MSNP7", "--expect", "200 2", "--expect", "INF 3 MD5"])
        .write_stdin(input)
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();
    let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(out.contains(">> QRY 2 msmsgs@msnmsgr.com 32"), "{out}");
    assert!(out.contains("<< INF 3 MD5"), "{out}");
}
