//! Runs one benchmark case a given number of times, for instruction counting under
//! callgrind: `icount CASE ITERATIONS`. Two runs with different counts give the instructions
//! of one iteration, setup excluded.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::hint::black_box;
use std::process::ExitCode;

use msn_http_benches::{
    SessionCycle, decode_and_frame, decoder_and_framer, encode, encode_cases, encoder,
    floor_encode, floor_parse, response,
};

/// Every case; a `/floor` suffix runs the case's floor instead.
const CASES: [&str; 10] = [
    "encode/open",
    "encode/send",
    "encode/poll",
    "decode/0B",
    "decode/300B",
    "decode/4KiB",
    "decode/4KiB-reads-of-1",
    "decode/4KiB-reads-of-64",
    "decode/4KiB-reads-of-1500",
    "session-cycle/300B",
];

fn run(case: &str, iterations: u64) -> Option<usize> {
    let mut sink = 0usize;
    if let Some(rest) = case.strip_prefix("encode/") {
        let (name, floor) = rest.split_once('/').map_or((rest, false), |(n, _)| (n, true));
        let case = encode_cases().into_iter().find(|c| c.name == name)?;
        let (encoder, gateway) = encoder();
        let mut out = Vec::with_capacity(1024);
        for _ in 0..iterations {
            if floor {
                floor_encode(&mut out, black_box(&case.query), case.body);
            } else {
                encode(&encoder, &gateway, black_box(&case), &mut out);
            }
            sink += out.len();
        }
    } else if let Some(rest) = case.strip_prefix("decode/") {
        let (name, floor) = rest.split_once('/').map_or((rest, false), |(n, _)| (n, true));
        let (size, piece) = match name {
            "0B" => (0, 0),
            "300B" => (300, 0),
            "4KiB" => (4096, 0),
            "4KiB-reads-of-1" => (4096, 1),
            "4KiB-reads-of-64" => (4096, 64),
            "4KiB-reads-of-1500" => (4096, 1500),
            _ => return None,
        };
        let wire = response(size);
        let piece = if piece == 0 { wire.len() } else { piece };
        let (mut decoder, mut framer) = decoder_and_framer();
        for _ in 0..iterations {
            sink += if floor {
                floor_parse(black_box(&wire))
            } else {
                decode_and_frame(&mut decoder, &mut framer, black_box(&wire), piece)
            };
        }
    } else if let Some(rest) = case.strip_prefix("session-cycle/300B") {
        let mut cycle = SessionCycle::new(response(300));
        for _ in 0..iterations {
            sink += if rest == "/floor" { cycle.floor() } else { cycle.run() };
        }
    } else {
        return None;
    }
    Some(sink)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(case), Some(Ok(iterations))) = (args.first(), args.get(1).map(|n| n.parse())) else {
        eprintln!("usage: icount CASE ITERATIONS\ncases: {}", CASES.join(" "));
        return ExitCode::from(2);
    };
    match run(case, iterations) {
        Some(sink) => {
            println!("{case}: {iterations} iterations ({sink})");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("unknown case {case}");
            ExitCode::from(2)
        }
    }
}
