//! `cargo xtask fuzz [--time SECS] [--seed N] [TARGET]`: builds the cargo-fuzz targets with nightly, runs
//! each (or one) for a while, and prints executions and coverage per target from libFuzzer's
//! final `#N DONE cov: C ft: F corp: K/...` line.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::workspace_root;

/// Seconds per target when `--time` is not given.
const DEFAULT_SECS: u64 = 60;

/// What libFuzzer's final statistics line says.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stats {
    execs: u64,
    cov: u64,
    ft: u64,
    corpus: u64,
    execs_per_sec: u64,
}

/// Reads the last `#N DONE ...` line of libFuzzer's output (or the last `#N ...` status line if
/// the run stopped without one).
fn parse_stats(output: &str) -> Option<Stats> {
    let line =
        output.lines().rev().find(|l| l.starts_with('#') && l.contains("DONE")).or_else(|| {
            output.lines().rev().find(|l| l.starts_with('#') && l.contains(" cov: "))
        })?;
    let mut tokens = line.split_whitespace();
    let execs = tokens.next()?.trim_start_matches('#').parse().ok()?;
    let mut stats = Stats { execs, ..Stats::default() };
    let words: Vec<&str> = tokens.collect();
    for pair in words.windows(2) {
        let number = |text: &str| text.split('/').next().and_then(|n| n.parse().ok());
        match pair[0] {
            "cov:" => stats.cov = number(pair[1])?,
            "ft:" => stats.ft = number(pair[1])?,
            "corp:" => stats.corpus = number(pair[1])?,
            "exec/s:" => stats.execs_per_sec = number(pair[1])?,
            _ => {}
        }
    }
    Some(stats)
}

/// The targets: `fuzz/fuzz_targets/*.rs`, sorted.
fn targets(fuzz_dir: &Path) -> Result<Vec<String>, String> {
    let dir = fuzz_dir.join("fuzz_targets");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.path().file_stem()?.to_str().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

fn nightly_cargo() -> Command {
    let mut command = Command::new("cargo");
    command.arg("+nightly").current_dir(workspace_root());
    command
}

/// Installs cargo-fuzz when `cargo +nightly fuzz` is missing.
fn ensure_cargo_fuzz() -> Result<(), String> {
    let present = nightly_cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    println!("installing cargo-fuzz");
    crate::run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
}

pub(crate) fn run_fuzz(args: &[String]) -> Result<(), String> {
    let mut secs = DEFAULT_SECS;
    let mut seed = None;
    let mut only = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--time" => {
                let value = rest.next().ok_or("--time needs a number of seconds")?;
                secs = value.parse().map_err(|_| format!("--time {value}: not a number"))?;
            }
            "--seed" => {
                let value = rest.next().ok_or("--seed needs a number")?;
                let n: u32 = value.parse().map_err(|_| format!("--seed {value}: not a number"))?;
                seed = Some(n);
            }
            name if !name.starts_with('-') && only.is_none() => only = Some(name.to_owned()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let root = workspace_root();
    let fuzz_dir = root.join("fuzz");
    let mut names = targets(&fuzz_dir)?;
    if let Some(name) = &only {
        if !names.contains(name) {
            return Err(format!("no fuzz target {name}; targets: {}", names.join(", ")));
        }
        names = vec![name.clone()];
    }
    ensure_cargo_fuzz()?;
    let mut build = nightly_cargo();
    build.args(["fuzz", "build"]);
    if let Some(name) = &only {
        build.arg(name);
    }
    crate::run(&mut build)?;

    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for name in &names {
        // New inputs go to fuzz/corpus/<target> (ignored by git); the checked-in corpus seeds it.
        let work: PathBuf = fuzz_dir.join("corpus").join(name);
        std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
        let seeds = root.join("crates/msn-http-fuzzing/corpus").join(name);
        let mut command = nightly_cargo();
        command.args(["fuzz", "run", name]).arg(&work);
        if seeds.is_dir() {
            command.arg(&seeds);
        }
        command.args(["--", &format!("-max_total_time={secs}")]);
        // A fixed seed makes a short run repeat the same mutations, so a smoke run is the
        // same run everywhere (only a faster machine gets further along it).
        if let Some(seed) = seed {
            command.arg(format!("-seed={seed}"));
        }
        println!("fuzzing {name} for {secs} s");
        let output = command.output().map_err(|e| format!("could not run cargo fuzz: {e}"))?;
        let text = String::from_utf8_lossy(&output.stderr);
        let stats = parse_stats(&text);
        if !output.status.success() {
            let artifact = text
                .lines()
                .find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p.trim()))
                .unwrap_or("no artifact");
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("{}", tail.join("\n"));
            failed.push(format!("{name} ({artifact})"));
        }
        rows.push((name.clone(), stats, output.status.success()));
    }

    println!();
    println!(
        "{:<20} {:>12} {:>8} {:>8} {:>8} {:>9}  result",
        "target", "execs", "cov", "ft", "corpus", "exec/s"
    );
    for (name, stats, ok) in &rows {
        let result = if *ok { "ok" } else { "CRASH" };
        match stats {
            Some(s) => println!(
                "{name:<20} {:>12} {:>8} {:>8} {:>8} {:>9}  {result}",
                s.execs, s.cov, s.ft, s.corpus, s.execs_per_sec
            ),
            None => println!(
                "{name:<20} {:>12} {:>8} {:>8} {:>8} {:>9}  {result}",
                "?", "?", "?", "?", "?"
            ),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("fuzz targets failed: {}", failed.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_final_stats_line() {
        let output = "INFO: seed\n#1024\tpulse  cov: 10 ft: 11 corp: 3/9b exec/s: 512 rss: 30Mb\n\
                      #2333194\tDONE   cov: 336 ft: 1434 corp: 538/96Kb lim: 4096 exec/s: 38249 rss: 562Mb\n\
                      Done 2333194 runs in 61 second(s)\n";
        assert_eq!(
            parse_stats(output),
            Some(Stats { execs: 2333194, cov: 336, ft: 1434, corpus: 538, execs_per_sec: 38249 })
        );
        let cut = "#77\tNEW    cov: 5 ft: 6 corp: 2/4b lim: 4 exec/s: 0 rss: 30Mb L: 2/2 MS: 1 ChangeBit-\n";
        assert_eq!(parse_stats(cut).map(|s| (s.execs, s.cov, s.corpus)), Some((77, 5, 2)));
        assert_eq!(parse_stats("no stats at all"), None);
    }
}
