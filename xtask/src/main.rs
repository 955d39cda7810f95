//! Workspace automation: `cargo xtask ci` runs exactly what CI runs.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => run_ci(),
        _ => {
            eprintln!("usage: cargo xtask ci\n\n  ci    run .ci/run (format, lints, docs, tests)");
            ExitCode::from(2)
        }
    }
}

/// The workspace root: xtask lives one level below it.
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

fn run_ci() -> ExitCode {
    let root = workspace_root();
    match Command::new("bash")
        .arg(root.join(".ci/run"))
        .current_dir(&root)
        .status()
    {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("could not run .ci/run: {e}");
            ExitCode::FAILURE
        }
    }
}
