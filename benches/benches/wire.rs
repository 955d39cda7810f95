//! Request encoding beside its floor (placeholder group; the full set comes with the benches issue).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use msn_http_core::Endpoint;
use msn_http_core::wire::{HeaderSet, RequestEncoder, RequestLine, TargetForm};

fn encode_poll(c: &mut Criterion) {
    let encoder = RequestEncoder::new("/gateway/gateway.dll", &HeaderSet::official(), None)
        .expect("valid headers");
    let gateway = Endpoint::parse("207.46.110.18", 80).expect("valid address");
    let mut out = Vec::with_capacity(512);
    c.bench_function("encode/poll", |b| {
        b.iter(|| {
            out.clear();
            let line = RequestLine::Poll {
                session_id: "954547325.32498",
                lifespan: None,
            };
            encoder.encode(&mut out, &gateway, TargetForm::Origin, line, b"");
            black_box(out.len())
        })
    });
}

criterion_group!(benches, encode_poll);
criterion_main!(benches);
