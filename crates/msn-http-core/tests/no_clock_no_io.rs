//! The core stays pure: no clock reads, no I/O, no threads, no runtime crates.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Code lines of the core's sources; comment lines (doc examples show callers' code) excluded.
fn code_lines() -> Vec<(String, usize, String)> {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    assert!(files.len() > 10, "found the sources");
    let mut lines = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if !line.trim_start().starts_with("//") {
                lines.push((file.display().to_string(), n + 1, line.to_owned()));
            }
        }
    }
    lines
}

#[test]
fn the_core_never_reads_a_clock_or_touches_io() {
    let forbidden = [
        "Instant::now",
        "SystemTime::now",
        "std::net",
        "std::fs",
        "std::thread",
        "std::process",
        "std::io::stdin",
        "getrandom",
    ];
    let hits: Vec<String> = code_lines()
        .into_iter()
        .filter(|(_, _, line)| forbidden.iter().any(|f| line.contains(f)))
        .map(|(file, n, line)| format!("{file}:{n}: {line}"))
        .collect();
    assert!(hits.is_empty(), "the core must stay sans-IO:\n{}", hits.join("\n"));
}

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
