//! The gateway under random client, backend and clock operations, checked by the `gateway`
//! fuzz harness, driven here with operations proptest generates: mostly well-formed requests
//! for the sessions it opened, cut into reads, with hostile bytes, stale IDs, floods and
//! events for connections and backends that are gone mixed in.

mod support;

use std::time::Duration;

use msn_http_core::gateway::{AllowedOrigins, CorsPolicy, GatewayConfig, PingPolicy};
use msn_http_fuzzing::gateway::{BodyChoice, IdChoice, Op, ReqKind, ReqSpec, base_config, run};
use proptest::prelude::*;

/// Setups around the harness's base configuration.
fn configs() -> impl Strategy<Value = GatewayConfig> {
    let secs = |range: std::ops::RangeInclusive<u64>| range.prop_map(Duration::from_secs);
    let cors = prop_oneof![
        Just(None),
        Just(Some(CorsPolicy::any())),
        Just(Some(CorsPolicy {
            allowed_origins: AllowedOrigins::List(vec!["https://a.example".into()]),
            max_age: Duration::from_secs(5),
        })),
    ];
    let ping = prop_oneof![
        Just(PingPolicy::Refuse),
        Just(PingPolicy::answer()),
        Just(PingPolicy::Forward)
    ];
    let limits = (
        1usize..=6,
        1usize..=8,
        64usize..=2048,
        prop_oneof![0u64..=1024, Just(4096)],
        prop_oneof![1usize..=512, Just(4096)],
        64usize..=1024,
        prop_oneof![Just(0usize), 0usize..=4096, Just(65_535)],
    );
    let times = (
        (0u64..2000).prop_map(Duration::from_millis),
        secs(0..=39),
        secs(1..=90),
        secs(1..=20),
        secs(1..=40),
        secs(1..=150),
    );
    (limits, ping, cors, times).prop_map(
        |(
            (sessions, connections, head, body, queued, response_body, extra),
            ping,
            cors,
            (reply_wait, max_lifespan, idle_timeout, connect_timeout, request_timeout, keep_alive),
        )| {
            let mut c = base_config();
            c.max_sessions = sessions;
            c.max_connections = connections;
            c.http_limits.max_head_bytes = head;
            c.http_limits.max_body_bytes = body;
            c.max_buffered_head_bytes = head + extra;
            c.max_queued_bytes = queued;
            c.max_response_body_bytes = response_body;
            c.ping = ping;
            c.cors = cors;
            c.reply_wait = reply_wait;
            c.max_lifespan = max_lifespan;
            c.idle_timeout = idle_timeout;
            c.connect_timeout = connect_timeout;
            c.request_timeout = request_timeout;
            c.keep_alive_timeout = keep_alive;
            c
        },
    )
}

fn spec() -> impl Strategy<Value = ReqSpec> {
    let kind = prop_oneof![
        2 => Just(ReqKind::OpenNs),
        1 => Just(ReqKind::OpenSb),
        4 => Just(ReqKind::Poll),
        4 => Just(ReqKind::Send),
        1 => prop_oneof![
            Just(ReqKind::OpenDenied),
            Just(ReqKind::OpenBadIp),
            Just(ReqKind::Options),
            Just(ReqKind::Get),
            Just(ReqKind::WrongPath),
            Just(ReqKind::NoLength),
        ],
    ];
    let id = prop_oneof![
        6 => Just(IdChoice::Latest),
        1 => Just(IdChoice::Stale),
        1 => Just(IdChoice::Unknown),
        1 => Just(IdChoice::Missing),
    ];
    let body = prop_oneof![
        2 => Just(BodyChoice::Empty),
        4 => any::<u8>().prop_map(BodyChoice::Commands),
        1 => Just(BodyChoice::Ping),
        1 => Just(BodyChoice::Out),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(BodyChoice::Raw),
    ];
    let rare = || prop::bool::weighted(0.1);
    (
        (kind, any::<u8>(), id, body),
        (rare(), rare(), rare(), rare(), prop::option::weighted(0.3, any::<u8>())),
        (rare(), prop::bool::weighted(0.3)),
    )
        .prop_map(
            |(
                (kind, session, id, body),
                (chunked, close, http10, expect, lifespan),
                (absolute, origin),
            )| ReqSpec {
                kind,
                session,
                id,
                body,
                chunked,
                close,
                http10,
                expect,
                lifespan,
                absolute,
                origin,
            },
        )
}

/// What backends send besides their own commands: a greeting, a payload command, one larger
/// than any limit, a line that never ends, noise.
fn backend_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"VER 1 MSNP8\r\n".to_vec()),
        Just(b"MSG a b 5\r\nhello".to_vec()),
        Just(b"MSG a b 3000\r\n".to_vec()),
        Just(vec![b'x'; 3000]),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Accept),
        6 => (any::<u8>(), spec()).prop_map(|(conn, spec)| Op::Request { conn, spec }),
        8 => (any::<u8>(), prop_oneof![Just(0u16), 1u16..=64, 1u16..=2048])
            .prop_map(|(conn, n)| Op::Deliver { conn, n }),
        1 => (any::<u8>(), prop::collection::vec(any::<u8>(), 0..48))
            .prop_map(|(conn, bytes)| Op::Raw { conn, bytes }),
        1 => any::<u8>().prop_map(|conn| Op::ClientEof { conn }),
        3 => any::<u8>().prop_map(|backend| Op::Connected { backend }),
        1 => any::<u8>().prop_map(|backend| Op::ConnectFailed { backend }),
        4 => (any::<u8>(), any::<u8>(), prop::option::weighted(0.2, backend_bytes()))
            .prop_map(|(backend, commands, raw)| Op::BackendSend { backend, commands, raw }),
        1 => any::<u8>().prop_map(|backend| Op::BackendEof { backend }),
        3 => any::<u16>().prop_map(Op::Advance),
        2 => Just(Op::Timeout),
    ]
}

#[test]
fn no_input_breaks_the_gateway() {
    let ops = prop::collection::vec(op(), 1..120);
    support::check(256, 0x6777_6179, configs(), ops, run);
}
