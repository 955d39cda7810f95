//! Workspace automation: `cargo xtask ci | bench | demo`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod fuzz;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <command>

  ci            run .ci/run: format, lints, docs, tests, demo, fuzz build
  bench         run the benchmarks and print figure, floor, ratio, target and verdict,
                allocation counts, and instruction counts under callgrind (when valgrind exists)
  bench --quick the same with shorter criterion runs
  fuzz [--time SECS] [--seed N] [TARGET]  run the fuzz targets (all, SECS each, default 60; nightly)
  demo          run `msn-http demo`";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => run(Command::new("bash").arg(workspace_root().join(".ci/run"))),
        Some("bench") => bench::run_bench(&args[1..]),
        Some("fuzz") => fuzz::run_fuzz(&args[1..]),
        Some("demo") => run(cargo()
            .args(["run", "--quiet", "-p", "msn-http-cli", "--", "demo"])
            .args(&args[1..])),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask lives one level below it.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// `cargo`, as the one running xtask, in the workspace root.
pub(crate) fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

/// Runs a command to completion, failing on a non-zero exit.
pub(crate) fn run(command: &mut Command) -> Result<(), String> {
    let status = command.current_dir(workspace_root()).status();
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{command:?} failed: {status}")),
        Err(e) => Err(format!("could not run {command:?}: {e}")),
    }
}
