//! What the property suites share: a reproducible proptest run of one harness.

use std::fmt::Debug;
use std::time::Instant;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngSeed, TestRunner};

/// Runs `harness` (a `run` of `msn_http_fuzzing`) on `cases` setups and operation sequences
/// drawn from `params` and `ops`, on a fake clock starting now, and shrinks a failure to the
/// smallest sequence that still breaks it. `seed` keeps runs reproducible;
/// `PROPTEST_RNG_SEED` still picks another.
pub(crate) fn check<P, O>(
    cases: u32,
    seed: u64,
    params: impl Strategy<Value = P>,
    ops: impl Strategy<Value = Vec<O>>,
    harness: impl Fn(&P, Vec<O>, Instant),
) where
    P: Debug,
    O: Debug,
{
    let base = Config::default();
    let rng_seed = match base.rng_seed {
        RngSeed::Random => RngSeed::Fixed(seed),
        seed => seed,
    };
    let config = Config { cases, failure_persistence: None, rng_seed, ..base };
    let outcome = TestRunner::new(config).run(&(params, ops), |(p, ops)| {
        harness(&p, ops, Instant::now());
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
