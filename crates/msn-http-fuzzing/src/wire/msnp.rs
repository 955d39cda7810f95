//! The MSNP framer fed whole and in pieces: the same commands, byte-exact, within limits.

use msn_http_core::error::FrameError;
use msn_http_core::msnp::{Command, CommandFramer, FramerLimits, PayloadCommands};

use crate::split;

#[derive(Debug, PartialEq, Eq)]
struct Framed {
    commands: Vec<Vec<u8>>,
    error: Option<FrameError>,
    /// Bytes held when the stream ended without an error.
    buffered: Option<usize>,
}

/// What every command the framer hands out must look like.
fn check_command(cmd: &Command<'_>, rules: &PayloadCommands, limits: FramerLimits) {
    let bytes = cmd.as_bytes();
    assert!(cmd.name().len() == 3 && cmd.name().bytes().all(|b| b.is_ascii_alphanumeric()));
    let line = cmd.line();
    assert!(line.len() <= limits.max_line_bytes && !line.contains(&b'\n'));
    let ending = if bytes[line.len()] == b'\r' { 2 } else { 1 };
    assert_eq!(bytes[line.len() + ending - 1], b'\n');
    let payload = &bytes[line.len() + ending..];
    match cmd.payload() {
        Some(p) => {
            assert_eq!(p, payload);
            assert!(p.len() <= limits.max_payload_bytes);
            assert!(rules.rules().iter().any(|r| r.name.as_slice() == cmd.name().as_bytes()));
            // `rsplit` yields at least one piece, even of an empty line.
            let last = line.trim_ascii_end().rsplit(|&b| b == b' ').next().expect("one piece");
            let announced: usize = std::str::from_utf8(last)
                .ok()
                .and_then(|digits| digits.parse().ok())
                .expect("a line with a payload ends in its length");
            assert_eq!(announced, p.len(), "payload length differs from the line's");
        }
        None => assert!(payload.is_empty()),
    }
}

fn frame(stream: &[u8], pieces: &[&[u8]], rules: &PayloadCommands, limits: FramerLimits) -> Framed {
    let mut f = CommandFramer::new(rules.clone(), limits);
    let mut out = Framed { commands: Vec::new(), error: None, buffered: None };
    let mut pushed = 0usize;
    'pieces: for piece in pieces {
        f.push(piece);
        pushed += piece.len();
        assert_eq!(f.end(), pushed as u64);
        loop {
            match f.next_command() {
                Ok(Some(cmd)) => {
                    check_command(&cmd, rules, limits);
                    out.commands.push(cmd.as_bytes().to_vec());
                }
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e);
                    break 'pieces;
                }
            }
        }
    }
    let taken: usize = out.commands.iter().map(Vec::len).sum();
    // Byte-exact and in order: the commands are the stream's prefix.
    assert_eq!(out.commands.concat(), &stream[..taken]);
    if out.error.is_none() {
        assert_eq!(f.position(), taken as u64);
        assert_eq!(f.buffered(), stream.len() - taken);
        // What is held is at most one partial command.
        assert!(f.buffered() <= limits.max_line_bytes + 2 + limits.max_payload_bytes);
        out.buffered = Some(f.buffered());
    }
    out
}

/// An MSNP byte stream, whole and cut: the same commands, byte-exact, within limits.
///
/// Input: a settings byte (limits and payload rules), a cutting byte, then the stream.
pub fn msnp_framer(data: &[u8]) {
    let Some((&[cfg, cut_seed], stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let limits = FramerLimits {
        max_line_bytes: [8, 16, 64, 1024][usize::from(cfg & 3)],
        max_payload_bytes: [0, 8, 100, 4096][usize::from(cfg >> 2 & 3)],
    };
    let rules = match cfg >> 4 & 3 {
        0 | 1 => PayloadCommands::default(),
        2 => PayloadCommands::none(),
        _ => PayloadCommands::default().without("MSG").with("CHG", 2).with("NOT", 5),
    };
    let whole = frame(stream, &[stream], &rules, limits);
    let pieces = split(stream, u64::from(cut_seed) << 32 | stream.len() as u64);
    assert_eq!(whole, frame(stream, &pieces, &rules, limits), "cutting changed the commands");
}
