//! The core stays pure: no runtime crate among its dependencies. (Clock reads, I/O and threads
//! in its code are refused by clippy: see the crate's `clippy.toml`.)

// A test reads the manifest it checks.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs;
use std::path::Path;

#[test]
fn the_core_depends_on_no_runtime_crate() {
    let manifest =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let deps =
        manifest.split("[dependencies]").nth(1).and_then(|rest| rest.split("\n[").next()).unwrap();
    for runtime in ["tokio", "async-std", "async-io", "smol", "mio", "futures", "getrandom"] {
        assert!(
            !deps.lines().any(|l| l.trim_start().starts_with(runtime)),
            "runtime crate {runtime} in the core's dependencies"
        );
    }
}
