//! The program's surface: help that teaches with examples, and readable usage errors.

mod support;

use support::run;

#[test]
fn every_help_has_an_example() {
    for args in [
        &["--help"][..],
        &["demo", "--help"],
        &["connect", "--help"],
        &["relay", "--help"],
        &["gateway", "--help"],
    ] {
        let assert = run(args).success();
        let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
        assert!(out.contains("Example"), "{args:?} help has no example:\n{out}");
    }
    let assert = run(&["connect", "--help"]).success();
    let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    for statement in [
        "send LINE",
        "expect PATTERN",
        "timeout DURATION",
        "sleep DURATION",
        "close",
        "${md5:TEXT}",
    ] {
        assert!(out.contains(statement), "the script format lacks {statement:?}:\n{out}");
    }
}

#[test]
fn bad_input_is_explained_without_debug_dumps() {
    let assert = run(&["connect", "--gateway", "ftp://gateway.example.net"]).failure().code(2);
    let err = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(err.contains("unsupported scheme \"ftp\" (use http or https)"), "{err}");

    let assert = run(&["gateway", "--listen", "127.0.0.1:0"]).failure().code(1);
    let err = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(err.starts_with("msn-http: no backend allowed"), "{err}");

    let script = support::TempFile::new("bad.msnp", "send VER 1 MSNP7\nwait 2s\n");
    let assert = run(&["connect", "--gateway", "http://127.0.0.1:9", "--script", script.path()])
        .failure()
        .code(1);
    let err = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(err.contains("line 2: unknown statement `wait`"), "{err}");
}
