//! Core benchmarks, one group per question, each with its floor in the same group:
//! request encoding, response decoding and framing (whole and in reads of 1, 64 and 1500
//! bytes), and a full in-memory session cycle.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use msn_http_benches::{
    SessionCycle, decode_and_frame, decoder_and_framer, encode, encode_cases, encoder,
    floor_encode, floor_parse, response,
};

fn encoding(c: &mut Criterion) {
    let (encoder, gateway) = encoder();
    let mut out = Vec::with_capacity(1024);
    for case in encode_cases() {
        encode(&encoder, &gateway, &case, &mut out);
        let mut group = c.benchmark_group(format!("encode/{}", case.name));
        group.throughput(Throughput::Bytes(out.len() as u64));
        group.bench_function("msn-http", |b| {
            b.iter(|| encode(&encoder, &gateway, black_box(&case), &mut out))
        });
        group.bench_function("floor", |b| {
            b.iter(|| floor_encode(&mut out, black_box(&case.query), case.body))
        });
        group.finish();
    }
}

fn decoding(c: &mut Criterion) {
    let (mut decoder, mut framer) = decoder_and_framer();
    let sizes = [("0B", 0, 0), ("300B", 300, 0), ("4KiB", 4096, 0)];
    let reads = [
        ("4KiB-reads-of-1", 4096, 1),
        ("4KiB-reads-of-64", 4096, 64),
        ("4KiB-reads-of-1500", 4096, 1500),
    ];
    for (name, size, piece) in sizes.into_iter().chain(reads) {
        let wire = response(size);
        let piece = if piece == 0 { wire.len() } else { piece };
        let mut group = c.benchmark_group(format!("decode/{name}"));
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function("msn-http", |b| {
            b.iter(|| decode_and_frame(&mut decoder, &mut framer, black_box(&wire), piece))
        });
        group.bench_function("floor", |b| b.iter(|| floor_parse(black_box(&wire))));
        group.finish();
    }
}

fn session_cycle(c: &mut Criterion) {
    let mut cycle = SessionCycle::new(response(300));
    let mut group = c.benchmark_group("session-cycle/300B");
    group.throughput(Throughput::Elements(1));
    group.bench_function("msn-http", |b| b.iter(|| cycle.run()));
    group.bench_function("floor", |b| b.iter(|| cycle.floor()));
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
}

criterion_group! {
    name = benches;
    config = config();
    targets = encoding, decoding, session_cycle
}
criterion_main!(benches);
