//! The client session under random operation sequences, checked by the one model of the resend
//! policy: the `client_session` fuzz harness, driven here with operations proptest generates
//! in the proportions that reach deep into long sessions (many answers cut into reads, few
//! faults), one suite per unconfirmed-commands policy, and one with hostile bytes and ends.

mod support;

use std::time::Duration;

use msn_http_core::client::{OutputMode, PollPolicy, UnconfirmedPolicy};
use msn_http_fuzzing::client::{Answer, AnswerKind, Op, Params, run};
use proptest::prelude::*;

prop_compose! {
    fn params(unconfirmed: UnconfirmedPolicy)(
        poll in prop_oneof![
            Just(PollPolicy::official()),
            Just(PollPolicy::adaptive()),
            Just(PollPolicy::long_poll()),
        ],
        output in prop_oneof![3 => Just(OutputMode::Commands), 1 => Just(OutputMode::Bytes)],
        proxy in prop::bool::weighted(0.2),
        max_queued_bytes in 64usize..=256,
        max_request_body_bytes in 16usize..=128,
        max_inbound_bytes in prop_oneof![1usize..=32, 1usize..=256],
        max_body_bytes in 64u64..=256,
        max_consecutive_failures in prop_oneof![1 => 1u32..=3, 5 => Just(1000u32)],
        timeout_secs in prop_oneof![3 => Just(20u64), 1 => 1u64..=30],
    ) -> Params {
        let request_timeout = Duration::from_secs(timeout_secs);
        Params {
            unconfirmed,
            poll,
            output,
            proxy,
            max_queued_bytes,
            max_request_body_bytes,
            max_inbound_bytes,
            max_body_bytes,
            max_consecutive_failures,
            request_timeout,
        }
    }
}

/// Mostly `200`s (cut, chunked, close-delimited), some `5xx`.
fn answer() -> impl Strategy<Value = Answer> {
    answer_of(prop_oneof![6 => Just(AnswerKind::Ok), 1 => Just(AnswerKind::ServerError)])
}

/// Answers that end the session.
fn ending_answer() -> impl Strategy<Value = Answer> {
    answer_of(prop_oneof![
        Just(AnswerKind::OkClose),
        Just(AnswerKind::Rejected),
        Just(AnswerKind::ProxyAuth),
        Just(AnswerKind::Redirect),
        Just(AnswerKind::NoHeader),
    ])
}

prop_compose! {
    fn answer_of(kind: impl Strategy<Value = AnswerKind>)(
        kind in kind,
        framing in any::<u8>(),
        interim in prop::bool::weighted(0.15),
        close in prop::bool::weighted(0.15),
        new_commands in 0u8..=4,
        take in prop_oneof![any::<u16>(), Just(u16::MAX)],
        id in any::<u8>(),
        gw in any::<u8>(),
    ) -> Answer {
        Answer { kind, framing, interim, close, new_commands, take, id, gw }
    }
}

/// The caller, the gateway, the network and the clock, without hostile bytes or ends.
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (prop::option::weighted(0.25, 0u8..40), any::<u8>())
            .prop_map(|(payload, split)| Op::Send { payload, split }),
        4 => answer().prop_map(Op::Respond),
        8 => prop_oneof![1 => 1u8..=8, 1 => 1u8..=64, 2 => Just(0u8)].prop_map(Op::Deliver),
        1 => Just(Op::Eof),
        1 => Just(Op::ConnectFail),
        1 => Just(Op::Timeout),
        3 => (0u16..5_000).prop_map(Op::Advance),
        3 => any::<bool>().prop_map(|resend| Op::Drain { resend }),
    ]
}

/// Now and then, bytes of the caller's own, garbage from the network, answers that end the
/// session, closes and aborts.
fn hostile_op() -> impl Strategy<Value = Op> {
    let bytes = || prop::collection::vec(any::<u8>(), 0..48);
    prop_oneof![
        25 => op(),
        1 => bytes().prop_map(Op::SendRaw),
        1 => bytes().prop_map(Op::Garbage),
        1 => ending_answer().prop_map(Op::Respond),
        1 => Just(Op::Close),
        1 => Just(Op::Abort),
    ]
}

/// A session under `policy` (any of them for `None`), driven by up to 250 operations.
fn sessions(cases: u32, policy: Option<UnconfirmedPolicy>, op: impl Strategy<Value = Op>) {
    let params = match policy {
        Some(policy) => params(policy).boxed(),
        None => prop_oneof![
            params(UnconfirmedPolicy::Resend),
            params(UnconfirmedPolicy::Ask),
            params(UnconfirmedPolicy::Discard),
        ]
        .boxed(),
    };
    let ops = prop::collection::vec(op, 1..250);
    support::check(cases, 0x6d73_6e70, params, ops, run);
}

#[test]
fn resend_policy() {
    sessions(256, Some(UnconfirmedPolicy::Resend), op());
}

#[test]
fn ask_policy() {
    sessions(256, Some(UnconfirmedPolicy::Ask), op());
}

#[test]
fn discard_policy() {
    sessions(128, Some(UnconfirmedPolicy::Discard), op());
}

#[test]
fn hostile_bytes_closes_and_aborts() {
    sessions(128, None, hostile_op());
}
