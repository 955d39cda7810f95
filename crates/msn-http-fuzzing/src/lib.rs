//! Fuzz harnesses for msn-http, one function per cargo-fuzz target in `fuzz/`, built only on
//! `msn-http-core`'s public API.
//!
//! Each harness takes the fuzzer's raw bytes and panics when an invariant breaks, so a target is
//! a one-liner, `tests/corpus.rs` replays the checked-in corpus (`corpus/<target>/`) through the
//! very same code on stable, and the property tests in `tests/` drive the same harnesses with
//! generated input. Structured harnesses read their operations with [`arbitrary`].
#![forbid(unsafe_code)]

use std::time::Instant;

use arbitrary::{Arbitrary, Unstructured};

pub mod client;
pub mod gateway;
mod wire;

pub use client::{client_session, session_split};
pub use gateway::gateway;
pub use wire::{
    messenger_header, msnp_framer, request_decoder, request_roundtrip, response_decoder,
    response_roundtrip,
};

/// A harness: bytes only, or bytes and the instant a fake clock starts at (the core never
/// reads a clock, so the caller hands one in).
#[derive(Clone, Copy, Debug)]
pub enum Harness {
    /// A codec harness.
    Bytes(fn(&[u8])),
    /// A state-machine harness driven on a fake clock.
    Timed(fn(&[u8], Instant)),
}

impl Harness {
    /// Runs the harness on `data`; a timed one starts its clock at `epoch`.
    pub fn run(self, data: &[u8], epoch: Instant) {
        match self {
            Self::Bytes(f) => f(data),
            Self::Timed(f) => f(data, epoch),
        }
    }
}

/// Every harness by target name: the names of `fuzz/fuzz_targets/*.rs` and of the corpus
/// directories.
pub const TARGETS: &[(&str, Harness)] = &[
    ("response_decoder", Harness::Bytes(response_decoder)),
    ("messenger_header", Harness::Bytes(messenger_header)),
    ("msnp_framer", Harness::Bytes(msnp_framer)),
    ("request_decoder", Harness::Bytes(request_decoder)),
    ("request_roundtrip", Harness::Bytes(request_roundtrip)),
    ("response_roundtrip", Harness::Bytes(response_roundtrip)),
    ("session_split", Harness::Timed(session_split)),
    ("client_session", Harness::Timed(client_session)),
    ("gateway", Harness::Timed(gateway)),
];

/// Drives the world around a state machine under test (nothing when its setup was refused):
/// at most `max_ops` of `ops`, each applied and checked by `step`, then `finish`, which runs
/// every timer out and checks nothing was left behind.
pub(crate) fn drive<W, O>(
    world: Option<W>,
    ops: impl IntoIterator<Item = O>,
    max_ops: usize,
    step: fn(&mut W, O),
    finish: fn(&mut W),
) {
    let Some(mut world) = world else {
        return;
    };
    for op in ops.into_iter().take(max_ops) {
        step(&mut world, op);
    }
    finish(&mut world);
}

/// Reads a setup from the fuzzer's bytes with `read_setup`, then operations for as long as the
/// bytes last, and hands both to `run`.
pub(crate) fn setup_and_ops<'a, P, O: Arbitrary<'a>>(
    data: &'a [u8],
    read_setup: fn(&mut Unstructured<'a>) -> arbitrary::Result<P>,
    run: impl FnOnce(&P, &mut dyn Iterator<Item = O>),
) {
    let mut u = Unstructured::new(data);
    let Ok(setup) = read_setup(&mut u) else {
        return;
    };
    let mut ops =
        std::iter::from_fn(|| if u.is_empty() { None } else { O::arbitrary(&mut u).ok() });
    run(&setup, &mut ops);
}

/// Appends `body` in the chunked transfer coding, `size` bytes a chunk, and the last chunk.
pub(crate) fn write_chunked(out: &mut Vec<u8>, body: &[u8], size: usize) {
    for chunk in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
}

/// Cuts `data` into pieces whose sizes come from `seed`: mostly small (down to one byte), now
/// and then large, so heads, chunk lines and commands get cut everywhere.
pub(crate) fn split(data: &[u8], seed: u64) -> Vec<&[u8]> {
    let mut state = seed | 1;
    let mut pieces = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        // xorshift64: cheap, deterministic, and every seed gives a different cutting.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let size = match state % 8 {
            0..=3 => 1 + (state >> 8) as usize % 4,
            4..=6 => 1 + (state >> 8) as usize % 32,
            _ => 1 + (state >> 8) as usize % 512,
        };
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    pieces
}
