//! The script format of `msn-http connect --script`, the reply patterns of `expect` and
//! `--expect`, and the `${...}` expansions in what is sent.
//!
//! ```text
//! # A comment. Blank lines are ignored.
//! timeout 5s                       expect waits at most this long from here on
//! send VER 1 MSNP7 CVR0            send one command; CRLF is added
//! expect VER 1 MSNP7*              wait for a received command matching the pattern
//! send USR 4 MD5 I alice@example.com
//! expect USR 4 MD5 S {salt}        {name} captures one word
//! send USR 5 MD5 S ${md5:${salt}alicepass}
//! send MSG 9 A                     a payload command: the | lines are its payload,
//! | MIME-Version: 1.0                joined with CRLF, and its length is added
//! |
//! | hello
//! expect MSG bob@example.com *     | lines after expect match the payload
//! | *hello*
//! sleep 500ms                      pause
//! close                            log out (OUT) and wait for the session to end
//! ```
//!
//! Patterns: `*` matches any run of characters (payload patterns: across lines too), `?` one
//! character, `{name}` one word (no spaces) that is then `${name}`. `${name}` and
//! `${md5:TEXT}` (lowercase hex MD5 of TEXT, after expanding it) work in `send` lines,
//! payloads and patterns. An `expect` takes the oldest received command that matches and no
//! earlier `expect` took, whether it came before or after.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::parse_duration;
use msn_http_core::msnp::md5_login_response;

use crate::msnp::is_payload_command;

/// One step of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send a command line, with its payload lines for a payload command.
    Send { line: String, payload: Option<Vec<String>> },
    /// Wait for a command matching `pattern` (and `payload`, if given).
    Expect { pattern: String, payload: Option<Vec<String>> },
    /// Later expects wait at most this long.
    Timeout(Duration),
    /// Pause.
    Sleep(Duration),
    /// Log out and wait for the end.
    Close,
}

/// A step and the script line it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Numbered {
    pub(crate) line: usize,
    pub(crate) step: Step,
}

/// Parses a script; errors name the line.
pub(crate) fn parse(text: &str) -> Result<Vec<Numbered>, String> {
    let mut steps: Vec<Numbered> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = raw.trim_start();
        if let Some(rest) = trimmed.strip_prefix('|') {
            let text = rest.strip_prefix(' ').unwrap_or(rest).trim_end_matches('\r').to_owned();
            match steps.last_mut().map(|s| &mut s.step) {
                Some(Step::Send { payload: Some(lines), .. })
                | Some(Step::Expect { payload: Some(lines), .. }) => lines.push(text),
                Some(Step::Expect { payload, .. }) => *payload = Some(vec![text]),
                _ => {
                    return Err(format!(
                        "line {n}: a `|` line must follow `send` of a payload command or `expect`"
                    ));
                }
            }
            continue;
        }
        let line = trimmed.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        let step = match word {
            "send" if rest.is_empty() => return Err(format!("line {n}: `send` needs a command")),
            "send" => {
                let name = rest.split(' ').next().unwrap_or_default();
                let payload = is_payload_command(name).then(Vec::new);
                Step::Send { line: rest.to_owned(), payload }
            }
            "expect" if rest.is_empty() => {
                return Err(format!("line {n}: `expect` needs a pattern"));
            }
            "expect" => Step::Expect { pattern: rest.to_owned(), payload: None },
            "timeout" => Step::Timeout(parse_duration(rest).map_err(|e| format!("line {n}: {e}"))?),
            "sleep" => Step::Sleep(parse_duration(rest).map_err(|e| format!("line {n}: {e}"))?),
            "close" => Step::Close,
            other => {
                return Err(format!(
                    "line {n}: unknown statement `{other}` (use send, expect, timeout, sleep, close, | or #)"
                ));
            }
        };
        steps.push(Numbered { line: n, step });
    }
    Ok(steps)
}

/// Captured words, for `${name}`.
pub(crate) type Vars = HashMap<String, String>;

/// Expands `${name}` and `${md5:TEXT}` in `text`.
pub(crate) fn expand(text: &str, vars: &Vars) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let inner_start = start + 2;
        // The matching `}`, counting nested `${`.
        let mut depth = 1;
        let mut end = None;
        let bytes = rest.as_bytes();
        let mut i = inner_start;
        while i < bytes.len() {
            if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
                depth += 1;
                i += 1;
            } else if bytes[i] == b'}' {
                depth -= 1;
                if depth == 0 {
                    end = Some(i);
                    break;
                }
            }
            i += 1;
        }
        let end = end.ok_or_else(|| format!("unclosed `${{` in `{text}`"))?;
        let inner = &rest[inner_start..end];
        match inner.strip_prefix("md5:") {
            // The hex MD5 of TEXT, which is the login answer for salt TEXT and no password.
            Some(arg) => out.push_str(&md5_login_response(&expand(arg, vars)?, "")),
            None => match vars.get(inner) {
                Some(value) => out.push_str(value),
                None => return Err(format!("`${{{inner}}}` was never captured")),
            },
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One piece of a compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(char),
    AnyOne,
    AnyRun,
    Capture(String),
}

/// A reply pattern: `*`, `?` and `{name}` over literal text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    pieces: Vec<Piece>,
    text: String,
}

impl Pattern {
    pub(crate) fn new(text: &str) -> Self {
        let mut pieces = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => pieces.push(Piece::AnyRun),
                '?' => pieces.push(Piece::AnyOne),
                '{' => {
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    pieces.push(Piece::Capture(name));
                }
                c => pieces.push(Piece::Literal(c)),
            }
        }
        Self { pieces, text: text.to_owned() }
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Whether `subject` matches; captures go into `vars` only on a match.
    pub(crate) fn matches(&self, subject: &str, vars: &mut Vars) -> bool {
        let subject: Vec<char> = subject.chars().collect();
        let mut captured = Vec::new();
        if match_from(&self.pieces, &subject, &mut captured) {
            vars.extend(captured);
            true
        } else {
            false
        }
    }
}

/// Backtracking glob matching; patterns are short, so this stays cheap.
fn match_from(pieces: &[Piece], subject: &[char], captured: &mut Vec<(String, String)>) -> bool {
    let Some((first, rest)) = pieces.split_first() else {
        return subject.is_empty();
    };
    match first {
        Piece::Literal(c) => {
            subject.first() == Some(c) && match_from(rest, &subject[1..], captured)
        }
        Piece::AnyOne => !subject.is_empty() && match_from(rest, &subject[1..], captured),
        Piece::AnyRun => (0..=subject.len()).any(|i| match_from(rest, &subject[i..], captured)),
        Piece::Capture(name) => {
            let word = subject.iter().take_while(|c| !c.is_whitespace()).count();
            for len in (1..=word).rev() {
                let mark = captured.len();
                captured.push((name.clone(), subject[..len].iter().collect()));
                if match_from(rest, &subject[len..], captured) {
                    return true;
                }
                captured.truncate(mark);
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_parse_with_line_numbers() {
        let steps = parse(
            "# login\nsend VER 1 MSNP7\nexpect VER 1 *\n\nsend MSG 2 N\n| a\n|\n| b\nexpect MSG *\n| *b\ntimeout 2s\nclose\n",
        )
        .unwrap();
        assert_eq!(steps.len(), 6);
        assert_eq!(steps[0].line, 2);
        assert_eq!(
            steps[2].step,
            Step::Send {
                line: "MSG 2 N".into(),
                payload: Some(vec!["a".into(), "".into(), "b".into()])
            }
        );
        assert_eq!(
            steps[3].step,
            Step::Expect { pattern: "MSG *".into(), payload: Some(vec!["*b".into()]) }
        );
        assert_eq!(steps[4].step, Step::Timeout(Duration::from_secs(2)));
        assert_eq!(
            parse("send VER 1\n| x\n").unwrap_err(),
            "line 2: a `|` line must follow `send` of a payload command or `expect`"
        );
        assert!(parse("sned VER\n").unwrap_err().starts_with("line 1: unknown statement `sned`"));
    }

    #[test]
    fn patterns_match_and_capture() {
        let mut vars = Vars::new();
        assert!(Pattern::new("USR 4 MD5 S {salt}").matches("USR 4 MD5 S 123.456", &mut vars));
        assert_eq!(vars["salt"], "123.456");
        assert!(!Pattern::new("USR 5 OK *").matches("911 5", &mut vars));
        assert!(
            Pattern::new("XFR ? SB {addr} CKI {cookie}")
                .matches("XFR 7 SB 127.0.0.1:1 CKI 9.9", &mut vars)
        );
        assert_eq!((vars["addr"].as_str(), vars["cookie"].as_str()), ("127.0.0.1:1", "9.9"));
        assert!(Pattern::new("*hello*").matches("MIME-Version: 1.0\r\n\r\nsay hello", &mut vars));
        let mut none = Vars::new();
        assert!(!Pattern::new("A {x} B").matches("A one two B", &mut none));
        assert!(none.is_empty(), "no captures from a failed match");
    }

    #[test]
    fn expansions() {
        let mut vars = Vars::new();
        vars.insert("salt".into(), "abc".into());
        assert_eq!(expand("S ${salt}", &vars).unwrap(), "S abc");
        // MD5("abc"), from RFC 1321.
        assert_eq!(expand("${md5:${salt}}", &vars).unwrap(), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(expand("${nope}", &vars).unwrap_err(), "`${nope}` was never captured");
        assert!(expand("${salt", &vars).is_err());
    }
}
